"""The Home Assistant App's entry point, driven like the Supervisor drives it.

The real Supervisor cannot run here (it needs Home Assistant OS or a Supervised install with
Docker), so a local aiohttp stand-in answers the two Supervisor endpoints the App uses,
``GET /services/mqtt`` and ``POST``/``DELETE /discovery``, checking the ``SUPERVISOR_TOKEN``
bearer token like the Supervisor does. It also plays the model mirror (``model_mirror``), so the
first-start download and sha256 verification run for real without the internet. Everything
else is real: option files in the Supervisor's format, the entry point as its own process
(``python -m smart_reid_server.hassio_entry``, the App's CMD), a private Mosquitto, the real
models and the real server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from conftest import free_port
from smart_reid_server.hassio_discovery import discovery_message
from smart_reid_server.models.registry import get_spec

REPO = Path(__file__).resolve().parents[2]
APP_CONFIG = yaml.safe_load((REPO / "addon" / "config.yaml").read_text("utf-8"))
SUPERVISOR_TOKEN = "supervisor-token-for-this-test"

pytestmark = pytest.mark.timeout(240)


@dataclass
class SupervisorStandIn:
    """What the stand-in was asked, and how it answers."""

    url: str = ""
    mqtt: dict[str, Any] | None = None  # None: "no MQTT service" (HTTP 400)
    discoveries: list[dict[str, Any]] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    unauthorised: int = 0
    model_requests: list[str] = field(default_factory=list)
    corrupt_models: bool = False
    announced: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def supervisor(models_dir: Path) -> AsyncIterator[SupervisorStandIn]:
    state = SupervisorStandIn()

    def authorised(request: web.Request) -> bool:
        ok = request.headers.get("Authorization") == f"Bearer {SUPERVISOR_TOKEN}"
        state.unauthorised += not ok
        return ok

    async def mqtt_service(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"result": "error", "message": "unauthorized"}, status=401)
        if state.mqtt is None:
            return web.json_response(
                {"result": "error", "message": "Service not provided"}, status=400
            )
        return web.json_response({"result": "ok", "data": state.mqtt})

    async def discovery(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"result": "error", "message": "unauthorized"}, status=401)
        state.discoveries.append(await request.json())
        state.announced.set()
        return web.json_response({"result": "ok", "data": {"uuid": "d15c0e7e"}})

    async def withdraw(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"result": "error", "message": "unauthorized"}, status=401)
        state.withdrawn.append(request.match_info["uuid"])
        return web.json_response({"result": "ok", "data": {}})

    def read_model(rel: str) -> bytes | None:
        root = models_dir.resolve()
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path.read_bytes()

    async def model(request: web.Request) -> web.StreamResponse:
        rel = request.match_info["path"]
        state.model_requests.append(rel)
        body = await asyncio.to_thread(read_model, rel)
        if body is None:
            return web.Response(status=404)
        if state.corrupt_models:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/services/mqtt", mqtt_service)
    app.router.add_post("/discovery", discovery)
    app.router.add_delete("/discovery/{uuid}", withdraw)
    app.router.add_get("/mirror/{path:.+}", model)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def supervisor_options(**changes: Any) -> dict[str, Any]:
    """options.json as the Supervisor writes it: config.yaml's defaults plus what the user set."""
    options = dict(APP_CONFIG["options"])
    options.update(changes)
    return options


