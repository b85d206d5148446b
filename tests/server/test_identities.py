"""End-to-end identity behaviour on real embeddings of real people (CUHK03, retail-0277).

View A of a CUHK03 identity plays camera ``front``, view B camera ``back``.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from _embeddings import (
    DIM,
    MARGIN,
    MODEL_NAME,
    THRESHOLD,
    UNCERTAIN,
    Plan,
    Sample,
    make_frame,
    require_assets,
    samples,
    uncertain_plan,
)
from smart_reid_server.identity.identities import (
    ActiveTierConfig,
    Identities,
    ObserveResult,
    UncertainPolicy,
    UnknownPersonError,
    VisitEventReason,
)
from smart_reid_server.identity.store import DB_NAME, Store
from smart_reid_server.types import Box, Crop, Detection, Frame, MatchStatus, QualityReport
from smart_reid_server.vision.crops import sharpness

WINDOW = 60.0
T0 = 1_763_740_000.0
DAY = 86400.0


def open_identities(data_dir: Path, **overrides: object) -> Identities:
    settings: dict[str, object] = {
        "model_name": MODEL_NAME,
        "dim": DIM,
        "threshold": THRESHOLD,
        "uncertain_margin": MARGIN,
        "max_exemplars": 8,
        "exemplar_min_distance": 0.08,
        "window_s": WINDOW,
        "retention_days": 30,
    }
    settings.update(overrides)
    identities = Identities(Store(data_dir), **settings)  # type: ignore[arg-type]
    identities.load()
    return identities


@pytest.fixture
def ids(tmp_path: Path) -> Iterator[Identities]:
    identities = open_identities(tmp_path / "data")
    yield identities
    identities.close()


def see(
    identities: Identities,
    camera: str,
    t: float,
    people: list[Sample],
    *,
    quality_ok: bool | None = None,
) -> ObserveResult:
    frame, crops, vectors = make_frame(camera, t, people, quality_ok=quality_ok)
    return identities.observe(camera, t, crops, vectors, frame)


def walk_past_front(identities: Identities, plan: Plan, t: float) -> ObserveResult:
    """The person's view-A crops, one frame a second on ``front``; returns the first result."""
    first = see(identities, "front", t, [plan.view_a[0]])
    for i, sample in enumerate(plan.view_a[1:], start=1):
        see(identities, "front", t + i, [sample])
    return first


def test_one_alert_for_a_person_walking_from_front_to_back(
    ids: Identities, plans: list[Plan]
) -> None:
    p = plans[0]
    first = walk_past_front(ids, p, T0)
    (arrival,) = first.decisions
    assert arrival.new_person and arrival.is_new_identity
    assert arrival.match is MatchStatus.NEW and arrival.label == "Visitor 1"
    assert arrival.visit_cameras == ["front"] and arrival.first_camera == "front"
    assert arrival.person_id in first.changed_person_ids

    back = see(ids, "back", T0 + 20, [p.view_b])
    (later,) = back.decisions
    assert later.person_id == arrival.person_id and later.match is MatchStatus.MATCHED
    assert not later.new_person, "still the same visit: no second alert"
    assert later.visit_id == arrival.visit_id
    assert later.visit_cameras == ["front", "back"] and later.first_camera == "front"
    (event,) = [e for e in back.visit_events if e.reason is VisitEventReason.CAMERA_ADDED]
    assert event.camera == "back" and event.visit.cameras == ["front", "back"]
    payload = event.to_json()
    assert payload["reason"] == "camera_added" and payload["visit"]["label"] == "Visitor 1"
    person = ids.person(arrival.person_id)
    assert person.present and person.camera == "back" and person.visit_count == 1
    assert person.cameras == ["back", "front"] and person.exemplars >= 2
    assert ids.camera_presence("back") == [arrival.person_id]


def test_a_different_person_gets_their_own_alert(ids: Identities, plans: list[Plan]) -> None:
    p, q = plans[:2]
    walk_past_front(ids, p, T0)
    (other,) = see(ids, "back", T0 + 5, [q.view_b]).decisions
    assert other.new_person and other.is_new_identity and other.match is MatchStatus.NEW
    assert other.label == "Visitor 2"
    assert len({pv.person_id for pv in ids.persons()}) == 2


def test_coming_back_after_the_window_is_a_new_visit_of_a_known_identity(
    ids: Identities, plans: list[Plan]
) -> None:
    p = plans[0]
    (arrival,) = walk_past_front(ids, p, T0).decisions
    last = T0 + len(p.view_a) - 1
    ended = ids.expire(last + WINDOW + 1)
    assert [e.reason for e in ended] == [VisitEventReason.ENDED]
    assert ended[0].visit.ended_at == last + WINDOW and ended[0].snapshot is not None
    assert not ids.person(arrival.person_id).present

    (again,) = see(ids, "back", T0 + 3600, [p.view_b]).decisions
    assert again.person_id == arrival.person_id
    assert again.new_person and not again.is_new_identity
    assert again.visit_id != arrival.visit_id
    assert ids.person(arrival.person_id).visit_count == 2
    history = ids.visit(arrival.visit_id)
    assert history is not None and history["ended_at"] == round(last + WINDOW, 3)


