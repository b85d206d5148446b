"""Set up a Smart ReID server: by hand, from its retained MQTT info, or from the add-on.

Every path ends with the same check: the server's HTTP API must answer `/api/health` and
`/api/info` with the token given, and `/api/info` names the server (`server_id`), which is the
entry's unique id, so one server is never added twice under different URLs or topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
    TimeSelector,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo

from .api import (
    SmartReidApi,
    SmartReidApiError,
    SmartReidAuthError,
    SmartReidConnectionError,
    normalize_url,
)
from .const import (
    BASE_TOPIC,
    CAMERA_NAME,
    CONF_BASE_TOPIC,
    CONF_CAMERA_ENTITY,
    CONF_DIGEST_TIME,
    CONF_FORWARD,
    CONF_INTERVAL_S,
    CONF_SIGHTING_EVENTS,
    CONF_STRANGER_DEVICES,
    CONF_STRANGER_HOURS,
    CONF_TOKEN,
    CONF_TRIGGER_ENTITY,
    CONF_URL,
    DEFAULT_BASE_TOPIC,
    DEFAULT_INTERVAL_S,
    DEFAULT_PORT,
    DEFAULT_STRANGER_DEVICES,
    DEFAULT_STRANGER_HOURS,
    DOMAIN,
    LOGGER,
    MAX_INTERVAL_S,
    MAX_STRANGER_DEVICES,
    MAX_STRANGER_HOURS,
    MIN_INTERVAL_S,
    SUPPORTED_CONTRACT,
)
from .forwarder import camera_slug
from .models import Info, PayloadError, decode_json

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
CONF_CAMERAS = "cameras"

_URL_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
_TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def _title(info: Info, base_topic: str) -> str:
    return info.name if base_topic == DEFAULT_BASE_TOPIC else f"{info.name} ({base_topic})"


def _server_schema(defaults: Mapping[str, Any], *, with_topic: bool = True) -> vol.Schema:
    fields: dict[Any, Any] = {
        vol.Required(CONF_URL, default=defaults.get(CONF_URL, DEFAULT_URL)): _URL_SELECTOR,
    }
    if with_topic:
        fields[
            vol.Required(CONF_BASE_TOPIC, default=defaults.get(CONF_BASE_TOPIC, DEFAULT_BASE_TOPIC))
        ] = str
    fields[vol.Optional(CONF_TOKEN, description={"suggested_value": defaults.get(CONF_TOKEN)})] = (
        _TOKEN_SELECTOR
    )
    return vol.Schema(fields)


class SmartReidConfigFlow(ConfigFlow, domain=DOMAIN):
    """Handle adding a Smart ReID server."""

    VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}
        self._discovered_name = "Smart ReID"
        self._hassio_info: Info | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> SmartReidOptionsFlow:
        return SmartReidOptionsFlow()

    async def _async_check_server(self, data: dict[str, Any]) -> tuple[Info | None, dict[str, str]]:
        """Validate the input and ask the server who it is; fills `data` with clean values."""
        errors: dict[str, str] = {}
        try:
            data[CONF_URL] = normalize_url(str(data[CONF_URL]))
        except ValueError:
            return None, {CONF_URL: "invalid_url"}
        if CONF_BASE_TOPIC in data:
            topic = str(data[CONF_BASE_TOPIC]).strip().strip("/")
            if not BASE_TOPIC.match(topic):
                return None, {CONF_BASE_TOPIC: "invalid_topic"}
            data[CONF_BASE_TOPIC] = topic
        if not data.get(CONF_TOKEN):
            data.pop(CONF_TOKEN, None)
        api = SmartReidApi(async_get_clientsession(self.hass), data[CONF_URL], data.get(CONF_TOKEN))
        try:
            if (await api.health()).status == "starting":
                return None, {"base": "server_starting"}
            info = await api.info()
        except SmartReidAuthError:
            errors[CONF_TOKEN] = "invalid_auth"
        except SmartReidConnectionError as err:
            LOGGER.debug("Cannot connect to %s: %s", data[CONF_URL], err)
            errors[CONF_URL] = "cannot_connect"
        except SmartReidApiError as err:
            LOGGER.debug("%s does not answer like a Smart ReID server: %s", data[CONF_URL], err)
            if err.status == 503:
                # Between the health check and /api/info the server may still be loading models.
                errors["base"] = "server_starting"
            elif err.status == 404 or err.code == "bad_json":
                # Some other web server answers at this URL.
                errors["base"] = "not_smart_reid"
            else:
                errors["base"] = "unknown"
        except Exception:  # the flow must show an error, not a traceback
            LOGGER.exception("Unexpected error while checking %s", data[CONF_URL])
            errors["base"] = "unknown"
        else:
            if info.contract != SUPPORTED_CONTRACT:
                errors["base"] = "unsupported_contract"
            else:
                return info, errors
        return None, errors

    def _mqtt_missing(self) -> bool:
        return not self.hass.config_entries.async_entries("mqtt", include_ignore=False)

    # --- by hand ---------------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The user types the server's URL, its MQTT base topic and maybe a token."""
        if self._mqtt_missing():
            return self.async_abort(reason="mqtt_not_configured")
        errors: dict[str, str] = {}
        if user_input is not None:
            data = dict(user_input)
            info, errors = await self._async_check_server(data)
            if info is not None:
                await self.async_set_unique_id(info.server_id, raise_on_progress=False)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(title=_title(info, data[CONF_BASE_TOPIC]), data=data)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_server_schema({}), user_input or {}),
            errors=errors,
        )

    # --- discovered over MQTT ----------------------------------------------------------------

    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> ConfigFlowResult:
        """A server announced itself with its retained `<base>/info`."""
        if not discovery_info.payload or not discovery_info.topic.endswith("/info"):
            return self.async_abort(reason="invalid_discovery_info")
        try:
            info = Info.from_json(decode_json(discovery_info.payload, discovery_info.topic))
        except PayloadError as err:
            LOGGER.debug("Ignoring discovery on %s: %s", discovery_info.topic, err)
            return self.async_abort(reason="invalid_discovery_info")
        await self.async_set_unique_id(info.server_id)
        self._abort_if_unique_id_configured()
        base_topic = discovery_info.topic.removesuffix("/info")
        self._discovered = {CONF_URL: info.http_url or DEFAULT_URL, CONF_BASE_TOPIC: base_topic}
        self._discovered_name = info.name
        self.context["title_placeholders"] = {"name": info.name}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm the announced URL (it may need a host name Home Assistant can reach)."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**self._discovered, **user_input}
            info, errors = await self._async_check_server(data)
            if info is not None:
                if info.server_id != self.unique_id:
                    errors["base"] = "wrong_server"
                else:
                    return self.async_create_entry(
                        title=_title(info, data[CONF_BASE_TOPIC]), data=data
                    )
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=_server_schema(user_input or self._discovered, with_topic=False),
            description_placeholders={
                "name": self._discovered_name,
                "base_topic": self._discovered[CONF_BASE_TOPIC],
            },
            errors=errors,
        )

    # --- discovered through the Supervisor (the add-on) -------------------------------------

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The add-on told the Supervisor where it listens."""
        config = discovery_info.config
        data: dict[str, Any] = {
            CONF_URL: f"http://{config['host']}:{config.get('port', DEFAULT_PORT)}",
            CONF_BASE_TOPIC: config.get(CONF_BASE_TOPIC, DEFAULT_BASE_TOPIC),
        }
        if config.get(CONF_TOKEN):
            data[CONF_TOKEN] = config[CONF_TOKEN]
        info, errors = await self._async_check_server(data)
        # The add-on announces itself as soon as it listens, usually while its models still
        # load: ask anyway, and check again when the user confirms.
        if info is None and errors != {"base": "server_starting"}:
            return self.async_abort(reason=next(iter(errors.values())))
        if info is not None:
            await self.async_set_unique_id(info.server_id)
            self._abort_if_unique_id_configured(updates=data)
        self._discovered = data
        self._discovered_name = discovery_info.name or (info.name if info else "Smart ReID")
        self._hassio_info = info
        self.context["title_placeholders"] = {"name": self._discovered_name}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before adding the add-on's server."""
        errors: dict[str, str] = {}
        if user_input is not None:
            info = self._hassio_info
            if info is None:
                info, errors = await self._async_check_server(dict(self._discovered))
                if info is not None:
                    await self.async_set_unique_id(info.server_id)
                    self._abort_if_unique_id_configured(updates=self._discovered)
            if info is not None:
                return self.async_create_entry(
                    title=_title(info, self._discovered[CONF_BASE_TOPIC]),
                    data=self._discovered,
                )
        return self.async_show_form(
            step_id="hassio_confirm",
            description_placeholders={"addon": self._discovered_name},
            errors=errors,
        )

    # --- changing an entry -------------------------------------------------------------------

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change URL, topic or token of the same server."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = dict(user_input)
            info, errors = await self._async_check_server(data)
            if info is not None:
                await self.async_set_unique_id(info.server_id)
                self._abort_if_unique_id_mismatch(reason="wrong_server")
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_server_schema(user_input or entry.data),
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The server rejected the stored token."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the server's current token."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, CONF_TOKEN: user_input.get(CONF_TOKEN, "")}
            info, errors = await self._async_check_server(data)
            if info is not None:
                await self.async_set_unique_id(info.server_id)
                self._abort_if_unique_id_mismatch(reason="wrong_server")
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Optional(CONF_TOKEN): _TOKEN_SELECTOR}),
            description_placeholders={"url": entry.data[CONF_URL]},
            errors=errors,
        )


