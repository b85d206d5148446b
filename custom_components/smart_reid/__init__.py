"""Smart ReID: one alert per person per visit, across all cameras.

Set up and unload a config entry; everything else lives in the modules named after what they
do (coordinator, forwarder, services, views, one file per platform).
"""

from __future__ import annotations

from homeassistant.components import mqtt
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .api import SmartReidApi, SmartReidAuthError, SmartReidError
from .const import CONF_FORWARD, CONF_TOKEN, CONF_URL, DOMAIN
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator, SmartReidRuntimeData
from .digest import async_setup_digest
from .forwarder import CameraForwarder
from .frontend import async_register_cards
from .services import async_setup_services
from .views import SmartReidImageView
from .websocket_api import async_setup as async_setup_websocket_api

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.CALENDAR,
    Platform.EVENT,
    Platform.IMAGE,
    Platform.SENSOR,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions and the picture view once, for all servers."""
    async_setup_services(hass)
    hass.http.register_view(SmartReidImageView())
    async_setup_websocket_api(hass)
    await async_register_cards(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: SmartReidConfigEntry) -> bool:
    """Connect one server: check it, subscribe to its topics, start forwarding cameras.

    An unreachable HTTP API does not stop the set-up: the server is a separate program that
    may start after Home Assistant, its retained MQTT state still shows the last known values,
    and a repair issue explains the problem if it lasts.
    """
    if not await mqtt.async_wait_for_mqtt_client(hass):
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="mqtt_not_ready")
    api = SmartReidApi(
        async_get_clientsession(hass), entry.data[CONF_URL], entry.data.get(CONF_TOKEN)
    )
    coordinator = SmartReidCoordinator(hass, entry, api)
    http_error: str | None = None
    try:
        info = await api.info()
    except SmartReidAuthError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="invalid_auth",
            translation_placeholders={"name": entry.title},
        ) from err
    except SmartReidError as err:
        http_error = str(err)
    else:
        if info.server_id != entry.unique_id:
            raise ConfigEntryError(
                translation_domain=DOMAIN,
                translation_key="wrong_server",
                translation_placeholders={
                    "url": api.url,
                    "found": info.server_id,
                    "expected": str(entry.unique_id),
                },
            )
        coordinator.info = info

    # From here on every 401 (an action, a picture, a forwarded frame, the periodic check)
    # means the token changed while running: ask the user for the new one.
    api.on_auth_error = coordinator.async_auth_failed
    forwarder = CameraForwarder(hass, entry, api, list(entry.options.get(CONF_FORWARD, [])))
    entry.runtime_data = SmartReidRuntimeData(
        api=api, coordinator=coordinator, forwarder=forwarder, options=dict(entry.options)
    )
    coordinator.async_prepare()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(coordinator.async_stop)
    await coordinator.async_start()
    if http_error is not None:
        coordinator.async_set_http_state(False, http_error)
    entry.async_on_unload(forwarder.async_stop)
    forwarder.async_start()
    async_setup_digest(hass, entry)
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def _async_options_updated(hass: HomeAssistant, entry: SmartReidConfigEntry) -> None:
    """Forwarded cameras changed: start over with the new list.

    Listeners also hear about changes nobody needs to act on (MQTT discovery records which
    topic announced the server), so only a real change of the options reloads.
    """
    if entry.options != entry.runtime_data.options:
        await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: SmartReidConfigEntry) -> bool:
    """Unload the platforms; subscriptions, timers and forwarding stop with the entry."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: SmartReidConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete devices of identities and cameras the server no longer has, and
    of strangers (they come back when seen again). Household and named people are removed
    with the `forget_person` action instead."""
    coordinator = entry.runtime_data.coordinator
    person_id = coordinator.person_id_of(device)
    if person_id is not None and (person := coordinator.persons.get(person_id)) is not None:
        if not person.is_stranger:
            return False
        coordinator.async_person_device_removed(person)
        return True
    current = {coordinator.hub_identifier()}
    current |= {coordinator.camera_identifier(c) for c in coordinator.cameras}
    return not (device.identifiers & current)
