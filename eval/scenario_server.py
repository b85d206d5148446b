"""The simulated day through the real server: ``python -m smart_reid_server serve`` as a process,
a real Mosquitto broker, every frame uploaded with ``POST /api/frames``.

Frames go up one at a time in frame-time order, each with its simulated timestamp (the server
runs visits on frame time) and its supplied person boxes. The simulated day lies in the future
of the wall clock, so the server's once-a-second expiry (wall clock) never ends a visit early:
visits end exactly as frame times say. What the server answers for each person is the HTTP
upload's decision list; latency is measured from just before an upload to the arrival of its
``events/new_person`` message at a subscriber on the same broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from eval.data import models_dir
from eval.scenario_metrics import Answers, Said
from eval.scenario_replay import QUALITY
from eval.scenario_world import Day

_LOGGER = logging.getLogger(__name__)
BASE_TOPIC = "scenario"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {within:.0f} s")


class Broker:
    """A private Mosquitto on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        if not Path(MOSQUITTO).exists():
            raise RuntimeError(f"mosquitto not found at {MOSQUITTO}: apt-get install mosquitto")
        self.port = free_port()
        config = workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(self.port, self.process, "mosquitto", 10.0)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@dataclass(slots=True)
class _Heard:
    payload: dict[str, Any]
    at: float  # time.monotonic() on arrival


class NewPersonListener:
    """Records ``events/new_person`` (and notices the server's ``status``) as they arrive."""

    def __init__(self, port: int) -> None:
        self.heard: list[_Heard] = []
        self.online = threading.Event()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="scenario-listener"
        )
        self.client.on_connect = lambda client, *_: client.subscribe(
            [(f"{BASE_TOPIC}/events/new_person", 1), (f"{BASE_TOPIC}/status", 1)]
        )
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the scenario listener could not subscribe to the broker")

    def _message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic.endswith("/status"):
            if message.payload == b"online":
                self.online.set()
            return
        with self._arrived:
            self.heard.append(_Heard(json.loads(message.payload), time.monotonic()))
            self._arrived.notify_all()

    def wait_for(self, count: int, within: float) -> bool:
        """Block until ``count`` messages arrived (true) or ``within`` seconds passed (false)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.heard) >= count, timeout=within)

    def snapshot(self) -> list[_Heard]:
        with self._lock:
            return list(self.heard)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def server_config(
    day: Day, workdir: Path, broker_port: int, http_port: int, match: Mapping[str, Any]
) -> Path:
    """The YAML the server runs with: real models, its own data dir, the scenario's cameras."""
    tree: dict[str, Any] = {
        "data_dir": str(workdir / "data"),
        "log_level": "warning",
        "cameras": list(day.params.cameras),
        "models": {"dir": str(models_dir()), "download": False},
        "quality": dict(QUALITY),
        "match": dict(match),
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "base_topic": BASE_TOPIC},
        "http": {"host": "127.0.0.1", "port": http_port},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    return path


@dataclass(slots=True)
class ServerRun:
    answers: Answers
    latencies_ms: list[float]  # upload start -> events/new_person received
    upload_ms: list[float]  # upload start -> HTTP answer
    new_person_decisions: int
    new_person_messages: int
    wall_s: float
    settings: dict[str, Any] = field(default_factory=dict)


class _Server:
    def __init__(self, config: Path, http_port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{http_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_REID_")}
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "smart_reid_server", "serve", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.log = log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


async def _ready(session: aiohttp.ClientSession, server: _Server, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{server.log.read_text()[-3000:]}")
        try:
            async with session.get(f"{server.url}/api/health") as response:
                if (await response.json()).get("status") in ("ready", "degraded"):
                    return
        except (aiohttp.ClientError, ValueError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {within:.0f} s")


async def run_on_server(
    day: Day, match: Mapping[str, Any] | None = None, workdir: Path | None = None
) -> ServerRun:
    """Upload the whole day to a freshly started server; what it answered and how fast."""
    with tempfile.TemporaryDirectory(prefix="scenario-server-") as tmp:
        folder = Path(workdir or tmp)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        broker = Broker(folder)
        listener: NewPersonListener | None = None
        server: _Server | None = None
        try:
            listener = NewPersonListener(broker.port)
            http_port = free_port()
            config = server_config(day, folder, broker.port, http_port, match or {})
            server = _Server(config, http_port, folder / "server.log")
            async with aiohttp.ClientSession() as session:
                await _ready(session, server)
                if not listener.online.wait(30):
                    raise RuntimeError("the server did not announce itself on MQTT")
                async with session.get(f"{server.url}/api/settings") as response:
                    settings = await response.json()
                return await _upload_day(day, session, server.url, listener, settings)
        finally:
            if server is not None:
                server.stop()
            if listener is not None:
                listener.close()
            broker.stop()


async def _upload_day(
    day: Day,
    session: aiohttp.ClientSession,
    url: str,
    listener: NewPersonListener,
    settings: dict[str, Any],
) -> ServerRun:
    answers: Answers = {}
    sent_at: dict[str, float] = {}
    upload_ms: list[float] = []
    new_decisions = 0
    started = time.monotonic()
    for frame in day.frames:
        if not frame.people:
            continue
        jpeg = day.jpeg(frame)
        form = aiohttp.FormData()
        form.add_field("image", jpeg, filename="frame.jpg", content_type="image/jpeg")
        form.add_field("camera", frame.camera)
        form.add_field("timestamp", f"{frame.timestamp:.3f}")
        form.add_field("frame_id", frame.frame_id)
        form.add_field("detections", json.dumps(frame.detections()))
        t0 = time.monotonic()
        sent_at[frame.frame_id] = t0
        async with session.post(f"{url}/api/frames", data=form) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"frame {frame.frame_id} refused: {response.status} {body}")
        upload_ms.append((time.monotonic() - t0) * 1000.0)
        decisions = body["decisions"]
        if len(decisions) != len(frame.people):
            raise RuntimeError(
                f"frame {frame.frame_id}: {len(decisions)} decisions for {len(frame.people)} people"
            )
        for slot, d in enumerate(decisions):
            answers[(frame.index, slot)] = Said(
                d["person_id"], bool(d["new_person"]), d["visit_id"], d["match"], d["similarity"]
            )
            new_decisions += bool(d["new_person"])
    await asyncio.to_thread(listener.wait_for, new_decisions, 15.0)
    wall = time.monotonic() - started
    heard = listener.snapshot()
    latencies = [
        (h.at - sent_at[h.payload["frame_id"]]) * 1000.0
        for h in heard
        if h.payload.get("frame_id") in sent_at
    ]
    return ServerRun(
        answers=answers,
        latencies_ms=latencies,
        upload_ms=upload_ms,
        new_person_decisions=new_decisions,
        new_person_messages=len(heard),
        wall_s=wall,
        settings=settings,
    )
