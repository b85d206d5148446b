"""Zones and lines on real video through the real server: real detector, tracker and ReID model,
a real Mosquitto broker, and the risk assessment of the visit that reached the zone.

walk_bike_sample.mp4 (640x360), 27-32.5 s at 5 frames a second: a man walks from the middle of
the pavement (foot at x 0.61) to the lower left corner (x 0.15, y 0.98), past another person
standing further up the picture (y below 0.7). The camera "back" gets a zone ``back_door`` on
the part of the pavement he walks over and a line ``path`` that he crosses from right to left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from server_support import running_app, settings_for
from smart_reid_server.pipeline import FrameResult
from smart_reid_server.types import Frame

pytestmark = pytest.mark.timeout(240)
BASE = "sr_zones"
T0 = 1_767_000_000.0
FROM_S, TO_S, EVERY = 27.0, 32.5, 6  # every 6th frame of 30 fps: 5 frames a second
ZONES: dict[str, Any] = {
    "cameras": {
        "back": {
            "zones": {
                "back_door": {
                    "polygon": [[0.2, 0.75], [0.45, 0.75], [0.45, 1.0], [0.2, 1.0]],
                    "sensitivity": 0.9,
                }
            },
            # Drawn downwards at x = 0.5: walking right to left crosses it into its right side.
            "lines": {"path": {"points": [[0.5, 0.7], [0.5, 1.0]], "in": "right"}},
        },
        # A typo for a camera name: a warning at start, and nothing else happens.
        "bakc": {"zones": {"doormat": {"polygon": [[0, 0], [1, 0], [1, 1]]}}},
    }
}


def _video(path: Path) -> list[tuple[float, np.ndarray]]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames: list[tuple[float, np.ndarray]] = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok or index / fps > TO_S:
            break
        if index / fps >= FROM_S and index % EVERY == 0:
            frames.append((index / fps, np.ascontiguousarray(image)))
        index += 1
    capture.release()
    return frames


async def test_a_man_walking_over_the_back_door_zone_enters_leaves_and_crosses_on_mqtt(
    tmp_path: Path,
    models_dir: Path,
    video_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, port = mosquitto_broker
    watcher = mqtt_collector(host, port, f"{BASE}/#")
    settings = settings_for(
        tmp_path,
        models_dir,
        mqtt={"enabled": True, "host": host, "port": port, "base_topic": BASE},
        http={"enabled": False},
        queue={"workers": 1, "per_camera": 8},
        visits={"window_s": 2.0},
        risk={"cameras": {"back": 0.5}},
        zones=ZONES,
    )
    frames = _video(video_dir / "walk_bike_sample.mp4")
    assert len(frames) >= 25
    results: list[FrameResult] = []
    async with running_app(settings) as app:
        assert app.pipeline is not None
        for t, image in frames:
            frame = Frame(camera="back", image=image, timestamp=T0 + t, source="demo")
            results.append(await app.pipeline.submit(frame))
        # The camera state lists what Home Assistant can offer as triggers.
        state = (await watcher.await_for(f"{BASE}/camera/back/state"))[-1].json()
        assert (state["zones"], state["lines"]) == (["back_door"], ["path"])
        final = (
            await watcher.await_for(
                f"{BASE}/events/risk_assessed",
                lambda m: m.json()["final"] and m.json()["facts"]["zones"],
                within=30,
            )
        )[0].json()
        await asyncio.sleep(0.5)

    assert "zones.cameras.bakc: there is no camera bakc (cameras: front, back)" in caplog.text
    topic = f"{BASE}/events/zone"
    events = [m.json() for m in watcher.messages if m.topic == topic]
    assert all(not m.retain for m in watcher.messages if m.topic == topic)
    walker = events[0]["person_id"]
    mine = [(e["type"], e["name"], e["direction"] or e["reason"]) for e in events]
    assert mine == [
        ("cross", "path", "in"),
        ("enter", "back_door", None),
        ("exit", "back_door", "left"),
    ], events
    assert {e["person_id"] for e in events} == {walker}
    enter, leave = events[1], events[2]
    # The events name the person and visit Home Assistant already heard of.
    decisions = [d for r in results for d in r.decisions if d.person_id == walker]
    assert decisions and decisions[0].new_person
    assert enter["visit_id"] == decisions[0].visit_id and enter["label"] == decisions[0].label
    assert enter["camera"] == "back" and enter["kind"] == "zone"
    assert 0.2 < enter["point"][0] < 0.45 and enter["point"][1] > 0.75
    assert 0.4 <= leave["dwell_s"] <= 2.0 and leave["timestamp"] > enter["timestamp"]
    new_person = [m for m in watcher.messages if m.topic == f"{BASE}/events/new_person"]
    assert walker in [m.json()["person_id"] for m in new_person]
    order = [m.topic for m in watcher.messages]
    first_new = next(
        i
        for i, m in enumerate(watcher.messages)
        if m.topic.endswith("new_person") and m.json()["person_id"] == walker
    )
    assert order.index(topic) > first_new  # the person is announced before their zone event

    # The visit's final assessment has the zone as a fact and as its place reason.
    assert final["person_id"] == walker
    (zone,) = final["facts"]["zones"]
    assert (zone["camera"], zone["zone"], zone["sensitivity"]) == ("back", "back_door", 0.9)
    assert zone["dwell_s"] == pytest.approx(leave["dwell_s"], abs=0.3)
    place = next(r for r in final["reasons"] if r["code"] == "place")
    assert place["text"] == "reached zone back_door (sensitivity 0.9) on back"
    assert place["points"] == 45
