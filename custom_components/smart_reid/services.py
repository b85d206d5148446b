"""Actions on the server's gallery: rename, mark known, merge, forget, reset, and identify (who
is in a camera's picture right now?).

Each one is a call of the server's HTTP API; the server then republishes the retained person
states over MQTT, and the entities follow from there. An identity can be named by its id (what
the bus events and the notification buttons carry) or by its device (what the UI offers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, cast

import voluptuous as vol
from homeassistant.components.camera import async_get_image
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util

from .api import SmartReidApiError, SmartReidAuthError, SmartReidError
from .const import (
    ATTR_CAMERA,
    ATTR_CAMERA_ENTITY_ID,
    ATTR_CONFIG_ENTRY_ID,
    ATTR_DEVICE_ID,
    ATTR_END,
    ATTR_FROM_DEVICE_ID,
    ATTR_FROM_PERSON_ID,
    ATTR_KNOWN,
    ATTR_LIMIT,
    ATTR_NAME,
    ATTR_PERSON_ID,
    ATTR_START,
    ATTR_USE_AI_TASK,
    CAMERA_NAME,
    DOMAIN,
    MAX_PERIOD,
)
from .coordinator import SmartReidConfigEntry
from .devices import owner_entry_ids
from .forwarder import camera_slug
from .models import ID_PATTERN
from .summary import async_summarize

SERVICE_RENAME_PERSON = "rename_person"
SERVICE_MARK_KNOWN = "mark_known"
SERVICE_MERGE_PERSONS = "merge_persons"
SERVICE_FORGET_PERSON = "forget_person"
SERVICE_RESET_GALLERY = "reset_gallery"
SERVICE_IDENTIFY = "identify"
SERVICE_SUMMARIZE = "summarize"

PERSON_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_PERSON_ID): cv.string,
        vol.Optional(ATTR_DEVICE_ID): cv.string,
    }
)
# The server trims a label and refuses an empty one or one over 64 characters; checking the
# same here names the field in the UI instead of relaying the server's refusal.
MAX_LABEL_LENGTH = 64
RENAME_SCHEMA = PERSON_SCHEMA.extend(
    {
        vol.Required(ATTR_NAME): vol.All(
            cv.string, vol.Strip, vol.Length(min=1, max=MAX_LABEL_LENGTH)
        )
    }
)
MARK_KNOWN_SCHEMA = PERSON_SCHEMA.extend({vol.Optional(ATTR_KNOWN, default=True): cv.boolean})
MERGE_SCHEMA = PERSON_SCHEMA.extend(
    {
        vol.Optional(ATTR_FROM_PERSON_ID): cv.string,
        vol.Optional(ATTR_FROM_DEVICE_ID): cv.string,
    }
)
RESET_SCHEMA = vol.Schema(
    {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string, vol.Optional(ATTR_CAMERA): cv.string}
)
IDENTIFY_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_CAMERA_ENTITY_ID): cv.entity_domain("camera"),
        vol.Optional(ATTR_CAMERA): cv.string,
        vol.Optional(ATTR_LIMIT, default=3): vol.All(vol.Coerce(int), vol.Range(min=1, max=50)),
    }
)

SUMMARIZE_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_START): cv.datetime,
        vol.Optional(ATTR_END): cv.datetime,
        vol.Optional(ATTR_USE_AI_TASK): cv.entity_domain("ai_task"),
    }
)


def _loaded_entries(hass: HomeAssistant) -> list[SmartReidConfigEntry]:
    return [
        entry
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
    ]


def _entry(hass: HomeAssistant, entry_id: str | None) -> SmartReidConfigEntry:
    """The entry named in the call, or the only loaded one."""
    if entry_id:
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_entry",
                translation_placeholders={"entry_id": entry_id},
            )
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"name": entry.title},
            )
        return entry
    entries = _loaded_entries(hass)
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_entry")
    if len(entries) > 1:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="several_entries")
    return entries[0]


def _person(
    hass: HomeAssistant,
    call: ServiceCall,
    id_field: str = ATTR_PERSON_ID,
    device_field: str = ATTR_DEVICE_ID,
) -> tuple[SmartReidConfigEntry, str]:
    """Resolve an identity named by id (plus entry) or by its device."""
    if device_id := call.data.get(device_field):
        device = dr.async_get(hass).async_get(device_id)
        if device is not None:
            owners = owner_entry_ids(device)
            for entry in _loaded_entries(hass):
                if entry.entry_id not in owners:
                    continue
                prefix = f"{entry.runtime_data.coordinator.server_id}_person_"
                for domain, identifier in device.identifiers:
                    if domain == DOMAIN and identifier.startswith(prefix):
                        return entry, identifier[len(prefix) :]
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_a_person_device",
            translation_placeholders={"device_id": str(device_id)},
        )
    person_id = call.data.get(id_field)
    if not person_id:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="person_required",
            translation_placeholders={"id_field": id_field, "device_field": device_field},
        )
    if not ID_PATTERN.match(person_id):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_person_id",
            translation_placeholders={"person_id": person_id},
        )
    return _entry(hass, call.data.get(ATTR_CONFIG_ENTRY_ID)), person_id


async def _call_server(
    entry: SmartReidConfigEntry,
    action: Callable[[], Awaitable[dict[str, Any]]],
    *person_ids: str,
) -> ServiceResponse:
    """Run one API call and turn its failure into a message the user can act on.

    A 404 means one of `person_ids` is unknown; the server's message names which one.
    """
    try:
        return await action()
    except SmartReidAuthError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="invalid_auth",
            translation_placeholders={"name": entry.title},
        ) from err
    except SmartReidApiError as err:
        if err.status == 404 and person_ids:
            unknown = next((p for p in person_ids if p in err.message), " / ".join(person_ids))
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_person",
                translation_placeholders={"person_id": unknown},
            ) from err
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="server_error",
            translation_placeholders={"message": err.message, "code": err.code},
        ) from err
    except SmartReidError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"name": entry.title, "error": str(err)},
        ) from err


async def _rename_person(call: ServiceCall) -> ServiceResponse:
    entry, person_id = _person(call.hass, call)
    api = entry.runtime_data.api
    return await _call_server(
        entry, lambda: api.update_person(person_id, label=call.data[ATTR_NAME]), person_id
    )


async def _mark_known(call: ServiceCall) -> ServiceResponse:
    entry, person_id = _person(call.hass, call)
    api = entry.runtime_data.api
    return await _call_server(
        entry, lambda: api.update_person(person_id, known=call.data[ATTR_KNOWN]), person_id
    )


async def _merge_persons(call: ServiceCall) -> ServiceResponse:
    entry, person_id = _person(call.hass, call)
    from_entry, from_person_id = _person(call.hass, call, ATTR_FROM_PERSON_ID, ATTR_FROM_DEVICE_ID)
    if from_entry.entry_id != entry.entry_id:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="merge_across")
    if from_person_id == person_id:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="merge_self")
    api = entry.runtime_data.api
    return await _call_server(
        entry, lambda: api.merge_persons(person_id, from_person_id), person_id, from_person_id
    )


async def _forget_person(call: ServiceCall) -> ServiceResponse:
    entry, person_id = _person(call.hass, call)
    api = entry.runtime_data.api
    return await _call_server(entry, lambda: api.forget_person(person_id), person_id)


def _server_camera(call: ServiceCall) -> str | None:
    """The call's optional server camera name, checked against the contract's pattern."""
    camera: str | None = call.data.get(ATTR_CAMERA)
    if camera is not None and not CAMERA_NAME.match(camera):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_camera",
            translation_placeholders={"camera": camera},
        )
    return camera


async def _reset_gallery(call: ServiceCall) -> ServiceResponse:
    entry = _entry(call.hass, call.data.get(ATTR_CONFIG_ENTRY_ID))
    camera = _server_camera(call)
    api = entry.runtime_data.api
    return await _call_server(entry, lambda: api.reset(camera))


async def _identify(call: ServiceCall) -> ServiceResponse:
    """Send the camera's current picture to the server's search and answer who is in it."""
    entry = _entry(call.hass, call.data.get(ATTR_CONFIG_ENTRY_ID))
    entity_id: str = call.data[ATTR_CAMERA_ENTITY_ID]
    camera = _server_camera(call)
    if camera is None:
        # A camera the server knows under the entity's name (as the forwarder sends it) is
        # matched in that camera's space; any other picture is searched without one.
        slug = camera_slug(entity_id)
        known = (
            entry.runtime_data.coordinator.info.cameras
            if entry.runtime_data.coordinator.info
            else []
        )
        camera = slug if slug in known else None
    try:
        image = await async_get_image(call.hass, entity_id)
    except HomeAssistantError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="camera_image_failed",
            translation_placeholders={"entity_id": entity_id, "error": str(err)},
        ) from err
    api = entry.runtime_data.api
    found = cast(
        dict[str, Any],
        await _call_server(
            entry,
            lambda: api.search(image.content, image.content_type, camera, call.data[ATTR_LIMIT]),
        ),
    )
    fields = ("person_id", "label", "known", "present", "similarity", "score", "match")
    return {
        "camera": found.get("camera"),
        "ranking": found.get("ranking"),
        "results": [{k: hit.get(k) for k in fields} for hit in found.get("results", [])],
    }


def _period(call: ServiceCall) -> tuple[datetime, datetime]:
    """The call's period; by default today since midnight until now (Home Assistant's time
    zone). A time without a zone is in Home Assistant's time zone."""
    now = dt_util.now()
    start = dt_util.as_utc(call.data.get(ATTR_START) or dt_util.start_of_local_day())
    end = dt_util.as_utc(call.data.get(ATTR_END) or now)
    if end <= start:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="summary_period",
            translation_placeholders={
                "start": dt_util.as_local(start).isoformat(),
                "end": dt_util.as_local(end).isoformat(),
            },
        )
    if end - start > MAX_PERIOD:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="summary_period_too_long",
            translation_placeholders={"days": str(MAX_PERIOD.days)},
        )
    return start, end


