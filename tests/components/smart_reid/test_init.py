"""Setting up, reloading and unloading an entry against a real broker and server."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_reid.const import (
    CONF_CAMERA_ENTITY,
    CONF_FORWARD,
    CONF_INTERVAL_S,
    CONF_TOKEN,
    CONF_TRIGGER_ENTITY,
    CONF_URL,
    DOMAIN,
)

from .conftest import (
    BASE,
    PERSON_A,
    FakeServer,
    entry_for,
    free_port,
    person_payload,
    publish,
    state,
    wait_for,
)


async def test_setup_and_unload(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """A loaded entry shows the server's retained state and unloads cleanly."""
    assert state(hass, "sensor.smart_reid_people_present").state == "2"
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    assert state(hass, "sensor.smart_reid_people_present").state == "unavailable"


async def test_rejected_token_starts_reauth(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, server: FakeServer
) -> None:
    """A token the server refuses fails setup and asks the user for a new one."""
    entry = entry_for(server, **{CONF_TOKEN: "expired"})
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == [SOURCE_REAUTH]


async def test_url_now_points_to_another_server(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, server: FakeServer
) -> None:
    """Never mix up two servers' identities: refuse to load and say why."""
    server.info["server_id"] = "0123456789ab"
    entry = entry_for(server)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "0123456789ab" in (entry.reason or "")


async def test_no_mqtt_means_not_ready(hass: HomeAssistant, server: FakeServer) -> None:
    """Without an MQTT entry the integration waits instead of failing for good."""
    await async_setup_component(hass, "mqtt", {})
    entry = entry_for(server)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_unreachable_http_still_loads(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, server: FakeServer
) -> None:
    """The HTTP API being down does not block the MQTT side, which keeps working."""
    await server.publish_basics()
    entry = entry_for(server, **{CONF_URL: f"http://127.0.0.1:{free_port()}"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = entry.runtime_data.coordinator
    await wait_for(hass, lambda: coordinator.hub is not None, "hub state over MQTT")
    assert coordinator.http_ok is False
    assert state(hass, "sensor.smart_reid_visits_today").state == "7"


async def test_options_change_reloads(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """New forwarding options take effect at once; other entry updates do not reload."""
    first = loaded_entry.runtime_data
    hass.config_entries.async_update_entry(loaded_entry, title="Renamed")
    await hass.async_block_till_done()
    assert loaded_entry.runtime_data is first

    route = {
        CONF_CAMERA_ENTITY: "camera.front",
        CONF_TRIGGER_ENTITY: "binary_sensor.front_motion",
        CONF_INTERVAL_S: 1.0,
    }
    hass.config_entries.async_update_entry(loaded_entry, options={CONF_FORWARD: [route]})
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.runtime_data is not first
    assert loaded_entry.runtime_data.forwarder.diagnostics()[0]["camera"] == "front"


async def test_remove_stale_devices_only(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """The user may delete devices the server no longer knows, never those of the server,
    its cameras or named and household people (strangers: see test_strangers.py)."""
    from custom_components.smart_reid import async_remove_config_entry_device

    coordinator = loaded_entry.runtime_data.coordinator
    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(PERSON_A, label="Alice"),
        retain=True,
    )
    await wait_for(
        hass, lambda: coordinator.persons[PERSON_A].label == "Alice", "the person to be named"
    )
    live = coordinator.device(coordinator.person_identifier(PERSON_A))
    hub = coordinator.device(coordinator.hub_identifier())
    stale = device_registry.async_get_or_create(
        config_entry_id=loaded_entry.entry_id,
        identifiers={coordinator.person_identifier("ffffffffffff")},
        name="Gone",
    )
    assert live is not None and hub is not None
    assert not await async_remove_config_entry_device(hass, loaded_entry, live)
    assert not await async_remove_config_entry_device(hass, loaded_entry, hub)
    assert await async_remove_config_entry_device(hass, loaded_entry, stale)
