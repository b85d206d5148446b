"""Entry point of the Home Assistant App (``python -m smart_reid_server.hassio_entry``).

What it does, in order:

1. reads the App's options (``/data/options.json``, written by the Supervisor from the options
   the user set in the App's Configuration tab) and, when present, the advanced settings file
   ``/config/smart_reid.yaml`` (the App's own folder in ``/addon_configs``), and turns them into
   the server's configuration (``OPTIONS`` maps every App option to a server setting);
2. asks the Supervisor for the MQTT broker's address and credentials
   (``GET http://supervisor/services/mqtt`` with ``SUPERVISOR_TOKEN``) unless ``mqtt_host`` is set;
3. keeps identities, snapshots and models under ``/data`` (models are downloaded and verified on
   the first start, with progress lines in the App log), and makes an HTTP token once
   (``/data/http_token``) when the user set none: the server listens on the App's network for
   Home Assistant, and the server never listens beyond loopback without a token;
4. writes the effective configuration to ``/data/server.yaml`` (readable by root only) and runs
   the server;
5. once the server is up, announces it to Home Assistant through Supervisor discovery
   (``POST http://supervisor/discovery``), so the integration is offered on its own; the
   announcement is withdrawn when the App stops.

Bad options end in one log line naming the option and what to do, and exit code 2 (the
Supervisor shows the App as stopped with that line in its log, instead of a crash loop with a
traceback); an unreachable Supervisor or missing MQTT service is exit code 3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from . import __version__
from .config import ConfigError, Settings, validate
from .hassio_discovery import discovery_message
from .logging_setup import setup_logging
from .models.errors import ModelError

_LOGGER = logging.getLogger("smart_reid_server.app_entry")

EXIT_OK = 0
EXIT_BAD_OPTIONS = 2
EXIT_SUPERVISOR = 3

HTTP_PORT = 8756  # inside the App's container; config.yaml `ports` names the same
ADVANCED_FILE = "smart_reid.yaml"
TOKEN_FILE = "http_token"


@dataclass(frozen=True, slots=True)
class Option:
    """One App option: its name in config.yaml and the server setting it sets."""

    name: str
    setting: str  # dotted server key, e.g. visits.window_s


# Every option of addon/config.yaml, in the order the Configuration tab shows them.
OPTIONS: tuple[Option, ...] = (
    Option("cameras", "cameras"),
    Option("auto_add_cameras", "auto_add_cameras"),
    Option("device", "models.device"),
    Option("detector", "models.detector"),
    Option("reid_model", "models.reid"),
    Option("model_mirror", "models.mirror"),
    Option("visit_window_s", "visits.window_s"),
    Option("match_threshold", "match.threshold"),
    Option("retention_days", "retention_days"),
    Option("risk_enabled", "risk.enabled"),
    Option("household", "risk.household"),
    Option("timezone", "risk.timezone"),
    Option("night_start", "risk.night.start"),
    Option("night_end", "risk.night.end"),
    Option("llm_url", "risk.llm.url"),
    Option("llm_model", "risk.llm.model"),
    Option("llm_api_key", "risk.llm.api_key"),
    Option("workers", "queue.workers"),
    Option("http_token", "http.token"),
    Option("mqtt_base_topic", "mqtt.base_topic"),
    Option("publish_sightings", "mqtt.publish_sightings"),
    Option("mqtt_host", "mqtt.host"),
    Option("mqtt_port", "mqtt.port"),
    Option("mqtt_username", "mqtt.username"),
    Option("mqtt_password", "mqtt.password"),
    Option("log_level", "log_level"),
)
OPTION_BY_NAME = {option.name: option for option in OPTIONS}

# Server settings the App sets itself (the container's layout and network).
APP_MANAGED: tuple[str, ...] = (
    "data_dir",
    "models.dir",
    "models.download",
    "models.verify",
    "mqtt.enabled",
    "http.enabled",
    "http.host",
    "http.port",
    "http.public_url",
)

# Server settings without an App option: set them in /addon_configs/<app>/smart_reid.yaml
# (the same keys as the server's configuration file, docs/server.md). A prefix covers a section.
ADVANCED: tuple[str, ...] = (
    "models.runtime",
    "models.threads",
    "models.flip_tta",
    "models.custom_reid",
    "detect",
    "quality",
    "match.uncertain_margin",
    "match.max_exemplars",
    "match.exemplar_min_distance",
    "match.active_tier",
    "match.camera_centering",
    "match.active_threshold",
    "match.active_margin",
    "match.visit_bank",
    "match.time_weight",
    "match.place_weight",
    "match.min_transit_s",
    "match.learn_transit",
    "match.adjacency",
    "match.veto_within_s",
    "tracks",
    "cluster",
    "visits.presence_s",
    "risk.interim_s",
    "risk.night.sun",
    "risk.trusted_max_level",
    "risk.trust_companions",
    "risk.default_sensitivity",
    "risk.cameras",
    "risk.loiter_s",
    "risk.levels",
    "risk.weights",
    "risk.llm.timeout_s",
    "risk.llm.max_tokens",
    "risk.llm.temperature",
    "risk.llm.images",
    "risk.llm.schema_mode",
    "risk.llm.prompt",
    "risk.llm.summary_prompt",
    "risk.llm.min_level",
    "risk.llm.queue",
    "risk.llm.concurrency",
    "risk.llm.rate_per_min",
    "risk.llm.daily_tokens",
    "zones",
    "queue.per_camera",
    "mqtt.client_id",
    "mqtt.ingest",
    "mqtt.buffer_size",
    "http.max_upload_mb",
    "sources",
    "store",
)


class OptionsError(Exception):
    """The App's options cannot be used; the message names the option and the fix."""


