"""Home Assistant cameras forwarded to the server while their motion sensor is on."""

from __future__ import annotations

import asyncio

import pytest
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
)

from custom_components.smart_reid.const import (
    CONF_CAMERA_ENTITY,
    CONF_FORWARD,
    CONF_INTERVAL_S,
    CONF_TRIGGER_ENTITY,
    DOMAIN,
)

from .conftest import FakeServer, cuhk03_image, entry_for, setup_still_cameras, wait_for

MOTION = "binary_sensor.front_motion"


@pytest.fixture
async def front_door(hass: HomeAssistant) -> bytes:
    image = cuhk03_image(3, 0).read_bytes()
    await setup_still_cameras(hass, {"Front door": image})
    assert hass.states.get("camera.front_door") is not None
    return image


async def _setup(
    hass: HomeAssistant, server: FakeServer, camera: str = "camera.front_door"
) -> MockConfigEntry:
    await server.publish_basics()
    entry = entry_for(server)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry,
        options={
            CONF_FORWARD: [
                {CONF_CAMERA_ENTITY: camera, CONF_TRIGGER_ENTITY: MOTION, CONF_INTERVAL_S: 0.2}
            ]
        },
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    return entry


@pytest.mark.usefixtures("mqtt_entry")
async def test_forwards_only_while_triggered(
    hass: HomeAssistant, server: FakeServer, front_door: bytes
) -> None:
    """No motion, no frames; motion: the camera's stills arrive; motion ends: they stop."""
    hass.states.async_set(MOTION, STATE_OFF)
    entry = await _setup(hass, server)
    await asyncio.sleep(0.5)
    await hass.async_block_till_done()
    assert server.frames == []

    hass.states.async_set(MOTION, STATE_ON)
    await wait_for(hass, lambda: len(server.frames) >= 3, "three forwarded frames")
    frame = server.frames[0]
    assert frame == {"camera": "front_door", "content_type": "image/jpeg", "bytes": front_door}

    hass.states.async_set(MOTION, STATE_OFF)
    await hass.async_block_till_done()
    await asyncio.sleep(0.1)
    await hass.async_block_till_done()
    sent = len(server.frames)
    await asyncio.sleep(0.6)
    await hass.async_block_till_done()
    assert len(server.frames) == sent
    status = entry.runtime_data.forwarder.diagnostics()[0]
    assert status["active"] is False
    assert status["frames_sent"] == sent
    assert status["failure"] is None


@pytest.mark.usefixtures("mqtt_entry")
async def test_trigger_already_on(
    hass: HomeAssistant, server: FakeServer, front_door: bytes
) -> None:
    """Motion that started before Home Assistant did still gets frames forwarded."""
    hass.states.async_set(MOTION, STATE_ON)
    await _setup(hass, server)
    await wait_for(hass, lambda: len(server.frames) >= 1, "a forwarded frame")


@pytest.mark.usefixtures("mqtt_entry")
async def test_refused_frames_logged_once(
    hass: HomeAssistant,
    server: FakeServer,
    front_door: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that does not know the camera: one warning with the fix, then quiet."""
    server.frame_status = 404
    hass.states.async_set(MOTION, STATE_ON)
    entry = await _setup(hass, server)
    forwarder = entry.runtime_data.forwarder
    await wait_for(
        hass,
        lambda: sum(path.startswith("/api/frames") for _, path in server.requests) >= 3,
        "three refused frames",
    )
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING" and "Cannot forward" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "front_door" in warnings[0] and "auto_add_cameras" in warnings[0]
    assert forwarder.diagnostics()[0]["failure"] is not None

    server.frame_status = 200
    await wait_for(hass, lambda: len(server.frames) >= 1, "frames accepted again")
    await wait_for(hass, lambda: "works again" in caplog.text, "the recovery to be logged")


@pytest.mark.usefixtures("mqtt_entry")
async def test_missing_camera_and_bad_names(
    hass: HomeAssistant, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera entity that does not exist is reported; Home Assistant keeps running."""
    await async_setup_component(hass, "camera", {})
    hass.states.async_set(MOTION, STATE_ON)
    entry = await _setup(hass, server, camera="camera.gone")
    await wait_for(
        hass, lambda: "no image from camera.gone" in caplog.text, "the missing camera warning"
    )
    assert server.frames == []
    assert await hass.config_entries.async_unload(entry.entry_id)

    hass.config_entries.async_update_entry(
        entry,
        options={
            CONF_FORWARD: [
                {
                    CONF_CAMERA_ENTITY: "camera." + "x" * 70,
                    CONF_TRIGGER_ENTITY: MOTION,
                    CONF_INTERVAL_S: 1.0,
                }
            ]
        },
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert "is not a valid Smart ReID camera name" in caplog.text
    assert entry.runtime_data.forwarder.diagnostics() == []


@pytest.mark.usefixtures("mqtt_entry")
async def test_server_unreachable_while_forwarding(
    hass: HomeAssistant, server: FakeServer, front_door: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    hass.states.async_set(MOTION, STATE_ON)
    entry = await _setup(hass, server)
    await wait_for(hass, lambda: len(server.frames) >= 1, "a forwarded frame")
    await server.stop()
    await wait_for(
        hass,
        lambda: entry.runtime_data.forwarder.diagnostics()[0]["failure"] is not None,
        "the failure to be noticed",
    )
    assert "cannot reach" in entry.runtime_data.forwarder.diagnostics()[0]["failure"]


@pytest.mark.usefixtures("mqtt_entry")
async def test_rejected_token_while_forwarding_starts_reauth(
    hass: HomeAssistant, server: FakeServer, front_door: bytes
) -> None:
    """Frames refused for the token: the user is asked for the new one (once, not per frame)."""
    hass.states.async_set(MOTION, STATE_ON)
    entry = await _setup(hass, server)
    await wait_for(hass, lambda: len(server.frames) >= 1, "a forwarded frame")
    server.token = "rotated"
    await wait_for(
        hass,
        lambda: (
            "rejected the token" in str(entry.runtime_data.forwarder.diagnostics()[0]["failure"])
        ),
        "the refused frame",
    )
    await asyncio.sleep(0.5)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]