def test_uncertain_look_alike_during_a_visit_is_not_announced_again(ids: Identities) -> None:
    require_assets()
    plan, _ = uncertain_plan()
    (arrival,) = walk_past_front(ids, plan, T0).decisions
    exemplars = ids.person(arrival.person_id).exemplars
    (doubtful,) = see(ids, "back", T0 + 10, [plan.view_b]).decisions
    assert doubtful.match is MatchStatus.UNCERTAIN
    assert doubtful.person_id == arrival.person_id and doubtful.candidate_id == arrival.person_id
    assert not doubtful.new_person
    assert ids.person(arrival.person_id).exemplars == exemplars, "uncertain crops teach nothing"


def test_uncertain_look_alike_after_the_visit_becomes_a_new_identity_naming_the_candidate(
    ids: Identities,
) -> None:
    require_assets()
    plan, similarity = uncertain_plan()
    (arrival,) = walk_past_front(ids, plan, T0).decisions
    ids.expire(T0 + 1000)
    (doubtful,) = see(ids, "back", T0 + 2000, [plan.view_b]).decisions
    assert doubtful.match is MatchStatus.UNCERTAIN
    assert doubtful.person_id != arrival.person_id
    assert doubtful.new_person and doubtful.is_new_identity
    assert doubtful.candidate_id == arrival.person_id
    assert doubtful.candidate_similarity == pytest.approx(similarity, abs=1e-4)
    assert doubtful.to_json()["match"] == "uncertain"


def test_two_people_in_one_frame_never_share_an_identity(
    ids: Identities, plans: list[Plan]
) -> None:
    p, q = plans[:2]
    walk_past_front(ids, p, T0)
    # Two detections that both look like p (the same CUHK03 person twice) plus q.
    result = see(ids, "back", T0 + 10, [p.view_a[0], p.view_b, q.view_b])
    person_ids = [d.person_id for d in result.decisions]
    assert len(set(person_ids)) == 3
    known = [d for d in result.decisions if not d.new_person]
    assert len(known) == 1, "only one of the two look-alikes can be the person already here"
    fresh = next(d for d in result.decisions if d.new_person)
    snapshot = ids.visit_snapshot(fresh.visit_id)
    assert snapshot is not None and snapshot.camera == "back"
    assert [d.person_id for d in snapshot.decisions] == person_ids, "everyone in the frame"


def test_identities_survive_a_restart(tmp_path: Path, plans: list[Plan]) -> None:
    p, q = plans[:2]
    first = open_identities(tmp_path)
    (a,) = walk_past_front(first, p, T0).decisions
    (b,) = see(first, "front", T0 + 1, [q.view_a[0]]).decisions
    first.rename(a.person_id, "Alice")
    first.set_known(a.person_id, True)
    exemplars = first.person(a.person_id).exemplars
    first.close()

    second = open_identities(tmp_path)
    alice = second.person(a.person_id)
    assert (alice.label, alice.known, alice.exemplars) == ("Alice", True, exemplars)
    assert second.person(b.person_id).label == "Visitor 2"
    (back,) = see(second, "back", T0 + 3600, [p.view_b]).decisions
    assert back.person_id == a.person_id and back.label == "Alice" and back.known
    assert back.new_person and not back.is_new_identity
    (stranger,) = see(second, "back", T0 + 3601, [plans[2].view_b]).decisions
    assert stranger.label == "Visitor 3"
    second.close()


def test_retention_forgets_stale_strangers_but_not_household(
    ids: Identities, plans: list[Plan]
) -> None:
    p, q, r = plans[:3]
    (pp,) = see(ids, "front", T0, [p.view_a[0]]).decisions
    (qq,) = see(ids, "front", T0 + 1, [q.view_a[0]]).decisions
    ids.set_known(pp.person_id, True)
    ids.expire(T0 + 100)
    assert ids.thumbnail_path(qq.person_id) is not None
    (rr,) = see(ids, "back", T0 + 40 * DAY, [r.view_b]).decisions  # present right now
    gone = ids.purge_stale(T0 + 40 * DAY)
    assert gone == [qq.person_id]
    with pytest.raises(UnknownPersonError):
        ids.person(qq.person_id)
    assert {v.person_id for v in ids.persons()} == {pp.person_id, rr.person_id}
    assert ids.gallery.exemplar_count(qq.person_id) == 0
    assert not (ids.store.thumbnails_dir / f"{qq.person_id}.jpg").exists()
    (back,) = see(ids, "front", T0 + 40 * DAY + 5, [q.view_a[0]]).decisions
    assert back.is_new_identity, "a forgotten person is a stranger again"


