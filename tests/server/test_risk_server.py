"""Risk assessments from the real server: real models, CUHK03 people, a real Mosquitto broker,
and the HTTP API, as Home Assistant would receive them."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.server.server_support import CuhkPicker, cuhk, running_app, settings_for, upload_ok

pytestmark = pytest.mark.timeout(120)
BASE = "sr_risk"
TOPIC = f"{BASE}/events/risk_assessed"


def _last_night_at_three() -> float:
    """03:00 in Berlin of the latest night that has passed (frames may not be in the future)."""
    zone = ZoneInfo("Europe/Berlin")
    now = datetime.now(zone)
    night = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if night > now - timedelta(minutes=10):
        night -= timedelta(days=1)
    return night.timestamp()


async def test_a_stranger_at_night_is_assessed_on_mqtt_and_over_http(
    tmp_path: Path,
    models_dir: Path,
    cuhk03_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
) -> None:
    host, port = mosquitto_broker
    watcher = mqtt_collector(host, port, f"{BASE}/events/#")
    settings = settings_for(
        tmp_path,
        models_dir,
        mqtt={"enabled": True, "host": host, "port": port, "base_topic": BASE},
        visits={"window_s": 2.0},
        risk={"timezone": "Europe/Berlin", "cameras": {"front": 0.25, "back": 0.8}},
    )
    night = _last_night_at_three()
    async with running_app(settings) as app:
        base = app.http_url()
        picker = CuhkPicker(cuhk03_dir, app.embedder)
        view_a, view_b = picker.same_person(app.threshold + 0.02)

        first = (await upload_ok(base, "front", cuhk(cuhk03_dir, view_a), night))["decisions"][0]
        assert first["new_person"] is True
        start = (await watcher.await_for(TOPIC))[0].json()
        assert start["visit_id"] == first["visit_id"]
        assert start["person_id"] == first["person_id"] and start["label"] == first["label"]
        assert (start["level"], start["final"], start["source"]) == ("high", False, "rules")
        assert [r["text"] for r in start["reasons"]] == [
            "unknown person",
            "reached front (sensitivity 0.25)",
            "03:00 at night",
        ]
        assert start["score"] == sum(r["points"] for r in start["reasons"])
        assert start["timestamp"] == pytest.approx(night, abs=0.01)

        # Walking on to the back garden raises the level: published at once, not at the
        # next interval.
        await upload_ok(base, "back", cuhk(cuhk03_dir, view_b), night + 1)
        raised = (await watcher.await_for(TOPIC, count=2))[1].json()
        assert raised["visit_id"] == first["visit_id"]
        assert (raised["level"], raised["final"]) == ("critical", False)
        assert raised["facts"]["cameras"] == ["front", "back"]

        # The visit ends (nobody seen for the window): visit_ended, then the final assessment.
        final_message = (
            await watcher.await_for(TOPIC, lambda m: m.json()["final"] is True, within=20)
        )[0]
        final = final_message.json()
        assert final["visit_id"] == first["visit_id"] and final["level"] == "critical"
        before = watcher.messages[: watcher.messages.index(final_message)]
        assert f"{BASE}/events/visit_ended" in [m.topic for m in before]
        assert not final_message.retain

        async with aiohttp.ClientSession() as session:
            url = f"{base}/api/visits/{first['visit_id']}"
            async with session.get(url) as response:
                assert response.status == 200
                visit = await response.json()
        assert visit["risk"] == final

        # Once the user marks the person known, their next night-time visit is low.
        await app.update_person(first["person_id"], None, True)
        again = (await upload_ok(base, "front", cuhk(cuhk03_dir, view_a), night + 120))["decisions"]
        assert again[0]["person_id"] == first["person_id"] and again[0]["new_person"] is True
        known = (
            await watcher.await_for(TOPIC, lambda m: m.json()["visit_id"] == again[0]["visit_id"])
        )[0].json()
        assert known["level"] == "low"
        assert known["reasons"][-1]["text"] == "known person: at most low"
        assert time.time() > night  # the frames were never in the future


async def test_a_visit_without_an_assessment_answers_risk_null(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    settings = settings_for(tmp_path, models_dir, risk={"enabled": False})
    async with running_app(settings) as app:
        base = app.http_url()
        jpeg = cuhk(cuhk03_dir, "0003_00")
        decision = (await upload_ok(base, "front", jpeg, time.time()))["decisions"][0]
        async with aiohttp.ClientSession() as session:
            url = f"{base}/api/visits/{decision['visit_id']}"
            async with session.get(url) as response:
                assert response.status == 200
                visit = await response.json()
        assert visit["visit_id"] == decision["visit_id"] and visit["risk"] is None
