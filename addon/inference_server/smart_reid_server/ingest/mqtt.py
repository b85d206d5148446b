"""Frames published to ``<base>/ingest/<camera>``: raw JPEG/PNG bytes or a JSON envelope.

A camera script that publishes garbage must not take the server down or flood the log: every
bad message costs one (rate-limited) warning naming the camera and the reason, and is dropped.
Parsing, base64 and image decoding happen in an executor; only routing runs on the event loop.
Each camera's messages are decoded in arrival order from a small backlog (``queue.per_camera``);
when a camera publishes faster than that, its oldest waiting message is dropped and counted,
the same back-pressure the pipeline queue applies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..serve.stats import CameraBook, LatencyStats
from ..types import CAMERA_NAME, Frame
from ..vision.decode import (
    BadFrameError,
    BoxBudget,
    decode_image,
    parse_detections,
    parse_timestamp,
)
from .sources import QuietLog

_LOGGER = logging.getLogger(__name__)
MAX_FRAME_ID = 128


class _Sink(Protocol):
    def offer(self, frame: Frame) -> bool: ...


class _Subscriber(Protocol):
    def subscribe(self, topic_filter: str, handler: Any) -> None: ...


@dataclass(slots=True)
class IngestStats:
    """Every received message ends in exactly one of accepted, rejected or dropped."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class _Parsed:
    frame: Frame
    decode_ms: float


