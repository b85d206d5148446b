"""The notification blueprint: it loads, and it notifies once per visit as documented.

The phone is the one part that cannot run here: a notify action registered by the test stands
in for `notify.mobile_app_<phone>` and records what the companion app would receive, for a
device registered the way the companion app registers one. Person-detection sensors of other
integrations (Frigate's) are states the test sets. The events come from real MQTT messages
through the integration, the buttons call the real services, and saving goes through the
automation editor's own API.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.components.notify import NotifyEntity
from homeassistant.config_entries import ConfigEntry, ConfigFlow
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util.yaml import load_yaml_dict
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    async_capture_events,
    async_mock_service,
    mock_config_flow,
    mock_integration,
    mock_platform,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.smart_reid.const import CONF_STRANGER_HOURS

from .conftest import (
    BASE,
    PERSON_A,
    REPO,
    FakeServer,
    decision_payload,
    publish,
    risk_payload,
    state,
    visit_event_payload,
    wait_for,
)

BLUEPRINT = REPO / "blueprints" / "automation" / "smart_reid" / "notify_new_person.yaml"
BLUEPRINT_PATH = "smart_reid/notify_new_person.yaml"


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
        "notify_target",
        "unknown_only",
        "min_level",
        "home_entity",
        "cameras",
        "update_in_place",
        "silence_helper",
        "silence_minutes",
        "fallback_sensors",
        "fallback_cooldown",
        "server_entity",
    }
    # The one input without a default: Home Assistant will not save the automation without it.
    required = [name for name, spec in blueprint.inputs.items() if "default" not in (spec or {})]
    assert required == ["notify_target"]


def _install_blueprint(hass: HomeAssistant, tmp_path: Path) -> None:
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / "smart_reid"
    target.mkdir(parents=True)
    shutil.copy(BLUEPRINT, target / BLUEPRINT.name)


def _phone_device(hass: HomeAssistant) -> str:
    """A phone as the companion app registers it (its notify action is the test's)."""
    app = MockConfigEntry(domain="mobile_app", title="Test phone")
    app.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=app.entry_id,
        identifiers={("mobile_app", "test-phone-webhook")},
        manufacturer="Google",
        model="Pixel 8",
        name="Test phone",
    )
    return device.id