def test_merging_a_look_alike_into_the_person_it_probably_was(ids: Identities) -> None:
    require_assets()
    plan, _ = uncertain_plan()
    (alice,) = walk_past_front(ids, plan, T0).decisions
    ids.expire(T0 + 500)
    (dup,) = see(ids, "back", T0 + 600, [plan.view_b]).decisions
    assert dup.candidate_id == alice.person_id and dup.person_id != alice.person_id
    ids.rename(alice.person_id, "Alice")
    merged = ids.merge(alice.person_id, dup.person_id)
    assert merged.label == "Alice" and merged.visit_count == 2
    assert merged.present and merged.visit_id == dup.visit_id, "the running visit moved over"
    assert merged.cameras == ["back", "front"]
    with pytest.raises(UnknownPersonError):
        ids.person(dup.person_id)
    (again,) = see(ids, "back", T0 + 605, [plan.view_b]).decisions
    assert again.person_id == alice.person_id and again.label == "Alice"
    assert again.match is MatchStatus.MATCHED and not again.new_person
    with pytest.raises(ValueError, match="themselves"):
        ids.merge(alice.person_id, alice.person_id)


def test_merging_two_people_on_visits_at_once_leaves_one_visit(tmp_path: Path) -> None:
    require_assets()
    plan, _ = uncertain_plan()
    # Single-tier matching with the strict policy: the look-alike becomes a second identity
    # while the first is still on its visit (with the active tier it would join that visit).
    ids = open_identities(tmp_path, uncertain_policy=UncertainPolicy.NEW_IDENTITY, active=None)
    (alice,) = walk_past_front(ids, plan, T0).decisions
    (dup,) = see(ids, "back", T0 + 10, [plan.view_b]).decisions
    assert dup.new_person and dup.person_id != alice.person_id, "policy: always a new identity"
    merged = ids.merge(alice.person_id, dup.person_id)
    assert merged.visit_count == 1 and merged.visit_id == alice.visit_id
    visit = ids.visit(alice.visit_id)
    assert visit is not None and visit["cameras"] == ["front", "back"]
    assert ids.visit(dup.visit_id) is None
    (ended,) = ids.expire(T0 + 1000)
    assert ended.visit.person_id == alice.person_id
    assert ended.visit.sightings == len(plan.view_a) + 1
    ids.close()


def test_forget_deletes_the_person_everywhere(ids: Identities, plans: list[Plan]) -> None:
    p = plans[0]
    (a,) = walk_past_front(ids, p, T0).decisions
    thumb = ids.thumbnail_path(a.person_id)
    assert thumb is not None and cv2.imread(str(thumb)) is not None
    ids.forget(a.person_id)
    with pytest.raises(UnknownPersonError, match="unknown person"):
        ids.person(a.person_id)
    assert not thumb.exists() and ids.persons() == [] and len(ids.gallery) == 0
    assert ids.camera_presence("front") == []
    assert ids.expire(T0 + 9999) == [], "a forgotten person's visit does not end publicly"
    (b,) = see(ids, "back", T0 + 10, [p.view_b]).decisions
    assert b.person_id != a.person_id and b.new_person and b.is_new_identity
    with pytest.raises(UnknownPersonError):
        ids.forget(a.person_id)


def test_reset_of_one_camera_and_of_everything(ids: Identities, plans: list[Plan]) -> None:
    p, q, r = plans[:3]
    (pf,) = see(ids, "front", T0, [p.view_a[0]]).decisions
    see(ids, "back", T0 + 5, [p.view_b])
    (qf,) = see(ids, "front", T0 + 6, [q.view_a[0]]).decisions
    (rb,) = see(ids, "back", T0 + 7, [r.view_b]).decisions
    assert ids.person(pf.person_id).cameras == ["back", "front"]
    assert ids.reset(camera="front") == [qf.person_id]
    assert {v.person_id for v in ids.persons()} == {pf.person_id, rb.person_id}
    assert sorted(ids.reset()) == sorted([pf.person_id, rb.person_id])
    assert ids.persons() == [] and len(ids.gallery) == 0
    (fresh,) = see(ids, "front", T0 + 20, [p.view_a[0]]).decisions
    assert fresh.label == "Visitor 4", "numbers are not reused after a reset"


def test_poor_crops_identify_but_do_not_teach(ids: Identities, plans: list[Plan]) -> None:
    p = plans[0]
    (a,) = see(ids, "front", T0, [p.view_a[0]], quality_ok=False).decisions
    assert not a.quality_ok and a.new_person
    person = ids.person(a.person_id)
    assert person.exemplars == 1, "a new identity is seeded even from a poor crop"
    assert person.thumbnail_url is None, "no thumbnail from a crop that failed the gates"
    for i, sample in enumerate(p.view_a[1:], start=1):
        (d,) = see(ids, "front", T0 + i, [sample], quality_ok=False).decisions
        assert d.person_id == a.person_id
    assert ids.person(a.person_id).exemplars == 1
    see(ids, "front", T0 + 10, [p.view_a[1]], quality_ok=True)
    person = ids.person(a.person_id)
    assert person.exemplars == 2
    assert person.thumbnail_url is not None
    assert person.thumbnail_url.startswith(f"/api/persons/{a.person_id}/thumbnail.jpg?v=")


