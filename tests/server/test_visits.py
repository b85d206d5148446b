"""Visit tracking: one visit per continuous presence across cameras, driven by frame times."""

from __future__ import annotations

import re

import pytest
from smart_reid_server.identity.visits import PairKind, TransitTimes, Visit, VisitTracker

WINDOW = 60.0
T0 = 1_763_740_000.0


def test_front_then_back_within_the_window_is_one_visit() -> None:
    tracker = VisitTracker(WINDOW)
    first = tracker.observe("alice", "front", T0, is_new_identity=True)
    assert first.is_new_visit and not first.camera_added and first.ended is None
    again = tracker.observe("alice", "front", T0 + 2)
    assert not again.is_new_visit and not again.camera_added
    back = tracker.observe("alice", "back", T0 + 40)
    assert not back.is_new_visit and back.camera_added
    visit = back.visit
    assert visit.visit_id == first.visit.visit_id
    assert visit.cameras == ["front", "back"]
    assert (visit.first_camera, visit.last_camera) == ("front", "back")
    assert visit.sightings == 3 and visit.started_at == T0 and visit.last_seen == T0 + 40
    assert visit.is_new_identity


def test_a_gap_of_a_whole_window_starts_a_new_visit() -> None:
    tracker = VisitTracker(WINDOW)
    first = tracker.observe("bob", "front", T0).visit
    later = tracker.observe("bob", "front", T0 + WINDOW + 1)
    assert later.is_new_visit and later.visit.visit_id != first.visit_id
    assert later.ended is not None and later.ended.visit_id == first.visit_id
    assert later.ended.ended_at == T0 + WINDOW
    assert tracker.visit(first.visit_id) is later.ended, "recently ended visits can be looked up"
    assert tracker.active_for("bob") is later.visit


def test_late_frames_from_another_camera_join_the_visit_in_time_order() -> None:
    tracker = VisitTracker(WINDOW)
    tracker.observe("carol", "front", T0 + 30)
    late = tracker.observe("carol", "back", T0 + 28)  # the back camera's frame arrived late
    assert not late.is_new_visit and late.camera_added
    visit = late.visit
    assert visit.cameras == ["back", "front"], "ordered by when each camera first saw her"
    assert visit.first_camera == "back" and visit.last_camera == "front"
    assert visit.started_at == T0 + 28 and visit.last_seen == T0 + 30
    ancient = tracker.observe("carol", "front", T0 - 500)
    assert not ancient.is_new_visit and ancient.ended is None, "old frames never end a visit"
    assert visit.started_at == T0 + 28, "a straggler from long before does not rewrite the start"
    assert tracker.expire(T0 + 30 + WINDOW - 1) == []


def test_expire_ends_visits_after_the_window_only() -> None:
    tracker = VisitTracker(WINDOW)
    tracker.observe("dave", "front", T0)
    tracker.observe("erin", "back", T0 + 30)
    assert tracker.expire(T0 + WINDOW - 0.5) == []
    ended = tracker.expire(T0 + WINDOW + 5)
    assert [v.person_id for v in ended] == ["dave"]
    assert ended[0].ended_at == T0 + WINDOW
    assert [v.person_id for v in tracker.active()] == ["erin"]
    assert tracker.expire(T0) == [], "a clock behind the frames ends nothing"
    assert not tracker.is_active("dave") and tracker.is_active("erin")
    assert not tracker.is_active("erin", at=T0 + 30 + WINDOW)


def test_presence_per_camera_is_limited_to_the_window() -> None:
    tracker = VisitTracker(WINDOW)
    tracker.observe("fay", "front", T0)
    tracker.observe("fay", "back", T0 + 50)
    tracker.observe("gus", "front", T0 + 55)
    assert tracker.present_on("front", T0 + 56) == ["gus", "fay"]
    assert tracker.present_on("front", T0 + 70) == ["gus"]
    assert tracker.present_on("back", T0 + 70) == ["fay"]
    assert tracker.present_on("garage", T0 + 70) == []


def test_merging_two_active_visits_keeps_one_with_everything() -> None:
    tracker = VisitTracker(WINDOW)
    keep = tracker.observe("keep", "front", T0 + 10).visit
    drop = tracker.observe("drop", "back", T0 + 5).visit
    tracker.observe("drop", "back", T0 + 20)
    absorbed = tracker.merge("keep", "drop")
    assert absorbed is drop
    merged = tracker.active_for("keep")
    assert merged is keep and tracker.active_for("drop") is None
    assert merged.cameras == ["back", "front"] and merged.sightings == 3
    assert (merged.started_at, merged.last_seen) == (T0 + 5, T0 + 20)
    assert tracker.visit(drop.visit_id) is None


def test_merging_moves_a_lone_visit_to_the_kept_person() -> None:
    tracker = VisitTracker(WINDOW)
    visit = tracker.observe("drop", "back", T0, is_new_identity=True).visit
    assert tracker.merge("keep", "drop") is None
    assert tracker.active_for("keep") is visit and visit.person_id == "keep"
    assert not visit.is_new_identity, "the kept identity existed before"
    follow = tracker.observe("keep", "front", T0 + 3)
    assert not follow.is_new_visit and follow.visit is visit


def test_forget_drops_the_visit_silently() -> None:
    tracker = VisitTracker(WINDOW)
    visit = tracker.observe("hal", "front", T0).visit
    assert tracker.forget("hal") is visit
    assert tracker.visit(visit.visit_id) is None and tracker.expire(T0 + 999) == []


