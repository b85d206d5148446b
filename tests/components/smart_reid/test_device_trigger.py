"""Device triggers on camera devices, used by a real automation."""

from __future__ import annotations

from homeassistant.components.device_automation import (
    DeviceAutomationType,
    async_get_device_automations,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smart_reid.const import DOMAIN
from custom_components.smart_reid.coordinator import SmartReidCoordinator

from .conftest import BASE, PERSON_A, decision_payload, publish, visit_event_payload, wait_for


def _device(entry: MockConfigEntry, registry: dr.DeviceRegistry, camera: str) -> dr.DeviceEntry:
    coordinator: SmartReidCoordinator = entry.runtime_data.coordinator
    device = coordinator.device(coordinator.camera_identifier(camera))
    assert device is not None
    return device


async def test_triggers_listed_for_cameras_only(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    front = _device(loaded_entry, device_registry, "front")
    coordinator = loaded_entry.runtime_data.coordinator
    person = coordinator.device(coordinator.person_identifier(PERSON_A))
    hub = coordinator.device(coordinator.hub_identifier())
    assert person is not None and hub is not None
    found = await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, [front.id, person.id, hub.id]
    )
    ours = {
        device_id: sorted(t["type"] for t in triggers if t["domain"] == DOMAIN)
        for device_id, triggers in found.items()
    }
    assert ours[front.id] == [
        "new_known_person",
        "new_person",
        "new_unknown_person",
        "person_seen",
        "visit_ended",
        "visit_updated",
    ]
    assert ours[person.id] == []
    assert ours[hub.id] == []


async def test_automation_on_unknown_person_at_front(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """Fires for an unknown person's visit at the front door, not for others."""
    front = _device(loaded_entry, device_registry, "front")
    back = _device(loaded_entry, device_registry, "back")
    fired = async_capture_events(hass, "smart_reid_test_fired")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "trigger": {
                        "platform": "device",
                        "domain": DOMAIN,
                        "device_id": front.id,
                        "type": "new_unknown_person",
                    },
                    "action": {
                        "event": "smart_reid_test_fired",
                        "event_data": {"who": "{{ trigger.event.data.label }}"},
                    },
                },
                {
                    "trigger": {
                        "platform": "device",
                        "domain": DOMAIN,
                        "device_id": back.id,
                        "type": "visit_updated",
                    },
                    "action": {
                        "event": "smart_reid_test_fired",
                        "event_data": {"who": "visit moved to the back"},
                    },
                },
            ]
        },
    )
    await publish(hass, f"{BASE}/events/new_person", decision_payload(known=True))
    await publish(
        hass, f"{BASE}/events/new_person", decision_payload(camera="back", visit_id="aaaa0000bbbb")
    )
    await publish(
        hass,
        f"{BASE}/events/new_person",
        decision_payload(visit_id="cccc0000dddd", label="Stranger"),
    )
    await publish(hass, f"{BASE}/events/visit_updated", visit_event_payload("camera_added"))
    await wait_for(hass, lambda: len(fired) == 2, "both automations")
    assert sorted(e.data["who"] for e in fired) == ["Stranger", "visit moved to the back"]


async def test_a_person_was_seen_trigger_gets_sightings(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """Sightings are fired only for listeners: an automation with the device trigger is one,
    with the option off, and hears the sightings at its camera."""
    front = _device(loaded_entry, device_registry, "front")
    fired = async_capture_events(hass, "smart_reid_test_fired")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "trigger": {
                    "platform": "device",
                    "domain": DOMAIN,
                    "device_id": front.id,
                    "type": "person_seen",
                },
                "action": {
                    "event": "smart_reid_test_fired",
                    "event_data": {"who": "{{ trigger.event.data.label }}"},
                },
            }
        },
    )
    await publish(hass, f"{BASE}/events/sighting", decision_payload(new_person=False))
    await publish(
        hass, f"{BASE}/events/sighting", decision_payload(new_person=False, camera="back")
    )
    await wait_for(
        hass,
        lambda: "back" in loaded_entry.runtime_data.coordinator.last_decisions,
        "both sightings",
    )
    await wait_for(hass, lambda: len(fired) == 1, "the trigger")
    assert fired[0].data["who"] == "Visitor 3"
