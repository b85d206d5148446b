"""The labelled visits through the whole server (``python -m eval.risk.run --server``).

A real server runs in this process (real detector-free uploads over HTTP, the real ReID model,
store, visits and risk monitor), configured with the scenario file's ``risk`` section. Each
person of a scenario is a different CUHK03 identity (val split, camera view A: photo 00 for
earlier visits, the view-A photos in turn during the visit), uploaded to ``POST /api/frames`` as the
whole frame (one box per person; people together share a frame side by side). Statuses are set
the way a user sets them: household members are renamed to a household label, known people are
marked known, named people renamed, all through the server's own operations after their first
sighting. Earlier visits are real visits of the same person at the earlier times.

Scenarios happen eight days apart (at their own local clock time) so that they never overlap;
every frame of every scenario is sent in time order. The final assessment of each visit is
read back from ``GET /api/visits/{visit_id}``. Identity errors of the model (a stranger taken for
someone else, a person not recognised) change what the rules see; they count as they fall.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import cv2
import numpy as np
from smart_reid_server.config import load
from smart_reid_server.serve.app import SmartReidApp

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SMART_REID_SHARED", REPO.parent / "shared"))
CUHK03 = SHARED / "data" / "cuhk03" / "labeled" / "val"
STEP_S = 2.0
SPACING_DAYS = 8
FIRST_DAY = datetime(2026, 1, 5)
HEIGHT = 160


@dataclass(slots=True)
class _Person:
    key: str  # scenario id / role
    identity: int  # CUHK03 id
    status: str
    expect: str | None
    person_id: str = ""


@dataclass(slots=True)
class _Frame:
    timestamp: float
    camera: str
    people: list[_Person]
    photo: int  # CUHK03 cell
    scenario: str
    current: bool  # part of the labelled visit (not an earlier one)


def _image(people: list[_Person], photo: int) -> tuple[bytes, list[dict[str, Any]]]:
    """A frame of the people side by side, and one box per person."""
    crops = []
    for person in people:
        photos = sorted(CUHK03.glob(f"{person.identity:04d}_0[0-4].jpg"))  # view A
        assert photos, f"CUHK03 identity {person.identity} has no view-A photo in {CUHK03}"
        image = cv2.imread(str(photos[photo % len(photos)]))
        assert image is not None, f"{photos[photo % len(photos)]} does not decode"
        width = round(image.shape[1] * HEIGHT / image.shape[0])
        crops.append(cv2.resize(image, (width, HEIGHT)))
    boxes, x = [], 0
    for crop in crops:
        boxes.append({"box": [x, 0, x + crop.shape[1], HEIGHT], "score": 0.95})
        x += crop.shape[1]
    ok, jpeg = cv2.imencode(".jpg", np.hstack(crops))
    assert ok
    return jpeg.tobytes(), boxes


def _plan(data: dict[str, Any], zone: ZoneInfo) -> tuple[list[_Frame], dict[str, list[_Person]]]:
    frames: list[_Frame] = []
    people: dict[str, list[_Person]] = {}
    identity = 0
    # Zones need foot points on a real picture; these crops fill the whole frame.
    for number, spec in enumerate(v for v in data["visits"] if not v.get("zones")):
        clock = datetime.strptime(spec["start"], "%Y-%m-%d %H:%M")
        day = FIRST_DAY + timedelta(days=SPACING_DAYS * number)
        start = day.replace(hour=clock.hour, minute=clock.minute, tzinfo=zone).timestamp()
        group = [_Person(f"{spec['id']}/subject", identity, spec["status"], spec["expect"])]
        identity += 1
        for index, other in enumerate(spec.get("companions", [])):
            group.append(
                _Person(
                    f"{spec['id']}/companion{index}", identity, other["status"], other.get("expect")
                )
            )
            identity += 1
        people[spec["id"]] = group
        for person in group:
            earlier = list(spec.get("earlier_h", [])) if person is group[0] else []
            if person.status != "new_stranger" and not earlier:
                earlier = [240.0]  # how the household came to know them
            for hours in earlier:
                frames.append(
                    _Frame(start - 3600.0 * hours, "street", [person], 0, spec["id"], False)
                )
        photo = 0
        for camera, begin, end in spec["path"]:
            t = float(begin)
            while t <= float(end):
                frames.append(_Frame(start + t, str(camera), group, photo % 5, spec["id"], True))
                photo += 1
                t += STEP_S
    frames.sort(key=lambda f: f.timestamp)
    return frames, people


async def _upload(session: aiohttp.ClientSession, base: str, frame: _Frame) -> list[dict[str, Any]]:
    import json

    jpeg, boxes = _image(frame.people, frame.photo)
    form = aiohttp.FormData()
    form.add_field("image", jpeg, filename="frame.jpg", content_type="image/jpeg")
    form.add_field("camera", frame.camera)
    form.add_field("detections", json.dumps(boxes))
    form.add_field("timestamp", str(frame.timestamp))
    async with session.post(f"{base}/api/frames", data=form) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"upload refused: {response.status} {body}")
    decisions: list[dict[str, Any]] = body["decisions"]
    return decisions


async def play_server(data: dict[str, Any], models: Path) -> list[dict[str, Any]]:
    """Outcomes (scenario, person, status, expect, level, score, reasons, identity_ok)."""
    zone = ZoneInfo(data["config"]["timezone"])
    frames, people = _plan(data, zone)
    cameras = sorted({f.camera for f in frames})
    household = iter(list(data["config"].get("household", [])) * 100)
    with tempfile.TemporaryDirectory(prefix="risk-server-") as folder:
        settings = load(
            None,
            environ={},
            overrides={
                "data_dir": folder,
                "log_level": "warning",
                "models": {"dir": str(models), "download": False},
                "quality": {"min_height_px": 50},
                "cameras": cameras,
                "mqtt": {"enabled": False},
                "http": {"port": 0},
                "retention_days": 3650,
                "risk": data["config"],
            },
        )
        app = SmartReidApp(settings)
        await app.start()
        try:
            base = app.http_url()
            visit_of: dict[str, str] = {}  # person key -> visit id of the labelled visit
            seen_ids: dict[str, set[str]] = {}  # person key -> person ids the server gave
            async with aiohttp.ClientSession() as session:
                for frame in frames:
                    decisions = await _upload(session, base, frame)
                    ordered = sorted(decisions, key=lambda d: d["box"][0])
                    for person, decision in zip(frame.people, ordered, strict=False):
                        seen_ids.setdefault(person.key, set()).add(decision["person_id"])
                        if not person.person_id:
                            person.person_id = decision["person_id"]
                            if person.status == "household":
                                await app.update_person(person.person_id, next(household), None)
                            elif person.status == "known":
                                await app.update_person(person.person_id, "Known", True)
                            elif person.status == "named":
                                await app.update_person(person.person_id, "Neighbour", None)
                        if frame.current and person.key not in visit_of:
                            visit_of[person.key] = decision["visit_id"]
                # Move the frame clock on by a day so every visit ends, then read the finals.
                last = frames[-1]
                sentinel = _Person("sentinel", 93, "new_stranger", None)
                await _upload(
                    session,
                    base,
                    _Frame(last.timestamp + 86400.0, cameras[0], [sentinel], 0, "", False),
                )
                outcomes = []
                for group in people.values():
                    for person in group:
                        if person.expect is None:
                            continue
                        risk = await _final(session, base, visit_of[person.key])
                        outcomes.append(
                            {
                                "scenario": person.key.split("/")[0],
                                "person": person.key.split("/")[1],
                                "status": person.status,
                                "expect": person.expect,
                                "level": risk["level"],
                                "score": risk["score"],
                                "reasons": [
                                    f"{r['text']} ({r['points']:+d})" for r in risk["reasons"]
                                ],
                                "identity_ok": len(seen_ids[person.key]) == 1
                                and not any(
                                    seen_ids[person.key] & ids
                                    for key, ids in seen_ids.items()
                                    if key != person.key
                                ),
                            }
                        )
                return outcomes
        finally:
            await app.stop()


async def _final(session: aiohttp.ClientSession, base: str, visit_id: str) -> dict[str, Any]:
    for _ in range(300):
        async with session.get(f"{base}/api/visits/{visit_id}") as response:
            visit = await response.json()
        risk = visit.get("risk")
        if risk is not None and risk["final"]:
            result: dict[str, Any] = risk
            return result
        await asyncio.sleep(0.1)
    raise RuntimeError(f"visit {visit_id} has no final assessment after 30 s")
