"""What the cluster tests share: a private redis-server, the two-camera clip, cluster settings,
server processes started like a supervisor would, and waiting on a condition with a deadline.

The fixtures ``redis_server`` and ``clip`` are imported by the test modules that use them
(``from cluster_support import clip as clip``: the alias says the import is meant).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import free_port
from server_support import settings_for
from smart_reid_server.cluster.matcher import ClusterMatcher, FrameGateway
from smart_reid_server.cluster.messages import encode_jpeg
from smart_reid_server.cluster.worker import ClusterWorker
from smart_reid_server.config import Settings
from smart_reid_server.serve.app import SmartReidApp

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
START = 1_767_000_000.0
FPS = 10.0
# camera -> first frame index in vtest.avi (two parts of the video: two "cameras")
CAMERAS = {"a": 0, "b": 300}
STEP = 2
REPO = Path(__file__).resolve().parents[2]

Clip = list[tuple[str, str, float, bytes]]


class RedisServer:
    """A real redis-server with an append-only file, restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        if not Path(REDIS).exists():
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clip(video_dir: Path) -> Clip:
    return two_camera_clip(video_dir)


def two_camera_clip(video_dir: Path) -> Clip:
    """(camera, frame id, timestamp, JPEG) in lockstep order: a0 b0 a1 b1 ..."""
    import cv2

    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    frames: dict[int, np.ndarray[Any, Any]] = {}
    wanted = {start + i * STEP for start in CAMERAS.values() for i in range(16)}
    index = 0
    while index <= max(wanted):
        ok, image = capture.read()
        assert ok, "vtest.avi is shorter than expected"
        if index in wanted:
            frames[index] = image
        index += 1
    capture.release()
    out = []
    for i in range(16):
        for camera, start in CAMERAS.items():
            n = start + i * STEP
            out.append((camera, f"{camera}-{n}", START + i * STEP / FPS, encode_jpeg(frames[n])))
    return out


def cluster_settings(
    tmp_path: Path, models_dir: Path, name: str, redis: RedisServer, role: str, **more: Any
) -> Settings:
    data = tmp_path / name
    data.mkdir(exist_ok=True)
    sections: dict[str, Any] = {
        "cameras": list(CAMERAS),
        "quality": {"min_height_px": 64},
        "cluster": {"role": role, "redis_url": redis.url, "prefix": "t", "lease_s": 1.5},
        "queue": {"per_camera": 1000, "workers": 1},
        "http": {"enabled": False},
    }
    sections.update(more)
    return settings_for(data, models_dir, **sections)


def serve_process(config: dict[str, Any], path: Path, log: Path) -> subprocess.Popen[bytes]:
    """``smart_reid_server serve`` as its own process with ``config`` written to ``path``,
    output to ``log``, importing this checkout's code."""
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'addon' / 'inference_server'}{os.pathsep}{REPO}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "smart_reid_server", "serve", "--config", str(path)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def start_worker_process(
    tmp_path: Path,
    models_dir: Path,
    redis: RedisServer,
    name: str,
    sources: dict[str, Any] | None = None,
) -> subprocess.Popen[bytes]:
    """A worker process (``cluster.worker_id`` ``name``) on both cameras."""
    data = tmp_path / name
    data.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "data_dir": str(data),
        "log_level": "info",
        "models": {"dir": str(models_dir), "download": False},
        "cameras": list(CAMERAS),
        "quality": {"min_height_px": 64},
        "mqtt": {"enabled": False},
        "http": {"enabled": False},
        "queue": {"per_camera": 1000, "workers": 1},
        "cluster": {
            "role": "worker",
            "redis_url": redis.url,
            "prefix": "t",
            "lease_s": 1.5,
            "worker_id": name,
        },
    }
    if sources is not None:
        config["sources"] = sources
    return serve_process(config, tmp_path / f"{name}.yaml", tmp_path / f"{name}.log")


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate those of ``procs`` still running and wait for them to end."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)


async def wait_until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within}s for {what}")
        await asyncio.sleep(0.05)


def gateway_of(app: SmartReidApp) -> FrameGateway:
    assert isinstance(app.intake, FrameGateway)
    return app.intake


def matcher_of(app: SmartReidApp) -> ClusterMatcher:
    assert isinstance(app.cluster, ClusterMatcher)
    return app.cluster


@asynccontextmanager
async def two_workers(
    app: SmartReidApp, tmp_path: Path, models_dir: Path, redis: RedisServer, **more: Any
) -> AsyncIterator[list[ClusterWorker]]:
    """Two in-process workers (``w0``, ``w1``) on ``app``'s models, each owning one camera by
    the time they are yielded; those still in the list are stopped afterwards."""
    assert app.detector is not None and app.embedder is not None
    workers = [
        ClusterWorker(
            cluster_settings(tmp_path, models_dir, f"w{i}", redis, "worker", **more),
            app.detector,
            app.embedder,
            token=f"w{i}",
        )
        for i in range(2)
    ]
    for worker in workers:
        await worker.start()
    try:

        async def balanced() -> bool:
            return sorted(len(w.cameras) for w in workers) == [1, 1]

        await wait_until(balanced, 30, "each worker to own one camera")
        yield workers
    finally:
        for worker in workers:
            await worker.stop()
