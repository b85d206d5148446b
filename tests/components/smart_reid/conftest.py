"""Fixtures for the Smart ReID integration tests: a real broker, a real HTTP server, real images.

Every test gets its own Mosquitto on a free 127.0.0.1 port and a small aiohttp server that
answers the routes of docs/contract.md the integration calls, serving CUHK03 person crops. That
server also publishes over MQTT what the real inference server would publish after each call
(a renamed person's retained state, the empty retained message of a forgotten one), so the
tests follow a change the way a user sees it: action -> server -> MQTT -> entity.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from homeassistant.components import mqtt
from homeassistant.components.camera import Camera
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, State
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    setup_test_component_platform,
)

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # custom_components/ must be importable as a package
    sys.path.insert(0, str(REPO))

from custom_components.smart_reid.const import (  # noqa: E402
    CONF_BASE_TOPIC,
    CONF_TOKEN,
    CONF_URL,
    DOMAIN,
)

SHARED = Path(os.environ.get("SMART_REID_SHARED", REPO.parent / "shared"))
CUHK03 = SHARED / "data" / "cuhk03" / "labeled"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

SERVER_ID = "3f9a1c2e7b10"
TOKEN = "s3cret-token"
BASE = "smart_reid"
PERSON_A = "a0b1c2d3e4f5"
PERSON_B = "b1c2d3e4f5a6"
# A whole second shortly before the tests run: people in the payloads were last seen then, so
# strangers among them are recent enough to have devices (24 h by default).
RECENT = float(int(time.time()))


def cuhk03_image(identity: int = 1, cell: int = 0, split: str = "val") -> Path:
    """A real person crop; skips the test with a clear reason when the data set is absent."""
    path = CUHK03 / split / f"{identity:04d}_{cell:02d}.jpg"
    if not path.is_file():
        pytest.skip(f"CUHK03 crop {path} not found (set SMART_REID_SHARED to the shared folder)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- contract payloads (docs/contract.md) ----------------------------------------------------


def info_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "contract": 1,
        "server_id": SERVER_ID,
        "name": "Smart ReID",
        "version": "0.1.0",
        "http_url": "http://127.0.0.1:8756",
        "started_at": 1763740000.0,
        "models": {
            "detector": {"name": "yolox_nano_416", "runtime": "onnxruntime", "device": "cpu"},
            "reid": {
                "name": "person-reidentification-retail-0277",
                "runtime": "openvino",
                "device": "cpu",
                "dim": 256,
                "is_reid": True,
            },
        },
        "cameras": ["front", "back"],
        "settings": {"visit_window_s": 60.0, "auth_required": True},
    }
    payload.update(overrides)
    return payload


def person_payload(person_id: str = PERSON_A, **overrides: Any) -> dict[str, Any]:
    """A Person as the server publishes it. `named` follows the label as on a real server
    (a label other than the generated "Visitor N" was given by a user) unless given;
    `named=None` leaves the key out, as a server from before it was in the contract does."""
    payload: dict[str, Any] = {
        "person_id": person_id,
        "label": "Visitor 3",
        "known": False,
        "first_seen": RECENT - 40000.0,
        "last_seen": RECENT,
        "visit_count": 4,
        "cameras": ["back", "front"],
        "present": True,
        "camera": "front",
        "visit_id": "9c8b7a6d5e4f",
        "exemplars": 6,
        "thumbnail_url": f"/api/persons/{person_id}/thumbnail.jpg",
    }
    payload.update(overrides)
    if "named" not in overrides:
        payload["named"] = re.fullmatch(r"Visitor [0-9]+", str(payload["label"] or "")) is None
    elif overrides["named"] is None:
        del payload["named"]
    return payload


def camera_payload(camera: str = "front", **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "camera": camera,
        "people_present": 1,
        "person_ids_present": [PERSON_A],
        "unknown_present": True,
        "last_person_id": PERSON_A,
        "last_label": "Visitor 3",
        "last_seen": 1763740099.2,
        "sightings_today": 42,
        "distinct_people_today": 3,
        "frames_processed": 600,
        "frames_dropped": 0,
        "updated_at": 1763740100.0,
    }
    payload.update(overrides)
    return payload


def hub_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "people_present": 2,
        "person_ids_present": [PERSON_A, PERSON_B],
        "distinct_people_today": 5,
        "visits_today": 7,
        "frames_processed": 12345,
        "frames_dropped": 3,
        "updated_at": 1763740100.0,
    }
    payload.update(overrides)
    return payload


def decision_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "camera": "front",
        "timestamp": 1763740099.2,
        "person_id": PERSON_A,
        "label": "Visitor 3",
        "known": False,
        "new_person": True,
        "is_new_identity": False,
        "match": "matched",
        "similarity": 0.81,
        "candidate_id": None,
        "candidate_similarity": 0.0,
        "visit_id": "9c8b7a6d5e4f",
        "visit_cameras": ["front"],
        "first_camera": "front",
        "box": [120.0, 40.5, 220.0, 400.0],
        "detection_score": 0.91,
        "quality_ok": True,
        "frame_id": "front-000123",
        "source": "http",
        "extra": {"frigate_event_id": "1763740099.123-abc"},
        "snapshot_url": "/api/visits/9c8b7a6d5e4f/snapshot.jpg",
        "thumbnail_url": f"/api/persons/{PERSON_A}/thumbnail.jpg",
    }
    payload.update(overrides)
    return payload


def visit_event_payload(reason: str = "camera_added", **visit: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "visit_id": "9c8b7a6d5e4f",
        "person_id": PERSON_A,
        "label": "Visitor 3",
        "known": False,
        "is_new_identity": False,
        "started_at": 1763740000.0,
        "last_seen": 1763740099.2,
        "ended_at": 1763740160.0 if reason == "ended" else None,
        "cameras": ["front", "back"],
        "first_camera": "front",
        "last_camera": "back",
        "sightings": 17,
        "snapshot_url": "/api/visits/9c8b7a6d5e4f/snapshot.jpg",
        "thumbnail_url": f"/api/persons/{PERSON_A}/thumbnail.jpg",
    }
    body.update(visit)
    return {"reason": reason, "camera": "back", "visit": body}


def risk_payload(level: str = "critical", score: int = 95, **overrides: Any) -> dict[str, Any]:
    """A `risk_assessed` message as docs/contract.md shows it (interim, from the rules)."""
    payload: dict[str, Any] = {
        "visit_id": "9c8b7a6d5e4f",
        "person_id": PERSON_A,
        "label": "Visitor 3",
        "level": level,
        "score": score,
        "final": False,
        "source": "rules",
        "timestamp": 1763692020.0,
        "reasons": [
            {"code": "identity", "text": "unknown person", "points": 20},
            {"code": "place", "text": "reached back (sensitivity 0.8)", "points": 40},
            {"code": "night", "text": "02:47 at night", "points": 30},
            {"code": "path", "text": "2 cameras: front -> back", "points": 5},
        ],
        "facts": {
            "status": "returning_stranger",
            "cameras": ["front", "back"],
            "dwell_s": {"front": 8.0, "back": 40.0},
            "duration_s": 70.0,
            "group_size": 0,
            "visits_24h": 1,
            "visits_7d": 1,
            "local_time": "02:47",
            "night": True,
        },
    }
    payload.update(overrides)
    return payload


LEVELS = ("low", "medium", "high", "critical")


def visit_payload(
    visit_id: str = "9c8b7a6d5e4f",
    started_at: float = 1763740000.0,
    duration: float | None = 160.0,
    *,
    level: str | None = "low",
    **overrides: Any,
) -> dict[str, Any]:
    """One visit as `GET /api/visits` lists it: Visit, `risk`, `label` and `known`;
    `duration` None: still going on."""
    ended_at = None if duration is None else started_at + duration
    cameras = overrides.pop("cameras", ["front", "back"])
    payload: dict[str, Any] = {
        "visit_id": visit_id,
        "person_id": PERSON_A,
        "label": "Visitor 3",
        "known": False,
        "is_new_identity": False,
        "started_at": started_at,
        "last_seen": ended_at or started_at + 30,
        "ended_at": ended_at,
        "cameras": cameras,
        "first_camera": cameras[0],
        "last_camera": cameras[-1],
        "sightings": 17,
        "snapshot_url": f"/api/visits/{visit_id}/snapshot.jpg",
        "thumbnail_url": f"/api/persons/{PERSON_A}/thumbnail.jpg",
        "risk": None,
    }
    payload.update(overrides)
    if level is not None:
        payload["risk"] = risk_payload(
            level,
            {"low": 10, "medium": 40, "high": 70, "critical": 95}[level],
            visit_id=visit_id,
            person_id=payload["person_id"],
            label=payload["label"],
            final=ended_at is not None,
            facts={
                "status": "household" if payload["known"] else "returning_stranger",
                "cameras": cameras,
            },
        )
    return payload


def summary_payload(visits: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """What the server's rules would answer for these visits (the wording is simpler)."""
    levels = [v["risk"]["level"] if v.get("risk") else "low" for v in visits]
    strangers = [v for v in visits if not v["known"]]
    ranked = sorted(
        visits,
        key=lambda v: (LEVELS.index(v["risk"]["level"]) if v.get("risk") else 0, v["started_at"]),
        reverse=True,
    )
    return {
        "start": start,
        "end": end,
        "source": "rules",
        "title": f"{len(visits)} visits, {len(strangers)} strangers" if visits else "Quiet day",
        "summary": " ".join(f"{v['label']} at {v['first_camera']}." for v in reversed(visits))
        or "Nobody came.",
        "counts": {
            "visits": len(visits),
            "people": len({v["person_id"] for v in visits}),
            "household": 0,
            "known": len(visits) - len(strangers),
            "strangers": len(strangers),
            "by_level": {level: levels.count(level) for level in LEVELS},
        },
        "highest_level": max(levels, key=LEVELS.index) if levels else None,
        "highlights": [
            {
                "visit_id": v["visit_id"],
                "person_id": v["person_id"],
                "label": v["label"],
                "started_at": v["started_at"],
                "level": v["risk"]["level"] if v.get("risk") else None,
                "text": f"{v['label']} at {v['first_camera']}",
                "snapshot_url": v["snapshot_url"],
            }
            for v in ranked[:10]
        ],
        "facts": [
            {
                "visit_id": v["visit_id"],
                "person": v["label"],
                "status": "known" if v["known"] else "returning_stranger",
                "cameras": v["cameras"],
                "level": v["risk"]["level"] if v.get("risk") else None,
                "reasons": [r["text"] for r in v["risk"]["reasons"]] if v.get("risk") else [],
            }
            for v in visits
        ],
    }