def test_a_resumed_visit_goes_on_and_ends_after_the_window() -> None:
    tracker = VisitTracker(window_s=60)
    left_open = Visit("v1", "p1", 100.0, 130.0, cameras=["front"], sightings=4, ended_at=131.0)
    left_open.camera_first_seen["front"] = 100.0
    left_open.camera_last_seen["front"] = 130.0
    tracker.resume(left_open)
    seen = tracker.observe("p1", "back", 150.0)
    assert not seen.is_new_visit and seen.camera_added
    assert seen.visit.visit_id == "v1" and seen.visit.sightings == 5
    assert seen.visit.ended_at is None and seen.visit.cameras == ["front", "back"]
    with pytest.raises(ValueError, match="already on visit"):
        tracker.resume(Visit("v2", "p1", 140.0, 140.0))
    assert tracker.expire(209.0) == []
    assert [v.visit_id for v in tracker.expire(210.0)] == ["v1"]


def test_visit_json_matches_the_contract() -> None:
    tracker = VisitTracker(WINDOW)
    tracker.observe("ivy", "front", T0, is_new_identity=True)
    visit = tracker.observe("ivy", "back", T0 + 1.23456).visit
    data = visit.to_json(label="Visitor 3", known=False, thumbnail_url=None)
    assert re.fullmatch(r"[0-9a-f]{12}", data["visit_id"])
    assert data == {
        "visit_id": visit.visit_id,
        "person_id": "ivy",
        "label": "Visitor 3",
        "known": False,
        "is_new_identity": True,
        "started_at": T0,
        "last_seen": round(T0 + 1.23456, 3),
        "ended_at": None,
        "cameras": ["front", "back"],
        "first_camera": "front",
        "last_camera": "back",
        "sightings": 2,
        "snapshot_url": f"/api/visits/{visit.visit_id}/snapshot.jpg",
        "thumbnail_url": None,
    }


def test_visit_ids_are_unique() -> None:
    tracker = VisitTracker(1.0)
    ids = {tracker.observe("p", "front", T0 + 2 * i).visit.visit_id for i in range(500)}
    assert len(ids) == 500


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        VisitTracker(0)


# -- walking times between cameras (the active tier's sense of place) -------------------------


def test_unknown_cameras_only_rule_out_walks_faster_than_the_minimum() -> None:
    transit = TransitTimes(min_transit_s=2.0, window_s=WINDOW)
    assert transit.plausibility("front", "garden", 1.0) == -1.0, "still in view elsewhere"
    assert transit.plausibility("front", "garden", -1.0) == -1.0, "frames slightly out of order"
    assert transit.plausibility("front", "garden", 20.0) == 0.0
    assert transit.plausibility("front", "front", 0.5) == 0.0, "staying in view says nothing"
    assert transit.window("front", "garden").kind is PairKind.UNKNOWN


def test_configured_neighbours_are_plausible_and_others_are_not() -> None:
    transit = TransitTimes(
        {"front": {"drive": None, "porch": (0.0, 8.0)}, "drive": {"back": (5.0, 40.0)}},
        min_transit_s=2.0,
        window_s=WINDOW,
    )
    assert transit.plausibility("drive", "front", 15.0) == 1.0, "pairs work both ways"
    assert transit.plausibility("front", "porch", 0.5) == 1.0, "overlapping views: no minimum"
    assert transit.plausibility("front", "porch", 20.0) == 0.0, "slower than configured"
    assert transit.plausibility("back", "drive", 3.0) == -1.0, "faster than configured"
    assert transit.plausibility("front", "back", 30.0) == -0.5, "not neighbours"
    assert transit.plausibility("front", "shed", 30.0) == 0.0, "a camera nobody configured"


def test_observed_hand_overs_teach_the_walking_time() -> None:
    transit = TransitTimes({"front": ["drive"], "drive": ["back"]}, window_s=WINDOW)
    assert transit.plausibility("front", "back", 12.0) == -0.5
    for seconds in (10.0, 12.0, 14.0):
        transit.observe("back", "front", seconds)
    window = transit.window("front", "back")
    assert window.kind is PairKind.KNOWN, "what people do beats the configuration"
    assert (window.fastest, window.slowest) == (5.0, 22.0)
    assert transit.plausibility("front", "back", 12.0) == 1.0
    assert transit.plausibility("front", "back", 4.0) == -1.0
    assert transit.learned() == {"back|front": [10.0, 12.0, 14.0]}


def test_cameras_that_overlap_learn_that_no_walk_is_needed() -> None:
    transit = TransitTimes(min_transit_s=2.0, window_s=WINDOW)
    assert transit.plausibility("drive", "porch", 0.4) == -1.0
    for seconds in (0.3, 0.6, 0.2):
        transit.observe("drive", "porch", seconds)
    assert transit.plausibility("drive", "porch", 0.4) == 1.0


def test_transit_learning_ignores_what_is_not_a_walk() -> None:
    transit = TransitTimes(window_s=WINDOW, min_observations=1)
    transit.observe("front", "front", 5.0)
    transit.observe("front", "back", WINDOW + 1.0)
    transit.observe("front", "back", -3.0)
    assert transit.learned() == {}
    off = TransitTimes(window_s=WINDOW, learn=False, min_observations=1)
    off.observe("front", "back", 5.0)
    assert off.learned() == {} and off.window("front", "back").kind is PairKind.UNKNOWN


def test_nonsense_transit_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"front -> back: transit \[9.0, 3.0\]"):
        TransitTimes({"front": {"back": (9.0, 3.0)}})
    with pytest.raises(ValueError, match="min_transit_s"):
        TransitTimes(min_transit_s=-1.0)