def test_a_clearly_better_snapshot_is_announced(ids: Identities, plans: list[Plan]) -> None:
    p = plans[0]
    (a,) = see(ids, "front", T0, [p.view_a[0]], quality_ok=False).decisions
    snap = ids.visit_snapshot(a.visit_id)
    assert snap is not None and snap.rank < 0
    soon = see(ids, "front", T0 + 1, [p.view_a[1]], quality_ok=True)
    assert not soon.visit_events, "not more often than every few seconds"
    later = see(ids, "front", T0 + 10, [p.view_a[0]], quality_ok=True)
    reasons = [e.reason for e in later.visit_events]
    assert reasons == [VisitEventReason.BETTER_SNAPSHOT]
    best = ids.visit_snapshot(a.visit_id)
    assert best is not None and best.rank > 0 and best.image.shape[2] == 3
    (ended,) = ids.expire(T0 + 500)
    assert ended.snapshot is best
    path = ids.save_visit_snapshot(a.visit_id, cv2.imencode(".jpg", best.image)[1].tobytes())
    assert path == ids.snapshot_path(a.visit_id) and path.stat().st_size > 0
    assert ids.visit_snapshot(a.visit_id) is None, "the frame is released once saved"


def test_damaged_and_foreign_exemplars_are_skipped_on_load(
    tmp_path: Path, plans: list[Plan], caplog: pytest.LogCaptureFixture
) -> None:
    p, q = plans[:2]
    first = open_identities(tmp_path)
    (a,) = walk_past_front(first, p, T0).decisions
    (b,) = see(first, "front", T0 + 1, [q.view_a[0]]).decisions
    first.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("UPDATE exemplars SET vector = x'0011' WHERE person_id = ?", (b.person_id,))
    db.execute("INSERT INTO exemplars (person_id, model, vector, created_at) VALUES (?, ?, ?, ?)",
               (a.person_id, "osnet_x0_25_msmt17", np.ones(512, "<f4").tobytes(), T0))  # fmt: skip
    db.commit()
    db.close()
    with caplog.at_level(logging.WARNING):
        second = open_identities(tmp_path)
    assert "damaged exemplar" in caplog.text and "another ReID model" in caplog.text
    assert second.person(b.person_id).exemplars == 0 and second.person(a.person_id).exemplars > 0
    (back,) = see(second, "back", T0 + 3600, [p.view_b]).decisions
    assert back.person_id == a.person_id
    second.close()


def test_embeddings_that_do_not_fit_are_refused_without_side_effects(
    ids: Identities, plans: list[Plan]
) -> None:
    frame, crops, vectors = make_frame("front", T0, [plans[0].view_a[0], plans[1].view_a[0]])
    with pytest.raises(ValueError, match="2 crops but 1 embeddings"):
        ids.observe("front", T0, crops, vectors[:1], frame)
    with pytest.raises(ValueError, match="256-d"):
        ids.observe("front", T0, crops, vectors[:, :128], frame)
    with pytest.raises(ValueError, match="NaN"):
        ids.observe("front", T0, crops, np.full_like(vectors, np.nan), frame)
    assert ids.persons() == [] and len(ids.gallery) == 0
    assert ids.observe("front", T0, [], np.zeros((0, DIM), np.float32), frame).decisions == []


def test_decisions_follow_the_contract(ids: Identities, plans: list[Plan]) -> None:
    frame, crops, vectors = make_frame("front", T0, [plans[0].view_a[0]], frame_id="front-1")
    frame.extra["frigate_event_id"] = "1763740099.123-abc"
    (decision,) = ids.observe("front", T0, crops, vectors, frame).decisions
    payload = decision.to_json()
    assert payload["frame_id"] == "front-1"
    assert payload["extra"] == {"frigate_event_id": "1763740099.123-abc"}
    assert payload["box"] == crops[0].detection.box.as_list()
    assert set(payload) >= {
        "camera", "timestamp", "person_id", "label", "known", "new_person", "is_new_identity",
        "match", "similarity", "candidate_id", "candidate_similarity", "visit_id",
        "visit_cameras", "first_camera", "box", "detection_score", "quality_ok",
    }  # fmt: skip
    view = ids.person(decision.person_id).to_json()
    assert view["visit_id"] == decision.visit_id and view["camera"] == "front"
    assert ids.visit(decision.visit_id)["sightings"] == 1  # type: ignore[index]
    assert ids.visit("000000000000") is None
    assert ids.visit_stats(T0 - 1) == (1, 1)


def test_a_frame_the_store_refuses_changes_nothing_and_the_next_one_works(
    ids: Identities, plans: list[Plan], caplog: pytest.LogCaptureFixture
) -> None:
    p = plans[0]
    (known,) = see(ids, "front", T0, [p.view_a[0]]).decisions
    # A real SQLite failure half-way through the next frame: visits cannot be written.
    db = sqlite3.connect(ids.store.path)
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON visits BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
    )
    db.commit()
    with caplog.at_level(logging.WARNING), pytest.raises(sqlite3.IntegrityError):
        see(ids, "back", T0 + 5, [plans[1].view_b])
    assert "reloading identities" in caplog.text
    assert [v.person_id for v in ids.persons()] == [known.person_id]
    assert ids.gallery.person_count == 1
    db.execute("DROP TRIGGER refuse")
    db.commit()
    db.close()
    (stranger,) = see(ids, "back", T0 + 6, [plans[1].view_b]).decisions
    assert stranger.new_person and stranger.label == "Visitor 2"
    (again,) = see(ids, "front", T0 + 7, [p.view_a[1]]).decisions
    assert again.person_id == known.person_id and not again.new_person


