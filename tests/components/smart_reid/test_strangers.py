"""Household and named people keep their devices; strangers have one only while recent.

Time is moved with a clock that replaces Home Assistant's `dt_util.utcnow` (conftest's `Clock`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.smart_reid.const import (
    CONF_STRANGER_DEVICES,
    CONF_STRANGER_HOURS,
    DEFAULT_STRANGER_DEVICES,
    DEFAULT_STRANGER_HOURS,
    DOMAIN,
    EVENT_NEW_PERSON,
    STRANGER_CHECK_INTERVAL,
)
from custom_components.smart_reid.coordinator import SmartReidCoordinator

from .conftest import (
    BASE,
    PERSON_A,
    PERSON_B,
    Clock,
    FakeServer,
    decision_payload,
    entry_for,
    person_payload,
    publish,
    state,
    wait_for,
)

HOUSEHOLD = "c0ffee000001"
NAMED = "c0ffee000002"
OLD_STRANGER = "c0ffee000003"
VISITOR_3_ENTITIES = {
    "sensor.visitor_3_location",
    "sensor.visitor_3_last_seen",
    "sensor.visitor_3_visits",
    "binary_sensor.visitor_3_present",
    "binary_sensor.visitor_3_known",
    "image.visitor_3_picture",
}


@pytest.fixture
def clock(loaded_entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(dt_util.utcnow())
    monkeypatch.setattr(dt_util, "utcnow", clock)
    return clock


def _coordinator(entry: MockConfigEntry) -> SmartReidCoordinator:
    coordinator: SmartReidCoordinator = entry.runtime_data.coordinator
    return coordinator


def _has_device(entry: MockConfigEntry, person_id: str) -> bool:
    coordinator = _coordinator(entry)
    return coordinator.device(coordinator.person_identifier(person_id)) is not None


def _now() -> float:
    return dt_util.utcnow().timestamp()


async def _advance(hass: HomeAssistant, clock: Clock, delta: timedelta) -> None:
    clock.tick(delta)
    async_fire_time_changed(hass, dt_util.utcnow())
    await hass.async_block_till_done()


async def _person(hass: HomeAssistant, server: FakeServer, person_id: str, **fields: Any) -> None:
    """The server's retained state of a person, published and received."""
    server.persons[person_id] = person_payload(person_id, **fields)
    await server.publish_person(person_id)
    coordinator: SmartReidCoordinator = hass.config_entries.async_entries(DOMAIN)[
        0
    ].runtime_data.coordinator
    await wait_for(
        hass,
        lambda: (
            coordinator.persons.get(person_id) is not None
            and coordinator.persons[person_id].last_seen == server.persons[person_id]["last_seen"]
            and coordinator.persons[person_id].label == server.persons[person_id]["label"]
        ),
        f"the state of {person_id}",
    )


async def test_household_and_named_people_stay_strangers_expire(
    hass: HomeAssistant,
    clock: Clock,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    entity_registry: er.EntityRegistry,
) -> None:
    """A stranger's device and entities go a day after the last sighting and come back with
    the next one; household and named people keep theirs however long they are away."""
    month_ago = _now() - 30 * 86400
    await _person(hass, server, HOUSEHOLD, label="Alice", known=True, last_seen=month_ago)
    await _person(hass, server, NAMED, label="Postman", known=False, last_seen=month_ago)
    await _person(hass, server, OLD_STRANGER, label="Visitor 9", last_seen=_now() - 2 * 86400)
    assert _has_device(loaded_entry, HOUSEHOLD)
    assert _has_device(loaded_entry, NAMED)
    assert state(hass, "sensor.alice_location").state == "front"
    assert state(hass, "sensor.postman_visits").state == "4"
    # A stranger last seen two days ago: known to the integration, but no device or entities.
    assert not _has_device(loaded_entry, OLD_STRANGER)
    assert hass.states.get("sensor.visitor_9_location") is None
    assert _has_device(loaded_entry, PERSON_A)
    assert {e for e in VISITOR_3_ENTITIES if hass.states.get(e) is not None} == VISITOR_3_ENTITIES

    # 23 hours later Visitor 3 is still recent ...
    await _advance(hass, clock, timedelta(hours=23))
    assert _has_device(loaded_entry, PERSON_A)
    # ... and a day and a check later not: device and entities are gone, the others stay.
    await _advance(hass, clock, timedelta(hours=1) + STRANGER_CHECK_INTERVAL)
    assert not _has_device(loaded_entry, PERSON_A)
    for entity_id in VISITOR_3_ENTITIES:
        assert hass.states.get(entity_id) is None
        assert entity_registry.async_get(entity_id) is None
    assert _has_device(loaded_entry, HOUSEHOLD) and _has_device(loaded_entry, NAMED)
    assert state(hass, "sensor.alice_location").state == "front"

    # Seen again: the device and its entities come back under the same names.
    await _person(hass, server, PERSON_A, last_seen=_now())
    await wait_for(
        hass,
        lambda: all(hass.states.get(e) is not None for e in VISITOR_3_ENTITIES),
        "Visitor 3's entities to come back",
    )
    assert _has_device(loaded_entry, PERSON_A)


