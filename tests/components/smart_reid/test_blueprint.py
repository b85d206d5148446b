"""The notification blueprint: it loads, and it notifies once per visit as documented.

The phone is the one part that cannot run here: a notify action registered by the test stands
in for `notify.mobile_app_<phone>` and records what the companion app would receive. The events
come from real MQTT messages through the integration, and the buttons call the real services.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml_dict
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from .conftest import (
    BASE,
    PERSON_A,
    REPO,
    FakeServer,
    decision_payload,
    publish,
    state,
    visit_event_payload,
    wait_for,
)

BLUEPRINT = REPO / "blueprints" / "automation" / "smart_reid" / "notify_new_person.yaml"


def test_blueprint_is_valid() -> None:
    """Home Assistant's own blueprint schema accepts it."""
    blueprint = Blueprint(
        load_yaml_dict(str(BLUEPRINT)),
        path=str(BLUEPRINT),
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )
    assert blueprint.domain == "automation"
    assert set(blueprint.inputs) == {
        "notify_device",
        "notify_service",
        "unknown_only",
        "home_entity",
        "cameras",
        "update_in_place",
        "silence_helper",
        "silence_minutes",
    }


@pytest.fixture
async def phone(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, tmp_path: Path
) -> list[ServiceCall]:
    """The blueprint installed as an automation that notifies a stand-in phone."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / "smart_reid"
    target.mkdir(parents=True)
    shutil.copy(BLUEPRINT, target / BLUEPRINT.name)
    calls: list[ServiceCall] = async_mock_service(hass, "notify", "mobile_app_test_phone")
    assert await async_setup_component(
        hass,
        "input_datetime",
        {"input_datetime": {"silence": {"has_date": True, "has_time": True}}},
    )
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "smart_reid_notify",
                "use_blueprint": {
                    "path": "smart_reid/notify_new_person.yaml",
                    "input": {
                        "notify_service": "notify.mobile_app_test_phone",
                        "home_entity": "person.alice",
                        "silence_helper": "input_datetime.silence",
                        "silence_minutes": 30,
                    },
                },
            }
        },
    )
    hass.states.async_set("person.alice", "not_home")
    await hass.async_block_till_done()
    return calls


async def _new_visit(hass: HomeAssistant, **overrides: Any) -> None:
    await publish(hass, f"{BASE}/events/new_person", decision_payload(**overrides))


async def test_one_notification_per_visit_updated_in_place(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, phone: list[ServiceCall]
) -> None:
    await _new_visit(hass)
    await _new_visit(hass, camera="back")  # same visit on another camera: no second alert
    await wait_for(hass, lambda: len(phone) == 1, "the notification")
    data = phone[0].data
    assert data["title"] == "Visitor 3 (seen before) at front"
    assert data["message"] == "Visit started at front (match 81%)."
    assert data["data"]["tag"] == "9c8b7a6d5e4f"
    assert data["data"]["image"].startswith(f"/api/smart_reid/{loaded_entry.entry_id}/visits/")
    assert [b["title"] for b in data["data"]["actions"]] == ["Mark known", "Silence 30 min"]

    await publish(hass, f"{BASE}/events/visit_updated", visit_event_payload("camera_added"))
    await wait_for(hass, lambda: len(phone) == 2, "the update")
    update = phone[1].data
    assert update["data"]["tag"] == data["data"]["tag"]
    assert update["message"] == "Seen on front, back."


async def test_known_people_and_someone_home_stay_quiet(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, phone: list[ServiceCall]
) -> None:
    await _new_visit(hass, known=True, visit_id="000000000001")
    hass.states.async_set("person.alice", "home")
    await _new_visit(hass, visit_id="000000000002")
    hass.states.async_set("person.alice", "not_home")
    await _new_visit(hass, visit_id="000000000003", is_new_identity=True)
    await wait_for(hass, lambda: len(phone) == 1, "the one notification that should be sent")
    assert phone[0].data["data"]["tag"] == "000000000003"
    assert phone[0].data["title"] == "Someone new at front"


async def test_buttons(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    phone: list[ServiceCall],
) -> None:
    """Mark known calls the server; Silence stops notifications for the chosen time."""
    await _new_visit(hass)
    await wait_for(hass, lambda: len(phone) == 1, "the notification")
    known, silence = (b["action"] for b in phone[0].data["data"]["actions"])

    hass.bus.async_fire("mobile_app_notification_action", {"action": known})
    await wait_for(hass, lambda: server.persons[PERSON_A]["known"], "the person to be known")
    hass.bus.async_fire("mobile_app_notification_action", {"action": "someone_else:1:2"})

    hass.bus.async_fire("mobile_app_notification_action", {"action": silence})
    await wait_for(
        hass,
        lambda: state(hass, "input_datetime.silence").attributes.get("timestamp", 0) > 0,
        "the silence helper to be set",
    )
    await _new_visit(hass, visit_id="000000000009")
    await hass.async_block_till_done()
    await publish(hass, f"{BASE}/events/sighting", decision_payload(new_person=False))
    await wait_for(
        hass,
        lambda: loaded_entry.runtime_data.coordinator.last_decisions.get("front") is not None,
        "the later sighting",
    )
    assert len(phone) == 1


async def test_a_merged_duplicate_notification_is_withdrawn(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, phone: list[ServiceCall]
) -> None:
    """A second notification went out for someone the server later found to be the first
    visitor: the blueprint clears the duplicate's notification (by its visit's tag)."""
    await _new_visit(hass, visit_id="0a1b2c3d4e5f", person_id=PERSON_A)
    await wait_for(hass, lambda: len(phone) == 1, "the duplicate's notification")
    await publish(
        hass,
        f"{BASE}/events/merged",
        {
            "person_id": "3f9a1c2e7b10",
            "merged_person_id": PERSON_A,
            "visit_id": "9c8b7a6d5e4f",
            "merged_visit_id": "0a1b2c3d4e5f",
            "camera": "front",
            "similarity": 0.7,
        },
    )
    await wait_for(hass, lambda: len(phone) == 2, "the withdrawal")
    assert phone[1].data["message"] == "clear_notification"
    assert phone[1].data["data"] == {"tag": "0a1b2c3d4e5f"}
