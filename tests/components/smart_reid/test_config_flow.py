"""Every way into a Smart ReID entry: by hand, MQTT discovery, the add-on, reconfigure, reauth."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from aiohttp import web
from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_MQTT, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.json import json_dumps
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_reid.const import (
    CONF_BASE_TOPIC,
    CONF_CAMERA_ENTITY,
    CONF_FORWARD,
    CONF_INTERVAL_S,
    CONF_TOKEN,
    CONF_TRIGGER_ENTITY,
    CONF_URL,
    DOMAIN,
)

from .conftest import (
    BASE,
    SERVER_ID,
    TOKEN,
    FakeServer,
    entry_for,
    free_port,
    info_payload,
    publish,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("mqtt_entry")


async def _user_flow(hass: HomeAssistant, data: dict[str, Any]) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return dict(await hass.config_entries.flow.async_configure(result["flow_id"], data))


async def test_user_creates_entry(hass: HomeAssistant, server: FakeServer) -> None:
    """URL, topic and token that the server accepts make an entry named after the server."""
    result = await _user_flow(
        hass, {CONF_URL: server.url + "/", CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Smart ReID"
    assert result["data"] == {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    assert result["result"].unique_id == SERVER_ID
    assert ("GET", "/api/health") in server.requests


async def test_user_custom_topic_without_token(hass: HomeAssistant, server: FakeServer) -> None:
    """A server without a token needs none; a non-default topic shows in the title."""
    server.token = None
    result = await _user_flow(
        hass, {CONF_URL: server.url, CONF_BASE_TOPIC: "/garage/reid/", CONF_TOKEN: ""}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Smart ReID (garage/reid)"
    assert result["data"] == {CONF_URL: server.url, CONF_BASE_TOPIC: "garage/reid"}


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        ({CONF_TOKEN: "wrong"}, CONF_TOKEN, "invalid_auth"),
        ({CONF_URL: "ftp://somewhere"}, CONF_URL, "invalid_url"),
        ({CONF_BASE_TOPIC: "smart reid/#"}, CONF_BASE_TOPIC, "invalid_topic"),
    ],
)
async def test_user_errors_then_recovers(
    hass: HomeAssistant, server: FakeServer, change: dict[str, str], field: str, error: str
) -> None:
    """A wrong field is named in the form, and correcting it finishes the flow."""
    good = {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    result = await _user_flow(hass, {**good, **change})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], good))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_cannot_connect(hass: HomeAssistant, socket_enabled: None) -> None:
    """Nothing listening at the URL: cannot_connect on the URL field."""
    url = f"http://127.0.0.1:{free_port()}"
    result = await _user_flow(hass, {CONF_URL: url, CONF_BASE_TOPIC: BASE})
    assert result["errors"] == {CONF_URL: "cannot_connect"}


@pytest.mark.parametrize("health", [None, "<html>router login</html>"])
async def test_user_not_smart_reid(
    hass: HomeAssistant, socket_enabled: None, health: str | None
) -> None:
    """A web server that is not ours: 404 on /api/health, or a page that is not JSON."""
    app = web.Application()
    if health is not None:

        async def page(request: web.Request) -> web.Response:
            return web.Response(text=health, content_type="text/html")

        app.router.add_get("/api/health", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        result = await _user_flow(hass, {CONF_URL: url, CONF_BASE_TOPIC: BASE})
        assert result["errors"] == {"base": "not_smart_reid"}
    finally:
        await runner.cleanup()


async def test_user_server_error_is_unknown(hass: HomeAssistant, server: FakeServer) -> None:
    """A server whose /api/info is not an info object gives the generic error."""
    server.info = {"error": "broken"}
    result = await _user_flow(
        hass, {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    )
    assert result["errors"] == {"base": "unknown"}


async def test_user_other_contract(hass: HomeAssistant, server: FakeServer) -> None:
    """A server speaking contract 2 is refused with an explanation."""
    server.info["contract"] = 2
    result = await _user_flow(
        hass, {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    )
    assert result["errors"] == {"base": "unsupported_contract"}


@pytest.mark.parametrize("health_ahead", [False, True])
async def test_user_server_starting(
    hass: HomeAssistant, server: FakeServer, health_ahead: bool
) -> None:
    """A server still loading its models says so (not "unknown error"); later it works.

    Also the moment in between: health already ready while /api/info still answers 503.
    """
    server.starting = True
    server.health_ahead = health_ahead
    good = {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    result = await _user_flow(hass, good)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "server_starting"}
    server.starting = False
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], good))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_already_configured(hass: HomeAssistant, server: FakeServer) -> None:
    """The same server under another URL is still the same server."""
    entry_for(server, **{CONF_URL: "http://192.0.2.1:8756"}).add_to_hass(hass)
    result = await _user_flow(
        hass, {CONF_URL: server.url, CONF_BASE_TOPIC: "other", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_user_without_mqtt(hass: HomeAssistant, mqtt_entry: MockConfigEntry) -> None:
    """Without the MQTT integration there is nothing to listen with: say so."""
    await hass.config_entries.async_remove(mqtt_entry.entry_id)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_configured"


async def test_mqtt_discovery(hass: HomeAssistant, server: FakeServer) -> None:
    """The retained info on the broker starts a flow; confirming the URL creates the entry."""
    await publish(hass, f"{BASE}/info", server.info, retain=True)
    await wait_for(
        hass,
        lambda: any(f["handler"] == DOMAIN for f in hass.config_entries.flow.async_progress()),
        "the discovery flow",
    )
    flow = next(f for f in hass.config_entries.flow.async_progress() if f["handler"] == DOMAIN)
    assert flow["step_id"] == "discovery_confirm"
    assert flow["context"]["source"] == SOURCE_MQTT
    assert flow["context"]["unique_id"] == SERVER_ID

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_URL: server.url, CONF_TOKEN: "wrong"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_URL: server.url, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}


def _mqtt_info(topic: str, payload: str) -> MqttServiceInfo:
    return MqttServiceInfo(
        topic=topic,
        payload=payload,
        qos=0,
        retain=True,
        subscribed_topic="smart_reid/+/info",
        timestamp=0.0,
    )


@pytest.mark.parametrize(
    "payload",
    ["", "not json", json_dumps({"contract": 1}), json_dumps({"server_id": "Bad Id!"})],
)
async def test_mqtt_discovery_bad_payload(hass: HomeAssistant, payload: str) -> None:
    """A cleared or malformed announcement is ignored."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=_mqtt_info(f"{BASE}/info", payload)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