async def test_strangers_stay_visible_without_devices(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    server: FakeServer,
) -> None:
    """With retention 0 strangers get no devices, but events still name them and the people
    sensors list them; a household member still gets a device."""
    server.persons[PERSON_A] = person_payload(PERSON_A)
    await server.publish_basics()
    await server.publish_person(PERSON_A)
    entry = entry_for(server)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options={CONF_STRANGER_HOURS: 0})
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = _coordinator(entry)
    await wait_for(
        hass,
        lambda: coordinator.available and PERSON_A in coordinator.persons,
        "the server online and the retained person",
    )
    events = async_capture_events(hass, EVENT_NEW_PERSON)
    await publish(hass, f"{BASE}/events/new_person", decision_payload(is_new_identity=True))
    await wait_for(hass, lambda: len(events) == 1, "the new_person event")
    assert events[0].data["person_id"] == PERSON_A
    assert events[0].data["label"] == "Visitor 3"
    assert events[0].data["person_device_id"] is None
    assert events[0].data["device_id"] is not None  # the camera's device, for triggers
    assert state(hass, "event.front_visit_started").attributes["person_id"] == PERSON_A
    assert state(hass, "sensor.smart_reid_people_present").attributes["people"][0] == "Visitor 3"
    assert not _has_device(entry, PERSON_A)
    assert hass.states.get("sensor.visitor_3_location") is None

    # An event that beats the person's state (no order across topics) makes no device either.
    await publish(
        hass,
        f"{BASE}/events/new_person",
        decision_payload(person_id=PERSON_B, label="Visitor 4", visit_id="0000aaaa2222"),
    )
    await wait_for(hass, lambda: len(events) == 2, "the second new_person event")
    assert events[1].data["person_id"] == PERSON_B
    assert events[1].data["person_device_id"] is None
    assert not _has_device(entry, PERSON_B)

    await _person(hass, server, HOUSEHOLD, label="Alice", known=True)
    assert _has_device(entry, HOUSEHOLD)
    assert state(hass, "binary_sensor.alice_known").state == "on"


async def test_naming_a_stranger_keeps_them(
    hass: HomeAssistant,
    clock: Clock,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
) -> None:
    """Naming a stranger (or marking them known) gives them a device for good, even one whose
    device had already gone."""
    await _person(hass, server, OLD_STRANGER, label="Visitor 9", last_seen=_now() - 2 * 86400)
    assert not _has_device(loaded_entry, OLD_STRANGER)
    await hass.services.async_call(
        DOMAIN,
        "rename_person",
        {"person_id": OLD_STRANGER, "name": "Neighbour"},
        blocking=True,
    )
    await wait_for(hass, lambda: _has_device(loaded_entry, OLD_STRANGER), "the named device")
    await wait_for(
        hass, lambda: hass.states.get("sensor.neighbour_location") is not None, "the entities"
    )
    await hass.services.async_call(DOMAIN, "mark_known", {"person_id": PERSON_A}, blocking=True)
    await wait_for(
        hass, lambda: state(hass, "binary_sensor.visitor_3_known").state == "on", "known"
    )

    await _advance(hass, clock, timedelta(days=3))
    assert _has_device(loaded_entry, OLD_STRANGER)
    assert _has_device(loaded_entry, PERSON_A)


