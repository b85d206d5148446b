"""Test helpers for the camera-source tests: a recording sink, a tiny HTTP server, real pictures.

Pictures are built from the real data in ../shared at test time (never committed): full frames
are a vtest.avi street frame with CUHK03 person crops pasted at known boxes, so a test can check
that the box a source reports really frames the person that was put there.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import paho.mqtt.client as mqtt
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion
from smart_reid_server.types import Box, Frame, Image


class RecordingSink:
    """A FrameSink that keeps every frame; ``accepting`` False simulates a full queue."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.refused: list[Frame] = []
        self.accepting = True
        self.on_loop_thread: list[bool] = []

    def offer(self, frame: Frame) -> bool:
        try:
            asyncio.get_running_loop()
            self.on_loop_thread.append(True)
        except RuntimeError:
            self.on_loop_thread.append(False)
        if not self.accepting:
            self.refused.append(frame)
            return False
        self.frames.append(frame)
        return True

    async def wait_for(self, count: int, within_s: float = 15.0) -> list[Frame]:
        deadline = time.monotonic() + within_s
        while len(self.frames) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"waited {within_s}s for {count} frames, got {len(self.frames)}"
                )
            await asyncio.sleep(0.02)
        return self.frames


async def wait_until(
    condition: Callable[[], bool], within_s: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within_s}s for {what}")
        await asyncio.sleep(0.02)


@dataclass
class LocalHttp:
    """An aiohttp server on 127.0.0.1 with an ephemeral port, restartable on the same port."""

    routes: Callable[[web.Application], None]
    port: int = 0
    requests: list[web.Request] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> LocalHttp:
        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            self.requests.append(request)
            return await handler(request)

        app = web.Application(middlewares=[record])
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            sockets = getattr(site._server, "sockets", None)
            assert sockets, "the test HTTP server did not bind"
            self.port = int(sockets[0].getsockname()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def paths(self, prefix: str = "") -> list[str]:
        return [r.path for r in self.requests if r.path.startswith(prefix)]


def video_frame(video: Path, index: int = 0) -> Image:
    """Frame ``index`` of a video as BGR."""
    with av.open(str(video)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                return np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
    raise ValueError(f"{video} has fewer than {index + 1} frames")


def person_crop(cuhk03: Path, identity: int, cell: int = 0, split: str = "val") -> Image:
    path = cuhk03 / split / f"{identity:04d}_{cell:02d}.jpg"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(path)
    return np.asarray(image, dtype=np.uint8)


def paste(background: Image, crop: Image, box: Box | list[float]) -> Image:
    """A copy of ``background`` with ``crop`` resized into ``box`` (integer pixel corners)."""
    x1, y1, x2, y2 = (int(v) for v in (box.as_list() if isinstance(box, Box) else box))
    resized = cv2.resize(crop, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    out = background.copy()
    out[y1:y2, x1:x2] = resized
    return out


def publish_all(host: str, port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish in order over one real MQTT connection (QoS 1), waiting for each to leave."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"test-publisher-{uuid.uuid4().hex[:6]}",
    )
    client.connect(host, port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def jpeg(image: Image, quality: int = 92) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(data.tobytes())


def region(image: Image, box: Box) -> Image:
    return image[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)]


def mean_abs_diff(a: Image, b: Image) -> float:
    other = b if a.shape == b.shape else cv2.resize(b, (a.shape[1], a.shape[0]))
    return float(np.mean(np.abs(a.astype(np.int16) - np.asarray(other).astype(np.int16))))


def records(caplog_records: list[logging.LogRecord], level: int, contains: str) -> list[str]:
    return [
        r.getMessage() for r in caplog_records if r.levelno == level and contains in r.getMessage()
    ]
