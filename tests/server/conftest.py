"""Shared fixtures for the server suite.

The real models and data live outside the repository in ``<repo>/../shared`` (override with
``SMART_REID_SHARED``); tests that need them skip with a message saying what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]


def _need(path: Path, what: str) -> Path:
    if not path.is_dir():
        pytest.skip(f"{what} not found at {path} (set SMART_REID_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(Path(os.environ.get("SMART_REID_SHARED", _REPO.parent / "shared")), "shared dir")


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return _need(shared_dir / "models", "real models")


@pytest.fixture(scope="session")
def cuhk03_dir(shared_dir: Path) -> Path:
    return _need(shared_dir / "data" / "cuhk03" / "labeled", "CUHK03 labeled crops")


@pytest.fixture(scope="session")
def plans() -> list[Any]:
    """Clearly separable real people (``_embeddings.clear_plans``), at least three."""
    from _embeddings import clear_plans, require_assets

    require_assets()
    found = clear_plans()
    if len(found) < 3:
        pytest.skip("fewer than three clearly separable identities in the embedded data")
    return list(found)


@pytest.fixture(scope="session")
def video_dir(shared_dir: Path) -> Path:
    return _need(shared_dir / "data" / "video", "test videos")


# Fixtures for the wiring/pipeline tests (broker, settings factory, ...) go below this line.
# ---------------------------------------------------------------------------------------------
# Server core fixtures: a real Mosquitto broker per test, a paho subscriber that records what
# the server publishes, a throw-away data dir and Settings pointing at the real models.

import asyncio  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from smart_reid_server.config import Settings, load  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MosquittoBroker:
    """A real broker on 127.0.0.1:<port>, startable and stoppable (for outage tests)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.config = workdir / f"mosquitto-{self.port}.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Make brokers that are not started yet (``.start()`` when the test wants one up)."""
    made: list[MosquittoBroker] = []

    def make(port: int | None = None) -> MosquittoBroker:
        broker = MosquittoBroker(tmp_path, port)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.stop()


@pytest.fixture
def mosquitto_broker(broker_factory: Callable[..., MosquittoBroker]) -> tuple[str, int]:
    """A running broker: (host, port)."""
    broker = broker_factory()
    broker.start()
    return broker.host, broker.port


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.payload)


class MqttCollector:
    """A real paho subscriber that records every message (waits work sync and async)."""

    def __init__(self, host: str, port: int, topics: str | list[str]) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Condition()
        self._subscribed = threading.Event()
        self._topics = [topics] if isinstance(topics, str) else topics
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-collector-{uuid.uuid4().hex[:6]}",
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("test subscriber could not subscribe")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Received(
                    message.topic, bytes(message.payload), bool(message.retain), time.monotonic()
                )
            )
            self._lock.notify_all()

    def on(self, topic: str, where: Callable[[Received], bool] | None = None) -> list[Received]:
        with self._lock:
            return [
                m
                for m in self.messages
                if mqtt.topic_matches_sub(topic, m.topic) and (where is None or where(m))
            ]

    def wait_for(
        self,
        topic: str,
        where: Callable[[Received], bool] | None = None,
        *,
        count: int = 1,
        within: float = 15.0,
    ) -> list[Received]:
        """Block until ``count`` messages on ``topic`` (matching ``where``) arrived."""
        deadline = time.monotonic() + within
        with self._lock:
            while True:
                found = self.on(topic, where)
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({m.topic for m in self.messages})
                    raise AssertionError(
                        f"waited {within}s for {count} message(s) on {topic}; got "
                        f"{len(found)}; topics seen: {seen}"
                    )
                self._lock.wait(left)

    async def await_for(
        self,
        topic: str,
        where: Callable[[Received], bool] | None = None,
        *,
        count: int = 1,
        within: float = 15.0,
    ) -> list[Received]:
        """Like ``wait_for`` without blocking the event loop the server runs on."""
        deadline = time.monotonic() + within
        while True:
            found = self.on(topic, where)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                return self.wait_for(topic, where, count=count, within=0.01)
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def mqtt_collector() -> Iterator[Callable[..., MqttCollector]]:
    """``mqtt_collector(host, port, "smart_reid/#")`` -> a subscribed collector."""
    made: list[MqttCollector] = []

    def make(host: str, port: int, topics: str | list[str] = "#") -> MqttCollector:
        collector = MqttCollector(host, port, topics)
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()


@pytest.fixture
def server_data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def make_settings(server_data_dir: Path, models_dir: Path) -> Callable[..., Settings]:
    """Settings for a test server: real models from ../shared, a tmp data dir, no downloads.

    ``quality.min_height_px`` is lowered to 50 because CUHK03 crops are 60-160 px tall.
    Keyword arguments are dotted overrides: ``make_settings(**{"mqtt.port": 1884})``.
    """

    def make(**overrides: Any) -> Settings:
        tree: dict[str, Any] = {
            "data_dir": str(server_data_dir),
            "log_level": "warning",
            "models": {"dir": str(models_dir), "download": False},
            "quality": {"min_height_px": 50},
            "cameras": ["front", "back"],
            "mqtt": {"enabled": False},
            "http": {"port": 0},
        }
        for dotted, value in overrides.items():
            node = tree
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return load(None, environ={}, overrides=tree)

    return make
