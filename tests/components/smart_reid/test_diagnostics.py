"""Diagnostics tell what the integration sees, without tokens or addresses."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from .conftest import PERSON_A, TOKEN


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