def test_a_broken_thumbnail_folder_does_not_stop_identification(
    ids: Identities, plans: list[Plan], caplog: pytest.LogCaptureFixture
) -> None:
    folder = ids.store.thumbnails_dir
    folder.rmdir()
    folder.write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        (decision,) = see(ids, "front", T0, [plans[0].view_a[0]]).decisions
    assert decision.new_person and "cannot write the thumbnail" in caplog.text
    assert ids.person(decision.person_id).thumbnail_url is None


# -- two tiers: people on a visit first, with time and place; then the gallery -----------------

ACTIVE = ActiveTierConfig().threshold_for(THRESHOLD, MODEL_NAME)  # the model's tier-1 threshold


def _kept(plan_view_a: list[Sample]) -> list[Sample]:
    """What the gallery keeps of a walk past a camera (near-duplicates are not stored)."""
    kept = [plan_view_a[0]]
    for sample in plan_view_a[1:]:
        if max(float(sample.vector @ k.vector) for k in kept) < 0.92:
            kept.append(sample)
    return kept


def _best(sample: Sample, kept: list[Sample]) -> float:
    return max(float(sample.vector @ k.vector) for k in kept)


def _walkers() -> list[tuple[int, list[Sample]]]:
    """Identities with at least two consistent view-A crops, as ``walk_past_front`` shows them."""
    out = []
    for identity, crops in samples().items():
        view_a = [s for s in crops if s.view == "A"]
        sequence = view_a[:1]
        for s in view_a[1:]:
            if max(float(s.vector @ k.vector) for k in sequence) >= THRESHOLD + 0.03:
                sequence.append(s)
        if len(sequence) >= 2:
            out.append((identity, sequence))
    return out


@functools.cache
def weak_handover() -> tuple[Plan, Sample]:
    """A person whose view-B crop looks like their view-A exemplars only faintly, below even the
    single-tier uncertain band (but above the active threshold), and a second view-B crop that
    resembles the first one clearly while still looking unlike the exemplars."""
    for identity, sequence in _walkers():
        kept = _kept(sequence)
        view_b = [s for s in samples()[identity] if s.view == "B"]
        for first in view_b:
            if not ACTIVE + 0.03 <= _best(first, kept) <= UNCERTAIN - 0.02:
                continue
            for second in view_b:
                if (
                    second is not first
                    and _best(second, kept) < UNCERTAIN
                    and float(first.vector @ second.vector) >= THRESHOLD + 0.05
                ):
                    return Plan(identity, sequence, first, _best(first, kept)), second
    pytest.skip("no CUHK03 identity with a faint but real cross-view resemblance")


@functools.cache
def near_stranger() -> tuple[Plan, Sample]:
    """A person and someone else's view-B crop that resembles the person's exemplars just above
    the active threshold: appearance alone would take it for the person."""
    for identity, sequence in _walkers():
        kept = _kept(sequence)
        for other, crops in samples().items():
            for crop in crops:
                near = ACTIVE + 0.005 <= _best(crop, kept) <= ACTIVE + 0.04
                if other != identity and crop.view == "B" and near:
                    return Plan(identity, sequence, crop, _best(crop, kept)), crop
    pytest.skip("no stranger just above the active threshold among the embedded identities")


@pytest.fixture(scope="module")
def weak() -> tuple[Plan, Sample]:
    require_assets()
    return weak_handover()


@pytest.fixture(scope="module")
def look_alike() -> tuple[Plan, Sample]:
    require_assets()
    return near_stranger()


def test_a_faint_view_b_crop_of_someone_on_a_visit_joins_their_visit(
    tmp_path: Path, weak: tuple[Plan, Sample]
) -> None:
    plan, again = weak
    assert plan.cross_view_similarity < UNCERTAIN, "below what the gallery would even consider"
    ids = open_identities(tmp_path / "two")
    (arrival,) = walk_past_front(ids, plan, T0).decisions
    exemplars = ids.person(arrival.person_id).exemplars
    (handover,) = see(ids, "back", T0 + 15, [plan.view_b]).decisions
    assert handover.person_id == arrival.person_id and not handover.new_person
    assert handover.match is MatchStatus.UNCERTAIN
    assert handover.candidate_id == arrival.person_id
    assert handover.similarity == pytest.approx(plan.cross_view_similarity, abs=1e-4)
    assert ids.person(arrival.person_id).exemplars == exemplars, "a faint match teaches nothing"
    # The visit's own crops from this camera are remembered: the next view-B crop is clear.
    (next_one,) = see(ids, "back", T0 + 16, [again]).decisions
    assert next_one.person_id == arrival.person_id and next_one.match is MatchStatus.MATCHED
    assert next_one.similarity >= THRESHOLD
    assert ids.person(arrival.person_id).exemplars == exemplars + 1, "today's look is learned"
    ids.close()

    single = open_identities(tmp_path / "one", active=None)
    (first,) = walk_past_front(single, plan, T0).decisions
    (dup,) = see(single, "back", T0 + 15, [plan.view_b]).decisions
    assert dup.person_id != first.person_id and dup.new_person, "one tier alerts twice"
    single.close()