class SupervisorError(Exception):
    """The Supervisor did not answer as expected; the message says what to check."""


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def read_options(path: Path) -> dict[str, Any]:
    """The options file as a mapping, or OptionsError."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise OptionsError(
            f"{path} does not exist: start this through the Home Assistant Supervisor (or pass "
            "--options FILE)"
        ) from None
    except (OSError, ValueError) as err:
        raise OptionsError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise OptionsError(f"{path} must hold a JSON object of options")
    unknown = sorted(set(data) - set(OPTION_BY_NAME))
    if unknown:
        raise OptionsError(
            f"unknown option(s) {', '.join(unknown)}: this App version does not have them; "
            "remove them in the Configuration tab"
        )
    return data


def read_advanced(path: Path) -> dict[str, Any]:
    """The optional advanced settings file (server configuration keys)."""
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise OptionsError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise OptionsError(f"{path} must hold a mapping of server settings (docs/server.md)")
    for key in APP_MANAGED:
        head, _, rest = key.partition(".")
        section = loaded.get(head)
        if (not rest and head in loaded) or (isinstance(section, dict) and rest in section):
            raise OptionsError(
                f"{path}: {key} is set by the App itself; remove it (use the App's options and "
                "its Network tab instead)"
            )
    return loaded


def build_config(
    options: Mapping[str, Any],
    advanced: Mapping[str, Any],
    *,
    data_dir: Path,
    http_port: int,
    public_host: str,
    mqtt: Mapping[str, Any] | None,
    token: str,
) -> dict[str, Any]:
    """The server's configuration tree: advanced file, then options, then the App's own keys."""
    tree: dict[str, Any] = json.loads(json.dumps(dict(advanced)))  # a deep, plain copy
    for name, value in options.items():
        if value is None or value == "":
            continue  # an optional option left empty: the server's default
        _set(tree, OPTION_BY_NAME[name].setting, value)
    if mqtt is not None:  # from the Supervisor's MQTT service
        for key in ("host", "port", "username", "password"):
            _set(tree, f"mqtt.{key}", mqtt.get(key))
    _set(tree, "data_dir", str(data_dir))
    _set(tree, "models.dir", None)
    _set(tree, "models.download", True)
    _set(tree, "models.verify", True)
    _set(tree, "mqtt.enabled", True)
    _set(tree, "http.enabled", True)
    _set(tree, "http.host", "0.0.0.0")  # the App network; a token is always set
    _set(tree, "http.port", http_port)
    _set(tree, "http.public_url", f"http://{public_host}:{http_port}")
    _set(tree, "http.token", token)
    return tree


def settings_from(tree: Mapping[str, Any]) -> Settings:
    """Validate, naming the App option behind a bad server setting."""
    try:
        return validate(tree)
    except ConfigError as err:
        message = str(err).removeprefix("invalid configuration: ")
        for option in OPTIONS:  # "visits.window_s:" / "cameras.0:" -> "option ... (...):"
            pattern = rf"(?<![\w.(]){re.escape(option.setting)}((?:\.\d+)*):"
            named = f"option {option.name} ({option.setting}".replace("\\", "\\\\")
            message = re.sub(pattern, named + r"\1):", message)
        raise OptionsError(f"invalid options: {message}") from None


def load_or_create_token(data_dir: Path) -> str:
    """The HTTP token the App made on its first start (kept in /data, mode 0600)."""
    path = data_dir / TOKEN_FILE
    with contextlib.suppress(OSError):
        token = path.read_text("ascii").strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(token + "\n")
    return token


def write_server_config(settings: Settings, data_dir: Path) -> Path:
    """The effective configuration, for `smart-reid check-config --config` and support."""
    path = data_dir / "server.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# Written by the Smart ReID App at every start; edits here are overwritten.\n")
        yaml.safe_dump(settings.raw, out, sort_keys=False)
    return path


class Supervisor:
    """The two Supervisor endpoints the App uses."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None) -> None:
        self._session = session
        self._url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            async with self._session.request(
                method,
                f"{self._url}{path}",
                json=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise SupervisorError(
                        f"{method} {path} answered {response.status}: {text[:200].strip()}"
                    )
                payload = json.loads(text) if text else {}
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise SupervisorError(f"{method} {path} failed: {err or type(err).__name__}") from err
        if not isinstance(payload, dict) or payload.get("result", "ok") != "ok":
            raise SupervisorError(f"{method} {path} answered {str(payload)[:200]}")
        return payload.get("data", {})

    async def mqtt_service(self) -> dict[str, Any]:
        data = await self._call("GET", "/services/mqtt")
        if not isinstance(data, dict) or not data.get("host"):
            raise SupervisorError("/services/mqtt has no broker")
        return data

    async def announce(self, message: Mapping[str, Any]) -> str | None:
        data = await self._call("POST", "/discovery", dict(message))
        return str(data.get("uuid")) if isinstance(data, dict) and data.get("uuid") else None

    async def withdraw(self, uuid: str) -> None:
        await self._call("DELETE", f"/discovery/{uuid}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smart-reid-app", description="Home Assistant App entry point of Smart ReID."
    )
    parser.add_argument("--options", type=Path, default=Path("/data/options.json"))
    parser.add_argument("--data-dir", type=Path, default=Path("/data"))
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=Path("/config"),
        help=f"the App's config folder, where {ADVANCED_FILE} may live",
    )
    parser.add_argument(
        "--supervisor-url",
        default=os.environ.get("SUPERVISOR_URL", "http://supervisor"),
        help="the Supervisor API (default http://supervisor)",
    )
    parser.add_argument("--http-port", type=int, default=HTTP_PORT)
    parser.add_argument(
        "--announce-host",
        default=None,
        help="host name Home Assistant reaches this App under (default: the container's)",
    )
    return parser


