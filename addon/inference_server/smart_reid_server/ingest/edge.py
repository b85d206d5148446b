"""Edge detectors (a Jetson, a Coral box, a smart camera) as camera sources over MQTT.

A device that already finds and tracks people publishes one JSON envelope per frame on
``<base>/edge/<device>``; the envelope is documented in docs/sources.md. We check it strictly
(every problem is logged with the field and what is wrong, then the message is dropped), keep
only ``person`` detections, take the picture inline (base64 JPEG) or fetch it from the URL the
device serves it at, and hand the frame on with the device's boxes and track ids, so the
pipeline skips detection. Envelopes without a person are dropped before any download.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import voluptuous as vol

from ..types import CAMERA_NAME, Box, Detection, Frame, Image
from ..vision.decode import MAX_SIDE_PX, BadFrameError, BoxBudget, check_inside, decode_image
from .sources import (
    BackgroundTasks,
    FetchError,
    FrameSink,
    MessageSubscriber,
    QuietLog,
    SourceStats,
    fetch_bytes,
    finite_number,
    offer,
    url_allowed,
)

_LOGGER = logging.getLogger(__name__)
_QUIET = QuietLog(_LOGGER)

ENVELOPE_VERSION = 1
MAX_CONCURRENT_FETCHES = 4
DEVICE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise vol.Invalid(f"expected an integer, got {value!r}")
    return value


def _camera(value: Any) -> str:
    if not isinstance(value, str) or not CAMERA_NAME.match(value):
        raise vol.Invalid(f"camera {value!r} must be 1-64 characters of a-z, 0-9 and _")
    return value


def _device(value: Any) -> str:
    if not isinstance(value, str) or not DEVICE_NAME.match(value):
        raise vol.Invalid(f"device {value!r} must be 1-64 characters of A-Z, a-z, 0-9, _ . : -")
    return value


def _track_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise vol.Invalid(f"track_id must be a non-empty string or integer, got {value!r}")
    return str(value)


def _http_url(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+", value):
        raise vol.Invalid(f"url must be an http:// or https:// URL, got {value!r}")
    return value


def _box(value: Any) -> list[float]:
    if not isinstance(value, list) or len(value) != 4:
        raise vol.Invalid(f"box must be [x1, y1, x2, y2], got {value!r}")
    x1, y1, x2, y2 = (finite_number(v) for v in value)
    if x2 <= x1 or y2 <= y1:
        raise vol.Invalid(f"box {value} must have x2 > x1 and y2 > y1 (pixel corners)")
    return [x1, y1, x2, y2]


def _one_picture(frame: dict[str, Any]) -> dict[str, Any]:
    if ("jpeg" in frame) == ("url" in frame):
        raise vol.Invalid("frame needs exactly one of jpeg (base64) or url")
    return frame


_SIDE = vol.All(_integer, vol.Range(min=1, max=MAX_SIDE_PX))

ENVELOPE_SCHEMA = vol.Schema(
    {
        vol.Required("version"): vol.All(
            _integer,
            vol.In(
                [ENVELOPE_VERSION], msg=f"unsupported version; this server reads {ENVELOPE_VERSION}"
            ),
        ),
        vol.Required("source"): {
            vol.Required("device"): _device,
            vol.Required("camera"): _camera,
            vol.Optional("timestamp"): vol.All(
                finite_number, vol.Range(min=0.0, min_included=False)
            ),
        },
        vol.Required("frame"): vol.All(
            {
                vol.Optional("number"): vol.All(_integer, vol.Range(min=0)),
                vol.Required("width"): _SIDE,
                vol.Required("height"): _SIDE,
                vol.Optional("jpeg"): vol.All(str, vol.Length(min=1)),
                vol.Optional("url"): _http_url,
            },
            _one_picture,
        ),
        vol.Required("detections"): [
            {
                vol.Optional("track_id"): _track_id,
                vol.Required("class"): str,
                vol.Required("confidence"): vol.All(finite_number, vol.Range(min=0.0, max=1.0)),
                vol.Required("box"): _box,
            }
        ],
    },
    extra=vol.REMOVE_EXTRA,
)


class EnvelopeError(ValueError):
    """An envelope that cannot be used; the message names the field and the problem."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A checked envelope with its person detections (in declared frame pixels)."""

    device: str
    camera: str
    timestamp: float
    number: int | None
    width: int
    height: int
    jpeg: bytes | None
    url: str | None
    persons: list[Detection]