class SmartReidOptionsFlow(OptionsFlow):
    """Choose Home Assistant cameras to forward, then a trigger and interval for each."""

    def __init__(self) -> None:
        self._cameras: list[str] = []
        self._routes: list[dict[str, Any]] = []
        self._sighting_events = False
        self._stranger_hours = DEFAULT_STRANGER_HOURS
        self._stranger_devices = DEFAULT_STRANGER_DEVICES
        self._digest_time: str | None = None

    def _current(self) -> dict[str, Mapping[str, Any]]:
        return {
            str(route[CONF_CAMERA_ENTITY]): route
            for route in self.config_entry.options.get(CONF_FORWARD, [])
        }

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Which cameras; an empty choice stops all forwarding."""
        errors: dict[str, str] = {}
        if user_input is not None:
            cameras = list(user_input.get(CONF_CAMERAS, []))
            bad = [c for c in cameras if not CAMERA_NAME.match(camera_slug(c))]
            if bad:
                errors[CONF_CAMERAS] = "invalid_camera_name"
            else:
                self._cameras = cameras
                self._routes = []
                self._sighting_events = bool(user_input.get(CONF_SIGHTING_EVENTS, False))
                self._stranger_hours = int(
                    user_input.get(CONF_STRANGER_HOURS, DEFAULT_STRANGER_HOURS)
                )
                self._stranger_devices = int(
                    user_input.get(CONF_STRANGER_DEVICES, DEFAULT_STRANGER_DEVICES)
                )
                self._digest_time = user_input.get(CONF_DIGEST_TIME) or None
                return await self.async_step_camera()
        return self.async_show_form(
            step_id="init",
            data_schema=vol.Schema(
                {
                    vol.Optional(CONF_CAMERAS, default=list(self._current())): EntitySelector(
                        EntitySelectorConfig(domain="camera", multiple=True)
                    ),
                    vol.Optional(
                        CONF_SIGHTING_EVENTS,
                        default=self.config_entry.options.get(CONF_SIGHTING_EVENTS, False),
                    ): BooleanSelector(),
                    vol.Required(
                        CONF_STRANGER_HOURS,
                        default=self.config_entry.options.get(
                            CONF_STRANGER_HOURS, DEFAULT_STRANGER_HOURS
                        ),
                    ): NumberSelector(
                        NumberSelectorConfig(
                            min=0,
                            max=MAX_STRANGER_HOURS,
                            step=1,
                            unit_of_measurement="h",
                            mode=NumberSelectorMode.BOX,
                        )
                    ),
                    vol.Required(
                        CONF_STRANGER_DEVICES,
                        default=self.config_entry.options.get(
                            CONF_STRANGER_DEVICES, DEFAULT_STRANGER_DEVICES
                        ),
                    ): NumberSelector(
                        NumberSelectorConfig(
                            min=0, max=MAX_STRANGER_DEVICES, step=1, mode=NumberSelectorMode.BOX
                        )
                    ),
                    vol.Optional(
                        CONF_DIGEST_TIME,
                        description={
                            "suggested_value": self.config_entry.options.get(CONF_DIGEST_TIME)
                        },
                    ): TimeSelector(),
                }
            ),
            errors=errors,
        )

    async def async_step_camera(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Trigger sensor and frame interval of one chosen camera; repeats per camera."""
        if user_input is not None:
            self._routes.append(
                {
                    CONF_CAMERA_ENTITY: self._cameras[len(self._routes)],
                    CONF_TRIGGER_ENTITY: user_input[CONF_TRIGGER_ENTITY],
                    CONF_INTERVAL_S: float(user_input[CONF_INTERVAL_S]),
                }
            )
        if len(self._routes) >= len(self._cameras):
            options = {
                **self.config_entry.options,
                CONF_FORWARD: self._routes,
                CONF_SIGHTING_EVENTS: self._sighting_events,
                CONF_STRANGER_HOURS: self._stranger_hours,
                CONF_STRANGER_DEVICES: self._stranger_devices,
                CONF_DIGEST_TIME: self._digest_time,
            }
            if not self._digest_time:
                del options[CONF_DIGEST_TIME]
            return self.async_create_entry(data=options)
        camera = self._cameras[len(self._routes)]
        existing = self._current().get(camera, {})
        trigger_key = (
            vol.Required(CONF_TRIGGER_ENTITY, default=existing[CONF_TRIGGER_ENTITY])
            if CONF_TRIGGER_ENTITY in existing
            else vol.Required(CONF_TRIGGER_ENTITY)
        )
        return self.async_show_form(
            step_id="camera",
            data_schema=vol.Schema(
                {
                    trigger_key: EntitySelector(
                        EntitySelectorConfig(
                            domain="binary_sensor",
                            device_class=["motion", "occupancy", "presence"],
                        )
                    ),
                    vol.Required(
                        CONF_INTERVAL_S,
                        default=existing.get(CONF_INTERVAL_S, DEFAULT_INTERVAL_S),
                    ): NumberSelector(
                        NumberSelectorConfig(
                            min=MIN_INTERVAL_S,
                            max=MAX_INTERVAL_S,
                            step=0.1,
                            unit_of_measurement="s",
                            mode=NumberSelectorMode.BOX,
                        )
                    ),
                }
            ),
            description_placeholders={"camera": camera, "name": camera_slug(camera)},
        )