async def run(args: argparse.Namespace) -> int:
    from .serve.app import SmartReidApp, StartupError

    options = read_options(args.options)
    advanced = read_advanced(args.config_dir / ADVANCED_FILE)
    host = args.announce_host or socket.gethostname()
    layout = {"data_dir": args.data_dir, "http_port": args.http_port, "public_host": host}
    # Options first: a typo is reported as such, whatever the Supervisor says.
    settings_from(build_config(options, advanced, mqtt=None, token="check", **layout))
    supervisor_token = os.environ.get("SUPERVISOR_TOKEN")
    async with aiohttp.ClientSession() as session:
        supervisor = Supervisor(session, args.supervisor_url, supervisor_token)
        mqtt: dict[str, Any] | None = None
        if not options.get("mqtt_host"):
            try:
                mqtt = await supervisor.mqtt_service()
            except SupervisorError as err:
                _LOGGER.error(
                    "no MQTT broker from the Supervisor (%s): install and start the Mosquitto "
                    "broker App, or set mqtt_host in this App's options",
                    err,
                )
                return EXIT_SUPERVISOR
            if mqtt.get("ssl"):
                _LOGGER.warning(
                    "the MQTT service asks for TLS, which the server does not speak; "
                    "connecting without it to %s:%s",
                    mqtt.get("host"),
                    mqtt.get("port"),
                )
        token = options.get("http_token") or load_or_create_token(args.data_dir)
        settings = settings_from(build_config(options, advanced, mqtt=mqtt, token=token, **layout))
        setup_logging(str(settings.raw["log_level"]))
        write_server_config(settings, args.data_dir)
        mqtt_cfg = settings.section("mqtt")
        _LOGGER.info(
            "Smart ReID App %s: MQTT %s:%s (%s), models in %s/models, device %s",
            __version__,
            mqtt_cfg["host"],
            mqtt_cfg["port"],
            "from the Supervisor" if mqtt is not None else "from the options",
            args.data_dir,
            settings.section("models")["device"],
        )
        app = SmartReidApp(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        discovery: str | None = None
        try:
            try:
                await app.start()
            except (StartupError, ModelError) as err:
                _LOGGER.error("cannot start: %s", err)
                return EXIT_BAD_OPTIONS
            message = discovery_message(
                host, app.http_port or args.http_port, str(mqtt_cfg["base_topic"]), token
            )
            try:
                discovery = await supervisor.announce(message)
                _LOGGER.info("announced to Home Assistant as http://%s:%s", host, args.http_port)
            except SupervisorError as err:
                _LOGGER.warning(
                    "could not announce the server to Home Assistant (%s); add the Smart ReID "
                    "integration by hand with URL http://%s:%s and the token from %s",
                    err,
                    host,
                    args.http_port,
                    args.data_dir / TOKEN_FILE,
                )
            await stop.wait()
        finally:
            if discovery is not None:
                with contextlib.suppress(SupervisorError):
                    await supervisor.withdraw(discovery)
            await app.stop()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("info")
    try:
        return asyncio.run(run(args))
    except OptionsError as err:
        _LOGGER.error("%s", err)
        return EXIT_BAD_OPTIONS
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