def parse_envelope(payload: bytes, *, max_bytes: int, boxes: BoxBudget | None = None) -> Envelope:
    """Check an MQTT payload against the envelope; raises ``EnvelopeError`` saying why not.

    Person boxes go through ``boxes`` (near-identical ones merged, at most ``max_persons``).
    """
    try:
        raw = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise EnvelopeError(f"not JSON: {err}") from None
    if not isinstance(raw, dict):
        raise EnvelopeError("the envelope must be a JSON object")
    try:
        data = ENVELOPE_SCHEMA(raw)
    except vol.MultipleInvalid as err:
        problems = []
        for error in err.errors:
            path = ".".join(str(p) for p in error.path)
            problems.append(f"{path}: {error.msg}" if path else error.msg)
        raise EnvelopeError("; ".join(problems)) from None
    frame = data["frame"]
    width, height = frame["width"], frame["height"]
    budget = boxes if boxes is not None else BoxBudget()
    try:
        budget.check_count(len(data["detections"]))
    except BadFrameError as err:
        raise EnvelopeError(err.message) from None
    persons: list[Detection] = []
    for index, item in enumerate(data["detections"]):
        if item["class"].lower() != "person":
            continue
        x1, y1, x2, y2 = item["box"]
        try:
            check_inside(
                Box(x1, y1, x2, y2), width, height, f"detections.{index}.box {item['box']}"
            )
        except BadFrameError as err:
            raise EnvelopeError(err.message) from None
        persons.append(
            Detection(
                box=Box(x1, y1, x2, y2).clipped(width, height),
                score=item["confidence"],
                label="person",
                track_id=item.get("track_id"),
            )
        )
    try:
        persons = budget.apply(persons)
    except BadFrameError as err:
        raise EnvelopeError(err.message) from None
    jpeg: bytes | None = None
    if "jpeg" in frame:
        text: str = frame["jpeg"]
        if len(text) * 3 // 4 > max_bytes:
            raise EnvelopeError(f"frame.jpeg is over the {max_bytes} byte limit")
        try:
            jpeg = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise EnvelopeError(f"frame.jpeg is not valid base64 ({err})") from None
    source = data["source"]
    return Envelope(
        device=source["device"],
        camera=source["camera"],
        timestamp=float(source.get("timestamp") or time.time()),
        number=frame.get("number"),
        width=width,
        height=height,
        jpeg=jpeg,
        url=frame.get("url"),
        persons=persons,
    )


def _fit(persons: list[Detection], envelope: Envelope, image: Image) -> list[Detection]:
    """Boxes are in the declared frame size; scale them if the picture was sent smaller."""
    height, width = image.shape[:2]
    if (width, height) == (envelope.width, envelope.height):
        return persons
    sx, sy = width / envelope.width, height / envelope.height
    return [
        Detection(
            box=Box(d.box.x1 * sx, d.box.y1 * sy, d.box.x2 * sx, d.box.y2 * sy).clipped(
                width, height
            ),
            score=d.score,
            label=d.label,
            track_id=d.track_id,
        )
        for d in persons
    ]