def state(hass: HomeAssistant, entity_id: str) -> State:
    """The entity's state; fails the test, naming the entity, when it does not exist."""
    found = hass.states.get(entity_id)
    assert found is not None, f"{entity_id} does not exist"
    return found


# --- waiting ----------------------------------------------------------------------------------


async def wait_for(
    hass: HomeAssistant, condition: Callable[[], bool], what: str, within: float = 10.0
) -> None:
    """Let the broker round trip happen; fail with `what` if it never does."""
    deadline = time.monotonic() + within
    while True:
        await hass.async_block_till_done()
        if condition():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


class Clock:
    """Home Assistant's clock (`dt_util.utcnow`, which the integration reads), moved on by
    the test. Monotonic and Unix time stay real, so the event loop, the MQTT client and the
    broker go on as usual; `async_fire_time_changed` then runs the timers due by the new time.
    (freezegun would freeze the monotonic clock too, which stalls the real MQTT client.)"""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def tick(self, delta: timedelta) -> None:
        self.now += delta


# --- the broker -------------------------------------------------------------------------------


@dataclass
class Broker:
    """A Mosquitto process of this test; stop() and start() simulate a broker outage."""

    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.skip(f"mosquitto not found at {MOSQUITTO} (apt-get install mosquitto)")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def broker(socket_enabled: None, tmp_path: Path) -> Iterator[Broker]:
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = Broker(port=port, config=config, log=tmp_path / "mosquitto.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Home Assistant loads custom_components/ only when asked to."""


@pytest.fixture(autouse=True)
def quick_mqtt_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """HA's MQTT client gathers subscriptions for 0.5 s before sending them; tests need not wait.

    Only the batching delay changes: subscriptions still go to the real broker the same way.
    """
    for name in ("INITIAL_SUBSCRIBE_COOLDOWN", "SUBSCRIBE_COOLDOWN", "UNSUBSCRIBE_COOLDOWN"):
        monkeypatch.setattr(f"homeassistant.components.mqtt.client.{name}", 0.01)


@pytest.fixture
async def mqtt_entry(
    hass: HomeAssistant, broker: Broker, mock_hass_config: None
) -> AsyncIterator[MockConfigEntry]:
    """Home Assistant's own MQTT integration, connected to this test's broker.

    At the end, our entries and then MQTT are unloaded while the broker still runs.
    """
    entry = MockConfigEntry(
        domain="mqtt",
        data={"broker": "127.0.0.1", "port": broker.port},
        # The oldest layout: every Home Assistant version since migrates it to its own.
        version=1,
        minor_version=1,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: mqtt.is_connected(hass), "MQTT to connect")
    yield entry
    # What a test set going finishes first (a reload after an options change, say): left
    # running, it would set our entry up again, and subscribe, after MQTT had gone.
    await hass.async_block_till_done()
    for ours in hass.config_entries.async_entries(DOMAIN):
        if ours.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(ours.entry_id)
    if entry.state is ConfigEntryState.LOADED and broker.process is not None:
        await hass.config_entries.async_unload(entry.entry_id)


async def publish(hass: HomeAssistant, topic: str, payload: Any, *, retain: bool = False) -> None:
    """Publish like the server does: JSON for objects, text or bytes as given."""
    if isinstance(payload, dict | list):
        from homeassistant.helpers.json import json_dumps

        payload = json_dumps(payload)
    await mqtt.async_publish(hass, topic, payload, qos=1, retain=retain)


# --- the server -------------------------------------------------------------------------------


class StillCamera(Camera):
    """A snapshot camera whose every still is the same bytes (a real photo, or not a picture)."""

    def __init__(self, name: str, image: bytes) -> None:
        super().__init__()
        self._attr_name = name
        self._image = image

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes:
        return self._image


async def setup_still_cameras(hass: HomeAssistant, cameras: dict[str, bytes]) -> None:
    """Camera entities ``camera.<name>`` showing fixed pictures (before HA's HTTP starts)."""
    setup_test_component_platform(
        hass, "camera", [StillCamera(name, image) for name, image in cameras.items()]
    )
    assert await async_setup_component(hass, "camera", {"camera": {"platform": "test"}})
    await hass.async_block_till_done()


@dataclass
class FakeServer:
    """The HTTP side of the contract, in memory, plus what the real server publishes."""

    hass: HomeAssistant
    token: str | None = TOKEN
    info: dict[str, Any] = field(default_factory=info_payload)
    persons: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Loading models: health says "starting" (503) and every other route answers 503.
    starting: bool = False
    # The moment a server finishes starting: health already says ready, /api/info still 503.
    health_ahead: bool = False
    frames: list[dict[str, Any]] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    frame_status: int = 200
    # Anything but 200: picture requests fail with it (a server restarting, a lost file).
    thumbnail_status: int = 200
    # The CUHK03 crop (identity, cell) served as every person's thumbnail.
    thumbnail_crop: tuple[int, int] = (1, 0)
    # Stored visits (Visit + risk, label, known): GET /api/visits answers those overlapping the
    # period asked for; None: the route is missing (a server from before it), 404 like any
    # unknown route. The summary GET /api/summary answers (None: one written from the visits
    # like the rules do).
    visits: list[dict[str, Any]] | None = field(default_factory=list)
    summary: dict[str, Any] | None = None
    # Anything but 200: GET /api/visits and /api/summary fail with it (404: an older server).
    summary_status: int = 200
    url: str = ""
    runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> None:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/info", self._info)
        app.router.add_get("/api/persons", self._list_persons)
        app.router.add_patch("/api/persons/{person_id}", self._patch_person)
        app.router.add_delete("/api/persons/{person_id}", self._delete_person)
        app.router.add_post("/api/persons/{person_id}/merge", self._merge)
        app.router.add_post("/api/reset", self._reset)
        app.router.add_get("/api/persons/{person_id}/thumbnail.jpg", self._thumbnail)
        app.router.add_get("/api/visits/{visit_id}/snapshot.jpg", self._snapshot)
        app.router.add_post("/api/frames", self._frames)
        app.router.add_post("/api/search", self._search)
        app.router.add_get("/api/visits", self._list_visits)
        app.router.add_get("/api/summary", self._summary)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        bound = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}"
        self.info["http_url"] = self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if (
            self.token
            and request.path != "/api/health"
            and request.headers.get("Authorization") != f"Bearer {self.token}"
        ):
            return _error(401, "unauthorized", "send Authorization: Bearer <http.token>")
        if self.starting and request.path != "/api/health":
            return _error(503, "not_ready", "server is starting; try again in a moment")
        response: web.StreamResponse = await handler(request)
        return response

    async def _health(self, request: web.Request) -> web.Response:
        starting = self.starting and not self.health_ahead
        return web.json_response(
            {"status": "starting" if starting else "ready", "reasons": [], "version": "0.1.0"},
            status=503 if starting else 200,
        )

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info)

    async def _list_persons(self, request: web.Request) -> web.Response:
        return web.json_response({"persons": list(self.persons.values())})

    async def publish_person(self, person_id: str) -> None:
        await publish(
            self.hass, f"{BASE}/person/{person_id}/state", self.persons[person_id], retain=True
        )

    async def publish_forgotten(self, person_id: str) -> None:
        await publish(self.hass, f"{BASE}/person/{person_id}/state", "", retain=True)

    async def _patch_person(self, request: web.Request) -> web.Response:
        person_id = request.match_info["person_id"]
        if person_id not in self.persons:
            return _error(404, "unknown_person", f"no person {person_id}")
        body = await request.json()
        person = self.persons[person_id]
        if "label" in body:
            person["label"] = body["label"]
            person["named"] = True  # whatever it reads like, a user chose it
        if "known" in body:
            person["known"] = bool(body["known"])
        await self.publish_person(person_id)
        return web.json_response(person)

    async def _delete_person(self, request: web.Request) -> web.Response:
        person_id = request.match_info["person_id"]
        if self.persons.pop(person_id, None) is None:
            return _error(404, "unknown_person", f"no person {person_id}")
        await self.publish_forgotten(person_id)
        return web.json_response({"forgotten": person_id})

    async def _merge(self, request: web.Request) -> web.Response:
        person_id = request.match_info["person_id"]
        other = (await request.json()).get("from")
        for unknown in (person_id, other):
            if unknown not in self.persons:
                return _error(404, "not_found", f"unknown person {unknown!r} (never seen)")
        absorbed = self.persons.pop(other)
        kept = self.persons[person_id]
        kept["visit_count"] += absorbed["visit_count"]
        if absorbed.get("named") and not kept.get("named"):  # the user's name stays
            kept.update(label=absorbed["label"], named=True)
        await self.publish_forgotten(other)
        await self.publish_person(person_id)
        return web.json_response(self.persons[person_id])

    async def _reset(self, request: web.Request) -> web.Response:
        camera = (await request.json()).get("camera")
        if camera == "broken":
            return _error(400, "bad_camera", "camera broken is not configured")
        gone = [
            pid for pid, p in self.persons.items() if camera is None or p["cameras"] == [camera]
        ]
        for pid in gone:
            del self.persons[pid]
            await self.publish_forgotten(pid)
        return web.json_response({"forgotten": len(gone)})

    async def _thumbnail(self, request: web.Request) -> web.Response:
        if self.thumbnail_status != 200:
            return _error(self.thumbnail_status, "unavailable", "try again later")
        if request.match_info["person_id"] not in self.persons:
            return _error(404, "unknown_person", "no such person")
        return web.Response(
            body=cuhk03_image(*self.thumbnail_crop).read_bytes(), content_type="image/jpeg"
        )

    async def _snapshot(self, request: web.Request) -> web.Response:
        return web.Response(body=cuhk03_image(1, 5).read_bytes(), content_type="image/jpeg")

    async def _frames(self, request: web.Request) -> web.Response:
        camera = request.query.get("camera", "")
        if self.frame_status != 200:
            return _error(self.frame_status, "unknown_camera", f"camera {camera} is not configured")
        body = await request.read()
        self.frames.append({"camera": camera, "content_type": request.content_type, "bytes": body})
        return web.json_response(
            {"camera": camera, "frame_id": f"{camera}-{len(self.frames)}", "decisions": []}
        )

    async def _search(self, request: web.Request) -> web.Response:
        """Every known person as a hit, in insertion order (the real ranking is server-side)."""
        body = await request.read()
        query = dict(request.query)
        self.searches.append({**query, "content_type": request.content_type, "bytes": body})
        if not body.startswith(b"\xff\xd8"):
            return _error(422, "no_person", "no person found in the picture")
        hits = [
            {**person, "similarity": 0.6 - 0.1 * i, "score": 0.5 - 0.1 * i, "match": "matched"}
            for i, person in enumerate(self.persons.values())
        ][: int(query.get("limit", 5))]
        return web.json_response(
            {
                "camera": query.get("camera"),
                "box": [0, 0, 10, 20],
                "quality_ok": True,
                "ranking": "cosine",
                "results": hits,
            }
        )

    def _period(self, request: web.Request) -> tuple[float, float] | web.Response:
        if self.summary_status != 200:
            return _error(self.summary_status, "not_found", "no such route")
        try:
            end = float(request.query.get("end", time.time()))
            start = float(request.query.get("start", end - 86400))
        except ValueError:
            return _error(400, "bad_period", "start and end must be Unix seconds or ISO 8601")
        if end <= start or end - start > 31 * 86400:
            return _error(400, "bad_period", "end must be after start, at most 31 days later")
        return start, end

    def _overlapping(
        self, start: float, end: float, person: str | None = None
    ) -> list[dict[str, Any]]:
        found = [
            v
            for v in self.visits or []
            if not isinstance(v, dict)  # a test's malformed entry goes out as it is
            or "started_at" not in v
            or (
                v["started_at"] < end
                and (v["ended_at"] is None or v["ended_at"] > start)
                and (person is None or v["person_id"] == person)
            )
        ]
        return sorted(
            found,
            key=lambda v: float(v.get("started_at", 0)) if isinstance(v, dict) else 0.0,
            reverse=True,
        )

    async def _list_visits(self, request: web.Request) -> web.Response:
        if self.visits is None:
            return _error(404, "not_found", "no such route")
        period = self._period(request)
        if isinstance(period, web.Response):
            return period
        limit = int(request.query.get("limit", 200))
        found = self._overlapping(*period, request.query.get("person"))
        return web.json_response(
            {
                "start": period[0],
                "end": period[1],
                "truncated": len(found) > limit,
                "visits": found[:limit],
            }
        )

    async def _summary(self, request: web.Request) -> web.Response:
        period = self._period(request)
        if isinstance(period, web.Response):
            return period
        if self.summary is not None:
            return web.json_response({"start": period[0], "end": period[1], **self.summary})
        return web.json_response(summary_payload(self._overlapping(*period), *period))

    async def publish_basics(self, status: str = "online") -> None:
        """What a running server keeps retained: status, info, hub and camera states."""
        await publish(self.hass, f"{BASE}/status", status, retain=True)
        await publish(self.hass, f"{BASE}/info", self.info, retain=True)
        await publish(self.hass, f"{BASE}/state", hub_payload(), retain=True)
        for camera in ("front", "back"):
            await publish(
                self.hass, f"{BASE}/camera/{camera}/state", camera_payload(camera), retain=True
            )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@pytest.fixture
async def server(hass: HomeAssistant, socket_enabled: None) -> AsyncIterator[FakeServer]:
    fake = FakeServer(hass)
    await fake.start()
    yield fake
    await fake.stop()


def entry_for(server: FakeServer, unique_id: str = SERVER_ID, **data: Any) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="Smart ReID",
        unique_id=unique_id,
        data={CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN, **data},
    )


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, server: FakeServer
) -> MockConfigEntry:
    """The integration set up against a running server with retained state in place."""
    server.persons[PERSON_A] = person_payload(PERSON_A)
    await server.publish_basics()
    await server.publish_person(PERSON_A)
    entry = entry_for(server)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data.coordinator
    await wait_for(
        hass,
        lambda: (
            coordinator.available
            and coordinator.hub is not None
            and PERSON_A in coordinator.persons
            and all(coordinator.cameras.get(c) for c in ("front", "back"))
        ),
        "the retained state to arrive",
    )
    return entry
