"""``GET /api/visits`` and ``GET /api/summary`` on a realistic day, through the real server.

The day is written into a real identity store as the previous run left it (visits still open,
some with an interim assessment), so starting the server also shows the crash recovery: every
open visit is ended and gets its final rule assessment. Then the HTTP API is asked what
happened, as Home Assistant would.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from smart_reid_server.identity.store import Store
from smart_reid_server.risk.facts import TimeOfDay
from smart_reid_server.risk.rules import LEVELS
from smart_reid_server.risk.summary import rules_summary
from smart_reid_server.serve.app import SmartReidApp

from tests.server.llm_support import dead_url, fake_chat, get_json, real_llm
from tests.server.server_support import running_app, settings_for

__all__ = ["real_llm"]

pytestmark = pytest.mark.timeout(180)
BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 12, 5, tzinfo=BERLIN)
START, END = DAY.timestamp(), DAY.timestamp() + 86400
CAMERAS = ["street", "driveway", "front_door", "back_garden", "hallway"]
RISK = {
    "timezone": "Europe/Berlin",
    "household": ["Alice"],
    "cameras": {
        "street": 0.0,
        "driveway": 0.2,
        "front_door": 0.25,
        "back_garden": 0.8,
        "hallway": 1.0,
    },
}


def _at(hhmm: str) -> float:
    hours, minutes = hhmm.split(":")
    return DAY.replace(hour=int(hours), minute=int(minutes)).timestamp()


# (person, start, [(camera, seconds after start of first sighting, of last sighting)])
DAY_PLAN: list[tuple[str, str, list[tuple[str, float, float]]]] = [
    ("night", "02:47", [("street", 0, 10), ("driveway", 15, 30), ("back_garden", 40, 400)]),
    ("alice", "08:10", [("hallway", 0, 20), ("front_door", 25, 40)]),
    ("loiterer", "09:10", [("street", 0, 60), ("driveway", 70, 100)]),
    ("loiterer", "11:00", [("street", 0, 30)]),
    ("courier", "12:05", [("street", 0, 5), ("front_door", 8, 45)]),
    ("bob", "13:00", [("front_door", 0, 50)]),
    ("loiterer", "14:02", [("street", 0, 20), ("driveway", 30, 130)]),
    ("loiterer", "16:30", [("street", 0, 40)]),
    ("alice", "17:40", [("front_door", 0, 10), ("hallway", 15, 30)]),
]


def seed_day(data_dir: Path) -> dict[str, str]:
    """The day in the store as a crashed run left it; returns person ids by role."""
    store = Store(data_dir)
    ids = {
        role: f"{i + 1:012x}"
        for i, role in enumerate(("night", "alice", "loiterer", "courier", "bob"))
    }
    try:
        for person_id in ids.values():
            store.create_person(person_id, START)
        store.rename(ids["alice"], "Alice")
        store.rename(ids["bob"], "Bob")
        store.set_known(ids["bob"], True)
        seen: set[str] = set()
        for n, (role, start, path) in enumerate(DAY_PLAN):
            person_id = ids[role]
            visit_id = f"{0xA00 + n:012x}"
            t0 = _at(start)
            last = t0 + max(end for _, _, end in path)
            store.start_visit(visit_id, person_id, t0, is_new_identity=role not in seen)
            seen.add(role)
            for camera, first, end in path:
                store.record_sighting(person_id, camera, t0 + first)
                store.record_sighting(person_id, camera, t0 + end)
            store.update_visit(
                visit_id,
                person_id=person_id,
                started_at=t0,
                last_seen=last,
                cameras=[c for c, _, _ in path],
                last_camera=path[-1][0],
                sightings=2 * len(path),
            )
            # What the crashed run had already assessed: an interim with the dwell per camera.
            store.save_risk(
                visit_id,
                {
                    "visit_id": visit_id,
                    "person_id": person_id,
                    "level": "low",
                    "score": 0,
                    "final": False,
                    "source": "rules",
                    "timestamp": t0,
                    "reasons": [],
                    "facts": {"dwell_s": {c: float(e - f) for c, f, e in path}},
                },
            )
    finally:
        store.close()
    return ids


@pytest.fixture
async def day_app(
    tmp_path: Path, models_dir: Path
) -> AsyncIterator[tuple[SmartReidApp, dict[str, str]]]:
    ids = seed_day(tmp_path / "data")
    settings = settings_for(tmp_path / "data", models_dir, cameras=CAMERAS, risk=RISK)
    async with running_app(settings) as app:
        yield app, ids


async def _visits(app: SmartReidApp, **query: Any) -> tuple[int, Any]:
    return await get_json(f"{app.http_url()}/api/visits", **query)


async def test_visits_of_a_day_newest_first_with_their_final_assessment(
    day_app: tuple[SmartReidApp, dict[str, str]],
) -> None:
    app, ids = day_app
    status, body = await _visits(app, start=START, end=END)
    assert status == 200, body
    assert (body["start"], body["end"], body["truncated"]) == (START, END, False)
    visits = body["visits"]
    assert len(visits) == len(DAY_PLAN)
    starts = [v["started_at"] for v in visits]
    assert starts == sorted(starts, reverse=True)
    # The previous run left every visit open: each was ended and assessed for good at start-up.
    assert all(v["ended_at"] is not None for v in visits)
    assert all(v["risk"]["final"] is True and v["risk"]["source"] == "rules" for v in visits)
    night = visits[-1]
    assert night["person_id"] == ids["night"] and night["label"] == "Visitor 1"
    assert night["known"] is False
    assert night["risk"]["level"] == "critical"
    assert night["risk"]["facts"]["dwell_s"]["back_garden"] == 360.0
    bob = next(v for v in visits if v["person_id"] == ids["bob"])
    assert (bob["label"], bob["known"], bob["risk"]["level"]) == ("Bob", True, "low")
    # The same object GET /api/visits/{id} answers.
    status, single = await get_json(f"{app.http_url()}/api/visits/{night['visit_id']}")
    assert status == 200 and single == night


async def test_visit_filters_limits_and_refusals(
    day_app: tuple[SmartReidApp, dict[str, str]],
) -> None:
    app, ids = day_app
    period = {"start": START, "end": END}
    _, body = await _visits(app, **period, person=ids["loiterer"])
    assert [v["person_id"] for v in body["visits"]] == [ids["loiterer"]] * 4
    _, body = await _visits(app, **period, camera="back_garden")
    assert [v["person_id"] for v in body["visits"]] == [ids["night"]]
    _, body = await _visits(app, **period, min_level="high")
    assert body["visits"] and all(
        LEVELS.index(v["risk"]["level"]) >= LEVELS.index("high") for v in body["visits"]
    )
    _, body = await _visits(app, **period, limit=2)
    assert body["truncated"] is True
    assert [v["visit_id"] for v in body["visits"]] == [f"{0xA00 + 8:012x}", f"{0xA00 + 7:012x}"]
    # ISO 8601 with an offset; a visit overlapping the edge of the period counts.
    _, body = await _visits(app, start="2026-12-05T02:50:00+01:00", end="2026-12-05T08:00:00+01:00")
    assert [v["person_id"] for v in body["visits"]] == [ids["night"]]
    for bad in (
        {"start": START, "end": START + 32 * 86400},
        {"start": END, "end": START},
        {"start": "yesterday"},
        {"min_level": "severe"},
        {"person": "Alice"},
        {"limit": 0},
        {"limit": 1001},
    ):
        status, error = await _visits(app, **bad)
        assert status == 400, bad
        assert error["error"] and error["message"]
    # Default period: the last 24 h up to now.
    status, body = await _visits(app)
    assert status == 200 and body["end"] == pytest.approx(time.time(), abs=60)
    assert body["end"] - body["start"] == pytest.approx(86400)


async def test_the_rules_summary_of_a_day_reads_well(
    day_app: tuple[SmartReidApp, dict[str, str]],
) -> None:
    app, ids = day_app
    status, answer = await get_json(
        f"{app.http_url()}/api/summary", start=START, end=END, narrative="rules"
    )
    assert status == 200, answer
    assert answer["source"] == "rules"
    assert answer["counts"] == {
        "visits": 9,
        "people": 5,
        "household": 1,
        "known": 1,
        "strangers": 3,
        "by_level": answer["counts"]["by_level"],
    }
    assert sum(answer["counts"]["by_level"].values()) == 9
    assert answer["highest_level"] == "critical"
    assert len(answer["title"]) <= 80 and answer["title"].startswith("Act now: 9 visits")
    summary = answer["summary"]
    assert len(summary) <= 1000
    # The worst first, then the household by name, repeated strangers grouped.
    assert summary.startswith(
        "A stranger (Visitor 1) walked street -> driveway -> back_garden at 02:47"
    )
    assert "Alice left at 08:10 (hallway -> front_door) and came home at 17:40" in summary
    assert "A stranger (Visitor 3) came 4 times: 09:10 (street -> driveway), 11:00" in summary
    assert summary.index("Visitor 1") < summary.index("Visitor 3") < summary.index("Alice")
    assert "Bob (known) came by at 13:00 (front_door)" in summary
    highlights = answer["highlights"]
    assert 1 <= len(highlights) <= 10 and highlights[0]["person_id"] == ids["night"]
    assert highlights[0]["text"].startswith("02:47 Visitor 1 (stranger): street -> driveway")
    assert highlights[0]["snapshot_url"] == f"/api/visits/{highlights[0]['visit_id']}/snapshot.jpg"
    ranks = [LEVELS.index(h["level"]) for h in highlights]
    assert ranks == sorted(ranks, reverse=True)
    facts = answer["facts"]
    assert len(facts) == 9 and facts[0]["start"] == "02:47" and facts[0]["level"] == "critical"
    assert facts[0]["cameras"] == ["street", "driveway", "back_garden"]
    assert "unknown person" in facts[0]["reasons"]
    # Deterministic.
    _, again = await get_json(
        f"{app.http_url()}/api/summary", start=START, end=END, narrative="rules"
    )
    assert again == answer


def test_nothing_happened_is_said_clearly() -> None:
    answer = rules_summary([], START, END, TimeOfDay(BERLIN))
    assert answer["title"] == "Nothing happened"
    assert answer[
        "summary"
    ] == "Nothing happened between 00:00 and 00:00: no visits were recorded." or (
        answer["summary"].startswith("Nothing happened between")
    )
    assert answer["counts"]["visits"] == 0 and answer["highlights"] == [] and answer["facts"] == []
    assert answer["highest_level"] == "low"


async def test_summary_falls_back_to_rules_when_the_llm_fails(
    tmp_path: Path, models_dir: Path
) -> None:
    seed_day(tmp_path / "data")
    for url in (dead_url(),):
        settings = settings_for(
            tmp_path / "data",
            models_dir,
            cameras=CAMERAS,
            risk={**RISK, "llm": {"url": url, "timeout_s": 2}},
        )
        async with running_app(settings) as app:
            t0 = time.monotonic()
            status, answer = await get_json(f"{app.http_url()}/api/summary", start=START, end=END)
            assert status == 200 and answer["source"] == "rules"
            assert time.monotonic() - t0 < 10

    # An endpoint that parrots its instructions: refused, rules text instead.
    def parrot(body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["messages"][0]["content"]
        return {"title": "Home Security Camera", "summary": "Visitor 1. " + prompt[:400]}

    async with fake_chat(parrot) as (url, _):
        settings = settings_for(
            tmp_path / "data", models_dir, cameras=CAMERAS, risk={**RISK, "llm": {"url": url}}
        )
        async with running_app(settings) as app:
            status, answer = await get_json(f"{app.http_url()}/api/summary", start=START, end=END)
            assert status == 200 and answer["source"] == "rules"
    # An endpoint that answers placeholder text: refused, rules text instead.
    async with fake_chat(lambda body: {"title": "string", "summary": "string"}) as (url, chat):
        settings = settings_for(
            tmp_path / "data", models_dir, cameras=CAMERAS, risk={**RISK, "llm": {"url": url}}
        )
        async with running_app(settings) as app:
            status, answer = await get_json(f"{app.http_url()}/api/summary", start=START, end=END)
            assert status == 200 and answer["source"] == "rules"
            assert chat.requests, "the LLM was asked"
            _, stats = await get_json(f"{app.http_url()}/api/stats")
            assert stats["risk_llm"]["failures"] == {"summary_invalid_values": 1}
            # narrative=rules never asks the LLM.
            asked = len(chat.requests)
            await get_json(f"{app.http_url()}/api/summary", start=START, end=END, narrative="rules")
            assert len(chat.requests) == asked


async def test_summary_with_the_real_llm_is_validated_either_way(
    tmp_path: Path, models_dir: Path, real_llm: str
) -> None:
    seed_day(tmp_path / "data")
    settings = settings_for(
        tmp_path / "data",
        models_dir,
        cameras=CAMERAS,
        risk={**RISK, "llm": {"url": real_llm, "timeout_s": 90}},
    )
    async with running_app(settings) as app:
        status, answer = await get_json(f"{app.http_url()}/api/summary", start=START, end=END)
    assert status == 200
    assert answer["source"] in ("llm", "rules")
    assert 1 <= len(answer["title"]) <= 80 and 1 <= len(answer["summary"]) <= 1000
    assert answer["counts"]["visits"] == 9 and answer["highest_level"] == "critical"
    assert answer["summary"].strip().lower() != "string"
