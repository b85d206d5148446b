"""The Supervisor discovery message the Home Assistant App sends (contract with the integration).

Kept free of other imports on purpose: the integration's tests load this file by path to feed
``async_step_hassio`` exactly what the App sends (docs/integration.md "Add-on discovery").
"""

from __future__ import annotations

from typing import Any

SERVICE = "smart_reid"  # the integration's domain, listed under `discovery` in config.yaml


def discovery_config(
    host: str, port: int, base_topic: str = "smart_reid", token: str | None = None
) -> dict[str, Any]:
    """``config`` of the discovery message: where Home Assistant reaches the App's server."""
    config: dict[str, Any] = {"host": host, "port": int(port), "base_topic": base_topic}
    if token:
        config["token"] = token
    return config


def discovery_message(
    host: str, port: int, base_topic: str = "smart_reid", token: str | None = None
) -> dict[str, Any]:
    """The body of ``POST http://supervisor/discovery``."""
    return {"service": SERVICE, "config": discovery_config(host, port, base_topic, token)}
