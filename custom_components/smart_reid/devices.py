"""Device registry calls that work on every Home Assistant version we support (2025.4 on).

Home Assistant 2026 made devices belong to exactly one config entry: looking a device up by
identifier alone, `via_device` by identifier and `DeviceEntry.config_entries` are deprecated
there, while 2025.4 has only those. These helpers pick the right call once, so the rest of the
integration reads the same on both.
"""

from __future__ import annotations

import inspect
from typing import Any, cast

from homeassistant.helpers import device_registry as dr

_MISSING = object()
_HAS_VIA_DEVICE_ID = (
    "via_device_id" in inspect.signature(dr.DeviceRegistry.async_get_or_create).parameters
)


def find_device(
    registry: dr.DeviceRegistry, identifier: tuple[str, str], entry_id: str
) -> dr.DeviceEntry | None:
    """The device of this config entry with this identifier."""
    by_identifier = getattr(registry, "async_get_device_by_identifier", None)
    if by_identifier is not None:
        return cast(dr.DeviceEntry | None, by_identifier(identifier, entry_id))
    return registry.async_get_device(identifiers={identifier})


def owner_entry_ids(device: dr.DeviceEntry) -> set[str]:
    """The config entries a device belongs to (one, from Home Assistant 2026 on)."""
    entry_id = getattr(device, "config_entry_id", _MISSING)
    if entry_id is not _MISSING:
        return {cast(str, entry_id)} if entry_id else set()
    return set(device.config_entries)


def get_or_create_device(
    registry: dr.DeviceRegistry,
    entry_id: str,
    identifier: tuple[str, str],
    *,
    via: tuple[str, str] | None = None,
    **fields: Any,
) -> dr.DeviceEntry:
    """Create or update a device, linked below `via` (the server's device) if given."""
    if via is not None:
        if _HAS_VIA_DEVICE_ID:
            if (parent := find_device(registry, via, entry_id)) is not None:
                fields["via_device_id"] = parent.id
        else:
            fields["via_device"] = via
    return registry.async_get_or_create(
        config_entry_id=entry_id, identifiers={identifier}, **fields
    )
