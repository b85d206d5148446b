"""Risk assessments (`B/events/risk_assessed`): the bus event and the risk level sensors,
from real messages on the test broker."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers.translation import async_get_translations
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smart_reid.const import DOMAIN, EVENT_RISK_ASSESSED

from .conftest import (
    BASE,
    PERSON_A,
    PERSON_B,
    decision_payload,
    publish,
    risk_payload,
    state,
    visit_event_payload,
    wait_for,
)

HOME = "sensor.smart_reid_risk_level"
FRONT = "sensor.front_risk_level"
BACK = "sensor.back_risk_level"
RISK_TOPIC = f"{BASE}/events/risk_assessed"
OTHER_VISIT = "0000aaaa1111"


def _level(hass: HomeAssistant, entity_id: str) -> str:
    return state(hass, entity_id).state


async def test_event_carries_the_assessment(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Every assessment is an event with the level, the reasons, the person's device and the
    visit's snapshot as a signed link."""
    events = async_capture_events(hass, EVENT_RISK_ASSESSED)
    await publish(hass, f"{BASE}/events/new_person", decision_payload())
    await publish(hass, RISK_TOPIC, risk_payload(summary="A stranger went round the back."))
    await publish(
        hass, RISK_TOPIC, risk_payload("low", 10, visit_id=OTHER_VISIT, person_id=PERSON_B)
    )
    await wait_for(hass, lambda: len(events) == 2, "two assessments")
    coordinator = loaded_entry.runtime_data.coordinator
    person = coordinator.device(coordinator.person_identifier(PERSON_A))
    front = coordinator.device(coordinator.camera_identifier("front"))
    back = coordinator.device(coordinator.camera_identifier("back"))
    assert person is not None and front is not None and back is not None
    data: dict[str, Any] = dict(events[0].data)
    snapshot = data.pop("snapshot_url")
    assert snapshot.startswith(
        f"/api/smart_reid/{loaded_entry.entry_id}/visits/9c8b7a6d5e4f/snapshot.jpg?authSig="
    )
    assert data == {
        "config_entry_id": loaded_entry.entry_id,
        "person_device_id": person.id,
        "visit_id": "9c8b7a6d5e4f",
        "person_id": PERSON_A,
        "label": "Visitor 3",
        "level": "critical",
        "previous_level": None,
        "known": False,
        "status": "returning_stranger",
        "score": 95,
        "reasons": [
            {"code": "identity", "text": "unknown person", "points": 20},
            {"code": "place", "text": "reached back (sensitivity 0.8)", "points": 40},
            {"code": "night", "text": "02:47 at night", "points": 30},
            {"code": "path", "text": "2 cameras: front -> back", "points": 5},
        ],
        "final": False,
        "source": "rules",
        "cameras": ["front", "back"],
        "camera_device_ids": [front.id, back.id],
        "timestamp": 1763692020.0,
        "summary": "A stranger went round the back.",
    }
    # A visit HA never saw announced has no picture to link; no summary, no key.
    other = events[1].data
    assert other["snapshot_url"] is None
    assert "summary" not in other
    assert other["level"] == "low"
    # A later assessment of the same visit names the level before it (for notifications that
    # should speak up only when the level changed).
    await publish(hass, RISK_TOPIC, risk_payload("high", 70, final=True))
    await wait_for(hass, lambda: len(events) == 3, "the final assessment")
    assert events[2].data["previous_level"] == "critical"


