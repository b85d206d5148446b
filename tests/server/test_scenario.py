"""The dedup scenario on a small day: real CUHK03 people on two simulated cameras, uploaded to
``python -m smart_reid_server serve`` (real models, real Mosquitto), scored against the truth and
against the per-camera cooldown on the same frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.data import load_split
from eval.scenario_metrics import cooldown_baseline, score
from eval.scenario_server import MOSQUITTO, run_on_server
from eval.scenario_world import Day, Params, build_day, view_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# 8 people (one household member seen twice, two returning visitors), 11 visits, about 160
# frames over ten simulated minutes: under a minute of real time.
SMALL = Params(
    identities=8,
    cameras=("front", "drive"),
    household=1,
    household_visits=2,
    returning=2,
    household_gap_s=240.0,
    return_gap_s=150.0,
    mean_arrival_gap_s=45.0,
)


@pytest.fixture
def mosquitto() -> str:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return MOSQUITTO


@pytest.fixture(scope="module")
def day(cuhk03_dir: Path) -> Day:
    return build_day(load_split("val", cuhk03_dir), seed=0, params=SMALL)


def test_the_day_is_reproducible_and_every_walk_crosses_camera_views(
    day: Day, cuhk03_dir: Path
) -> None:
    again = build_day(load_split("val", cuhk03_dir), seed=0, params=SMALL)
    assert [(f.camera, f.timestamp, f.people) for f in again.frames] == [
        (f.camera, f.timestamp, f.people) for f in day.frames
    ]
    assert len(day.visits) == 11 and len(day.persons) == 8
    for frame in day.frames:
        view = view_of(SMALL.cameras, frame.camera)
        for person in frame.people:
            assert person.crop.parent.name == "val"
            assert (int(person.crop.stem[5:7]) >= 5) == (view == 1), "the camera's own view"
    walks = [v for v in day.visits if len(v.segments) > 1]
    assert walks and all(
        a.camera != b.camera and SMALL.transit_s[0] <= b.enter - a.leave <= SMALL.transit_s[1]
        for v in walks
        for a, b in zip(v.segments, v.segments[1:], strict=False)
    )


async def test_the_real_server_alerts_about_once_per_visit_and_misses_nobody(
    day: Day, models_dir: Path, mosquitto: str
) -> None:
    run = await run_on_server(day)
    result = score(day, run.answers, run.latencies_ms)

    assert result["unanswered_crops"] == 0, "every uploaded person got a decision"
    assert result["missed_new_visits"] == 0, "nobody's arrival was swallowed by another visit"
    assert result["notifications_per_visit"] <= 1.2
    assert run.new_person_messages == run.new_person_decisions == result["notifications"], (
        "each alert went out on MQTT exactly once"
    )
    assert len(run.latencies_ms) == run.new_person_messages
    assert all(ms > 0 for ms in run.latencies_ms)
    assert run.settings["match"]["active_tier"] is True

    # The baseline is computed on exactly the frames that were uploaded.
    busy = [f for f in day.frames if f.people]
    every_frame = cooldown_baseline(day, 0.0)
    assert every_frame["notifications"] == len(busy) and every_frame["missed_new_visits"] == 0
    once = cooldown_baseline(day, 1e9)
    assert once["notifications"] == len({f.camera for f in busy})
    minute = cooldown_baseline(day, 60.0)
    assert minute["true_visits"] == result["true_visits"] == len(day.visits)
    assert minute["missed_new_visits"] > result["missed_new_visits"], (
        "a per-camera cooldown drops visitors who arrive while it runs"
    )
