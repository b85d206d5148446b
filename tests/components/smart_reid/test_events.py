"""Bus events and the camera event entities, from real messages on the broker."""

from __future__ import annotations

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import MATCH_ALL
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smart_reid.const import (
    CONF_FORWARD,
    CONF_SIGHTING_EVENTS,
    EVENT_NEW_PERSON,
    EVENT_PERSON_MERGED,
    EVENT_PERSON_SEEN,
    EVENT_VISIT_ENDED,
    EVENT_VISIT_UPDATED,
)

from .conftest import (
    BASE,
    PERSON_A,
    PERSON_B,
    decision_payload,
    person_payload,
    publish,
    state,
    visit_event_payload,
    wait_for,
)


async def test_new_person_fires_once_per_visit(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """A repeated announcement of the same visit (QoS 1 may redeliver) fires once."""
    events = async_capture_events(hass, EVENT_NEW_PERSON)
    await publish(hass, f"{BASE}/events/new_person", decision_payload())
    await publish(hass, f"{BASE}/events/new_person", decision_payload(camera="back"))
    await publish(
        hass, f"{BASE}/events/new_person", decision_payload(visit_id="0000aaaa1111", extra={})
    )
    await wait_for(hass, lambda: len(events) == 2, "two visits")
    first, second = events
    coordinator = loaded_entry.runtime_data.coordinator
    front = coordinator.device(coordinator.camera_identifier("front"))
    person = coordinator.device(coordinator.person_identifier(PERSON_A))
    assert front is not None and person is not None
    assert first.data["visit_id"] == "9c8b7a6d5e4f"
    assert first.data["camera"] == "front"
    assert first.data["device_id"] == front.id
    assert first.data["person_device_id"] == person.id
    assert first.data["person_id"] == PERSON_A
    assert first.data["label"] == "Visitor 3"
    assert first.data["known"] is False
    assert first.data["is_new_identity"] is False
    assert first.data["returning"] is True
    assert first.data["similarity"] == pytest.approx(0.81)
    assert first.data["frigate_event_id"] == "1763740099.123-abc"
    entry_id = loaded_entry.entry_id
    assert first.data["snapshot_url"].startswith(
        f"/api/smart_reid/{entry_id}/visits/9c8b7a6d5e4f/snapshot.jpg?authSig="
    )
    assert first.data["thumbnail_url"].startswith(
        f"/api/smart_reid/{entry_id}/persons/{PERSON_A}/thumbnail.jpg?authSig="
    )
    assert second.data["visit_id"] == "0000aaaa1111"
    assert "frigate_event_id" not in second.data


async def test_camera_event_entity(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """The camera where the visit started shows who it was; the other camera stays quiet."""
    await publish(hass, f"{BASE}/events/new_person", decision_payload(is_new_identity=True))
    await wait_for(
        hass,
        lambda: (
            state(hass, "event.front_visit_started").attributes.get("event_type") == "new_person"
        ),
        "the front event entity",
    )
    front = state(hass, "event.front_visit_started")
    assert front.attributes["person_id"] == PERSON_A
    assert front.attributes["visit_id"] == "9c8b7a6d5e4f"
    assert state(hass, "event.back_visit_started").attributes["event_type"] is None

    await publish(
        hass,
        f"{BASE}/events/new_person",
        decision_payload(camera="back", visit_id="1111bbbb2222", known=True),
    )
    await wait_for(
        hass,
        lambda: (
            state(hass, "event.back_visit_started").attributes.get("event_type") == "known_person"
        ),
        "the back event entity",
    )
    await publish(
        hass,
        f"{BASE}/events/new_person",
        decision_payload(camera="back", visit_id="2222cccc3333"),
    )
    await wait_for(
        hass,
        lambda: (
            state(hass, "event.back_visit_started").attributes.get("event_type")
            == "returning_person"
        ),
        "a returning person",
    )


async def test_sightings_and_visit_events(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Every sighting is a person_seen; visit changes and ends are their own events."""
    seen = async_capture_events(hass, EVENT_PERSON_SEEN)
    updated = async_capture_events(hass, EVENT_VISIT_UPDATED)
    ended = async_capture_events(hass, EVENT_VISIT_ENDED)
    await publish(hass, f"{BASE}/events/sighting", decision_payload(new_person=False))
    await publish(hass, f"{BASE}/events/sighting", decision_payload(new_person=False))
    await publish(hass, f"{BASE}/events/visit_updated", visit_event_payload("camera_added"))
    await publish(hass, f"{BASE}/events/visit_ended", visit_event_payload("ended"))
    await wait_for(hass, lambda: len(seen) == 2 and updated and ended, "all events")
    update: Event = updated[0]
    assert update.data["reason"] == "camera_added"
    assert update.data["camera"] == "back"
    assert update.data["cameras"] == ["front", "back"]
    assert update.data["visit_id"] == "9c8b7a6d5e4f"
    assert update.data["snapshot_url"].startswith(f"/api/smart_reid/{loaded_entry.entry_id}/")
    assert ended[0].data["ended_at"] == 1763740160.0
    assert ended[0].data["reason"] == "ended"


async def test_sightings_are_fired_only_when_wanted(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """person_seen (one per person per frame) is not fired for nobody: a listener of every
    event (the recorder, Node-RED) gets it only with the option on, a listener of it always."""
    everything: list[Event] = []
    hass.bus.async_listen(MATCH_ALL, everything.append)

    async def sighting(at: float) -> None:
        # A changed option reloads the entry: wait for the new one to listen.
        await wait_for(hass, lambda: loaded_entry.runtime_data.coordinator.available, "online")
        await publish(
            hass, f"{BASE}/events/sighting", decision_payload(new_person=False, timestamp=at)
        )
        await wait_for(
            hass,
            lambda: (
                (last := loaded_entry.runtime_data.coordinator.last_decisions.get("front"))
                is not None
                and last.timestamp == at
            ),
            f"the sighting at {at}",
        )

    def fired() -> list[str]:
        return [e.data["person_id"] for e in everything if e.event_type == EVENT_PERSON_SEEN]

    await sighting(1763740100.0 + 1)
    assert fired() == []

    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, CONF_SIGHTING_EVENTS: True}
    )
    await hass.async_block_till_done()
    await sighting(1763740100.0 + 2)
    assert fired() == [PERSON_A]

    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, CONF_SIGHTING_EVENTS: False}
    )
    await hass.async_block_till_done()
    stop = hass.bus.async_listen(EVENT_PERSON_SEEN, lambda event: None)
    await sighting(1763740100.0 + 3)
    assert fired() == [PERSON_A, PERSON_A]
    stop()
    await sighting(1763740100.0 + 4)
    assert len(fired()) == 2


async def test_bad_messages_are_logged_and_ignored(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage on a topic is named in one warning; the integration keeps working."""
    events = async_capture_events(hass, EVENT_NEW_PERSON)
    await publish(hass, f"{BASE}/events/new_person", "{not json")
    await publish(hass, f"{BASE}/events/new_person", "{not json either")
    await publish(hass, f"{BASE}/events/new_person", decision_payload(person_id="BAD ID"))
    await publish(hass, f"{BASE}/events/visit_updated", {"reason": "camera_added"})
    await publish(hass, f"{BASE}/state", {"people_present": "many"}, retain=True)
    await publish(hass, f"{BASE}/camera/front/state", [1, 2], retain=True)
    await publish(hass, f"{BASE}/person/{PERSON_A}/state", {"label": "x"}, retain=True)
    await publish(hass, f"{BASE}/info", {"contract": 1}, retain=True)
    await publish(hass, f"{BASE}/person/{PERSON_B}/state", person_payload(PERSON_A), retain=True)
    await publish(hass, f"{BASE}/events/unknown_kind", "{}")
    await publish(hass, f"{BASE}/events/new_person", decision_payload())
    await wait_for(hass, lambda: len(events) == 1, "the good message after the bad ones")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    ours = [w for w in warnings if "does not follow the Smart ReID contract" in w]
    assert any("smart_reid/events/new_person" in w and "not valid JSON" in w for w in ours)
    assert any("visit: required key not provided" in w for w in ours)
    assert any("people_present" in w for w in ours)
    assert any("does not match the topic" in w for w in ours)
    # The second bad JSON on the same topic is not repeated as a warning.
    assert sum("events/new_person" in w for w in ours) == 1
    assert state(hass, "sensor.smart_reid_people_present").state == "2"
    assert state(hass, "sensor.visitor_3_location").state == "front"


async def test_info_from_another_server_is_ignored(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Two servers on one base topic would mix identities: warn and keep the first."""
    from .conftest import info_payload

    await publish(hass, f"{BASE}/info", info_payload(server_id="0123456789ab"), retain=True)
    await wait_for(
        hass,
        lambda: "give each server its own base topic" in caplog.text,
        "the warning about a second server",
    )
    assert loaded_entry.runtime_data.coordinator.info.server_id == "3f9a1c2e7b10"


async def test_first_time_visitor_event_before_its_state(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """The contract promises no order across topics: an event that beats the person's retained
    state still names the person's device, and the state then fills in that same device."""
    new = async_capture_events(hass, EVENT_NEW_PERSON)
    seen = async_capture_events(hass, EVENT_PERSON_SEEN)
    updated = async_capture_events(hass, EVENT_VISIT_UPDATED)
    first_visit = decision_payload(
        person_id=PERSON_B,
        label="Visitor 9",
        is_new_identity=True,
        match="new",
        visit_id="5555eeee6666",
        thumbnail_url=f"/api/persons/{PERSON_B}/thumbnail.jpg",
    )
    await publish(hass, f"{BASE}/events/new_person", first_visit)
    await publish(hass, f"{BASE}/events/sighting", {**first_visit, "new_person": False})
    await publish(
        hass,
        f"{BASE}/events/visit_updated",
        visit_event_payload(
            "camera_added", person_id=PERSON_B, label="Visitor 9", visit_id="5555eeee6666"
        ),
    )
    await wait_for(hass, lambda: bool(new and seen and updated), "the three events")
    coordinator = loaded_entry.runtime_data.coordinator
    device = coordinator.device(coordinator.person_identifier(PERSON_B))
    assert device is not None
    assert device.name == "Visitor 9"
    assert device.serial_number == PERSON_B
    assert new[0].data["person_device_id"] == device.id
    assert new[0].data["is_new_identity"] is True
    assert seen[0].data["person_device_id"] == device.id
    assert updated[0].data["person_device_id"] == device.id
    assert hass.states.get("sensor.visitor_9_location") is None

    await publish(
        hass,
        f"{BASE}/person/{PERSON_B}/state",
        person_payload(PERSON_B, label="Visitor 9", visit_id="5555eeee6666"),
        retain=True,
    )
    await wait_for(
        hass, lambda: hass.states.get("sensor.visitor_9_location") is not None, "its entities"
    )
    assert state(hass, "sensor.visitor_9_location").state == "front"
    devices = [
        d
        for d in dr.async_entries_for_config_entry(device_registry, loaded_entry.entry_id)
        if d.serial_number == PERSON_B
    ]
    assert [d.id for d in devices] == [device.id]


async def test_late_event_of_a_forgotten_person_brings_no_device_back(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """An event still in flight when the identity was forgotten must not recreate its device."""
    coordinator = loaded_entry.runtime_data.coordinator
    ended = async_capture_events(hass, EVENT_VISIT_ENDED)
    await publish(hass, f"{BASE}/person/{PERSON_A}/state", "", retain=True)
    await wait_for(
        hass,
        lambda: coordinator.device(coordinator.person_identifier(PERSON_A)) is None,
        "the forgotten identity's device to go",
    )
    await publish(hass, f"{BASE}/events/visit_ended", visit_event_payload("ended"))
    await wait_for(hass, lambda: bool(ended), "the late visit_ended event")
    assert ended[0].data["person_id"] == PERSON_A
    assert ended[0].data["person_device_id"] is None
    assert coordinator.device(coordinator.person_identifier(PERSON_A)) is None


async def test_automatic_merge_fires_person_merged_and_removes_the_duplicate(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The server found Visitor B to be Visitor A (same visit): automations hear of it, with
    the duplicate's visit id to withdraw its notification, and B's device goes."""
    merged = async_capture_events(hass, EVENT_PERSON_MERGED)
    await publish(hass, f"{BASE}/person/{PERSON_A}/state", person_payload(PERSON_A), retain=True)
    await publish(
        hass,
        f"{BASE}/person/{PERSON_B}/state",
        person_payload(PERSON_B, label="Visitor 4"),
        retain=True,
    )
    coordinator = loaded_entry.runtime_data.coordinator
    duplicate = coordinator.person_identifier(PERSON_B)
    await wait_for(hass, lambda: coordinator.device(duplicate) is not None, "B's device")
    # What the server sends on a merge: the duplicate's cleared state, then the event.
    await publish(hass, f"{BASE}/person/{PERSON_B}/state", "", retain=True)
    await publish(
        hass,
        f"{BASE}/events/merged",
        {
            "person_id": PERSON_A,
            "merged_person_id": PERSON_B,
            "visit_id": "9c8b7a6d5e4f",
            "merged_visit_id": "0a1b2c3d4e5f",
            "similarity": 0.71,
            "camera": "front",
            "timestamp": 1763740100.0,
            "reason": "same_person",
            "label": "Visitor 3",
            "known": False,
        },
    )
    await wait_for(hass, lambda: len(merged) == 1, "smart_reid.person_merged")
    data = merged[0].data
    assert data["person_id"] == PERSON_A
    assert data["merged_person_id"] == PERSON_B
    assert data["merged_visit_id"] == "0a1b2c3d4e5f"
    assert data["label"] == "Visitor 3"
    assert data["person_device_id"] is not None
    await wait_for(hass, lambda: coordinator.device(duplicate) is None, "B's device to go")


async def test_a_broken_merged_event_is_logged_not_fired(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    merged = async_capture_events(hass, EVENT_PERSON_MERGED)
    await publish(hass, f"{BASE}/events/merged", {"person_id": PERSON_A})
    await wait_for(hass, lambda: "merged_person_id" in caplog.text, "the log line")
    assert merged == []


async def test_sighting_events_option_in_the_options_flow(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The option is on the first options page, off by default, and kept with the rest."""
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    defaults = {str(key): key.default() for key in schema.schema if callable(key.default)}
    assert defaults[CONF_SIGHTING_EVENTS] is False
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"cameras": [], CONF_SIGHTING_EVENTS: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options[CONF_SIGHTING_EVENTS] is True
    assert loaded_entry.options[CONF_FORWARD] == []
    await hass.async_block_till_done()  # the entry reloads with the new options
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.runtime_data.options[CONF_SIGHTING_EVENTS] is True

    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    defaults = {str(key): key.default() for key in schema.schema if callable(key.default)}
    assert defaults[CONF_SIGHTING_EVENTS] is True