async def test_sensors_follow_the_worst_visit_and_fall_back(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The home and each camera show the most worrying visit going on; when it ends the
    level falls back to the next visit's, and to `none` when no visit is left."""
    for entity_id in (HOME, FRONT, BACK):
        assert _level(hass, entity_id) == "none"
        assert state(hass, entity_id).attributes["options"] == [
            "none",
            "low",
            "medium",
            "high",
            "critical",
        ]
    # A medium visit on the front camera only.
    await publish(
        hass,
        RISK_TOPIC,
        risk_payload(
            "medium",
            35,
            visit_id=OTHER_VISIT,
            person_id=PERSON_B,
            label="Courier",
            reasons=[{"code": "identity", "text": "unknown person", "points": 35}],
            facts={"cameras": ["front"]},
        ),
    )
    await wait_for(hass, lambda: _level(hass, HOME) == "medium", "the medium visit")
    assert _level(hass, FRONT) == "medium"
    assert _level(hass, BACK) == "none"
    # A critical one on front and back outranks it everywhere it was.
    await publish(hass, RISK_TOPIC, risk_payload())
    await wait_for(hass, lambda: _level(hass, BACK) == "critical", "the critical visit")
    assert _level(hass, HOME) == "critical"
    assert _level(hass, FRONT) == "critical"
    home = state(hass, HOME)
    assert home.attributes["score"] == 95
    assert home.attributes["visit_id"] == "9c8b7a6d5e4f"
    assert home.attributes["person_id"] == PERSON_A
    assert home.attributes["label"] == "Visitor 3"
    assert [r["text"] for r in home.attributes["reasons"]] == [
        "unknown person",
        "reached back (sensitivity 0.8)",
        "02:47 at night",
        "2 cameras: front -> back",
    ]
    # The explanation changes often; history keeps only the level.
    assert state_info_unrecorded(home) >= {"score", "reasons", "visit_id", "label"}

    # The critical visit ends: its final assessment is an event, not a sensor state.
    events = async_capture_events(hass, EVENT_RISK_ASSESSED)
    await publish(hass, f"{BASE}/events/visit_ended", visit_event_payload("ended"))
    await wait_for(hass, lambda: _level(hass, HOME) == "medium", "the fall back")
    assert _level(hass, FRONT) == "medium"
    assert _level(hass, BACK) == "none"
    assert state(hass, HOME).attributes["label"] == "Courier"
    await publish(hass, RISK_TOPIC, risk_payload(final=True))
    await wait_for(hass, lambda: len(events) == 1, "the final assessment's event")
    assert events[0].data["final"] is True
    assert _level(hass, HOME) == "medium"

    # The courier's visit gets its final assessment (its visit_ended may come later or be
    # missed): nothing is going on any more.
    await publish(
        hass,
        RISK_TOPIC,
        risk_payload(
            "medium",
            35,
            visit_id=OTHER_VISIT,
            person_id=PERSON_B,
            final=True,
            facts={"cameras": ["front"]},
        ),
    )
    await wait_for(hass, lambda: _level(hass, HOME) == "none", "no visit left")
    assert _level(hass, FRONT) == "none"
    assert "score" not in state(hass, HOME).attributes
    # A late interim assessment of an ended visit does not bring it back.
    await publish(hass, RISK_TOPIC, risk_payload())
    await wait_for(hass, lambda: len(events) == 3, "the late assessment's event")
    assert _level(hass, HOME) == "none"


def state_info_unrecorded(found: Any) -> set[str]:
    info = found.state_info
    assert info is not None
    return set(info["unrecorded_attributes"])


async def test_a_rising_level_replaces_the_earlier_one(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A later assessment of the same visit replaces the earlier, also when it is lower."""
    await publish(hass, RISK_TOPIC, risk_payload("low", 10))
    await wait_for(hass, lambda: _level(hass, BACK) == "low", "the first assessment")
    await publish(hass, RISK_TOPIC, risk_payload("high", 70))
    await wait_for(hass, lambda: _level(hass, BACK) == "high", "the rise")
    await publish(hass, RISK_TOPIC, risk_payload("medium", 40))
    await wait_for(hass, lambda: _level(hass, BACK) == "medium", "the replacement")
    assert state(hass, HOME).attributes["score"] == 40


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", {"none": "No visit", "low": "Low", "critical": "Critical"}),
        ("de", {"none": "Kein Besuch", "medium": "Mittel", "critical": "Kritisch"}),
    ],
)
async def test_levels_are_translated(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    language: str,
    expected: dict[str, str],
) -> None:
    """Home Assistant shows the level in the user's language, through the sensor's key."""
    entity = hass.data["entity_components"]["sensor"].get_entity(HOME)
    assert entity is not None and entity.translation_key == "risk_level"
    texts = await async_get_translations(hass, language, "entity", {DOMAIN})
    prefix = f"component.{DOMAIN}.entity.sensor.risk_level"
    for level, text in expected.items():
        assert texts[f"{prefix}.state.{level}"] == text
    assert texts[f"{prefix}.name"] == {"en": "Risk level", "de": "Risikostufe"}[language]


async def test_bad_assessments_are_logged_and_ignored(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """A level outside the contract, a score out of range or a missing key is named in a
    warning; nothing is fired and the sensors keep working."""
    events = async_capture_events(hass, EVENT_RISK_ASSESSED)
    await publish(hass, RISK_TOPIC, risk_payload("extreme"))
    await publish(hass, RISK_TOPIC, risk_payload(score=250))
    await publish(hass, RISK_TOPIC, {"visit_id": "9c8b7a6d5e4f", "level": "low", "score": 1})
    await publish(hass, RISK_TOPIC, risk_payload("high", 70))
    await wait_for(hass, lambda: len(events) == 1, "the good assessment after the bad ones")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    ours = [w for w in warnings if "events/risk_assessed" in w]
    assert len(ours) == 1
    assert "risk assessment: level" in ours[0]
    assert "does not follow the Smart ReID contract" in ours[0]
    assert "score" in caplog.text and "person_id" in caplog.text
    assert _level(hass, HOME) == "high"


async def test_levels_start_over_when_the_server_comes_back(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A visit whose end was never heard (the server went away) does not keep the home at
    its level: after the server is back, only visits assessed again count."""
    await publish(hass, RISK_TOPIC, risk_payload())
    await wait_for(hass, lambda: _level(hass, HOME) == "critical", "the assessment")
    await publish(hass, f"{BASE}/status", "offline", retain=True)
    await wait_for(hass, lambda: _level(hass, HOME) == "unavailable", "the server to go")
    await publish(hass, f"{BASE}/status", "online", retain=True)
    await wait_for(hass, lambda: _level(hass, HOME) == "none", "a fresh start")
    assert _level(hass, BACK) == "none"
    await publish(hass, RISK_TOPIC, risk_payload("low", 5, visit_id=OTHER_VISIT))
    await wait_for(hass, lambda: _level(hass, HOME) == "low", "a visit assessed again")
