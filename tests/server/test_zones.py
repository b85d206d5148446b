"""Zones and lines on a camera's picture: geometry, enter/exit with hysteresis, crossing direction,
lost people, the zone facts of a visit's risk assessment, and the config's errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from smart_reid_server.config import ConfigError, validate
from smart_reid_server.risk import RiskConfig, assess
from smart_reid_server.risk.facts import (
    CameraStay,
    IdentityStatus,
    VisitFacts,
    ZoneLog,
    ZoneStay,
)
from smart_reid_server.vision.zones import (
    Line,
    ZoneConfig,
    ZoneWatcher,
    contains,
    edge_distance,
    foot_point,
    passes_through,
    side_of,
)

from eval.risk.run import SCENARIOS, play, risk_config

BERLIN = ZoneInfo("Europe/Berlin")

SQUARE = ((0.5, 0.5), (0.9, 0.5), (0.9, 0.9), (0.5, 0.9))
# A garden camera: the back door in the lower right, the gate a vertical line on the left whose
# right-hand side (seen walking down from its top) is inside the garden.
GARDEN: dict[str, Any] = {
    "cameras": {
        "back_garden": {
            "zones": {
                "back_door": {"polygon": [list(p) for p in SQUARE], "sensitivity": 0.9},
                "lawn": {"polygon": [[0.0, 0.6], [0.4, 0.6], [0.4, 1.0], [0.0, 1.0]]},
            },
            "lines": {"gate": {"points": [[0.2, 0.1], [0.2, 0.5]], "in": "left"}},
        }
    }
}


def _watcher(**overrides: Any) -> ZoneWatcher:
    section = validate({"zones": {**GARDEN, **overrides}}).section("zones")
    return ZoneWatcher(ZoneConfig.from_section(section))


def _walk(watcher: ZoneWatcher, points: list[tuple[float, float]], start: float = 0.0) -> list[Any]:
    events = []
    for step, point in enumerate(points):
        events += watcher.frame("back_garden", start + step * 0.5, [("p1", "v1", point)])
    return events


def _brief(events: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.type, e.name, e.direction or e.reason) for e in events]


def test_foot_point_is_the_bottom_middle_of_the_box_normalised() -> None:
    assert foot_point((100, 50, 200, 350), 640, 360) == pytest.approx((150 / 640, 350 / 360))
    assert foot_point((600, 50, 700, 400), 640, 360) == pytest.approx((1.0, 1.0))  # clamped
    with pytest.raises(ValueError, match="positive"):
        foot_point((0, 0, 1, 1), 0, 360)


def test_polygon_inside_and_edge_distance() -> None:
    assert contains(SQUARE, (0.7, 0.7))
    assert not contains(SQUARE, (0.4, 0.7))
    concave = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.4), (0.0, 1.0))
    assert contains(concave, (0.2, 0.3)) and not contains(concave, (0.5, 0.8))
    assert edge_distance(SQUARE, (0.7, 0.45)) == pytest.approx(0.05)
    assert edge_distance(SQUARE, (0.7, 0.7)) == pytest.approx(0.2)


def test_line_side_follows_the_picture_left_and_right() -> None:
    # Walking right along the top of the picture, "left" on screen is up (smaller y).
    left = Line("l", (0.0, 0.5), (1.0, 0.5), "left")
    right = Line("r", (0.0, 0.5), (1.0, 0.5), "right")
    assert side_of(left, (0.5, 0.4)) == pytest.approx(0.1)
    assert side_of(right, (0.5, 0.4)) == pytest.approx(-0.1)
    assert passes_through(left, (0.5, 0.4), (0.5, 0.6))
    assert not passes_through(left, (1.5, 0.4), (1.5, 0.6))  # beyond the segment's end


def test_first_position_inside_is_an_enter_and_leaving_is_an_exit_with_dwell() -> None:
    watcher = _watcher()
    events = _walk(watcher, [(0.7, 0.7), (0.7, 0.8), (0.7, 0.95)])
    assert _brief(events) == [("enter", "back_door", None), ("exit", "back_door", "left")]
    enter, leave = events
    assert (enter.person_id, enter.visit_id, enter.camera) == ("p1", "v1", "back_garden")
    assert leave.dwell_s == pytest.approx(0.5) and leave.timestamp == pytest.approx(1.0)
    payload = leave.to_json(label="Visitor 3", known=False)
    assert payload["type"] == "exit" and payload["kind"] == "zone"
    assert payload["label"] == "Visitor 3" and payload["point"] == [0.7, 0.95]


def test_a_foot_point_jittering_on_the_edge_does_not_flap() -> None:
    watcher = _watcher()
    # Inside, then 100 frames swinging 1 % either side of the bottom edge (y = 0.9).
    jitter = [(0.7, 0.89 if i % 2 else 0.91) for i in range(100)]
    events = _walk(watcher, [(0.7, 0.8), *jitter])
    assert _brief(events) == [("enter", "back_door", None)]
    # Clearly out (beyond the 2 % margin), then jittering back at the edge: no new enter.
    events = _walk(watcher, [(0.7, 0.95), *jitter], start=100.0)
    assert _brief(events) == [("exit", "back_door", "left")]
    assert watcher.inside("back_garden", "p1") == []


def test_crossing_a_line_has_a_direction_and_needs_the_segment() -> None:
    watcher = _watcher()
    # The gate runs down from (0.2, 0.1) to (0.2, 0.5): its left is the right of the picture.
    events = _walk(watcher, [(0.1, 0.3), (0.19, 0.3), (0.21, 0.3), (0.3, 0.3)])
    assert _brief(events) == [("cross", "gate", "in")]
    events = _walk(watcher, [(0.25, 0.3), (0.1, 0.35)], start=10.0)
    assert _brief(events) == [("cross", "gate", "out")]
    # Walking round the end of the gate (below y = 0.5) is no crossing.
    events = _walk(watcher, [(0.1, 0.55), (0.3, 0.55)], start=20.0)
    assert events == []


def test_people_not_seen_for_a_while_or_whose_visit_ended_leave_their_zones() -> None:
    watcher = _watcher(lost_after_s=3.0)
    watcher.frame("back_garden", 0.0, [("p1", "v1", (0.7, 0.7)), ("p2", "v2", (0.2, 0.8))])
    assert watcher.inside("back_garden", "p2") == ["lawn"]
    # p1 stays in view; p2 is not seen again.
    assert watcher.frame("back_garden", 2.0, [("p1", "v1", (0.7, 0.7))]) == []
    lost = watcher.frame("back_garden", 3.5, [("p1", "v1", (0.7, 0.7))])
    assert _brief(lost) == [("exit", "lawn", "lost")] and lost[0].person_id == "p2"
    assert lost[0].timestamp == 0.0  # when they were last seen inside
    assert watcher.expire(5.0) == []  # p1 was seen at 3.5
    ended = watcher.end(["v1"])
    assert _brief(ended) == [("exit", "back_door", "lost")] and ended[0].dwell_s == 3.5
    assert watcher.expire(1000.0) == []


def test_cameras_without_zones_cost_nothing_and_list_nothing() -> None:
    watcher = _watcher()
    assert watcher.frame("street", 0.0, [("p1", "v1", (0.7, 0.7))]) == []
    assert watcher.config.layout("street") == {"zones": [], "lines": []}
    assert watcher.config.layout("back_garden") == {
        "zones": ["back_door", "lawn"],
        "lines": ["gate"],
    }


def test_zone_dwell_adds_up_sightings_inside_and_skips_long_gaps() -> None:
    log = ZoneLog(gap_s=4.0)
    for t in (0.0, 2.0, 4.0, 20.0, 22.0):
        log.saw("v1", "back_garden", "back_door", 0.9, t)
    (stay,) = log.of("v1")
    assert (stay.first_seen, stay.last_seen, stay.dwell_s) == (0.0, 22.0, 6.0)
    log.keep_only([])
    assert log.of("v1") == ()


def _facts(zones: tuple[ZoneStay, ...]) -> VisitFacts:
    return VisitFacts(
        visit_id="v1",
        person_id="p1",
        label="Visitor 1",
        status=IdentityStatus.NEW,
        started_at=0.0,
        last_seen=400.0,
        ended=True,
        path=(CameraStay("back_garden", 0.0, 60.0),),
        zones=zones,
    )


def test_the_most_sensitive_zone_is_the_place_reason_and_its_dwell_loiters() -> None:
    config = RiskConfig(sensitivity={"back_garden": 0.8})
    door = ZoneStay("back_garden", "back_door", 0.9, 10.0, 400.0, 360.0)
    lawn = ZoneStay("back_garden", "lawn", 0.5, 0.0, 10.0, 10.0)
    result = assess(_facts((lawn, door)), config, final=True, timestamp=400.0)
    texts = {r.code: r.text for r in result.reasons}
    assert texts["place"] == "reached zone back_door (sensitivity 0.9) on back_garden"
    assert texts["loiter"] == "stayed 6 min at zone back_door on back_garden"
    points = {r.code: r.points for r in result.reasons}
    assert points["place"] == 45 and points["loiter"] == 19
    assert result.to_json()["facts"]["zones"] == [
        {"camera": "back_garden", "zone": "lawn", "sensitivity": 0.5, "dwell_s": 10.0},
        {"camera": "back_garden", "zone": "back_door", "sensitivity": 0.9, "dwell_s": 360.0},
    ]
    # A zone no more sensitive than the camera does not change what the camera says.
    plain = assess(_facts((lawn,)), config, final=True, timestamp=400.0)
    assert plain.reasons[1].text == "reached back_garden (sensitivity 0.8)"


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        (
            {"cameras": {"garden": {"zones": {"door": {"polygon": [[0, 0], [1, 0]]}}}}},
            "zones.cameras.garden.zones.door.polygon: polygon must be a list of at least 3",
        ),
        (
            {"cameras": {"garden": {"zones": {"door": {"polygon": [[0, 0], [1.2, 0], [1, 1]]}}}}},
            "zones.cameras.garden.zones.door.polygon: point [1.2, 0] is outside the picture",
        ),
        (
            {
                "cameras": {
                    "garden": {"zones": {"Back Door": {"polygon": [[0, 0], [1, 0], [1, 1]]}}}
                }
            },
            "zones.cameras.garden.zones.Back Door: name 'Back Door' must be 1-64 characters",
        ),
        (
            {
                "cameras": {
                    "garden": {
                        "zones": {"door": {"polygon": [[0, 0], [1, 0], [1, 1]], "sensitivity": 3}}
                    }
                }
            },
            "zones.cameras.garden.zones.door.sensitivity: sensitivity 3 must be a number from 0",
        ),
        (
            {"cameras": {"garden": {"lines": {"gate": {"points": [[0, 0], [1, 0]], "in": "up"}}}}},
            "zones.cameras.garden.lines.gate.in: must be left or right",
        ),
        (
            {"cameras": {"garden": {"lines": {"gate": {"points": [[0.5, 0.5], [0.5, 0.5]]}}}}},
            "zones.cameras.garden.lines.gate.points: the line's two points are the same point",
        ),
        (
            {
                "cameras": {
                    "garden": {
                        "zones": {"gate": {"polygon": [[0, 0], [1, 0], [1, 1]]}},
                        "lines": {"gate": {"points": [[0, 0], [1, 0]], "in": "left"}},
                    }
                }
            },
            "zones.cameras.garden: gate is both a zone and a line",
        ),
    ],
)
def test_bad_zone_config_names_the_camera_and_the_zone(zones: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate({"zones": zones})
    assert message in str(caught.value)


def test_the_labelled_zone_scenarios_need_their_zones(tmp_path: Path) -> None:
    """eval/risk/scenarios.yaml: the visits with zones are assessed as labelled, and the two
    daytime strangers who went where visitors do not go would be low without their zones."""
    data = yaml.safe_load(SCENARIOS.read_text(encoding="utf-8"))
    config = risk_config(data["config"])
    sensitivity = data["zone_sensitivity"]
    zone_visits = [v for v in data["visits"] if v.get("zones")]
    assert len(zone_visits) >= 5
    for spec in zone_visits:
        (outcome,) = play(spec, config, BERLIN, tmp_path / "with", sensitivity)
        assert outcome.final.level == spec["expect"], (spec["id"], outcome.final.reasons)
    for name in ("stranger_garage_side_door_day", "stranger_side_path_day"):
        spec = next(v for v in zone_visits if v["id"] == name)
        (with_zone,) = play(spec, config, BERLIN, tmp_path / "again", sensitivity)
        assert any(r.text.startswith("reached zone") for r in with_zone.final.reasons)
        (without,) = play({**spec, "zones": []}, config, BERLIN, tmp_path / "without")
        assert (with_zone.final.level, without.final.level) == ("medium", "low")
