"""Actions reach the server's HTTP API; its MQTT answer updates what the user sees."""

from __future__ import annotations

import pytest
import voluptuous as vol
from homeassistant.core import HomeAssistant, ServiceResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_reid.const import DOMAIN

from .conftest import (
    PERSON_A,
    PERSON_B,
    FakeServer,
    cuhk03_image,
    entry_for,
    person_payload,
    setup_still_cameras,
    state,
    wait_for,
)


async def _call(hass: HomeAssistant, service: str, **data: object) -> ServiceResponse:
    return await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True
    )


async def test_rename_by_device(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Renaming from the UI (by device) renames the identity on the server and here."""
    coordinator = loaded_entry.runtime_data.coordinator
    device = coordinator.device(coordinator.person_identifier(PERSON_A))
    assert device is not None
    response = await _call(hass, "rename_person", device_id=device.id, name="Alice")
    assert response is not None and response["label"] == "Alice"
    assert server.persons[PERSON_A]["label"] == "Alice"
    await wait_for(
        hass,
        lambda: getattr(device_registry.async_get(device.id), "name", None) == "Alice",
        "the device to take the new name",
    )


async def test_mark_known_by_id(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """The notification button path: person id from the event, no device needed."""
    await _call(hass, "mark_known", person_id=PERSON_A)
    await wait_for(
        hass,
        lambda: state(hass, "binary_sensor.visitor_3_known").state == "on",
        "the identity to show as known",
    )
    await _call(
        hass, "mark_known", person_id=PERSON_A, known=False, config_entry_id=loaded_entry.entry_id
    )
    assert server.persons[PERSON_A]["known"] is False


async def test_forget_person_removes_device(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    device_registry: dr.DeviceRegistry,
) -> None:
    coordinator = loaded_entry.runtime_data.coordinator
    response = await _call(hass, "forget_person", person_id=PERSON_A)
    assert response == {"forgotten": PERSON_A}
    await wait_for(
        hass,
        lambda: coordinator.device(coordinator.person_identifier(PERSON_A)) is None,
        "the device to go",
    )
    assert hass.states.get("sensor.visitor_3_location") is None


async def test_merge_persons(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """The second identity folds into the first and disappears."""
    server.persons[PERSON_B] = person_payload(PERSON_B, label="Visitor 4", visit_count=2)
    await server.publish_person(PERSON_B)
    coordinator = loaded_entry.runtime_data.coordinator
    await wait_for(hass, lambda: PERSON_B in coordinator.persons, "the second identity")
    response = await _call(hass, "merge_persons", person_id=PERSON_A, from_person_id=PERSON_B)
    assert response is not None and response["visit_count"] == 6
    await wait_for(hass, lambda: PERSON_B not in coordinator.persons, "the merged identity to go")
    await wait_for(
        hass, lambda: state(hass, "sensor.visitor_3_visits").state == "6", "the sum of visits"
    )


@pytest.mark.parametrize(
    ("person_id", "from_person_id", "unknown"),
    [(PERSON_A, "ffffffffffff", "ffffffffffff"), ("eeeeeeeeeeee", PERSON_A, "eeeeeeeeeeee")],
)
async def test_merge_unknown_person_is_named(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    person_id: str,
    from_person_id: str,
    unknown: str,
) -> None:
    """Merging with an identity the server does not know names that identity."""
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "merge_persons", person_id=person_id, from_person_id=from_person_id)
    assert err.value.translation_key == "unknown_person"
    assert err.value.translation_placeholders == {"person_id": unknown}
    assert PERSON_A in server.persons


async def test_rename_label_limits(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """The server's label rule (trimmed, 1-64 characters) is checked before calling it."""
    before = len(server.requests)
    for name in ("x" * 65, "   "):
        with pytest.raises(vol.Invalid):
            await _call(hass, "rename_person", person_id=PERSON_A, name=name)
    assert server.requests[before:] == []
    await _call(hass, "rename_person", person_id=PERSON_A, name="  " + "y" * 64 + " ")
    assert server.persons[PERSON_A]["label"] == "y" * 64


async def test_reset_gallery(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """Reset by camera forgets only identities seen on that camera alone."""
    server.persons[PERSON_B] = person_payload(PERSON_B, label="Visitor 4", cameras=["back"])
    await server.publish_person(PERSON_B)
    coordinator = loaded_entry.runtime_data.coordinator
    await wait_for(hass, lambda: PERSON_B in coordinator.persons, "the second identity")
    assert await _call(hass, "reset_gallery", camera="back") == {"forgotten": 1}
    await wait_for(hass, lambda: PERSON_B not in coordinator.persons, "the identity to go")
    assert PERSON_A in coordinator.persons
    assert await _call(hass, "reset_gallery") == {"forgotten": 1}
    await wait_for(hass, lambda: not coordinator.persons, "everyone to be forgotten")


@pytest.mark.parametrize(
    ("service", "data", "key"),
    [
        ("forget_person", {}, "person_required"),
        ("forget_person", {"person_id": "Not An Id"}, "invalid_person_id"),
        ("forget_person", {"person_id": "ffffffffffff"}, "unknown_person"),
        ("forget_person", {"device_id": "nope"}, "not_a_person_device"),
        ("forget_person", {"person_id": PERSON_A, "config_entry_id": "nope"}, "unknown_entry"),
        ("merge_persons", {"person_id": PERSON_A, "from_person_id": PERSON_A}, "merge_self"),
        ("reset_gallery", {"camera": "Front Door"}, "invalid_camera"),
        (
            "identify",
            {"camera_entity_id": "camera.front", "camera": "Front Door"},
            "invalid_camera",
        ),
    ],
)
async def test_invalid_calls_explain_themselves(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    service: str,
    data: dict[str, str],
    key: str,
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, service, **data)
    assert err.value.translation_key == key


async def test_hub_device_is_not_a_person(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    hub = loaded_entry.runtime_data.coordinator.device(
        loaded_entry.runtime_data.coordinator.hub_identifier()
    )
    assert hub is not None
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "forget_person", device_id=hub.id)
    assert err.value.translation_key == "not_a_person_device"


async def test_server_errors_reach_the_user(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """A refusal carries the server's own message; a lost token says so."""
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "reset_gallery", camera="broken")
    assert err.value.translation_key == "server_error"
    assert err.value.translation_placeholders == {
        "message": "camera broken is not configured",
        "code": "bad_camera",
    }
    server.token = "rotated"
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "mark_known", person_id=PERSON_A)
    assert err.value.translation_key == "invalid_auth"
    await server.stop()
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "mark_known", person_id=PERSON_A)
    assert err.value.translation_key == "cannot_connect"


