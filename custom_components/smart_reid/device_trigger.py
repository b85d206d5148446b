"""Device triggers on camera devices: a visit started, someone was seen, a visit changed.

They are the UI's way to the bus events (`smart_reid.new_person` and friends): each event
carries the camera's device id, so a trigger is an event trigger matching that id (and, for
the known/unknown variants, the `known` flag).
"""

from __future__ import annotations

from typing import Any, Final

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.const import (
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_EVENT_DATA,
    CONF_PLATFORM,
    CONF_TYPE,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .const import (
    DOMAIN,
    EVENT_NEW_PERSON,
    EVENT_PERSON_SEEN,
    EVENT_VISIT_ENDED,
    EVENT_VISIT_UPDATED,
)
from .devices import owner_entry_ids

# trigger type -> (bus event, extra event data to match)
TRIGGERS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "new_person": (EVENT_NEW_PERSON, {}),
    "new_unknown_person": (EVENT_NEW_PERSON, {"known": False}),
    "new_known_person": (EVENT_NEW_PERSON, {"known": True}),
    "person_seen": (EVENT_PERSON_SEEN, {}),
    "visit_updated": (EVENT_VISIT_UPDATED, {}),
    "visit_ended": (EVENT_VISIT_ENDED, {}),
}

TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {vol.Required(CONF_TYPE): vol.In(list(TRIGGERS))}
)


def _is_camera_device(hass: HomeAssistant, device: dr.DeviceEntry | None) -> bool:
    if device is None:
        return False
    prefixes = tuple(
        f"{entry.unique_id}_camera_"
        for entry_id in owner_entry_ids(device)
        if (entry := hass.config_entries.async_get_entry(entry_id)) and entry.domain == DOMAIN
    )
    return any(
        domain == DOMAIN and identifier.startswith(prefixes)
        for domain, identifier in device.identifiers
    )


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, str]]:
    """Camera devices offer all triggers; the server and identities offer none."""
    if not _is_camera_device(hass, dr.async_get(hass).async_get(device_id)):
        return []
    return [
        {CONF_PLATFORM: "device", CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id, CONF_TYPE: kind}
        for kind in TRIGGERS
    ]


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Listen for the trigger's bus event on this camera device."""
    event_type, match = TRIGGERS[config[CONF_TYPE]]
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: event_type,
            CONF_EVENT_DATA: {CONF_DEVICE_ID: config[CONF_DEVICE_ID], **match},
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
