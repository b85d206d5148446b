"""End to end: ``python -m smart_reid_server serve`` as a real process, a real broker, real images
uploaded over HTTP, and what Home Assistant would read on MQTT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smart_reid_server.models.download import ModelManager
from smart_reid_server.vision.embed import Embedder

from tests.server.server_support import CuhkPicker, cuhk, full_box

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

BASE = "sr_e2e"


class ServerProcess:
    def __init__(self, tmp_path: Path, models_dir: Path, broker_port: int, http_port: int) -> None:
        self.url = f"http://127.0.0.1:{http_port}"
        self.config = tmp_path / "config.yaml"
        self.config.write_text(
            "\n".join(
                [
                    f"data_dir: {tmp_path / 'data'}",
                    "log_level: info",
                    "cameras: [front, back]",
                    "models:",
                    f"  dir: {models_dir}",
                    "  download: false",
                    "quality:",
                    "  min_height_px: 50  # CUHK03 crops are 60-160 px tall",
                    "mqtt:",
                    "  host: 127.0.0.1",
                    f"  port: {broker_port}",
                    f"  base_topic: {BASE}",
                    "http:",
                    f"  port: {http_port}",
                    "  token: e2e-token",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self.log = tmp_path / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_REID_")}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "smart_reid_server", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=1) as response:
                    if json.load(response)["status"] in ("ready", "degraded"):
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"server did not become ready:\n{self.log.read_text()}")

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method)
        request.add_header("Authorization", "Bearer e2e-token")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    def upload(self, camera: str, jpeg: bytes, timestamp: float) -> dict[str, Any]:
        boundary = "----smartreid"
        fields = {
            "camera": camera,
            "timestamp": str(timestamp),
            "detections": json.dumps(full_box(jpeg)),
        }
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        ]
        parts.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                'filename="f.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode()
            + jpeg
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        status, body = self.request(
            "POST", "/api/frames", b"".join(parts), f"multipart/form-data; boundary={boundary}"
        )
        assert status == 200, body
        return dict(body)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code


def _embedder(models_dir: Path, tmp_path: Path) -> Embedder:
    cfg = {"dir": str(models_dir), "download": False, "reid": "person-reidentification-retail-0277"}
    return Embedder.from_config(cfg, ModelManager.from_config(cfg, tmp_path / "picker"))


@pytest.fixture
def server_process(
    tmp_path: Path,
    models_dir: Path,
    mosquitto_broker: tuple[str, int],
    unused_tcp_port: int,
) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path, models_dir, mosquitto_broker[1], unused_tcp_port)
    yield server
    if server.process is not None:
        server.process.kill()
        server.process.wait()


def test_served_process_handles_real_uploads_and_publishes_mqtt(
    server_process: ServerProcess,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
    cuhk03_dir: Path,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    host, port = mosquitto_broker
    watcher = mqtt_collector(host, port, f"{BASE}/#")
    server_process.start()
    watcher.wait_for(f"{BASE}/status", lambda m: m.payload == b"online")
    info = watcher.wait_for(f"{BASE}/info")[-1].json()
    assert info["settings"]["auth_required"] is True and info["cameras"] == ["front", "back"]

    # The person and the stranger are chosen with the real model (see CuhkPicker).
    picker = CuhkPicker(cuhk03_dir, _embedder(models_dir, tmp_path))
    threshold = float(info["settings"]["match_threshold"])
    view_a, view_b = picker.same_person(threshold + 0.02)
    stranger = picker.stranger(
        [view_a, view_b], float(info["settings"]["uncertain_threshold"]) - 0.02
    )
    now = time.time()
    first = server_process.upload("front", cuhk(cuhk03_dir, view_a), now)["decisions"][0]
    assert first["new_person"] is True and first["match"] == "new"
    (second,) = server_process.upload("back", cuhk(cuhk03_dir, view_b), now + 1)["decisions"]
    assert second["person_id"] == first["person_id"] and second["match"] == "matched"
    assert second["new_person"] is False and second["visit_cameras"] == ["front", "back"]
    (third,) = server_process.upload("front", cuhk(cuhk03_dir, stranger), now + 2)["decisions"]
    assert third["person_id"] != first["person_id"] and third["new_person"] is True

    new_person = watcher.wait_for(f"{BASE}/events/new_person", count=2)
    assert [m.json()["person_id"] for m in new_person] == [first["person_id"], third["person_id"]]
    updated = watcher.wait_for(f"{BASE}/events/visit_updated")[0].json()
    assert updated["reason"] == "camera_added" and updated["visit"]["cameras"] == ["front", "back"]
    person_id = first["person_id"]
    state = watcher.wait_for(f"{BASE}/person/{person_id}/state")[-1].json()
    assert state["present"] is True and state["cameras"] == ["back", "front"]
    time.sleep(0.5)
    assert len(watcher.on(f"{BASE}/events/new_person")) == 2  # one alert per person

    status, persons = server_process.request("GET", "/api/persons")
    assert status == 200 and len(persons["persons"]) == 2
    status, body = server_process.request("GET", "/api/persons/ffffffffffff")
    assert status == 404 and body["error"] == "not_found"

    # Graceful stop: retained status goes offline, exit code 0, identities stay on disk.
    assert server_process.stop(signal.SIGTERM) == 0
    watcher.wait_for(f"{BASE}/status", lambda m: m.payload == b"offline")
    log = server_process.log.read_text()
    assert "level=info logger=smart_reid_server.serve.app msg=stopped" in log
    assert "Traceback" not in log

    # Restart on the same data dir: everyone is still known.
    server_process.start()
    status, persons = server_process.request("GET", "/api/persons")
    assert {p["person_id"] for p in persons["persons"]} == {person_id, third["person_id"]}


def test_killed_process_leaves_offline_as_last_will(
    server_process: ServerProcess,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
) -> None:
    host, port = mosquitto_broker
    server_process.start()
    watcher = mqtt_collector(host, port, f"{BASE}/status")
    watcher.wait_for(f"{BASE}/status", lambda m: m.payload == b"online")
    assert server_process.stop(signal.SIGKILL) == -signal.SIGKILL
    offline = watcher.wait_for(f"{BASE}/status", lambda m: m.payload == b"offline", within=30)
    assert offline
    late = mqtt_collector(host, port, f"{BASE}/status")
    retained = late.wait_for(f"{BASE}/status")
    assert retained[-1].payload == b"offline" and retained[-1].retain
