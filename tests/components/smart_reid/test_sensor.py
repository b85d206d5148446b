"""Sensors follow the server's retained state as it is published on the broker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.sensor import SensorStateClass
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_reid.const import DOMAIN, LAST_SEEN_STEP_S

from .conftest import (
    BASE,
    PERSON_A,
    PERSON_B,
    RECENT,
    SERVER_ID,
    camera_payload,
    hub_payload,
    info_payload,
    person_payload,
    publish,
    state,
    wait_for,
)


def _iso(timestamp: float) -> str:
    """A timestamp sensor's state for this Unix time (whole seconds)."""
    return dt_util.utc_from_timestamp(timestamp).isoformat(timespec="seconds")


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, f"{entity_id} does not exist"
    return state.state


async def test_hub_sensors(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Counts for the whole house and the server's models, as the server reports them."""
    assert _state(hass, "sensor.smart_reid_people_present") == "2"
    assert _state(hass, "sensor.smart_reid_distinct_people_today") == "5"
    assert _state(hass, "sensor.smart_reid_visits_today") == "7"
    assert _state(hass, "sensor.smart_reid_detector_model") == "yolox_nano_416"
    assert (
        _state(hass, "sensor.smart_reid_re_identification_model")
        == "person-reidentification-retail-0277"
    )
    assert _state(hass, "sensor.smart_reid_inference_runtime") == "openvino (cpu)"
    present = hass.states.get("sensor.smart_reid_people_present")
    assert present is not None
    # A known identity is shown by name; one without retained state by its id.
    assert present.attributes["people"] == ["Visitor 3", "b1c2d3e4f5a6"]

    await publish(hass, f"{BASE}/state", hub_payload(people_present=0, person_ids_present=[]))
    await wait_for(
        hass, lambda: _state(hass, "sensor.smart_reid_people_present") == "0", "nobody present"
    )


async def test_frame_counters_are_diagnostic_and_off(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    """Frame counters exist for troubleshooting but do not clutter the default view."""
    entity_id = entity_registry.async_get_entity_id(
        "sensor", DOMAIN, f"{SERVER_ID}_hub_frames_processed"
    )
    assert entity_id is not None
    entry = entity_registry.async_get(entity_id)
    assert entry is not None
    assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert entry.entity_category == "diagnostic"
    assert hass.states.get(entity_id) is None


async def test_camera_sensors(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Per camera: who is there, who was last, when."""
    assert _state(hass, "sensor.front_people_present") == "1"
    assert _state(hass, "sensor.front_last_person") == "Visitor 3"
    assert _state(hass, "sensor.front_last_seen") == "2025-11-21T15:48:19+00:00"
    last = hass.states.get("sensor.front_last_person")
    assert last is not None and last.attributes["person_id"] == PERSON_A

    await publish(
        hass,
        f"{BASE}/camera/front/state",
        camera_payload(people_present=0, person_ids_present=[], last_label="Alice"),
        retain=True,
    )
    await wait_for(
        hass, lambda: _state(hass, "sensor.front_last_person") == "Alice", "the new last person"
    )
    assert _state(hass, "sensor.front_people_present") == "0"
    # The other camera's entities did not change.
    assert _state(hass, "sensor.back_people_present") == "1"


async def test_new_camera_appears(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """A camera added on the server gets its device and entities without a reload."""
    await publish(
        hass, f"{BASE}/camera/garage_door/state", camera_payload("garage_door"), retain=True
    )
    await wait_for(
        hass,
        lambda: hass.states.get("sensor.garage_door_people_present") is not None,
        "the new camera's sensor",
    )
    assert _state(hass, "sensor.garage_door_people_present") == "1"
    assert _state(hass, "event.garage_door_visit_started") == STATE_UNKNOWN


async def test_person_sensors(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Location is the camera while present and `away` afterwards; last seen is a time."""
    assert _state(hass, "sensor.visitor_3_location") == "front"
    assert _state(hass, "sensor.visitor_3_last_seen") == _iso(RECENT)
    assert _state(hass, "sensor.visitor_3_visits") == "4"
    location = hass.states.get("sensor.visitor_3_location")
    assert location is not None
    assert location.attributes["options"] == ["front", "back", "away"]
    assert location.attributes["known"] is False

    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(present=False, camera=None, last_seen=RECENT + 100.0),
        retain=True,
    )
    await wait_for(
        hass, lambda: _state(hass, "sensor.visitor_3_location") == "away", "the person to leave"
    )
    assert _state(hass, "sensor.visitor_3_last_seen") == _iso(RECENT + 100.0)


async def test_person_on_unlisted_camera(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A person reported on a camera the server did not list still has a valid location."""
    # They left the front camera's view (which would otherwise keep showing them there).
    await publish(
        hass,
        f"{BASE}/camera/front/state",
        camera_payload(people_present=0, person_ids_present=[]),
        retain=True,
    )
    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(camera="side_gate"),
        retain=True,
    )
    await wait_for(
        hass, lambda: _state(hass, "sensor.visitor_3_location") == "side_gate", "the new camera"
    )
    location = hass.states.get("sensor.visitor_3_location")
    assert location is not None
    assert "side_gate" in location.attributes["options"]


async def test_info_update_changes_model_sensor(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """After a server update the diagnostic sensors show the new model."""
    info = info_payload(http_url=loaded_entry.runtime_data.api.url)
    info["models"]["reid"]["name"] = "person-reidentification-retail-0288"
    await publish(hass, f"{BASE}/info", info, retain=True)
    await wait_for(
        hass,
        lambda: (
            _state(hass, "sensor.smart_reid_re_identification_model")
            == "person-reidentification-retail-0288"
        ),
        "the new model name",
    )


# --- what changes a state (and so writes a row in the recorder's database) -------------------


async def _camera(hass: HomeAssistant, entry: MockConfigEntry, **state: Any) -> None:
    """Publish a front camera state and wait until the integration has it."""
    payload = camera_payload(**state)
    await publish(hass, f"{BASE}/camera/front/state", payload, retain=True)
    coordinator = entry.runtime_data.coordinator
    await wait_for(
        hass,
        lambda: (
            (front := coordinator.cameras.get("front")) is not None
            and front.last_seen == payload["last_seen"]
            and front.last_person_id == payload["last_person_id"]
            and list(front.person_ids_present) == payload["person_ids_present"]
        ),
        f"camera state {state}",
    )


async def _person(hass: HomeAssistant, entry: MockConfigEntry, **state: Any) -> None:
    payload = person_payload(**state)
    await publish(hass, f"{BASE}/person/{PERSON_A}/state", payload, retain=True)
    coordinator = entry.runtime_data.coordinator
    await wait_for(
        hass,
        lambda: (
            (person := coordinator.persons.get(PERSON_A)) is not None
            and person.last_seen == payload["last_seen"]
            and person.camera == payload["camera"]
            and person.visit_id == payload["visit_id"]
        ),
        f"person state {state}",
    )


async def test_last_person_is_who_arrived_last(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """In a crowd the server's latest sighting jumps between people already there; the
    camera's last person changes only when someone arrives."""
    await _camera(
        hass,
        loaded_entry,
        people_present=2,
        person_ids_present=[PERSON_A, PERSON_B],
        last_person_id=PERSON_B,
        last_label="Visitor 4",
    )
    assert _state(hass, "sensor.front_last_person") == "Visitor 4"
    # Visitor 3, here all along, is sighted again: still Visitor 4.
    await _camera(
        hass,
        loaded_entry,
        people_present=2,
        person_ids_present=[PERSON_B, PERSON_A],
        last_person_id=PERSON_A,
    )
    last = hass.states.get("sensor.front_last_person")
    assert last is not None
    assert last.state == "Visitor 4"
    assert last.attributes["person_id"] == PERSON_B
    # A new order of the same people is not a change either.
    present = hass.states.get("sensor.front_people_present")
    assert present is not None and present.attributes["person_ids"] == sorted([PERSON_A, PERSON_B])
    # Visitor 3 leaves and comes back: they arrived last now.
    await _camera(hass, loaded_entry, person_ids_present=[PERSON_B], last_person_id=PERSON_B)
    await _camera(
        hass,
        loaded_entry,
        people_present=2,
        person_ids_present=[PERSON_B, PERSON_A],
        last_person_id=PERSON_A,
        last_seen=1763740100.0,
    )
    assert _state(hass, "sensor.front_last_person") == "Visitor 3"
    # Visitor 4 (now with a name of its own) leaves and comes back while the crowd's latest
    # sighting is Visitor 3, here all along.
    await publish(
        hass,
        f"{BASE}/person/{PERSON_B}/state",
        person_payload(PERSON_B, label="Visitor 4"),
        retain=True,
    )
    await wait_for(
        hass, lambda: PERSON_B in loaded_entry.runtime_data.coordinator.persons, "Visitor 4"
    )
    await _camera(hass, loaded_entry, person_ids_present=[PERSON_A], last_person_id=PERSON_A)
    await _camera(
        hass,
        loaded_entry,
        people_present=2,
        person_ids_present=[PERSON_A, PERSON_B],
        last_person_id=PERSON_A,
        last_seen=1763740101.0,
    )
    assert _state(hass, "sensor.front_last_person") == "Visitor 4"


async def test_last_seen_moves_in_steps_while_people_stay(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Exact on arrival and when everyone has left; once a minute in between."""
    start = 1763740099.2
    assert _state(hass, "sensor.front_last_seen") == _iso(start)
    await _camera(hass, loaded_entry, last_seen=start + 30)
    assert _state(hass, "sensor.front_last_seen") == _iso(start)
    await _camera(hass, loaded_entry, last_seen=start + LAST_SEEN_STEP_S + 1)
    assert _state(hass, "sensor.front_last_seen") == _iso(start + LAST_SEEN_STEP_S + 1)
    await _camera(
        hass,
        loaded_entry,
        people_present=0,
        person_ids_present=[],
        last_seen=start + LAST_SEEN_STEP_S + 5,
    )
    assert _state(hass, "sensor.front_last_seen") == _iso(start + LAST_SEEN_STEP_S + 5)
    await _camera(
        hass,
        loaded_entry,
        person_ids_present=[PERSON_B],
        last_person_id=PERSON_B,
        last_seen=start + LAST_SEEN_STEP_S + 9,
    )
    assert _state(hass, "sensor.front_last_seen") == _iso(start + LAST_SEEN_STEP_S + 9)
    # The server forgot everyone: no time to show.
    await _camera(
        hass, loaded_entry, person_ids_present=[PERSON_B], last_person_id=PERSON_B, last_seen=None
    )
    assert _state(hass, "sensor.front_last_seen") == STATE_UNKNOWN


async def test_location_stays_while_the_camera_still_sees_them(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Seen by two cameras at once, a person's location does not flip with each sighting;
    their last seen time moves once a minute, and at once when a new visit starts."""
    await _person(hass, loaded_entry, camera="back", last_seen=RECENT + 5)
    assert _state(hass, "sensor.visitor_3_location") == "front"
    assert _state(hass, "sensor.visitor_3_last_seen") == _iso(RECENT)
    await _camera(hass, loaded_entry, people_present=0, person_ids_present=[])
    await _person(hass, loaded_entry, camera="back", last_seen=RECENT + 8)
    assert _state(hass, "sensor.visitor_3_location") == "back"
    await _person(hass, loaded_entry, camera="back", last_seen=RECENT + LAST_SEEN_STEP_S)
    assert _state(hass, "sensor.visitor_3_last_seen") == _iso(RECENT + LAST_SEEN_STEP_S)
    await _person(hass, loaded_entry, camera="back", last_seen=RECENT + 70, visit_id="0d0d0d0d0d0d")
    assert _state(hass, "sensor.visitor_3_last_seen") == _iso(RECENT + 70)


async def test_daily_counts_start_again_each_day(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Counts for today are `total` with a last reset at local midnight: long-term statistics
    add up the days, and forgetting someone (a fall on the same day) is not a new day."""
    entity_id = "sensor.smart_reid_distinct_people_today"
    today = dt_util.start_of_local_day()
    counter = hass.states.get(entity_id)
    assert counter is not None
    assert counter.attributes["state_class"] == SensorStateClass.TOTAL
    assert counter.attributes["last_reset"] == today.isoformat()

    await publish(hass, f"{BASE}/state", hub_payload(distinct_people_today=4))
    await wait_for(hass, lambda: _state(hass, entity_id) == "4", "a person forgotten")
    assert state(hass, entity_id).attributes["last_reset"] == today.isoformat()

    freezer.tick(timedelta(days=1))
    await publish(hass, f"{BASE}/state", hub_payload(distinct_people_today=4, visits_today=9))
    await wait_for(hass, lambda: _state(hass, "sensor.smart_reid_visits_today") == "9", "visits")
    # The day changed but the count did not fall: the server has not started a new day yet.
    assert state(hass, entity_id).attributes["last_reset"] == today.isoformat()
    await publish(hass, f"{BASE}/state", hub_payload(distinct_people_today=1))
    await wait_for(hass, lambda: _state(hass, entity_id) == "1", "the new day's first person")
    assert state(hass, entity_id).attributes["last_reset"] == (
        dt_util.start_of_local_day().isoformat()
    )
    assert dt_util.start_of_local_day() > today