async def _automation(hass: HomeAssistant, **inputs: Any) -> None:
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "smart_reid_notify",
                "use_blueprint": {"path": BLUEPRINT_PATH, "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()


@pytest.fixture
async def phone(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, tmp_path: Path
) -> list[ServiceCall]:
    """The blueprint installed as an automation that notifies a stand-in phone."""
    _install_blueprint(hass, tmp_path)
    calls: list[ServiceCall] = async_mock_service(hass, "notify", "mobile_app_test_phone")
    assert await async_setup_component(
        hass,
        "input_datetime",
        {"input_datetime": {"silence": {"has_date": True, "has_time": True}}},
    )
    hass.states.async_set("person.alice", "not_home")
    await _automation(
        hass,
        notify_target={"device_id": _phone_device(hass)},
        home_entity="person.alice",
        silence_helper="input_datetime.silence",
        silence_minutes=30,
        fallback_sensors=[
            "binary_sensor.front_door_person_occupancy",
            "binary_sensor.garden_person_occupancy",
        ],
        fallback_cooldown=5,
    )
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
    # Tapping it opens the person's device page.
    coordinator = loaded_entry.runtime_data.coordinator
    device = coordinator.device(coordinator.person_identifier(PERSON_A))
    assert device is not None
    assert (
        data["data"]["url"] == data["data"]["clickAction"] == f"/config/devices/device/{device.id}"
    )

    await publish(hass, f"{BASE}/events/visit_updated", visit_event_payload("camera_added"))
    await wait_for(hass, lambda: len(phone) == 2, "the update")
    update = phone[1].data
    assert update["data"]["tag"] == data["data"]["tag"]
    assert update["message"] == "Seen on front, back."


async def test_a_stranger_without_a_device_links_to_the_snapshot(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, phone: list[ServiceCall]
) -> None:
    """With no devices for strangers (option 0 h) the alert still opens something useful: the
    visit's snapshot, not a device page that does not exist."""
    hass.config_entries.async_update_entry(loaded_entry, options={CONF_STRANGER_HOURS: 0})
    await hass.async_block_till_done()  # the entry reloads with the new option
    await wait_for(
        hass,
        lambda: loaded_entry.runtime_data.coordinator.available,
        "the reloaded entry to hear the server again",
    )
    await _new_visit(hass, is_new_identity=True)
    await wait_for(hass, lambda: len(phone) == 1, "the notification")
    data = phone[0].data["data"]
    assert "None" not in data["url"]
    assert data["url"] == data["clickAction"] == data["image"]
    assert data["image"].startswith(f"/api/smart_reid/{loaded_entry.entry_id}/visits/")


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


async def test_someone_new_recognised_later_updates_the_notification(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, phone: list[ServiceCall]
) -> None:
    """The server announced someone new, then recognised them as a person seen on an earlier
    visit (reason returning): the same notification is updated, quietly, to name them; the
    visit goes on. Had they been marked known, the notification is withdrawn instead."""
    await _new_visit(hass, is_new_identity=True)
    await wait_for(hass, lambda: len(phone) == 1, "the notification")
    assert phone[0].data["title"] == "Someone new at front"
    returning = {
        "person_id": "3f9a1c2e7b10",
        "merged_person_id": PERSON_A,
        "visit_id": "9c8b7a6d5e4f",
        "merged_visit_id": "9c8b7a6d5e4f",
        "camera": "front",
        "similarity": 0.62,
        "reason": "returning",
        "label": "Visitor 1",
        "known": False,
    }
    await publish(hass, f"{BASE}/events/merged", returning)
    await wait_for(hass, lambda: len(phone) == 2, "the update")
    update = phone[1].data
    assert update["title"] == "Visitor 1 (seen before) at front"
    assert update["message"] == "Recognised: seen on an earlier visit (match 62%)."
    assert update["data"]["tag"] == "9c8b7a6d5e4f"
    assert update["data"]["image"] == phone[0].data["data"]["image"], "the visit's picture"
    assert update["data"]["push"] == {"interruption-level": "passive"}
    # A household member recognised late: no notification for them.
    await publish(
        hass,
        f"{BASE}/events/merged",
        {**returning, "person_id": "0a0b0c0d0e0f", "label": "Alice", "known": True},
    )
    await wait_for(hass, lambda: len(phone) == 3, "the withdrawal")
    assert phone[2].data["message"] == "clear_notification"
    assert phone[2].data["data"] == {"tag": "9c8b7a6d5e4f"}


# --- where to send: required, and checked ----------------------------------------------------


async def test_saving_without_a_target_is_refused(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, tmp_path: Path
) -> None:
    """The automation editor's save is refused, naming the missing input, until a target is
    chosen (before, it saved and then failed at every visit)."""
    _install_blueprint(hass, tmp_path)
    assert await async_setup_component(hass, "automation", {})
    assert await async_setup_component(hass, "config", {})
    client = await hass_client()
    url = "/api/config/automation/config/smart_reid_notify"
    config: dict[str, Any] = {
        "alias": "Visitors",
        "use_blueprint": {"path": BLUEPRINT_PATH, "input": {"unknown_only": True}},
    }

    response = await client.post(url, json=config)
    assert response.status == HTTPStatus.BAD_REQUEST
    assert "Missing input notify_target" in (await response.json())["message"]

    config["use_blueprint"]["input"]["notify_target"] = {"device_id": _phone_device(hass)}
    response = await client.post(url, json=config)
    assert response.status == HTTPStatus.OK, await response.text()


async def test_a_target_with_nothing_to_notify_fails_clearly(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An area with no phone, notify entity or script in it: the run stops with an error that
    says what to change, instead of calling a notify action that does not exist."""
    _install_blueprint(hass, tmp_path)
    calls = async_mock_service(hass, "notify", "notify")
    await _automation(hass, notify_target={"area_id": "garage"})
    await _new_visit(hass)
    await wait_for(
        hass,
        lambda: "names no companion-app phone, notify entity or script" in caplog.text,
        "the error",
    )
    assert calls == []


async def test_an_area_reaches_the_phones_in_it(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """Choosing an area sends to the companion-app phones placed in it."""
    _install_blueprint(hass, tmp_path)
    calls = async_mock_service(hass, "notify", "mobile_app_test_phone")
    hall = ar.async_get(hass).async_create("Hall")
    dr.async_get(hass).async_update_device(_phone_device(hass), area_id=hall.id)
    await _automation(hass, notify_target={"area_id": hall.id})
    await _new_visit(hass)
    await wait_for(hass, lambda: len(calls) == 1, "the notification")
    assert calls[0].data["title"] == "Visitor 3 (seen before) at front"


class Display(NotifyEntity):
    """A notify entity (a kitchen display) that keeps what it was sent."""

    _attr_name = "Kitchen display"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []

    async def async_send_message(self, message: str, title: str | None = None) -> None:
        self.sent.append((message, title))


async def test_notify_entities_and_scripts(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """Besides phones: notify entities get title and message, scripts the full notification
    (for notify groups and other notify actions)."""
    _install_blueprint(hass, tmp_path)
    display = Display()

    async def setup_kitchen(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        await hass.config_entries.async_forward_entry_setups(entry, [Platform.NOTIFY])
        return True

    async def add_display(
        hass: HomeAssistant, entry: ConfigEntry, add: AddConfigEntryEntitiesCallback
    ) -> None:
        add([display])

    mock_integration(hass, MockModule("kitchen", async_setup_entry=setup_kitchen))
    mock_platform(hass, "kitchen.notify", MockPlatform(async_setup_entry=add_display))
    mock_platform(hass, "kitchen.config_flow")
    kitchen = MockConfigEntry(domain="kitchen")
    kitchen.add_to_hass(hass)
    with mock_config_flow("kitchen", ConfigFlow):
        assert await hass.config_entries.async_setup(kitchen.entry_id)
    family = async_mock_service(hass, "notify", "family")
    assert await async_setup_component(
        hass,
        "script",
        {
            "script": {
                "notify_family": {
                    "sequence": [
                        {
                            "action": "notify.family",
                            "data": {
                                "title": "{{ title }}",
                                "message": "{{ message }}",
                                "data": "{{ data }}",
                            },
                        }
                    ]
                }
            }
        },
    )
    await hass.async_block_till_done()
    await _automation(
        hass, notify_target={"entity_id": ["notify.kitchen_display", "script.notify_family"]}
    )
    await _new_visit(hass)
    await wait_for(hass, lambda: bool(display.sent) and bool(family), "both notifications")
    assert display.sent == [
        ("Visit started at front (match 81%).", "Visitor 3 (seen before) at front")
    ]
    assert family[0].data["title"] == "Visitor 3 (seen before) at front"
    assert family[0].data["data"]["tag"] == "9c8b7a6d5e4f"


# --- while the server is offline ---------------------------------------------------------------


async def test_fallback_sensors_alert_only_while_the_server_is_offline(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, phone: list[ServiceCall]
) -> None:
    """Someone at the door is announced by a person-detection sensor while the server is
    down: once per quiet time per sensor, saying that recognition is missing; household quiet
    still holds; and nothing from the sensors while the server runs."""
    front = "binary_sensor.front_door_person_occupancy"
    garden = "binary_sensor.garden_person_occupancy"
    named = {"friendly_name": "Front door person occupancy"}

    def clear(entity_id: str, since: timedelta, **attributes: Any) -> None:
        """The sensor has seen nobody for `since` (its state's last change is that old)."""
        at = (dt_util.utcnow() - since).timestamp()
        hass.states.async_set(entity_id, "off", attributes, timestamp=at)

    def detect(entity_id: str, **attributes: Any) -> None:
        hass.states.async_set(entity_id, "on", attributes)

    # Server up: the sensors are Smart ReID's job, not the fallback's.
    clear(front, timedelta(minutes=10), **named)
    detect(front, **named)
    await hass.async_block_till_done()
    assert phone == []

    await publish(hass, f"{BASE}/status", "offline", retain=True)
    await wait_for(
        hass, lambda: state(hass, "binary_sensor.smart_reid_server").state == "off", "offline"
    )
    clear(front, timedelta(minutes=10), **named)
    detect(front, **named)
    await wait_for(hass, lambda: len(phone) == 1, "the fallback alert")
    alert = phone[0].data
    assert alert["title"] == "Person detected: Front door person occupancy"
    assert "Smart ReID is offline" in alert["message"]
    assert "one alert per person is unavailable" in alert["message"]
    assert alert["data"]["tag"] == f"smart_reid_fallback_{front}"

    # The same sensor again soon after: quiet. Another camera's sensor: its own alert.
    clear(front, timedelta(minutes=2), **named)
    detect(front, **named)
    clear(garden, timedelta(hours=1))
    detect(garden)
    await wait_for(hass, lambda: len(phone) == 2, "the other camera's alert")
    assert phone[1].data["title"] == f"Person detected: {garden}"

    # Household quiet still applies.
    hass.states.async_set("person.alice", "home")
    clear(front, timedelta(minutes=6), **named)
    detect(front, **named)
    await hass.async_block_till_done()
    assert len(phone) == 2
    hass.states.async_set("person.alice", "not_home")
    clear(front, timedelta(minutes=6), **named)
    detect(front, **named)
    await wait_for(hass, lambda: len(phone) == 3, "an alert after the quiet time")

    # The server is back: one alert per visit again, from Smart ReID only.
    await publish(hass, f"{BASE}/status", "online", retain=True)
    await wait_for(
        hass, lambda: state(hass, "binary_sensor.smart_reid_server").state == "on", "online"
    )
    clear(garden, timedelta(hours=1))
    detect(garden)
    await _new_visit(hass, visit_id="0c0c0c0c0c0c")
    await wait_for(hass, lambda: len(phone) == 4, "the visit's notification")
    assert phone[3].data["data"]["tag"] == "0c0c0c0c0c0c"
    await hass.async_block_till_done()
    assert len(phone) == 4


# --- risk levels ------------------------------------------------------------------------------


async def _assess(hass: HomeAssistant, seen: list[Any], level: str, score: int, **kw: Any) -> None:
    """Publish an assessment and let every automation run it has started finish."""
    count = len(seen)
    await publish(hass, f"{BASE}/events/risk_assessed", risk_payload(level, score, **kw))
    await wait_for(hass, lambda: len(seen) == count + 1, f"the {level} assessment")
    await hass.async_block_till_done()


async def test_the_level_and_reasons_join_the_notification(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, phone: list[ServiceCall]
) -> None:
    """All visits (the default): the visit is announced at once; its first assessment adds
    level and reasons to the same notification quietly, repeats change nothing, a rising
    level speaks up, and the LLM's narrative is added quietly."""
    seen = async_capture_events(hass, "smart_reid.risk_assessed")
    await _new_visit(hass)
    await wait_for(hass, lambda: len(phone) == 1, "the notification")
    assert "alert_once" not in phone[0].data["data"]

    await _assess(hass, seen, "medium", 45)
    assert len(phone) == 2
    update = phone[1].data
    assert update["data"]["tag"] == "9c8b7a6d5e4f"
    assert update["title"] == "Visitor 3 (seen before) at back"
    assert update["message"] == (
        "Medium risk: unknown person, reached back (sensitivity 0.8), 02:47 at night, "
        "2 cameras: front -> back. Seen on front, back."
    )
    assert update["data"]["alert_once"] is True

    await _assess(hass, seen, "medium", 45)  # interim repeat
    assert len(phone) == 2
    await _assess(hass, seen, "critical", 95)  # rising: with sound
    assert len(phone) == 3
    assert phone[2].data["message"].startswith("Critical risk: ")
    assert "alert_once" not in phone[2].data["data"]

    await _assess(
        hass, seen, "critical", 95, source="llm", summary="A stranger went round the back."
    )
    assert len(phone) == 4
    assert phone[3].data["message"].endswith("Seen on front, back. A stranger went round the back.")
    assert phone[3].data["data"]["alert_once"] is True
    assert phone[3].data["data"]["tag"] == "9c8b7a6d5e4f"


async def test_only_at_or_above_a_level(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """Threshold high: a low visit stays quiet; when a later assessment of the same visit
    reaches high it is announced (with sound); the LLM's summary then updates that same
    notification; household members stay quiet however their visit is rated."""
    _install_blueprint(hass, tmp_path)
    calls = async_mock_service(hass, "notify", "mobile_app_test_phone")
    await _automation(hass, notify_target={"device_id": _phone_device(hass)}, min_level="high")
    seen = async_capture_events(hass, "smart_reid.risk_assessed")

    await _new_visit(hass)
    await _assess(hass, seen, "low", 20)
    await _assess(hass, seen, "low", 20)
    await publish(hass, f"{BASE}/events/visit_updated", visit_event_payload("camera_added"))
    await hass.async_block_till_done()
    assert calls == []

    await _assess(hass, seen, "high", 70)
    await wait_for(hass, lambda: len(calls) == 1, "the notification at high")
    alert = calls[0].data
    assert alert["data"]["tag"] == "9c8b7a6d5e4f"
    assert alert["message"].startswith("High risk: unknown person")
    assert "alert_once" not in alert["data"]
    assert alert["data"]["image"].startswith(f"/api/smart_reid/{loaded_entry.entry_id}/visits/")

    await _assess(hass, seen, "high", 70)  # interim repeat: nothing new
    assert len(calls) == 1
    await _assess(
        hass, seen, "high", 70, source="llm", summary="Someone tried the back door at night."
    )
    assert len(calls) == 2
    assert calls[1].data["data"]["tag"] == "9c8b7a6d5e4f"
    assert calls[1].data["message"].endswith("Someone tried the back door at night.")
    assert calls[1].data["data"]["alert_once"] is True

    household = {"status": "household", "cameras": ["front"]}
    await _assess(hass, seen, "critical", 95, visit_id="0e0e0e0e0e0e", facts=household)
    assert len(calls) == 2
