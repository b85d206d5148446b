"""Zones and lines in Home Assistant: the server's zone events over a real broker become
`smart_reid.zone_event` on the camera's device, and device triggers for each zone and line the
camera lists fire real automations."""

from __future__ import annotations

import json
from typing import Any

import pytest
import voluptuous as vol
from homeassistant.components.device_automation import (
    DeviceAutomationType,
    async_get_device_automations,
)
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smart_reid.const import DOMAIN, EVENT_ZONE
from custom_components.smart_reid.coordinator import SmartReidCoordinator
from custom_components.smart_reid.device_trigger import (
    LINE_TRIGGERS,
    TRIGGER_SCHEMA,
    ZONE_TRIGGERS,
)
from custom_components.smart_reid.models import PayloadError, ZoneEvent

from .conftest import BASE, PERSON_A, REPO, camera_payload, publish, wait_for

VISIT = "9c8b7a6d5e4f"
COMPONENT = REPO / "custom_components" / "smart_reid"


def zone_payload(type_: str = "enter", **overrides: Any) -> dict[str, Any]:
    """A zone event as docs/contract.md shows it."""
    payload: dict[str, Any] = {
        "type": type_,
        "camera": "back",
        "kind": "line" if type_ == "cross" else "zone",
        "name": "gate" if type_ == "cross" else "back_door",
        "direction": "in" if type_ == "cross" else None,
        "reason": "left" if type_ == "exit" else None,
        "dwell_s": 42.0 if type_ == "exit" else None,
        "person_id": PERSON_A,
        "label": "Visitor 3",
        "known": False,
        "visit_id": VISIT,
        "timestamp": 1763740100.4,
        "point": [0.61, 0.93],
    }
    payload.update(overrides)
    return payload


