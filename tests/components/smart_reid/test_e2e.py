"""End to end: the real inference server process, a real broker, Home Assistant with the integration.

One person walks past the front camera (CUHK03 view A) and then the back camera (view B of the
same identity), then a different person arrives: Home Assistant must fire
`smart_reid.new_person` exactly twice, once per visit, and show both identities as devices.

Which CUHK03 identities to use is decided at test time with the server's own embedder (the
server tests' CuhkPicker): many identities are not recognised across CUHK03's two views, and
this test is about the wiring, not about the model's accuracy (eval/ measures that).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.smart_reid.const import (
    CONF_BASE_TOPIC,
    CONF_TOKEN,
    CONF_URL,
    DOMAIN,
    EVENT_NEW_PERSON,
    EVENT_RISK_ASSESSED,
)

from .conftest import CUHK03, REPO, SHARED, Broker, free_port, setup_still_cameras, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

MODELS = SHARED / "models"
TOKEN = "e2e-token"
BASE = "smart_reid"


def _require_server() -> None:
    if importlib.util.find_spec("smart_reid_server") is None:
        pytest.skip("smart_reid_server is not installed in this environment (pip install -e .)")
    if importlib.util.find_spec("smart_reid_server.__main__") is None:
        pytest.skip("smart_reid_server has no __main__ yet: the server cannot be started")
    if not MODELS.is_dir() or not CUHK03.is_dir():
        pytest.skip(f"models or CUHK03 not found under {SHARED} (set SMART_REID_SHARED)")


@dataclass
class ServerProcess:
    """`python -m smart_reid_server serve` with its own data dir, on this test's broker."""

    url: str
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


async def _wait_ready(server: ServerProcess, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert server.process is not None
            if server.process.poll() is not None:
                pytest.fail(f"the server exited with {server.process.returncode}:\n{server.tail()}")
            try:
                async with session.get(f"{server.url}/api/health") as response:
                    if (await response.json()).get("status") in ("ready", "degraded"):
                        return
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.25)
    pytest.fail(f"the server did not become ready in {within} s:\n{server.tail()}")