async def test_restart_removes_devices_of_strangers_gone_meanwhile(
    hass: HomeAssistant,
    clock: Clock,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """Devices of strangers last seen more than the retention before a restart are removed
    as the retained states arrive, or, for one the server no longer publishes a state for
    but still lists, by the tidy-up against `GET /api/persons`."""
    await _person(hass, server, PERSON_B, label="Visitor 4", camera="back")
    await _person(hass, server, HOUSEHOLD, label="Alice", known=True)
    assert _has_device(loaded_entry, PERSON_B) and _has_device(loaded_entry, PERSON_A)
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    # While Home Assistant is not listening, Visitor 4's retained state is cleared (only the
    # listing still has them) and two days pass.
    await publish(hass, f"{BASE}/person/{PERSON_B}/state", "", retain=True)
    clock.tick(timedelta(days=2))

    assert await hass.config_entries.async_setup(loaded_entry.entry_id)
    assert loaded_entry.state is ConfigEntryState.LOADED
    coordinator = _coordinator(loaded_entry)
    await wait_for(
        hass,
        lambda: (
            HOUSEHOLD in coordinator.persons
            and PERSON_A in coordinator.persons
            and not _has_device(loaded_entry, PERSON_A)
            and not _has_device(loaded_entry, PERSON_B)
        ),
        "the stale strangers' devices to go",
    )
    assert _has_device(loaded_entry, HOUSEHOLD)
    assert entity_registry.async_get("sensor.visitor_3_location") is None
    assert entity_registry.async_get("sensor.visitor_4_location") is None
    assert state(hass, "sensor.alice_location").state == "front"


async def test_user_deletes_a_strangers_device(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    device_registry: dr.DeviceRegistry,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """Deleting a stranger's device from its page works; it returns only with a new sighting.
    A household member's device cannot be deleted (forget_person does that)."""
    assert await async_setup_component(hass, "config", {})
    coordinator = _coordinator(loaded_entry)
    await _person(hass, server, HOUSEHOLD, label="Alice", known=True)
    client = await hass_ws_client(hass)

    async def remove(person_id: str) -> dict[str, Any]:
        device = coordinator.device(coordinator.person_identifier(person_id))
        assert device is not None
        await client.send_json_auto_id(
            {
                "type": "config/device_registry/remove_config_entry",
                "config_entry_id": loaded_entry.entry_id,
                "device_id": device.id,
            }
        )
        answer: dict[str, Any] = await client.receive_json()
        return answer

    assert (await remove(PERSON_A))["success"]
    await wait_for(hass, lambda: not _has_device(loaded_entry, PERSON_A), "the device to go")
    assert hass.states.get("sensor.visitor_3_location") is None
    # The same state again (a reconnect re-publishes it) does not bring it back ...
    await _person(hass, server, PERSON_A, visit_count=5)
    assert not _has_device(loaded_entry, PERSON_A)
    # ... a new sighting does.
    await _person(hass, server, PERSON_A, visit_count=5, last_seen=_now() + 5)
    assert _has_device(loaded_entry, PERSON_A)
    await wait_for(
        hass, lambda: hass.states.get("sensor.visitor_3_location") is not None, "the entities"
    )

    refused = await remove(HOUSEHOLD)
    assert not refused["success"]
    assert _has_device(loaded_entry, HOUSEHOLD)


async def test_retention_option(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """The options flow sets the retention; 0 removes every stranger's device at once."""
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    assert result["data_schema"] is not None
    default = next(k for k in result["data_schema"].schema if k == CONF_STRANGER_HOURS).default()
    assert default == DEFAULT_STRANGER_HOURS
    cap = next(k for k in result["data_schema"].schema if k == CONF_STRANGER_DEVICES).default()
    assert cap == DEFAULT_STRANGER_DEVICES == 25
    await _person(hass, server, HOUSEHOLD, label="Alice", known=True)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"cameras": [], CONF_STRANGER_HOURS: 0}
    )
    assert result["type"] == "create_entry"
    assert loaded_entry.options[CONF_STRANGER_HOURS] == 0
    await hass.async_block_till_done()
    coordinator = _coordinator(loaded_entry)
    await wait_for(
        hass,
        lambda: PERSON_A in coordinator.persons and HOUSEHOLD in coordinator.persons,
        "the reloaded entry's people",
    )
    assert not _has_device(loaded_entry, PERSON_A)
    assert hass.states.get("sensor.visitor_3_location") is None
    assert _has_device(loaded_entry, HOUSEHOLD)


async def test_stranger_without_times_and_a_bad_listing(
    hass: HomeAssistant,
    clock: Clock,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
) -> None:
    """A state without `first_seen`/`last_seen` counts from when it arrived; an entry of the
    server's listing that does not follow the contract is skipped by the tidy-up."""
    await _person(hass, server, PERSON_B, label="Visitor 4", first_seen=None, last_seen=None)
    assert _has_device(loaded_entry, PERSON_B)
    await _advance(hass, clock, timedelta(hours=25))
    assert not _has_device(loaded_entry, PERSON_B)

    # A stranger the server lists (last seen three days ago) but publishes no state for,
    # whose device is left from before; and a listing entry that is not a Person.
    server.persons[OLD_STRANGER] = person_payload(
        OLD_STRANGER, label="Visitor 77", last_seen=_now() - 3 * 86400
    )
    server.persons["0000bad00000"] = {"person_id": "0000bad00000", "visit_count": "many"}
    coordinator = _coordinator(loaded_entry)
    dr.async_get(hass).async_get_or_create(
        config_entry_id=loaded_entry.entry_id,
        identifiers={coordinator.person_identifier(OLD_STRANGER)},
        name="Visitor 77",
    )
    await publish(hass, f"{BASE}/status", "offline", retain=True)
    await wait_for(hass, lambda: not coordinator.available, "the server to go offline")
    await publish(hass, f"{BASE}/status", "online", retain=True)
    await wait_for(
        hass, lambda: not _has_device(loaded_entry, OLD_STRANGER), "the stale device to go"
    )


async def test_the_servers_named_flag_decides_who_is_a_stranger(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
) -> None:
    """The server says whether a user chose the label (`named`): someone a user called
    "Visitor 12" keeps their device, and a renamed person's device stays. Without the key (a
    server from before it) the label's form is all there is to go by."""
    month_ago = _now() - 30 * 86400
    await _person(hass, server, NAMED, label="Visitor 12", named=True, last_seen=month_ago)
    assert _has_device(loaded_entry, NAMED)
    assert state(hass, "sensor.visitor_12_visits").state == "4"
    await _person(hass, server, OLD_STRANGER, label="Visitor 9", named=False, last_seen=month_ago)
    assert not _has_device(loaded_entry, OLD_STRANGER)

    # An older server sends no `named`: a label of the generated form is taken for a stranger,
    # any other for a name.
    await _person(hass, server, OLD_STRANGER, label="Visitor 9", named=None, last_seen=month_ago)
    assert "named" not in server.persons[OLD_STRANGER]
    assert not _has_device(loaded_entry, OLD_STRANGER)
    await _person(hass, server, HOUSEHOLD, label="Postman", named=None, last_seen=month_ago)
    assert _has_device(loaded_entry, HOUSEHOLD)


def _stranger(number: int) -> str:
    return f"5{number:011x}"


async def test_only_the_most_recently_seen_strangers_keep_devices(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    server: FakeServer,
    entity_registry: er.EntityRegistry,
) -> None:
    """With room for three strangers, a fourth one seen takes the device of the one seen
    longest ago; a stranger seen again gets theirs back; a state of someone seen before all
    of them (as after a restart) makes no device at all. Household members do not count."""
    await server.publish_basics()
    entry = entry_for(server)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options={CONF_STRANGER_DEVICES: 3})
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = _coordinator(entry)
    await wait_for(hass, lambda: coordinator.available, "the server online")
    start = _now() - 3600
    await _person(hass, server, HOUSEHOLD, label="Alice", known=True, last_seen=start - 86400)
    for number in range(1, 4):
        await _person(
            hass, server, _stranger(number), label=f"Visitor {number}", last_seen=start + number
        )
    assert all(_has_device(entry, _stranger(n)) for n in range(1, 4))
    await wait_for(
        hass, lambda: hass.states.get("sensor.visitor_1_location") is not None, "the entities"
    )

    await _person(hass, server, _stranger(4), label="Visitor 4", last_seen=start + 4)
    assert [n for n in range(1, 5) if _has_device(entry, _stranger(n))] == [2, 3, 4]
    assert hass.states.get("sensor.visitor_1_location") is None
    assert entity_registry.async_get("sensor.visitor_1_location") is None
    assert _has_device(entry, HOUSEHOLD)

    # Visitor 1 comes back: theirs again, Visitor 2's goes.
    await _person(hass, server, _stranger(1), label="Visitor 1", last_seen=start + 5)
    assert [n for n in range(1, 5) if _has_device(entry, _stranger(n))] == [1, 3, 4]
    await wait_for(
        hass, lambda: hass.states.get("sensor.visitor_1_location") is not None, "the entities"
    )
    # Someone seen before all three (a retained state after a restart): no device comes and goes.
    await _person(hass, server, _stranger(5), label="Visitor 5", last_seen=start)
    assert not _has_device(entry, _stranger(5))
    assert [n for n in range(1, 5) if _has_device(entry, _stranger(n))] == [1, 3, 4]
    # Naming a stranger makes them household-like: they leave the count and keep their device.
    await _person(hass, server, _stranger(3), label="Neighbour", last_seen=start + 3)
    await _person(hass, server, _stranger(6), label="Visitor 6", last_seen=start + 6)
    assert [n for n in range(1, 7) if _has_device(entry, _stranger(n))] == [1, 3, 4, 6]
    device = coordinator.device(coordinator.person_identifier(_stranger(3)))
    assert device is not None and device.name == "Neighbour"
    assert entity_registry.async_get("sensor.visitor_3_location") is not None  # ids stay