def test_a_look_alike_on_a_far_camera_a_second_later_is_someone_else(
    tmp_path: Path, look_alike: tuple[Plan, Sample]
) -> None:
    plan, stranger = look_alike
    adjacency = {"front": ["drive"], "drive": ["back"]}  # back is two cameras from front
    last = T0 + len(plan.view_a) - 1

    ids = open_identities(tmp_path / "place", active=ActiveTierConfig(adjacency=adjacency))
    (arrival,) = walk_past_front(ids, plan, T0).decisions
    (other,) = see(ids, "back", last + 1, [stranger]).decisions
    assert other.new_person and other.is_new_identity and other.person_id != arrival.person_id
    assert ids.person(arrival.person_id).camera == "front"
    ids.close()

    blind = ActiveTierConfig(
        adjacency=adjacency, place_weight=0.0, time_weight=0.0, veto_within_s=0.0
    )
    looks_only = open_identities(tmp_path / "looks", active=blind)
    (first,) = walk_past_front(looks_only, plan, T0).decisions
    (merged,) = see(looks_only, "back", last + 1, [stranger]).decisions
    assert merged.person_id == first.person_id and not merged.new_person, (
        "on appearance alone the stranger would have been swallowed by the visit"
    )
    looks_only.close()


def test_sure_hand_overs_teach_walking_times_and_faint_ones_do_not(
    ids: Identities, plans: list[Plan], weak: tuple[Plan, Sample]
) -> None:
    tier = ids.active_tier
    assert tier is not None
    for n, (plan, walk) in enumerate(zip(plans[:3], (10.0, 12.0, 14.0), strict=True)):
        start = T0 + 1000 * n
        walk_past_front(ids, plan, start)
        last = start + len(plan.view_a) - 1
        (handover,) = see(ids, "drive", last + walk, [plan.view_b]).decisions
        assert handover.match is MatchStatus.MATCHED and not handover.new_person
    assert tier.transit.learned() == {"drive|front": [10.0, 12.0, 14.0]}
    assert tier.transit.plausibility("front", "drive", 12.0) == 1.0
    assert tier.transit.plausibility("drive", "front", 3.0) == -1.0, "faster than ever seen"

    faint, _ = weak
    walk_past_front(ids, faint, T0 + 9000)
    (joined,) = see(ids, "back", T0 + 9000 + len(faint.view_a) + 10, [faint.view_b]).decisions
    assert joined.match is MatchStatus.UNCERTAIN and not joined.new_person
    assert "back|front" not in tier.transit.learned(), "an unsure hand-over is no evidence"


@functools.cache
def clear_stranger() -> tuple[Plan, Sample]:
    """A person and someone else's view-B crop that resembles the person's exemplars well above
    the active threshold (more than ``place_weight`` above) but below the gallery threshold:
    tier 1's fused score takes it for the person unless something vetoes the walk."""
    for identity, sequence in _walkers():
        kept = _kept(sequence)
        for other, crops in samples().items():
            for crop in crops:
                near = ACTIVE + 0.07 <= _best(crop, kept) <= THRESHOLD - 0.02
                if other != identity and crop.view == "B" and near:
                    return Plan(identity, sequence, crop, _best(crop, kept)), crop
    pytest.skip("no stranger well above the active threshold among the embedded identities")


def test_a_stranger_a_moment_later_on_a_camera_that_does_not_overlap_is_someone_else(
    tmp_path: Path,
) -> None:
    require_assets()
    plan, stranger = clear_stranger()
    last = T0 + len(plan.view_a) - 1
    ids = open_identities(tmp_path / "veto")  # nothing configured: a walk takes 2 s at least
    (arrival,) = walk_past_front(ids, plan, T0).decisions
    (other,) = see(ids, "back", last + 0.25, [stranger]).decisions
    assert other.new_person and other.person_id != arrival.person_id, (
        "nobody walks between two cameras that do not overlap in a quarter of a second"
    )
    assert ids.person(arrival.person_id).camera == "front"
    ids.close()

    lowered = open_identities(tmp_path / "weighted", active=ActiveTierConfig(veto_within_s=0.0))
    (first,) = walk_past_front(lowered, plan, T0).decisions
    (swallowed,) = see(lowered, "back", last + 0.25, [stranger]).decisions
    assert swallowed.person_id == first.person_id and not swallowed.new_person, (
        "lowering the score by place_weight alone attaches the stranger"
    )
    lowered.close()


def test_one_person_seen_at_once_by_two_overlapping_cameras_stays_one_person(
    tmp_path: Path, weak: tuple[Plan, Sample]
) -> None:
    plan, _ = weak
    last = T0 + len(plan.view_a) - 1
    overlap = ActiveTierConfig(adjacency={"front": {"back": (0.0, 10.0)}})
    ids = open_identities(tmp_path / "overlap", active=overlap)
    assert ids.active_tier is not None and ids.active_tier.transit.overlapping("front", "back")
    (arrival,) = walk_past_front(ids, plan, T0).decisions
    (same,) = see(ids, "back", last, [plan.view_b]).decisions
    assert same.person_id == arrival.person_id and not same.new_person
    assert same.visit_id == arrival.visit_id
    ids.close()

    # Not said to overlap: a faint look at the same moment on another camera is someone else.
    apart = open_identities(tmp_path / "apart")
    (first,) = walk_past_front(apart, plan, T0).decisions
    (second,) = see(apart, "back", last, [plan.view_b]).decisions
    assert second.new_person and second.person_id != first.person_id
    apart.close()