@pytest.fixture
async def inference_server(
    hass: HomeAssistant, broker: Broker, tmp_path: Path
) -> AsyncIterator[ServerProcess]:
    _require_server()
    http_port = free_port()
    config = tmp_path / "server.yaml"
    config.write_text(
        "\n".join(
            [
                f"data_dir: {tmp_path / 'server-data'}",
                "log_level: info",
                "cameras: [front, back]",
                "models:",
                f"  dir: {MODELS}",
                "  download: false",
                "quality:",
                "  min_height_px: 32  # CUHK03 crops are small",
                "mqtt:",
                "  host: 127.0.0.1",
                f"  port: {broker.port}",
                f"  base_topic: {BASE}",
                "http:",
                "  host: 127.0.0.1",
                f"  port: {http_port}",
                f"  token: {TOKEN}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    server = ServerProcess(f"http://127.0.0.1:{http_port}", config, tmp_path / "server.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_REID_")}
    with server.log.open("ab") as log:
        # Popen only forks; readiness is awaited below without blocking the loop.
        server.process = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "smart_reid_server", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    try:
        await _wait_ready(server)
        yield server
    finally:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def _pick_people(info: dict[str, Any], work_dir: Path) -> tuple[str, str, str]:
    """(person view A, same person view B, a stranger), chosen with the server's embedder."""
    from smart_reid_server.models.download import ModelManager
    from smart_reid_server.vision.embed import Embedder

    from tests.server.server_support import CuhkPicker

    models = {"dir": str(MODELS), "download": False, "reid": info["models"]["reid"]["name"]}
    embedder = Embedder.from_config(models, ModelManager.from_config(models, work_dir))
    picker = CuhkPicker(CUHK03, embedder)
    settings = info["settings"]
    view_a, view_b = picker.same_person(float(settings["match_threshold"]) + 0.02)
    stranger = picker.stranger([view_a, view_b], float(settings["uncertain_threshold"]) - 0.02)
    return view_a, view_b, stranger


async def _upload(
    session: aiohttp.ClientSession, server: ServerProcess, camera: str, name: str
) -> dict[str, Any]:
    """Send one crop with a whole-image box, as an edge detector would."""
    from PIL import Image

    path = CUHK03 / "val" / f"{name}.jpg"
    jpeg = path.read_bytes()
    with Image.open(path) as image:
        width, height = image.size
    form = aiohttp.FormData()
    form.add_field("image", jpeg, filename=f"{name}.jpg", content_type="image/jpeg")
    form.add_field("camera", camera)
    form.add_field("detections", json.dumps([{"box": [0, 0, width, height], "score": 0.95}]))
    async with session.post(
        f"{server.url}/api/frames", data=form, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        body = await response.json()
        assert response.status == 200, body
        return dict(body)


async def test_two_visits_two_alerts(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    inference_server: ServerProcess,
    device_registry: dr.DeviceRegistry,
    hass_client_no_auth: ClientSessionGenerator,
    hass_client: ClientSessionGenerator,
    tmp_path: Path,
) -> None:
    # Set the integration up the way a user does: the config flow against the live server.
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_URL: inference_server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry = result["result"]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data.coordinator
    await wait_for(hass, lambda: coordinator.available, "the server to be online over MQTT")
    assert coordinator.info is not None and coordinator.info.reid is not None
    assert coordinator.info.reid.is_reid

    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{inference_server.url}/api/info", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            info = await response.json()
        view_a, view_b, stranger = await hass.async_add_executor_job(
            _pick_people, info, tmp_path / "picker"
        )
        events = async_capture_events(hass, EVENT_NEW_PERSON)
        risks = async_capture_events(hass, EVENT_RISK_ASSESSED)
        first = (await _upload(session, inference_server, "front", view_a))["decisions"][0]
        second = (await _upload(session, inference_server, "back", view_b))["decisions"][0]
        third = (await _upload(session, inference_server, "front", stranger))["decisions"][0]

    # A snapshot camera showing the first person's other view in a larger scene (set up before
    # Home Assistant's HTTP server starts serving, below).
    door = await hass.async_add_executor_job(_still_camera_picture, view_b)
    await setup_still_cameras(hass, {"Front door": door})

    assert second["person_id"] == first["person_id"], "the same person must be recognised"
    assert third["person_id"] != first["person_id"]
    await wait_for(hass, lambda: len(events) >= 2, "two smart_reid.new_person events", 30)
    await wait_for(
        hass,
        lambda: {first["person_id"], third["person_id"]} <= set(coordinator.persons),
        "both identities' retained states",
        30,
    )
    await asyncio.sleep(1.0)  # a late duplicate would arrive within this
    await hass.async_block_till_done()
    assert len(events) == 2
    assert [e.data["person_id"] for e in events] == [first["person_id"], third["person_id"]]
    assert [e.data["camera"] for e in events] == ["front", "front"]
    assert all(e.data["is_new_identity"] for e in events)

    # Each visit is assessed by the server's rules as it starts; Home Assistant shows the
    # worst visit going on as the home's risk level.
    await wait_for(
        hass,
        lambda: {first["visit_id"], third["visit_id"]} <= {e.data["visit_id"] for e in risks},
        "the server's risk assessments of both visits",
        30,
    )
    assert all(e.data["source"] == "rules" and e.data["reasons"] for e in risks)
    await hass.async_block_till_done()
    worst = max(risks, key=lambda e: ("low", "medium", "high", "critical").index(e.data["level"]))
    home = hass.states.get("sensor.smart_reid_risk_level")
    assert home is not None and home.state == worst.data["level"]

    # Both identities are devices, and the front camera's event entity saw the last arrival.
    for person_id in (first["person_id"], third["person_id"]):
        assert coordinator.device(coordinator.person_identifier(person_id))
    event_state = hass.states.get("event.front_visit_started")
    assert event_state is not None
    assert event_state.attributes["person_id"] == third["person_id"]

    # The notification picture is the server's snapshot, through Home Assistant's signed link.
    client = await hass_client_no_auth()
    response = await client.get(events[0].data["snapshot_url"])
    assert response.status == 200
    assert (await response.read())[:2] == b"\xff\xd8"  # a JPEG

    # "Who is at the front door?": the identify action sends the camera's picture to the
    # server's search, which names the person.
    answer = await hass.services.async_call(
        DOMAIN,
        "identify",
        {"camera_entity_id": "camera.front_door", "camera": "back"},
        blocking=True,
        return_response=True,
    )
    assert answer is not None and answer["camera"] == "back"
    results = answer["results"]
    assert isinstance(results, list) and results
    assert results[0]["person_id"] == first["person_id"]
    assert results[0]["match"] in ("matched", "uncertain")

    # "What happened in the last hour?": the server's summary of both visits (its rules; no
    # LLM is configured here), with pictures through Home Assistant's signed links.
    now = dt_util.now()
    summary = await hass.services.async_call(
        DOMAIN,
        "summarize",
        {"start": (now - timedelta(hours=1)).isoformat(), "end": now.isoformat()},
        blocking=True,
        return_response=True,
    )
    assert summary is not None and summary["source"] == "rules"
    assert summary["title"] and summary["summary"]
    assert summary["counts"]["visits"] == 2
    assert summary["highest_level"] == worst.data["level"]
    highlights = summary["highlights"]
    assert {h["visit_id"] for h in highlights} == {first["visit_id"], third["visit_id"]}
    assert all(h["snapshot_url"].startswith("/api/smart_reid/") for h in highlights)
    assert TOKEN not in str(summary)

    # The visits calendar lists both visits, read through Home Assistant's calendar API.
    client = await hass_client()
    response = await client.get(
        "/api/calendars/calendar.smart_reid_visits",
        params={
            "start": (now - timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(minutes=5)).isoformat(),
        },
    )
    assert response.status == 200, await response.text()
    uids = {event["uid"] for event in await response.json()}
    assert uids == {first["visit_id"], third["visit_id"]}


def _still_camera_picture(name: str) -> bytes:
    import cv2
    import numpy as np

    person = cv2.imread(str(CUHK03 / "val" / f"{name}.jpg"))
    scene = np.full((480, 640, 3), 90, np.uint8)
    height, width = person.shape[:2]
    scene[100 : 100 + height, 300 : 300 + width] = person
    return bytes(cv2.imencode(".jpg", scene)[1].tobytes())