class MqttIngest:
    """Routes ``<base>/ingest/<camera>`` messages into the pipeline."""

    def __init__(
        self,
        sink: _Sink,
        cameras: CameraBook,
        *,
        base_topic: str,
        max_bytes: int,
        max_pending_per_camera: int = 4,
        latency: LatencyStats | None = None,
        boxes: BoxBudget | None = None,
    ) -> None:
        self._sink = sink
        self._boxes = boxes if boxes is not None else BoxBudget()
        self._cameras = cameras
        # "#", not "+": a frame sent to a deeper topic (``ingest/front/raw``) or to ``ingest``
        # itself would otherwise vanish without a trace; it is rejected with a log line.
        self.topic_filter = f"{base_topic.rstrip('/')}/ingest/#"
        self._prefix = f"{base_topic.rstrip('/')}/ingest/"
        self._max_bytes = max_bytes
        self._max_pending = max(1, max_pending_per_camera)
        self._latency = latency
        self._backlog: dict[str, deque[tuple[bytes, float, float]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)
        self._quiet = QuietLog(_LOGGER)
        self.stats = IngestStats()

    def attach(self, subscriber: _Subscriber) -> None:
        subscriber.subscribe(self.topic_filter, self.on_message)

    def on_message(self, topic: str, payload: bytes) -> None:
        """Called on the event loop for every ingest message."""
        self.stats.received += 1
        camera = topic[len(self._prefix) :] if topic.startswith(self._prefix) else ""
        if "/" in camera or not camera:
            self._reject(
                topic[:200],
                f"topic {topic[:200]!r} is not an ingest topic: publish each camera's frames to "
                f"{self._prefix}<camera> (one level, no sub-topics)",
                key="not_an_ingest_topic",  # one key: hostile topic names cannot grow the limiter
            )
            return
        if not CAMERA_NAME.match(camera):
            self._reject(camera or topic, "topic does not end in a valid camera name (a-z, 0-9, _)")
            return
        if not self._cameras.accepts(camera):
            self._reject(
                camera,
                "unknown camera; add it to `cameras` or set auto_add_cameras: true"
                + (" (it is, but the camera limit is reached)" if self._cameras.auto_add else ""),
            )
            return
        backlog = self._backlog.setdefault(camera, deque())
        if len(backlog) >= self._max_pending:
            backlog.popleft()
            self.stats.dropped += 1
            self._cameras.dropped(camera)
            self._quiet.warning(
                f"busy:{camera}",
                "MQTT ingest for camera %s: frames arrive faster than they are decoded; "
                "dropping the oldest",
                camera,
            )
        backlog.append((payload, time.time(), time.monotonic()))
        if camera not in self._workers:
            task = asyncio.get_running_loop().create_task(self._work(camera))
            self._workers[camera] = task

    async def drain(self) -> None:
        """Wait until every received message was decoded and offered (shutdown, tests)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def _work(self, camera: str) -> None:
        """Decode one camera's messages in arrival order, one at a time, off the loop."""
        loop = asyncio.get_running_loop()
        backlog = self._backlog[camera]
        try:
            while backlog:
                payload, arrived, received = backlog.popleft()
                try:
                    parsed = await loop.run_in_executor(
                        None, self._parse, camera, payload, arrived, received
                    )
                except BadFrameError as err:
                    self._reject(camera, err.message)
                    continue
                except asyncio.CancelledError:
                    self.stats.dropped += 1
                    raise
                except Exception as err:  # a decoder bug must cost one message, not the camera
                    self._reject(camera, f"could not be decoded ({type(err).__name__}: {err})")
                    continue
                if self._latency is not None:
                    self._latency.record("decode", parsed.decode_ms)
                try:
                    accepted = self._sink.offer(parsed.frame)
                except Exception:
                    _LOGGER.exception("the pipeline failed to accept a frame from %s", camera)
                    accepted = False
                if accepted:
                    self.stats.accepted += 1
                else:
                    self.stats.dropped += 1
        finally:
            # Cancelled (shutdown): what is still waiting is dropped, and counted as such.
            self.stats.dropped += len(backlog)
            backlog.clear()
            del self._workers[camera]
            del self._backlog[camera]

    def _parse(self, camera: str, payload: bytes, arrived: float, received: float) -> _Parsed:
        """Executor side: JSON envelope or raw image -> Frame (raises BadFrameError)."""
        t0 = time.monotonic()
        envelope: Mapping[str, Any] | None = None
        data = payload
        if payload[:1] in (b"{", b" ", b"\n", b"\r", b"\t") and payload.lstrip()[:1] == b"{":
            envelope = _load_envelope(payload)
            data = _image_bytes(envelope)
        image = decode_image(data, max_bytes=self._max_bytes)
        timestamp = arrived
        frame_id = ""
        detections = None
        if envelope is not None:
            timestamp = parse_timestamp(envelope.get("timestamp"), arrived)
            frame_id = str(envelope.get("frame_id") or "")[:MAX_FRAME_ID]
            if "detections" in envelope and envelope["detections"] is not None:
                detections = parse_detections(
                    envelope["detections"], int(image.shape[1]), int(image.shape[0]), self._boxes
                )
        frame = Frame(
            camera=camera,
            image=image,
            timestamp=timestamp,
            source="mqtt",
            frame_id=frame_id or f"{camera}-mqtt-{next(self._ids):06d}",
            detections=detections,
            received_monotonic=received,
        )
        return _Parsed(frame, (time.monotonic() - t0) * 1000.0)

    def _reject(self, camera: str, reason: str, *, key: str | None = None) -> None:
        self.stats.rejected += 1
        self._cameras.rejected(camera)
        self._quiet.warning(
            key or f"{camera}:{reason}", "MQTT frame for camera %s dropped: %s", camera, reason
        )


def _load_envelope(payload: bytes) -> Mapping[str, Any]:
    try:
        envelope = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise BadFrameError(400, f"payload is not valid JSON ({err})") from None
    if not isinstance(envelope, dict):
        raise BadFrameError(400, 'JSON payload must be an object like {"image": "<base64>"}')
    return envelope


def _image_bytes(envelope: Mapping[str, Any]) -> bytes:
    encoded = envelope.get("image")
    if not isinstance(encoded, str) or not encoded:
        raise BadFrameError(400, 'JSON payload needs "image": a base64 JPEG or PNG')
    if encoded.startswith("data:") and "," in encoded:
        encoded = encoded.split(",", 1)[1]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadFrameError(400, '"image" is not valid base64') from None
