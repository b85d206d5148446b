"""Diagnostics tell what the integration sees, without tokens or addresses."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from .conftest import BASE, PERSON_A, TOKEN, info_payload, publish, risk_payload, wait_for


async def test_diagnostics(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    text = str(diagnostics)
    assert TOKEN not in text
    assert "127.0.0.1" not in text
    assert diagnostics["entry"]["data"]["token"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["url"] == "**REDACTED**"
    assert diagnostics["connection"] == {
        "mqtt_connected": True,
        "status": "online",
        "http_ok": True,
        "available": True,
    }
    assert diagnostics["info"]["reid"]["name"] == "person-reidentification-retail-0277"
    assert diagnostics["hub"]["visits_today"] == 7
    assert diagnostics["cameras"]["front"]["people_present"] == 1
    person = diagnostics["persons"][PERSON_A]
    assert person["label"] == "Visitor 3"
    assert person["thumbnail_url"] == "**REDACTED**"
    assert diagnostics["forwarding"] == []
    assert diagnostics["risk"] == {
        "home_level": "none",
        "levels": {"front": "none", "back": "none"},
        "visits_going_on": [],
        "last_assessment": None,
    }


async def test_diagnostics_show_the_risk_state(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """Levels per camera and the last assessment, with the LLM's narrative left out."""
    await publish(
        hass,
        f"{BASE}/events/risk_assessed",
        risk_payload("high", 70, source="llm", summary="Alice's brother tried the back door."),
    )
    await wait_for(
        hass,
        lambda: loaded_entry.runtime_data.coordinator.last_risk is not None,
        "the assessment",
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    risk = diagnostics["risk"]
    assert risk["home_level"] == "high"
    assert risk["levels"] == {"front": "high", "back": "high"}
    last = risk["last_assessment"]
    assert last["level"] == "high" and last["source"] == "llm"
    assert last["time"] == "2025-11-21T02:27:00+00:00"
    assert last["summary"] == "**REDACTED**"
    assert risk["visits_going_on"] == [last]
    assert "brother" not in str(diagnostics)


async def test_diagnostics_show_a_scaled_out_server(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """A matcher's info names its workers, their cameras and lag: diagnostics carry them (the
    entities are the same as for one process); a single-process server has no cluster block."""
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    assert diagnostics["info"]["cluster"] is None
    worker = {
        "worker_id": "gpu1-41",
        "host": "gpu1",
        "cameras": ["front"],
        "lag": {"front": 3},
        "dropped": 5,
    }
    cluster = {"role": "matcher", "broker": "redis", "broker_ok": True, "workers": [worker]}
    await publish(hass, f"{BASE}/info", info_payload(cluster=cluster))
    coordinator = loaded_entry.runtime_data.coordinator
    await wait_for(
        hass, lambda: coordinator.info is not None and coordinator.info.cluster, "the cluster info"
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    shown = diagnostics["info"]["cluster"]
    assert shown["role"] == "matcher"
    assert shown["workers"][0]["cameras"] == ["front"]
    assert shown["workers"][0]["lag"] == {"front": 3}
    assert shown["workers"][0]["dropped"] == 5
    assert hass.states.get("sensor.smart_reid_people_present") is not None
