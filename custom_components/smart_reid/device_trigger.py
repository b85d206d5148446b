"""Device triggers on camera devices: a visit started, someone was seen, a visit changed,
a visit's risk level reached a chosen level, someone entered or left one of the camera's zones
or crossed one of its lines.

They are the UI's way to the bus events (`smart_reid.new_person` and friends): each event
carries the camera's device id, so a trigger is an event trigger matching that id (and, for
the known/unknown variants, the `known` flag). "Risk level at least X" listens to
`smart_reid.risk_assessed` itself: it fires once per visit, when the visit has been on the
camera and its level first reaches X (an assessment that only repeats or lowers the level
does not fire it again). The zone and line triggers are offered once per zone or line the
server lists in the camera's state (the `subtype` is its name) and match
`smart_reid.zone_event` on the camera's device.
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
    EVENT_ZONE,
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
CONF_SUBTYPE: Final = "subtype"  # the zone's or line's name (Home Assistant's usual key)
# trigger type -> zone event data to match (besides the zone or line name, the `subtype`)
ZONE_TRIGGERS: Final[dict[str, dict[str, Any]]] = {
    "zone_entered": {"type": "enter"},
    "zone_left": {"type": "exit"},
}
LINE_TRIGGERS: Final[dict[str, dict[str, Any]]] = {
    "line_crossed_in": {"type": "cross", "direction": "in"},
    "line_crossed_out": {"type": "cross", "direction": "out"},
    "line_crossed": {"type": "cross"},
}
_NAME = r"^[a-z0-9_]{1,64}$"


def _level_given(config: ConfigType) -> ConfigType:
    if config[CONF_TYPE] == RISK_TRIGGER and CONF_LEVEL not in config:
        raise vol.Invalid(f"{RISK_TRIGGER} needs a {CONF_LEVEL}: one of {', '.join(RISK_LEVELS)}")
    if config[CONF_TYPE] in (*ZONE_TRIGGERS, *LINE_TRIGGERS) and CONF_SUBTYPE not in config:
        what = "zone" if config[CONF_TYPE] in ZONE_TRIGGERS else "line"
        raise vol.Invalid(
            f"{config[CONF_TYPE]} needs a {CONF_SUBTYPE}: the name of the camera's {what}"
        )
    return config


TRIGGER_SCHEMA = vol.All(
    DEVICE_TRIGGER_BASE_SCHEMA.extend(
        {
            vol.Required(CONF_TYPE): vol.In(
                [*TRIGGERS, RISK_TRIGGER, *ZONE_TRIGGERS, *LINE_TRIGGERS]
            ),
            vol.Optional(CONF_LEVEL): vol.In(RISK_LEVELS),
            vol.Optional(CONF_SUBTYPE): vol.Match(_NAME, msg="must be a zone or line name"),
        }
    ),
    _level_given,
)


def _camera_of(
    hass: HomeAssistant, device: dr.DeviceEntry | None
) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    """(camera name, its zones, its lines) of one of our camera devices; None for others.
    The zones and lines are those of the camera's latest state (none before it arrived)."""
    if device is None:
        return None
    for entry_id in owner_entry_ids(device):
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            continue
        prefix = f"{entry.unique_id}_camera_"
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier.startswith(prefix):
                camera = identifier[len(prefix) :]
                runtime = getattr(entry, "runtime_data", None)
                cameras = runtime.coordinator.cameras if runtime is not None else {}
                state = cameras.get(camera)
                return (camera, state.zones, state.lines) if state else (camera, (), ())
    return None


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, str]]:
    """Camera devices offer all triggers, the zone and line ones for each of their zones and
    lines; the server and identities offer none."""
    found = _camera_of(hass, dr.async_get(hass).async_get(device_id))
    if found is None:
        return []
    _camera, zones, lines = found
    base = {CONF_PLATFORM: "device", CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id}
    triggers = [{**base, CONF_TYPE: kind} for kind in (*TRIGGERS, RISK_TRIGGER)]
    triggers += [
        {**base, CONF_TYPE: kind, CONF_SUBTYPE: zone} for zone in zones for kind in ZONE_TRIGGERS
    ]
    triggers += [
        {**base, CONF_TYPE: kind, CONF_SUBTYPE: line} for line in lines for kind in LINE_TRIGGERS
    ]
    return triggers


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
    kind = config[CONF_TYPE]
    if kind in ZONE_TRIGGERS or kind in LINE_TRIGGERS:
        event_type = EVENT_ZONE
        match = {
            **ZONE_TRIGGERS.get(kind, LINE_TRIGGERS.get(kind, {})),
            "name": config[CONF_SUBTYPE],
        }
    else:
        event_type, match = TRIGGERS[kind]
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