def test_overlap_is_learned_from_sure_simultaneous_sightings(
    ids: Identities, plans: list[Plan], weak: tuple[Plan, Sample]
) -> None:
    tier = ids.active_tier
    assert tier is not None
    assert not tier.transit.overlapping("front", "back")
    for n, plan in enumerate(plans[:3]):
        start = T0 + 1000 * n
        walk_past_front(ids, plan, start)
        last = start + len(plan.view_a) - 1
        (both,) = see(ids, "back", last, [plan.view_b]).decisions
        assert both.match is MatchStatus.MATCHED and not both.new_person, (
            "a sure match is one person even where the walk looks impossible"
        )
    assert tier.transit.overlapping("front", "back")
    faint, _ = weak
    start = T0 + 9000
    (arrival,) = walk_past_front(ids, faint, start).decisions
    (same,) = see(ids, "back", start + len(faint.view_a) - 1, [faint.view_b]).decisions
    assert same.person_id == arrival.person_id and not same.new_person


def _search_rank1(
    identities: Identities, owner: dict[str, int], queries: list[tuple[int, Sample]]
) -> tuple[float, bool]:
    right, modes = 0, set()
    for identity, sample in queries:
        hits, reranked = identities.search(sample.vector, "back", limit=3)
        modes.add(reranked)
        assert 1 <= len(hits) <= 3
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert (hits[0].match is MatchStatus.MATCHED) == (hits[0].similarity >= THRESHOLD)
        if not reranked:
            assert all(h.score == h.similarity for h in hits)
        right += owner.get(hits[0].person.person_id) == identity
    assert len(modes) == 1
    return right / len(queries), modes.pop()


def test_search_finds_people_and_re_ranks_only_with_enough_exemplars(tmp_path: Path) -> None:
    """View A of 30 real people is the gallery; each person's view-B crop is searched for."""
    require_assets()
    people = samples()
    view_a = {i: [s for s in c if s.view == "A"] for i, c in people.items()}
    queries = [(i, next(s for s in c if s.view == "B")) for i, c in people.items()
               if view_a[i] and any(s.view == "B" for s in c)]  # fmt: skip

    def gallery(folder: str, per_person: int) -> tuple[Identities, dict[str, int]]:
        identities = open_identities(tmp_path / folder, exemplar_min_distance=0.0)
        owner: dict[str, int] = {}
        for n, (identity, _) in enumerate(queries):
            t = T0 + 10 * WINDOW * n
            for k, sample in enumerate(view_a[identity][:per_person]):
                (decision,) = see(identities, "front", t + k, [sample]).decisions
                owner.setdefault(decision.person_id, identity)
        return identities, owner

    one, owner_one = gallery("one", 1)
    exemplars = {pid: one.gallery.exemplar_count(pid) for pid in owner_one}
    rank1_one, reranked_one = _search_rank1(one, owner_one, queries)
    # One exemplar a person: the cosine orders (re-ranking would lose ~15 points here).
    assert not reranked_one and rank1_one >= 0.7
    # Searching learns nothing.
    assert {pid: one.gallery.exemplar_count(pid) for pid in owner_one} == exemplars
    with pytest.raises(ValueError, match="limit"):
        one.search(queries[0][1].vector, limit=0)
    one.close()

    many, owner_many = gallery("many", 5)
    assert np.median([many.gallery.exemplar_count(p) for p in owner_many]) >= 4
    rank1_many, reranked_many = _search_rank1(many, owner_many, queries)
    assert reranked_many and rank1_many >= 0.7
    many.close()

    empty = open_identities(tmp_path / "empty")
    assert empty.search(queries[0][1].vector) == ([], False)
    empty.close()


def _sign(height: int, width: int) -> np.ndarray:
    """A street sign: lines of black lettering on a white plate (drawn: the data sets hold
    people, not street furniture)."""
    sign = np.full((height, width, 3), 250, dtype=np.uint8)
    words = ("NO PARKING", "MON-SAT", "8-18h", "TOW AWAY", "ZONE")
    for row, y in enumerate(range(12, height - 2, 12)):
        text = words[row % len(words)]
        cv2.putText(sign, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1)
    return sign


def _observe_crop(
    ids: Identities, t: float, sample: Sample, image: np.ndarray, box: Box, score: float
) -> ObserveResult:
    """One frame showing ``image`` at ``box`` (embedded as ``sample``: the same person)."""
    canvas = np.full((480, 640, 3), 96, dtype=np.uint8)
    x1, y1 = int(box.x1), int(box.y1)
    canvas[y1 : y1 + image.shape[0], x1 : x1 + image.shape[1]] = image
    sharp = sharpness(image)
    crop = Crop(Detection(box, score), image, QualityReport(sharp >= 20.0, sharp, ()))
    frame = Frame(camera="front", image=canvas, timestamp=t)
    return ids.observe("front", t, [crop], sample.vector[None, :], frame)


