"""Identities come and go: devices appear with them and disappear when they are forgotten."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_reid.coordinator import SmartReidCoordinator

from .conftest import (
    BASE,
    PERSON_A,
    PERSON_B,
    FakeServer,
    person_payload,
    publish,
    state,
    wait_for,
)


def _person_device(
    loaded_entry: MockConfigEntry, registry: dr.DeviceRegistry, person_id: str
) -> dr.DeviceEntry | None:
    coordinator: SmartReidCoordinator = loaded_entry.runtime_data.coordinator
    return coordinator.device(coordinator.person_identifier(person_id))


async def test_devices_of_server_and_cameras(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """The server is a service device; cameras and identities hang below it."""
    coordinator = loaded_entry.runtime_data.coordinator
    hub = coordinator.device(coordinator.hub_identifier())
    assert hub is not None
    assert hub.name == "Smart ReID"
    assert hub.sw_version == "0.1.0"
    assert hub.entry_type is dr.DeviceEntryType.SERVICE
    front = coordinator.device(coordinator.camera_identifier("front"))
    assert front is not None
    assert front.name == "Front"
    assert front.via_device_id == hub.id
    person = _person_device(loaded_entry, device_registry, PERSON_A)
    assert person is not None
    assert person.name == "Visitor 3"
    assert person.serial_number == PERSON_A
    assert person.via_device_id == hub.id


async def test_identity_appears_renamed_and_forgotten(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """New retained state creates the device; a new label renames it; empty removes it."""
    await publish(
        hass,
        f"{BASE}/person/{PERSON_B}/state",
        person_payload(PERSON_B, label="Visitor 4", camera="back"),
        retain=True,
    )
    await wait_for(
        hass,
        lambda: hass.states.get("sensor.visitor_4_location") is not None,
        "the new identity's entities",
    )
    assert state(hass, "sensor.visitor_4_location").state == "back"
    device = _person_device(loaded_entry, device_registry, PERSON_B)
    assert device is not None
    entity_ids = {e.entity_id for e in er.async_entries_for_device(entity_registry, device.id)}
    assert entity_ids == {
        "sensor.visitor_4_location",
        "sensor.visitor_4_last_seen",
        "sensor.visitor_4_visits",
        "binary_sensor.visitor_4_present",
        "binary_sensor.visitor_4_known",
        "image.visitor_4_picture",
    }

    await publish(
        hass,
        f"{BASE}/person/{PERSON_B}/state",
        person_payload(PERSON_B, label="Bob", camera="back"),
        retain=True,
    )
    await wait_for(
        hass,
        lambda: (
            (d := _person_device(loaded_entry, device_registry, PERSON_B)) is not None
            and d.name == "Bob"
        ),
        "the device to be renamed",
    )

    await publish(hass, f"{BASE}/person/{PERSON_B}/state", "", retain=True)
    await wait_for(
        hass,
        lambda: _person_device(loaded_entry, device_registry, PERSON_B) is None,
        "the forgotten identity's device to go",
    )
    for entity_id in entity_ids:
        assert entity_registry.async_get(entity_id) is None
        assert hass.states.get(entity_id) is None
    # The other identity is untouched.
    assert _person_device(loaded_entry, device_registry, PERSON_A) is not None
    assert state(hass, "sensor.visitor_3_location").state == "front"


async def test_identity_forgotten_while_away_is_tidied(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    device_registry: dr.DeviceRegistry,
) -> None:
    """A device whose identity the server no longer lists goes when the server comes online.

    That happens when an identity is forgotten while Home Assistant is not running: the empty
    retained message replaced the state, so no removal message ever arrives.
    """
    coordinator = loaded_entry.runtime_data.coordinator
    device_registry.async_get_or_create(
        config_entry_id=loaded_entry.entry_id,
        identifiers={coordinator.person_identifier("0000dead0000")},
        name="Forgotten meanwhile",
    )
    await publish(hass, f"{BASE}/status", "offline", retain=True)
    await wait_for(hass, lambda: not coordinator.available, "the server to go offline")
    await publish(hass, f"{BASE}/status", "online", retain=True)
    await wait_for(
        hass,
        lambda: _person_device(loaded_entry, device_registry, "0000dead0000") is None,
        "the stale device to be removed",
    )
    assert _person_device(loaded_entry, device_registry, PERSON_A) is not None
    assert ("GET", "/api/persons") in server.requests


async def test_listing_failure_removes_nothing(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    device_registry: dr.DeviceRegistry,
) -> None:
    """If the server cannot list identities, no device is touched."""
    coordinator = loaded_entry.runtime_data.coordinator
    # Let the start-up tidy-up (a successful listing) finish first: it would rightly remove a
    # device the server does not list. The server sees the request before the integration
    # has the answer, and the tidy-up runs as a background task, which a plain
    # async_block_till_done does not wait for.
    await wait_for(hass, lambda: ("GET", "/api/persons") in server.requests, "the start-up listing")
    await hass.async_block_till_done(wait_background_tasks=True)
    device_registry.async_get_or_create(
        config_entry_id=loaded_entry.entry_id,
        identifiers={coordinator.person_identifier("0000beef0000")},
        name="Maybe still there",
    )
    server.token = "rotated"  # listing now fails with 401
    await publish(hass, f"{BASE}/status", "offline", retain=True)
    await wait_for(hass, lambda: not coordinator.available, "the server to go offline")
    count = len(server.requests)
    await publish(hass, f"{BASE}/status", "online", retain=True)
    await wait_for(
        hass, lambda: ("GET", "/api/persons") in server.requests[count:], "the listing attempt"
    )
    # The refused listing has been answered and handled, not only sent.
    await hass.async_block_till_done(wait_background_tasks=True)
    assert _person_device(loaded_entry, device_registry, "0000beef0000") is not None