async def _summarize(call: ServiceCall) -> ServiceResponse:
    """What happened between start and end: title, summary, level, counts and highlights."""
    entry = _entry(call.hass, call.data.get(ATTR_CONFIG_ENTRY_ID))
    start, end = _period(call)
    try:
        return await _call_server(
            entry,
            lambda: async_summarize(call.hass, entry, start, end, call.data.get(ATTR_USE_AI_TASK)),
        )
    except HomeAssistantError as err:
        cause = err.__cause__
        if isinstance(cause, SmartReidApiError) and cause.status == 404:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="summary_unsupported",
                translation_placeholders={"name": entry.title},
            ) from cause
        raise


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions once for all entries (they pick the entry per call)."""
    services: dict[
        str, tuple[Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]], vol.Schema]
    ] = {
        SERVICE_RENAME_PERSON: (_rename_person, RENAME_SCHEMA),
        SERVICE_MARK_KNOWN: (_mark_known, MARK_KNOWN_SCHEMA),
        SERVICE_MERGE_PERSONS: (_merge_persons, MERGE_SCHEMA),
        SERVICE_FORGET_PERSON: (_forget_person, PERSON_SCHEMA),
        SERVICE_RESET_GALLERY: (_reset_gallery, RESET_SCHEMA),
    }
    for name, (handler, schema) in services.items():
        hass.services.async_register(
            DOMAIN, name, handler, schema=schema, supports_response=SupportsResponse.OPTIONAL
        )
    for name, handler, schema in (
        (SERVICE_IDENTIFY, _identify, IDENTIFY_SCHEMA),
        (SERVICE_SUMMARIZE, _summarize, SUMMARIZE_SCHEMA),
    ):
        hass.services.async_register(
            DOMAIN, name, handler, schema=schema, supports_response=SupportsResponse.ONLY
        )
