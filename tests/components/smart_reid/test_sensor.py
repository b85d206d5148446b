"""Sensors follow the server's retained state as it is published on the broker."""

from __future__ import annotations

from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_reid.const import DOMAIN

from .conftest import (
    BASE,
    PERSON_A,
    SERVER_ID,
    camera_payload,
    hub_payload,
    info_payload,
    person_payload,
    publish,
    wait_for,
)


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
    assert _state(hass, "sensor.visitor_3_last_seen") == "2025-11-21T15:48:19+00:00"
    assert _state(hass, "sensor.visitor_3_visits") == "4"
    location = hass.states.get("sensor.visitor_3_location")
    assert location is not None
    assert location.attributes["options"] == ["front", "back", "away"]
    assert location.attributes["known"] is False

    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(present=False, camera=None, last_seen=1763740200.0),
        retain=True,
    )
    await wait_for(
        hass, lambda: _state(hass, "sensor.visitor_3_location") == "away", "the person to leave"
    )
    assert _state(hass, "sensor.visitor_3_last_seen") == "2025-11-21T15:50:00+00:00"


async def test_person_on_unlisted_camera(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A person reported on a camera the server did not list still has a valid location."""
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