async def test_no_room_for_strangers(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    server: FakeServer,
) -> None:
    """Room for 0 strangers: none gets a device, not even from an event that comes before
    their state; household members still do."""
    await server.publish_basics()
    entry = entry_for(server)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options={CONF_STRANGER_DEVICES: 0})
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = _coordinator(entry)
    await wait_for(hass, lambda: coordinator.available, "the server online")
    events = async_capture_events(hass, EVENT_NEW_PERSON)
    await publish(hass, f"{BASE}/events/new_person", decision_payload(is_new_identity=True))
    await wait_for(hass, lambda: len(events) == 1, "the new_person event")
    assert events[0].data["person_device_id"] is None
    await _person(hass, server, PERSON_A, last_seen=_now())
    assert not _has_device(entry, PERSON_A)
    await _person(hass, server, HOUSEHOLD, label="Alice", known=True)
    assert _has_device(entry, HOUSEHOLD)


async def test_tidy_up_applies_the_cap_to_devices_left_from_before(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    server: FakeServer,
) -> None:
    """A device left from before a restart for a stranger the server still lists, but whose
    state is no longer retained, goes when the strangers' devices are all taken by people seen
    since; with room to spare it stays."""
    await server.publish_basics()
    entry = entry_for(server)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options={CONF_STRANGER_DEVICES: 1})
    assert await hass.config_entries.async_setup(entry.entry_id)
    coordinator = _coordinator(entry)
    await wait_for(hass, lambda: coordinator.available, "the server online")
    # The tidy-up of coming online is done before the listing changes under it.
    await hass.async_block_till_done(wait_background_tasks=True)
    # Listed only (seen an hour ago), with a device from before.
    server.persons[OLD_STRANGER] = person_payload(
        OLD_STRANGER, label="Visitor 77", last_seen=_now() - 3600
    )
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={coordinator.person_identifier(OLD_STRANGER)},
        name="Visitor 77",
    )

    async def reconnect() -> None:
        await publish(hass, f"{BASE}/status", "offline", retain=True)
        await wait_for(hass, lambda: not coordinator.available, "the server to go offline")
        await publish(hass, f"{BASE}/status", "online", retain=True)
        await wait_for(hass, lambda: coordinator.available, "the server to come back")
        await hass.async_block_till_done(wait_background_tasks=True)  # the tidy-up ran

    await reconnect()  # nobody else has a stranger's device: Visitor 77 keeps theirs
    assert _has_device(entry, OLD_STRANGER)
    await _person(hass, server, PERSON_B, label="Visitor 78", last_seen=_now())
    assert _has_device(entry, PERSON_B)
    await reconnect()
    await wait_for(hass, lambda: not _has_device(entry, OLD_STRANGER), "the outranked device")
    assert _has_device(entry, PERSON_B)
