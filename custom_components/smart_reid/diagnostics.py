"""Diagnostics: what the integration knows about its server, without secrets or addresses."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import CONF_TOKEN, CONF_URL
from .coordinator import SmartReidConfigEntry

TO_REDACT = {CONF_TOKEN, CONF_URL, "http_url", "snapshot_url", "thumbnail_url", "configuration_url"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: SmartReidConfigEntry
) -> dict[str, Any]:
    """Entry settings, server info, live state and forwarding, redacted."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    data: dict[str, Any] = {
        "entry": {"data": dict(entry.data), "options": dict(entry.options)},
        "connection": {
            "mqtt_connected": coordinator.mqtt_connected,
            "status": coordinator.status,
            "http_ok": coordinator.http_ok,
            "available": coordinator.available,
        },
        "info": asdict(coordinator.info) if coordinator.info else None,
        "hub": asdict(coordinator.hub) if coordinator.hub else None,
        "cameras": {
            name: asdict(state) if state else None for name, state in coordinator.cameras.items()
        },
        "persons": {pid: asdict(person) for pid, person in coordinator.persons.items()},
        "last_sightings": {
            camera: asdict(decision) for camera, decision in coordinator.last_decisions.items()
        },
        "forwarding": runtime.forwarder.diagnostics(),
    }
    return async_redact_data(data, TO_REDACT)