def _thumbnail_shape(ids: Identities, person_id: str) -> tuple[int, ...]:
    path = ids.thumbnail_path(person_id)
    assert path is not None
    picture = cv2.imread(str(path))
    assert picture is not None
    return tuple(picture.shape)


def test_the_thumbnail_is_the_persons_best_crop_not_the_sharpest_box(
    ids: Identities, plans: list[Plan]
) -> None:
    """Real CUHK03 crops of one person. A person's picture is the crop that shows
    them best (whole, upright, confidently detected, not cut by the border), replaced only by
    a clearly better one and not more than once in ``THUMBNAIL_INTERVAL_S``."""
    p = plans[0]
    person = min(p.view_a, key=lambda s: sharpness(s.image))
    h, w = person.image.shape[:2]
    # First look: the whole person, detected with modest confidence.
    first = _observe_crop(ids, T0, person, person.image, Box(200, 100, 200 + w, 100 + h), 0.55)
    (arrival,) = first.decisions
    pid = arrival.person_id
    assert _thumbnail_shape(ids, pid) == person.image.shape
    url = ids.person(pid).thumbnail_url
    assert url is not None
    # Two seconds later the person comes closer and is detected surely: a clearly better
    # crop, but the picture changed just now (at most once in THUMBNAIL_INTERVAL_S).
    bigger = cv2.resize(person.image, (w * 3 // 2, h * 3 // 2))
    bh, bw = bigger.shape[:2]
    near = Box(300, 20, 300 + bw, 20 + bh)
    assert _observe_crop(ids, T0 + 2, person, bigger, near, 0.92).decisions[0].person_id == pid
    assert _thumbnail_shape(ids, pid) == person.image.shape, "rate-limited"
    # A box at the picture's edge that is mostly a sign beside the person's shoulders: far
    # sharper than the person (the old rule, sharpness alone, took it), squat, cut off.
    signpost = np.hstack([person.image[: h // 2], _sign(h // 2, 2 * w)])
    assert sharpness(signpost) > sharpness(person.image), "the premise: a sharper box"
    sign_box = Box(0, 100, signpost.shape[1], 100 + signpost.shape[0])
    (seen,) = _observe_crop(ids, T0 + 11, person, signpost, sign_box, 0.9).decisions
    assert seen.person_id == pid
    assert _thumbnail_shape(ids, pid) == person.image.shape, "not replaced by the signpost"
    assert ids.person(pid).thumbnail_url == url, "the same picture keeps its URL"
    # The near, sure crop again, past the interval: taken.
    result = _observe_crop(ids, T0 + 12, person, bigger, near, 0.92)
    assert _thumbnail_shape(ids, pid) == bigger.shape and pid in result.changed_person_ids
    new_url = ids.person(pid).thumbnail_url
    assert new_url is not None and new_url != url, "a new picture, a new URL (readers refetch)"
    record = ids.store.require(pid)
    assert record.thumbnail_score is not None and 0.0 < record.thumbnail_score <= 1.0
    # Much later a barely better one (0.95 instead of 0.92) is not worth a change.
    later = _observe_crop(ids, T0 + 40, person, bigger, near, 0.95)
    assert pid not in later.changed_person_ids
    assert ids.store.require(pid).thumbnail_score == record.thumbnail_score
    assert ids.person(pid).thumbnail_url == new_url


def test_someone_stepping_in_from_the_border_gets_their_whole_picture_at_once(
    ids: Identities, plans: list[Plan]
) -> None:
    """The first usable crop of a person walking in is often cut by the picture's edge; the
    whole person a second later is much better and replaces it without waiting."""
    p = plans[1]
    person = p.view_a[0]
    h, w = person.image.shape[:2]
    (arrival,) = _observe_crop(ids, T0, person, person.image, Box(0, 50, w, 50 + h), 0.9).decisions
    pid = arrival.person_id
    cut_score = ids.store.require(pid).thumbnail_score
    assert cut_score is not None and _thumbnail_shape(ids, pid) == person.image.shape
    whole = person.image[:, :-1]  # one column narrower: tells the two pictures apart
    result = _observe_crop(ids, T0 + 1, person, whole, Box(200, 50, 200 + w - 1, 50 + h), 0.9)
    assert pid in result.changed_person_ids
    assert _thumbnail_shape(ids, pid) == whole.shape
    assert (ids.store.require(pid).thumbnail_score or 0.0) >= 2 * cut_score


def test_a_picture_removed_from_disk_is_no_longer_advertised(
    ids: Identities, plans: list[Plan]
) -> None:
    (a,) = walk_past_front(ids, plans[0], T0).decisions
    path = ids.thumbnail_path(a.person_id)
    assert path is not None and ids.person(a.person_id).thumbnail_url is not None
    path.unlink()  # a folder cleaned by hand, a failed disk
    assert ids.person(a.person_id).thumbnail_url is None
    assert ids.thumbnail_path(a.person_id) is None
