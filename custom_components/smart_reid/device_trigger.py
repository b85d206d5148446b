"""Device triggers on camera devices: a visit started, someone was seen, a visit changed,
a visit's risk level reached a chosen level.

They are the UI's way to the bus events (`smart_reid.new_person` and friends): each event
carries the camera's device id, so a trigger is an event trigger matching that id (and, for
the known/unknown variants, the `known` flag). "Risk level at least X" listens to
`smart_reid.risk_assessed` itself: it fires once per visit, when the visit has been on the
camera and its level first reaches X (an assessment that only repeats or lowers the level
does not fire it again).
"""

from __future__ import annotations

from collections import OrderedDict
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
from homeassistant.core import CALLBACK_TYPE, Event, HassJob, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .const import (
    DOMAIN,
    EVENT_NEW_PERSON,
    EVENT_PERSON_SEEN,
    EVENT_RISK_ASSESSED,
    EVENT_VISIT_ENDED,
    EVENT_VISIT_UPDATED,
    SEEN_VISITS_MEMORY,
)
from .devices import owner_entry_ids
from .models import RISK_LEVELS

# trigger type -> (bus event, extra event data to match)
TRIGGERS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "new_person": (EVENT_NEW_PERSON, {}),
    "new_unknown_person": (EVENT_NEW_PERSON, {"known": False}),
    "new_known_person": (EVENT_NEW_PERSON, {"known": True}),
    "person_seen": (EVENT_PERSON_SEEN, {}),
    "visit_updated": (EVENT_VISIT_UPDATED, {}),
    "visit_ended": (EVENT_VISIT_ENDED, {}),
}

RISK_TRIGGER: Final = "risk_level_at_least"
CONF_LEVEL: Final = "level"


def _level_given(config: ConfigType) -> ConfigType:
    if config[CONF_TYPE] == RISK_TRIGGER and CONF_LEVEL not in config:
        raise vol.Invalid(f"{RISK_TRIGGER} needs a {CONF_LEVEL}: one of {', '.join(RISK_LEVELS)}")
    return config


TRIGGER_SCHEMA = vol.All(
    DEVICE_TRIGGER_BASE_SCHEMA.extend(
        {
            vol.Required(CONF_TYPE): vol.In([*TRIGGERS, RISK_TRIGGER]),
            vol.Optional(CONF_LEVEL): vol.In(RISK_LEVELS),
        }
    ),
    _level_given,
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
        for kind in (*TRIGGERS, RISK_TRIGGER)
    ]


async def async_get_trigger_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, vol.Schema]:
    """The risk trigger asks for the level; the others have nothing to choose."""
    if config[CONF_TYPE] != RISK_TRIGGER:
        return {}
    return {"extra_fields": vol.Schema({vol.Required(CONF_LEVEL): vol.In(RISK_LEVELS)})}


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Listen for the trigger's bus event on this camera device."""
    if config[CONF_TYPE] == RISK_TRIGGER:
        return _attach_risk_trigger(hass, config, action, trigger_info)
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


@callback
def _attach_risk_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    device_id: str = config[CONF_DEVICE_ID]
    level: str = config[CONF_LEVEL]
    wanted = RISK_LEVELS.index(level)
    fired: OrderedDict[str, None] = OrderedDict()
    job = HassJob(action, f"{DOMAIN} risk level trigger")
    trigger_data = trigger_info["trigger_data"]

    @callback
    def _handle(event: Event) -> None:
        data = event.data
        visit_id = str(data.get("visit_id"))
        if (
            device_id not in data.get("camera_device_ids", ())
            or data.get("level") not in RISK_LEVELS
            or RISK_LEVELS.index(data["level"]) < wanted
            or visit_id in fired
        ):
            return
        fired[visit_id] = None
        while len(fired) > SEEN_VISITS_MEMORY:
            fired.popitem(last=False)
        hass.async_run_hass_job(
            job,
            {
                "trigger": {
                    **trigger_data,
                    CONF_PLATFORM: "device",
                    CONF_DOMAIN: DOMAIN,
                    CONF_DEVICE_ID: device_id,
                    CONF_TYPE: RISK_TRIGGER,
                    CONF_LEVEL: level,
                    "event": event,
                    "description": f"risk level {data['level']} of visit {visit_id}",
                }
            },
            event.context,
        )

    return hass.bus.async_listen(EVENT_RISK_ASSESSED, _handle)
