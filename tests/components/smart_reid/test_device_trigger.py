"""Device triggers on camera devices, used by a real automation."""

from __future__ import annotations

import pytest
import voluptuous as vol
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
from custom_components.smart_reid.device_trigger import (
    RISK_TRIGGER,
    TRIGGER_SCHEMA,
    async_get_trigger_capabilities,
)

from .conftest import (
    BASE,
    PERSON_A,
    decision_payload,
    publish,
    risk_payload,
    visit_event_payload,
    wait_for,
)


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
        "risk_level_at_least",
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


async def test_risk_level_at_least_fires_once_per_visit_on_its_camera(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """ "Risk level at least high" on the back camera: fires when a visit that reached the back
    first rises to high, not again for the same visit, not for visits elsewhere or lower."""
    back = _device(loaded_entry, device_registry, "back")
    config = {"platform": "device", "domain": DOMAIN, "device_id": back.id, "type": RISK_TRIGGER}
    # The automation editor asks for the level, from the four of the contract.
    fields = (await async_get_trigger_capabilities(hass, config))["extra_fields"]
    assert fields({"level": "high"}) == {"level": "high"}
    with pytest.raises(vol.Invalid):
        fields({"level": "none"})
    assert await async_get_trigger_capabilities(hass, {**config, "type": "new_person"}) == {}
    fired = async_capture_events(hass, "smart_reid_test_fired")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "trigger": {
                    "platform": "device",
                    "domain": DOMAIN,
                    "device_id": back.id,
                    "type": RISK_TRIGGER,
                    "level": "high",
                },
                "action": {
                    "event": "smart_reid_test_fired",
                    "event_data": {
                        "level": "{{ trigger.event.data.level }}",
                        "visit": "{{ trigger.event.data.visit_id }}",
                    },
                },
            }
        },
    )
    topic = f"{BASE}/events/risk_assessed"
    await publish(hass, topic, risk_payload("medium", 40))
    await publish(hass, topic, risk_payload("critical", 95))
    await publish(hass, topic, risk_payload("high", 70))
    await publish(hass, topic, risk_payload("critical", 95, final=True))
    # Critical, but only ever on the front camera.
    await publish(hass, topic, risk_payload(visit_id="aaaa0000bbbb", facts={"cameras": ["front"]}))
    # A second visit at the back, high: fires on its own.
    await publish(hass, topic, risk_payload("high", 60, visit_id="cccc0000dddd"))
    await wait_for(hass, lambda: len(fired) == 2, "both visits at the back")
    await hass.async_block_till_done()
    assert [(e.data["visit"], e.data["level"]) for e in fired] == [
        ("9c8b7a6d5e4f", "critical"),
        ("cccc0000dddd", "high"),
    ]


async def test_risk_trigger_needs_a_level(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    back = _device(loaded_entry, device_registry, "back")
    config = {"platform": "device", "domain": DOMAIN, "device_id": back.id, "type": RISK_TRIGGER}
    with pytest.raises(vol.Invalid, match="needs a level"):
        TRIGGER_SCHEMA(config)
    assert TRIGGER_SCHEMA({**config, "level": "medium"})["level"] == "medium"
    with pytest.raises(vol.Invalid):
        TRIGGER_SCHEMA({**config, "level": "extreme"})