async def _with_zones(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    """The back camera's state lists its zones and lines; its device id."""
    coordinator: SmartReidCoordinator = entry.runtime_data.coordinator
    await publish(
        hass,
        f"{BASE}/camera/back/state",
        camera_payload("back", zones=["back_door", "lawn"], lines=["gate"]),
        retain=True,
    )
    await wait_for(
        hass,
        lambda: (state := coordinator.cameras.get("back")) is not None and bool(state.zones),
        "the camera state with zones",
    )
    device = coordinator.device(coordinator.camera_identifier("back"))
    assert device is not None
    return device.id


def test_zone_events_are_parsed_strictly() -> None:
    enter = ZoneEvent.from_json(zone_payload())
    assert (enter.type, enter.kind, enter.name, enter.direction) == (
        "enter",
        "zone",
        "back_door",
        None,
    )
    assert enter.point == (0.61, 0.93) and enter.label == "Visitor 3"
    cross = ZoneEvent.from_json(zone_payload("cross", extra_key_from_a_newer_server=1))
    assert (cross.kind, cross.name, cross.direction) == ("line", "gate", "in")
    assert ZoneEvent.from_json(zone_payload(label=None)).label == PERSON_A
    bad = [
        (zone_payload(type="jump"), "type"),
        (zone_payload("cross", direction=None), "a cross needs kind line and direction"),
        (zone_payload("cross", direction="sideways"), "direction"),
        (zone_payload(direction="in"), "an enter needs kind zone and no direction"),
        (zone_payload(name="Back Door"), "must be a zone or line name"),
        (zone_payload(person_id="BAD ID"), "person_id"),
        (zone_payload(point=[0.5, 1.5]), "point"),
        (zone_payload("exit", dwell_s=-1), "dwell_s"),
        ({k: v for k, v in zone_payload().items() if k != "visit_id"}, "visit_id"),
    ]
    for payload, message in bad:
        with pytest.raises(PayloadError, match=message):
            ZoneEvent.from_json(payload)


async def test_zone_events_reach_the_bus_on_the_cameras_device(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    back = await _with_zones(hass, loaded_entry)
    coordinator: SmartReidCoordinator = loaded_entry.runtime_data.coordinator
    person = coordinator.device(coordinator.person_identifier(PERSON_A))
    assert person is not None
    fired = async_capture_events(hass, EVENT_ZONE)
    await publish(hass, f"{BASE}/events/zone", zone_payload())
    await publish(hass, f"{BASE}/events/zone", zone_payload(type="teleport"))
    await publish(hass, f"{BASE}/events/zone", zone_payload("exit"))
    await publish(hass, f"{BASE}/events/zone", zone_payload("cross", direction="out"))
    await wait_for(hass, lambda: len(fired) == 3, "three zone events")
    enter, leave, cross = (e.data for e in fired)
    assert enter["device_id"] == back and enter["person_device_id"] == person.id
    assert enter["config_entry_id"] == loaded_entry.entry_id
    assert {k: enter[k] for k in ("type", "camera", "kind", "name", "visit_id", "label")} == {
        "type": "enter",
        "camera": "back",
        "kind": "zone",
        "name": "back_door",
        "visit_id": VISIT,
        "label": "Visitor 3",
    }
    assert (leave["type"], leave["reason"], leave["dwell_s"]) == ("exit", "left", 42.0)
    assert (cross["kind"], cross["name"], cross["direction"]) == ("line", "gate", "out")
    assert "smart_reid/events/zone" in caplog.text and "zone event: type" in caplog.text


async def test_each_zone_and_line_of_the_camera_is_offered_as_triggers(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    back = await _with_zones(hass, loaded_entry)
    coordinator: SmartReidCoordinator = loaded_entry.runtime_data.coordinator
    front = coordinator.device(coordinator.camera_identifier("front"))
    assert front is not None
    found = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, [back, front.id])
    offered = sorted(
        (t["type"], t["subtype"]) for t in found[back] if t["domain"] == DOMAIN and "subtype" in t
    )
    assert offered == [
        ("line_crossed", "gate"),
        ("line_crossed_in", "gate"),
        ("line_crossed_out", "gate"),
        ("zone_entered", "back_door"),
        ("zone_entered", "lawn"),
        ("zone_left", "back_door"),
        ("zone_left", "lawn"),
    ]
    # The front camera has no zones: only the triggers every camera has.
    assert not [t for t in found[front.id] if "subtype" in t]
    with pytest.raises(vol.Invalid, match="zone_entered needs a subtype"):
        TRIGGER_SCHEMA(
            {"platform": "device", "domain": DOMAIN, "device_id": back, "type": "zone_entered"}
        )


async def test_zone_and_line_triggers_fire_automations(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    back = await _with_zones(hass, loaded_entry)
    fired = async_capture_events(hass, "smart_reid_test_fired")

    def automation(kind: str, subtype: str) -> dict[str, Any]:
        return {
            "trigger": {
                "platform": "device",
                "domain": DOMAIN,
                "device_id": back,
                "type": kind,
                "subtype": subtype,
            },
            "action": {
                "event": "smart_reid_test_fired",
                "event_data": {
                    "what": f"{kind} {subtype}",
                    "who": "{{ trigger.event.data.label }}",
                },
            },
        }

    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                automation("zone_entered", "back_door"),
                automation("zone_left", "lawn"),
                automation("line_crossed_in", "gate"),
                automation("line_crossed", "gate"),
            ]
        },
    )
    await publish(hass, f"{BASE}/events/zone", zone_payload())  # enters back_door
    await publish(hass, f"{BASE}/events/zone", zone_payload(name="lawn"))  # nobody listens
    await publish(hass, f"{BASE}/events/zone", zone_payload("exit", name="back_door"))
    await publish(hass, f"{BASE}/events/zone", zone_payload("exit", name="lawn", label="Bob"))
    await publish(hass, f"{BASE}/events/zone", zone_payload("cross", direction="out"))
    await publish(hass, f"{BASE}/events/zone", zone_payload("cross", direction="in"))
    await publish(hass, f"{BASE}/events/zone", zone_payload(camera="front"))  # another camera
    await wait_for(hass, lambda: len(fired) == 5, "five automations to run")
    await hass.async_block_till_done()
    assert sorted((e.data["what"], e.data["who"]) for e in fired) == [
        ("line_crossed gate", "Visitor 3"),
        ("line_crossed gate", "Visitor 3"),
        ("line_crossed_in gate", "Visitor 3"),
        ("zone_entered back_door", "Visitor 3"),
        ("zone_left lawn", "Bob"),
    ]


@pytest.mark.parametrize("language", ["strings", "en", "de"])
def test_zone_and_line_triggers_are_translated_with_their_name(language: str) -> None:
    path = COMPONENT / (
        "strings.json" if language == "strings" else f"translations/{language}.json"
    )
    texts = json.loads(path.read_text(encoding="utf-8"))["device_automation"]["trigger_type"]
    for kind in (*ZONE_TRIGGERS, *LINE_TRIGGERS):
        assert "{subtype}" in texts[kind], (language, kind)