async def test_entry_choice(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """With two servers the call must say which; an unloaded one is refused."""
    other = MockConfigEntry(
        domain=DOMAIN, title="Garage", unique_id="0123456789ab", data=dict(loaded_entry.data)
    )
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "mark_known", person_id=PERSON_A, config_entry_id=other.entry_id)
    assert err.value.translation_key == "entry_not_loaded"

    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "mark_known", person_id=PERSON_A)
    assert err.value.translation_key == "no_entry"


async def test_two_loaded_entries_need_a_choice(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    second = FakeServer(hass)
    second.info["server_id"] = "0123456789ab"
    await second.start()
    try:
        other = entry_for(second, unique_id="0123456789ab", base_topic="garage")
        other.add_to_hass(hass)
        assert await hass.config_entries.async_setup(other.entry_id)
        with pytest.raises(ServiceValidationError) as err:
            await _call(hass, "mark_known", person_id=PERSON_A)
        assert err.value.translation_key == "several_entries"
        await _call(hass, "reset_gallery", config_entry_id=other.entry_id)
        assert ("POST", "/api/reset") in second.requests
        assert ("POST", "/api/reset") not in server.requests
    finally:
        await hass.config_entries.async_unload(other.entry_id)
        await second.stop()


@pytest.fixture
async def cameras(hass: HomeAssistant) -> bytes:
    photo = cuhk03_image(3, 5).read_bytes()
    await setup_still_cameras(hass, {"Front": photo, "Porch": photo, "Blank": b"not a picture"})
    return photo


async def test_identify_sends_the_cameras_picture_and_answers_who_it_is(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer, cameras: bytes
) -> None:
    server.persons[PERSON_B] = person_payload(PERSON_B, label="Visitor 4")
    answer = await _call(hass, "identify", camera_entity_id="camera.front", limit=1)
    assert answer == {
        "camera": "front",
        "ranking": "cosine",
        "results": [
            {
                "person_id": PERSON_A,
                "label": server.persons[PERSON_A]["label"],
                "known": server.persons[PERSON_A]["known"],
                "present": server.persons[PERSON_A]["present"],
                "similarity": 0.6,
                "score": 0.5,
                "match": "matched",
            }
        ],
    }
    sent = server.searches[-1]
    assert sent["bytes"] == cameras and sent["camera"] == "front" and sent["limit"] == "1"
    # A camera the server does not know is searched without a camera; one can be named.
    await _call(hass, "identify", camera_entity_id="camera.porch")
    assert "camera" not in server.searches[-1] and server.searches[-1]["limit"] == "3"
    await _call(hass, "identify", camera_entity_id="camera.porch", camera="back")
    assert server.searches[-1]["camera"] == "back"


async def test_identify_failures_say_what_went_wrong(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer, cameras: bytes
) -> None:
    with pytest.raises(HomeAssistantError) as missing:
        await _call(hass, "identify", camera_entity_id="camera.gone")
    assert missing.value.translation_key == "camera_image_failed"
    assert missing.value.translation_placeholders["entity_id"] == "camera.gone"
    with pytest.raises(HomeAssistantError) as nobody:
        await _call(hass, "identify", camera_entity_id="camera.blank")
    assert nobody.value.translation_key == "server_error"
    assert nobody.value.translation_placeholders == {
        "message": "no person found in the picture",
        "code": "no_person",
    }
    with pytest.raises(vol.Invalid):
        await _call(hass, "identify", camera_entity_id="sensor.front")