async def test_mqtt_discovery_already_configured(hass: HomeAssistant, server: FakeServer) -> None:
    entry_for(server).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=_mqtt_info(f"{BASE}/info", json_dumps(server.info)),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_mqtt_discovery_url_of_another_server(
    hass: HomeAssistant, server: FakeServer
) -> None:
    """The announcement and the URL typed in must be the same server."""
    announced = info_payload(server_id="0123456789ab", http_url=None)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=_mqtt_info("home/reid/info", json_dumps(announced)),
    )
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"] == {"name": "Smart ReID", "base_topic": "home/reid"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: server.url, CONF_TOKEN: TOKEN}
    )
    assert result["errors"] == {"base": "wrong_server"}


def _hassio(server: FakeServer, **config: Any) -> HassioServiceInfo:
    host, port = server.url.removeprefix("http://").split(":")
    return HassioServiceInfo(
        config={"host": host, "port": int(port), "base_topic": BASE, "token": TOKEN, **config},
        name="Smart ReID add-on",
        slug="smart_reid",
        uuid="1234",
    )


async def test_hassio_discovery(hass: HomeAssistant, server: FakeServer) -> None:
    """The add-on's discovery asks once and creates the entry with its address and token."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_hassio(server)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "Smart ReID add-on"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}


REPO = Path(__file__).resolve().parents[3]


def _app_discovery() -> ModuleType:
    """The App's own discovery code, loaded from its file (it imports nothing else), so this
    test feeds the flow exactly what the App sends to the Supervisor."""
    path = REPO / "addon/inference_server/smart_reid_server/hassio_discovery.py"
    spec = importlib.util.spec_from_file_location("smart_reid_app_discovery", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_hassio_discovery_of_the_app(hass: HomeAssistant, server: FakeServer) -> None:
    """The message the App posts to /discovery, as the Supervisor hands it on (config plus the
    App's name and slug from addon/config.yaml), ends in an entry with the App's token."""
    app = yaml.safe_load((REPO / "addon/config.yaml").read_text("utf-8"))
    discovery = _app_discovery()
    host, port = server.url.removeprefix("http://").split(":")
    message = discovery.discovery_message(host, int(port), "smart_reid", TOKEN)
    assert message["service"] == DOMAIN
    assert DOMAIN in app["discovery"]
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_HASSIO},
        data=HassioServiceInfo(
            config=message["config"], name=app["name"], slug=app["slug"], uuid="d15c0e7e"
        ),
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "Smart ReID"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Smart ReID"
    assert result["data"] == {
        CONF_URL: server.url,
        CONF_BASE_TOPIC: "smart_reid",
        CONF_TOKEN: TOKEN,
    }
    assert result["result"].unique_id == SERVER_ID


async def test_hassio_discovery_updates_existing(hass: HomeAssistant, server: FakeServer) -> None:
    """A known server that moved (new port, new token) is updated, not added twice."""
    entry = entry_for(server, **{CONF_URL: "http://127.0.0.1:1", CONF_TOKEN: "old"})
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_hassio(server)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_URL] == server.url
    assert entry.data[CONF_TOKEN] == TOKEN


async def test_hassio_discovery_unreachable(hass: HomeAssistant, server: FakeServer) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_hassio(server, token="wrong")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_auth"


async def test_hassio_discovery_while_starting(hass: HomeAssistant, server: FakeServer) -> None:
    """The add-on announces itself before its models are loaded: ask anyway, check on "yes"."""
    server.starting = True
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_hassio(server)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "server_starting"}
    server.starting = False
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Smart ReID"
    assert result["result"].unique_id == SERVER_ID
    assert result["data"] == {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}


async def test_reconfigure(hass: HomeAssistant, server: FakeServer) -> None:
    """The same server at a corrected address; another server is refused."""
    entry = entry_for(server, **{CONF_URL: "http://127.0.0.1:1"})
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_URL] == server.url

    server.info["server_id"] = "0123456789ab"
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_server"


async def test_reconfigure_while_starting(hass: HomeAssistant, server: FakeServer) -> None:
    entry = entry_for(server)
    entry.add_to_hass(hass)
    server.starting = True
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "server_starting"}


async def test_reconfigure_shows_errors(hass: HomeAssistant, server: FakeServer) -> None:
    entry = entry_for(server)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: server.url, CONF_BASE_TOPIC: BASE, CONF_TOKEN: "nope"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}


async def test_reauth(hass: HomeAssistant, server: FakeServer) -> None:
    """A new token replaces the rejected one after the server accepts it."""
    entry = entry_for(server, **{CONF_TOKEN: "old"})
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_TOKEN] == TOKEN
    # The abort reloads the entry in the background; let that and MQTT's subscription batching
    # (0.01 s in tests) finish, so nothing is left running when the test ends.
    await hass.async_block_till_done(wait_background_tasks=True)
    await hass.config_entries.async_unload(entry.entry_id)
    await asyncio.sleep(0.05)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_options_choose_cameras(hass: HomeAssistant, server: FakeServer) -> None:
    """Pick two cameras, give each a trigger and interval; defaults come back next time."""
    entry = entry_for(server)
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["step_id"] == "init"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"cameras": ["camera.front_door", "camera.garden"]}
    )
    assert result["step_id"] == "camera"
    assert result["description_placeholders"] == {
        "camera": "camera.front_door",
        "name": "front_door",
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_TRIGGER_ENTITY: "binary_sensor.front_motion", CONF_INTERVAL_S: 0.5},
    )
    assert result["description_placeholders"] == {"camera": "camera.garden", "name": "garden"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_TRIGGER_ENTITY: "binary_sensor.garden_motion", CONF_INTERVAL_S: 2}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_FORWARD] == [
        {
            CONF_CAMERA_ENTITY: "camera.front_door",
            CONF_TRIGGER_ENTITY: "binary_sensor.front_motion",
            CONF_INTERVAL_S: 0.5,
        },
        {
            CONF_CAMERA_ENTITY: "camera.garden",
            CONF_TRIGGER_ENTITY: "binary_sensor.garden_motion",
            CONF_INTERVAL_S: 2.0,
        },
    ]

    # Running it again offers the stored trigger and interval as defaults.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"cameras": ["camera.garden"]}
    )
    schema = result["data_schema"]
    assert schema is not None
    defaults = {str(key): key.default() for key in schema.schema if hasattr(key, "default")}
    assert defaults == {CONF_TRIGGER_ENTITY: "binary_sensor.garden_motion", CONF_INTERVAL_S: 2.0}


async def test_options_reject_bad_camera_name(hass: HomeAssistant, server: FakeServer) -> None:
    """An object id the server cannot use as a camera name is refused before anything else."""
    entry = entry_for(server)
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"cameras": ["camera." + "x" * 70]}
    )
    assert result["errors"] == {"cameras": "invalid_camera_name"}
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"cameras": []})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_FORWARD] == []