@dataclass
class AppProcess:
    process: asyncio.subprocess.Process
    data_dir: Path
    http_port: int
    stderr: list[str] = field(default_factory=list)

    async def collect(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr.append(line.decode("utf-8", "replace").rstrip("\n"))


async def start_app(
    tmp_path: Path,
    supervisor: SupervisorStandIn,
    options: dict[str, Any],
    *,
    advanced: str | None = None,
) -> AppProcess:
    data_dir = tmp_path / "data"
    config_dir = tmp_path / "config"
    data_dir.mkdir(exist_ok=True)
    config_dir.mkdir(exist_ok=True)
    (data_dir / "options.json").write_text(json.dumps(options), "utf-8")
    if advanced is not None:
        (config_dir / "smart_reid.yaml").write_text(advanced, "utf-8")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SMART_REID_")},
        "PYTHONPATH": str(REPO / "addon" / "inference_server"),
        "SUPERVISOR_TOKEN": SUPERVISOR_TOKEN,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smart_reid_server.hassio_entry",
        "--options",
        str(data_dir / "options.json"),
        "--data-dir",
        str(data_dir),
        "--config-dir",
        str(config_dir),
        "--supervisor-url",
        supervisor.url,
        "--http-port",
        str(port),
        "--announce-host",
        "127.0.0.1",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    return AppProcess(process, data_dir, port)


async def finished(app: AppProcess, within: float = 60.0) -> int:
    reader = asyncio.create_task(app.collect())
    code = await asyncio.wait_for(app.process.wait(), within)
    await reader
    return code


async def test_app_starts_the_server_and_announces_it(
    tmp_path: Path,
    supervisor: SupervisorStandIn,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Any,
) -> None:
    """First start: MQTT from the Supervisor, models downloaded and verified into /data with
    progress in the log, the server up on the broker, discovery received; SIGTERM withdraws it."""
    host, port = mosquitto_broker
    # Mosquitto here allows anonymous clients and ignores the credentials; they still travel.
    supervisor.mqtt = {
        "host": host,
        "port": port,
        "ssl": False,
        "protocol": "3.1.1",
        "username": "addons",
        "password": "from-the-supervisor",
        "addon": "core_mosquitto",
    }
    collector = mqtt_collector(host, port, "smart_reid/#")
    options = supervisor_options(
        cameras=["front_door", "garden"],
        household=["Alice"],
        timezone="Europe/Berlin",
        model_mirror=f"{supervisor.url}/mirror",
    )
    app = await start_app(tmp_path, supervisor, options)
    reader = asyncio.create_task(app.collect())
    try:
        waiter = asyncio.create_task(supervisor.announced.wait())
        await asyncio.wait(
            {waiter, asyncio.create_task(app.process.wait())},
            timeout=180,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert supervisor.discoveries, "no discovery message:\n" + "\n".join(app.stderr)
        token = (app.data_dir / "http_token").read_text("ascii").strip()
        assert len(token) >= 32
        assert oct((app.data_dir / "http_token").stat().st_mode & 0o777) == "0o600"
        # Exactly the message the integration's hassio flow is tested with.
        assert supervisor.discoveries == [
            discovery_message("127.0.0.1", app.http_port, "smart_reid", token)
        ]
        assert supervisor.unauthorised == 0

        # The server runs on the Supervisor's broker and answers Home Assistant with the token.
        info_msg = (await collector.await_for("smart_reid/info", within=15))[-1]
        await collector.await_for("smart_reid/status", lambda m: m.payload == b"online")
        base = f"http://127.0.0.1:{app.http_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/info") as response:
                assert response.status == 401  # listening beyond loopback: token required
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(f"{base}/api/info", headers=headers) as response:
                info = await response.json()
        assert info == info_msg.json()
        assert info["http_url"] == f"http://127.0.0.1:{app.http_port}"
        assert info["cameras"] == ["front_door", "garden"]
        assert info["settings"]["device"]["requested"] == "auto"
        assert info["models"]["detector"]["name"] == "yolox_nano_416"

        # Models: fetched from the mirror into /data/models and verified.
        wanted = [
            *get_spec("yolox_nano_416").files,
            *get_spec(APP_CONFIG["options"]["reid_model"]).files,
        ]
        assert sorted(supervisor.model_requests) == sorted(f.path for f in wanted)
        assert (app.data_dir / "models" / "detectors" / "yolox_nano_416.onnx").is_file()
        assert (app.data_dir / "models" / ".verified.json").is_file()
        log = "\n".join(app.stderr)
        assert "downloading" in log and "%" in log, log
        assert "level=error" not in log and "Traceback" not in log, log

        # The effective configuration is kept for support, private to root.
        written = yaml.safe_load((app.data_dir / "server.yaml").read_text("utf-8"))
        assert written["mqtt"]["username"] == "addons"
        assert written["risk"]["household"] == ["Alice"]
        assert written["risk"]["timezone"] == "Europe/Berlin"
        assert written["http"]["host"] == "0.0.0.0"
        assert oct((app.data_dir / "server.yaml").stat().st_mode & 0o777) == "0o600"
    finally:
        if app.process.returncode is None:
            app.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(app.process.wait(), 60)
        await reader
    assert code == 0, "\n".join(app.stderr)
    assert supervisor.withdrawn == ["d15c0e7e"]
    await collector.await_for("smart_reid/status", lambda m: m.payload == b"offline")


def error_lines(app: AppProcess) -> list[str]:
    return [line for line in app.stderr if "level=error" in line or "Traceback" in line]


async def test_bad_option_is_one_line_and_exit_2(
    tmp_path: Path, supervisor: SupervisorStandIn
) -> None:
    app = await start_app(tmp_path, supervisor, supervisor_options(visit_window_s=0.5))
    assert await finished(app) == 2
    errors = error_lines(app)
    assert len(errors) == 1, app.stderr
    assert "option visit_window_s (visits.window_s)" in errors[0]
    assert "Traceback" not in "\n".join(app.stderr)
    assert supervisor.discoveries == []


async def test_unknown_option_and_bad_advanced_file(
    tmp_path: Path, supervisor: SupervisorStandIn
) -> None:
    app = await start_app(tmp_path, supervisor, supervisor_options(frame_rate=5))
    assert await finished(app) == 2
    assert len(error_lines(app)) == 1 and "unknown option(s) frame_rate" in error_lines(app)[0]

    app = await start_app(
        tmp_path, supervisor, supervisor_options(), advanced="http:\n  port: 9999\n"
    )
    assert await finished(app) == 2
    assert len(error_lines(app)) == 1
    assert "http.port is set by the App itself" in error_lines(app)[0]

    app = await start_app(
        tmp_path, supervisor, supervisor_options(), advanced="tracks:\n  decide_looks: 99\n"
    )
    assert await finished(app) == 2
    assert len(error_lines(app)) == 1 and "tracks.decide_looks" in error_lines(app)[0]


async def test_no_mqtt_service_is_one_line_and_exit_3(
    tmp_path: Path, supervisor: SupervisorStandIn
) -> None:
    supervisor.mqtt = None
    app = await start_app(tmp_path, supervisor, supervisor_options())
    assert await finished(app) == 3
    errors = error_lines(app)
    assert len(errors) == 1, app.stderr
    assert "Mosquitto broker App" in errors[0] and "mqtt_host" in errors[0]


async def test_corrupt_model_download_is_one_line_and_exit_2(
    tmp_path: Path, supervisor: SupervisorStandIn, mosquitto_broker: tuple[str, int]
) -> None:
    """A download whose sha256 does not match is refused (never loaded), in one clear line."""
    host, port = mosquitto_broker
    supervisor.mqtt = {"host": host, "port": port, "ssl": False}
    supervisor.corrupt_models = True
    app = await start_app(
        tmp_path, supervisor, supervisor_options(model_mirror=f"{supervisor.url}/mirror")
    )
    assert await finished(app, within=120) == 2
    errors = error_lines(app)
    assert len(errors) == 1, app.stderr
    assert "has sha256" in errors[0] and "expected" in errors[0]
    assert not (tmp_path / "data" / "models" / "detectors" / "yolox_nano_416.onnx").exists()
    assert supervisor.discoveries == []
