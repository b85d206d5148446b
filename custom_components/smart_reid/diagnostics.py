"""Diagnostics: what the integration knows about its server, without secrets or addresses."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .const import CONF_TOKEN, CONF_URL, RISK_NONE
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator
from .models import RiskAssessment

# An LLM's narrative may name people and what they did: it is left out like the pictures.
TO_REDACT = {
    CONF_TOKEN,
    CONF_URL,
    "http_url",
    "snapshot_url",
    "thumbnail_url",
    "configuration_url",
    "summary",
}


def _assessment(risk: RiskAssessment) -> dict[str, Any]:
    return {
        "visit_id": risk.visit_id,
        "level": risk.level,
        "score": risk.score,
        "final": risk.final,
        "source": risk.source,
        "cameras": list(risk.cameras),
        "reasons": [reason.as_dict() for reason in risk.reasons],
        "time": (
            dt_util.utc_from_timestamp(risk.timestamp).isoformat()
            if risk.timestamp is not None
            else None
        ),
        "summary": risk.summary,
    }


def _risk_state(coordinator: SmartReidCoordinator) -> dict[str, Any]:
    """What the risk level sensors show and the assessments behind them."""

    def level(camera: str | None) -> str:
        risk = coordinator.current_risk(camera)
        return risk.level if risk is not None else RISK_NONE

    last = coordinator.last_risk
    return {
        "home_level": level(None),
        "levels": {camera: level(camera) for camera in coordinator.cameras},
        "visits_going_on": [_assessment(risk) for risk in coordinator.risks.values()],
        "last_assessment": _assessment(last) if last is not None else None,
    }


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
        "risk": _risk_state(coordinator),
    }
    return async_redact_data(data, TO_REDACT)