class EdgeSource:
    """Receives edge-detector envelopes and offers their frames (see the module docstring)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        sink: FrameSink,
        session: aiohttp.ClientSession,
        *,
        topic: str,
        boxes: BoxBudget | None = None,
    ) -> None:
        self.name = "edge"
        self.topic = topic
        # received = offered + dropped + rejected + no_person (fetch errors are rejections too).
        self.stats = SourceStats(extra={"fetched": 0, "no_person": 0, "fetch_errors": 0})
        self._boxes = boxes if boxes is not None else BoxBudget()
        self._url_prefixes: list[str] = list(config.get("allowed_url_prefixes") or [])
        self._sink = sink
        self._session = session
        self._max_bytes = int(config.get("max_frame_mb", 10)) * 1024 * 1024
        self._timeout_s = float(config.get("fetch_timeout_s", 5.0))
        self._work = BackgroundTasks()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

    def attach(self, subscriber: MessageSubscriber) -> None:
        subscriber.subscribe(self.topic, self.on_message)
        self.stats.state = "listening"

    async def stop(self) -> None:
        await self._work.stop()
        self.stats.state = "stopped"

    async def drain(self) -> None:
        """Wait until every envelope received so far has been handled (tests, shut-down)."""
        await self._work.drain()

    def on_message(self, topic: str, payload: bytes) -> None:
        """MQTT handler (event loop): parsing, fetching and decoding happen in a task."""
        if self._work.stopped:
            return
        self.stats.received += 1
        self._work.spawn(self.handle(topic, payload))

    async def handle(self, topic: str, payload: bytes) -> Frame | None:
        """Check one envelope, get its picture, offer the frame; the frame, or None if dropped."""
        try:
            return await self._handle(topic, payload)
        except asyncio.CancelledError:
            self.stats.dropped += 1
            raise
        except Exception as err:  # a bug or a hostile payload costs one message, never a task
            self._reject(topic, f"could not be handled ({type(err).__name__}: {err})")
            return None

    async def _handle(self, topic: str, payload: bytes) -> Frame | None:
        loop = asyncio.get_running_loop()
        try:
            envelope = await loop.run_in_executor(
                None,
                lambda: parse_envelope(payload, max_bytes=self._max_bytes, boxes=self._boxes),
            )
        except EnvelopeError as err:
            self._reject(topic, str(err))
            return None
        if not envelope.persons:
            self.stats.extra["no_person"] += 1
            return None
        data = envelope.jpeg
        if data is None:
            assert envelope.url is not None
            if not url_allowed(envelope.url, self._url_prefixes):
                self._reject(
                    topic,
                    f"frame.url {envelope.url[:200]!r} of {envelope.device} is not under "
                    "sources.edge.allowed_url_prefixes"
                    + ("" if self._url_prefixes else " (empty: URL frames are off)")
                    + "; send the picture inline (frame.jpeg) or allow the device's URL",
                )
                return None
            async with self._slots:
                try:
                    data = await fetch_bytes(
                        self._session,
                        envelope.url,
                        max_bytes=self._max_bytes,
                        timeout_s=self._timeout_s,
                    )
                except FetchError as err:
                    self.stats.extra["fetch_errors"] += 1
                    self._reject(topic, f"frame from {envelope.device}: {err}")
                    return None
            self.stats.extra["fetched"] += 1
        picture = data
        try:
            image = await loop.run_in_executor(
                None, lambda: decode_image(picture, max_bytes=self._max_bytes)
            )
        except BadFrameError as err:
            self._reject(topic, f"frame from {envelope.device}: {err.message}")
            return None
        if self._work.stopped:
            self.stats.dropped += 1
            return None
        number = envelope.number
        track_ids = [d.track_id for d in envelope.persons if d.track_id is not None]
        extra: dict[str, Any] = {"edge_device": envelope.device}
        if number is not None:
            extra["edge_frame"] = number
        if track_ids:
            extra["track_ids"] = track_ids
        frame = Frame(
            camera=envelope.camera,
            image=image,
            timestamp=envelope.timestamp,
            source="edge",
            frame_id=f"{envelope.device}-{number if number is not None else self.stats.received}",
            detections=_fit(envelope.persons, envelope, image),
            extra=extra,
        )
        offer(self._sink, frame, self.stats)
        return frame

    def _reject(self, topic: str, reason: str) -> None:
        self.stats.rejected += 1
        _QUIET.warning(
            f"{topic}:{reason[:80]}", "rejected an edge envelope on %s: %s", topic, reason
        )
