"""Frigate NVR as a camera source: its person events become frames with Frigate's box.

Frigate already detects and tracks people per camera; what it cannot do is tell that the person
on three cameras is one person. So we listen to ``frigate/events``, and for each person event
fetch the event's snapshot from Frigate's HTTP API and hand it on with Frigate's box as a
supplied detection: the pipeline skips its own detector and goes straight to re-identification.

Snapshot choice (``snapshot: full``, the default): ``/api/events/<id>/snapshot.jpg`` with
``crop=0&bbox=0&timestamp=0`` is the whole detect-resolution frame of the event's best moment,
unannotated, where ``after.snapshot.box`` applies as is. ``snapshot: crop`` asks for
``crop=1`` instead: a smaller download around the person whose exact placement Frigate does not
publish, so the frame goes through our detector. Frigate honours these query parameters only
while the event is in progress, which is why ``end`` messages are never fetched.

Frigate publishes an ``update`` for every zone change and every better snapshot. We fetch again
only when the snapshot itself changed (``snapshot.frame_time``, or for older Frigate versions
``snapshot_time`` / ``top_score``), so a person lingering in a zone costs one download, not one
per message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import voluptuous as vol

from ..types import CAMERA_NAME, Box, Detection, Frame
from ..vision.decode import BadFrameError, decode_image
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
)

_LOGGER = logging.getLogger(__name__)
_QUIET = QuietLog(_LOGGER)

MAX_TRACKED_EVENTS = 1024
MAX_CONCURRENT_FETCHES = 4
# Frigate's event ids look like "1763740099.123456-abc123". The id becomes part of the snapshot
# URL, so anything else (slashes, "..", "?", "#", spaces) is refused, never pasted into a URL.
EVENT_ID = re.compile(r"^(?!\.+$)[A-Za-z0-9._-]{1,128}$")


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not EVENT_ID.match(value):
        raise vol.Invalid(
            f"event id {str(value)[:80]!r} is not a Frigate event id (letters, digits, . _ -)"
        )
    return value


def _box(value: Any) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise vol.Invalid(f"box must be [x1, y1, x2, y2], got {value!r}")
    return [finite_number(v) for v in value]


# Only the fields we use are checked; Frigate adds fields between versions.
_OBJECT = vol.Schema(
    {
        vol.Required("id"): _event_id,
        vol.Required("camera"): str,
        vol.Required("label"): str,
        vol.Optional("sub_label", default=None): object,
        vol.Optional("score", default=0.0): vol.Any(None, finite_number),
        vol.Optional("top_score", default=None): vol.Any(None, finite_number),
        vol.Optional("box", default=None): _box,
        vol.Optional("false_positive", default=False): vol.Any(None, bool),
        vol.Optional("current_zones", default=[]): vol.Any(None, [str]),
        vol.Optional("has_snapshot", default=False): vol.Any(None, bool),
        vol.Optional("frame_time", default=None): vol.Any(None, finite_number),
        vol.Optional("start_time", default=None): vol.Any(None, finite_number),
        vol.Optional("snapshot_time", default=None): vol.Any(None, finite_number),
        vol.Optional("snapshot", default=None): vol.Any(
            None,
            vol.Schema(
                {
                    vol.Optional("frame_time", default=None): vol.Any(None, finite_number),
                    vol.Optional("box", default=None): _box,
                    vol.Optional("score", default=None): vol.Any(None, finite_number),
                },
                extra=vol.ALLOW_EXTRA,
            ),
        ),
    },
    extra=vol.ALLOW_EXTRA,
)

_EVENT = vol.Schema(
    {
        vol.Required("type"): vol.In(["new", "update", "end"]),
        vol.Required("after"): _OBJECT,
    },
    extra=vol.ALLOW_EXTRA,
)


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """A person event worth a download: what to fetch and how to label the frame."""

    event_id: str
    frigate_camera: str
    camera: str
    box: Box
    score: float
    timestamp: float
    sub_label: Any


def _snapshot_key(after: Mapping[str, Any]) -> tuple[Any, ...]:
    """Changes exactly when Frigate has a different snapshot for the event."""
    snapshot = after.get("snapshot")
    if snapshot and snapshot.get("frame_time") is not None:
        return ("frame_time", snapshot["frame_time"])
    if after.get("snapshot_time") is not None:
        return ("snapshot_time", after["snapshot_time"])
    return ("score", after.get("has_snapshot"), after.get("top_score") or after.get("score"))


def _reason(err: vol.Invalid) -> str:
    path = ".".join(str(p) for p in err.path)
    return f"{path}: {err.msg}" if path else str(err.msg)


class FrigateSource:
    """Turns Frigate person events into frames for the pipeline (see the module docstring)."""

    def __init__(
        self, config: Mapping[str, Any], sink: FrameSink, session: aiohttp.ClientSession
    ) -> None:
        self.name = "frigate"
        # Every message is counted once: received = ignored + skipped_duplicates + rejected
        # + coalesced + fetch_errors + no_snapshot + offered + dropped.
        self.stats = SourceStats(
            extra={
                "fetched": 0,
                "skipped_duplicates": 0,
                "ignored": 0,  # not a person event worth a picture (label, score, zone, end)
                "coalesced": 0,  # replaced by a newer update of the same event before fetching
                "fetch_errors": 0,
                "no_snapshot": 0,  # Frigate had no snapshot (yet): HTTP 404
            }
        )
        self._config = config
        self._sink = sink
        self._session = session
        self._url = str(config["url"]).rstrip("/")
        self._camera_map: dict[str, str] = dict(config.get("camera_map") or {})
        self._zones = set(config.get("zones") or [])
        self._min_score = float(config.get("min_score", 0.6))
        self._crop = config.get("snapshot", "full") == "crop"
        self._max_bytes = int(config.get("max_snapshot_mb", 20)) * 1024 * 1024
        self._timeout_s = float(config.get("fetch_timeout_s", 10.0))
        self._events: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._work = BackgroundTasks()
        self._fetching: set[str] = set()
        self._waiting: dict[str, SnapshotRequest] = {}
        self._fetch_slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)
        self._warned_cameras: set[str] = set()
        self._frigate_down = False

    def attach(self, subscriber: MessageSubscriber) -> None:
        """Subscribe to Frigate's events topic on the given MQTT connection."""
        subscriber.subscribe(str(self._config.get("topic", "frigate/events")), self.on_message)
        self.stats.state = "listening"

    async def stop(self) -> None:
        await self._work.stop()
        self.stats.state = "stopped"

    async def drain(self) -> None:
        """Wait until every snapshot download started so far has finished (tests, shut-down)."""
        await self._work.drain()

    def on_message(self, topic: str, payload: bytes) -> None:
        """MQTT handler (event loop): decide at once, download in the background."""
        if self._work.stopped:
            return
        self.stats.received += 1
        try:
            request = self.consider(topic, payload)
        except Exception as err:  # a hostile payload costs one message, never the subscription
            self._reject(topic, f"could not be handled ({type(err).__name__}: {err})")
            return
        if request is None:
            return
        if request.event_id in self._fetching:
            # Frigate serves only its current snapshot: fetch once more after this one ends.
            if self._waiting.get(request.event_id) is not None:
                self.stats.extra["coalesced"] += 1
            self._waiting[request.event_id] = request
            return
        self._fetching.add(request.event_id)
        self._work.spawn(self._fetch_event(request))

    async def _fetch_event(self, request: SnapshotRequest) -> None:
        """One event's downloads, one at a time, so each box meets the snapshot it belongs to."""
        current: SnapshotRequest | None = request
        try:
            while current is not None and not self._work.stopped:
                try:
                    await self._fetch_and_offer(current)
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    self._reject(
                        "frigate", f"event {current.event_id}: {type(err).__name__}: {err}"
                    )
                current = self._waiting.pop(request.event_id, None)
        finally:
            # Shut down (stopped or cancelled) before these were offered: counted as dropped.
            self.stats.dropped += int(current is not None)
            self._fetching.discard(request.event_id)
            if self._waiting.pop(request.event_id, None) is not None:
                self.stats.dropped += 1

    def consider(self, topic: str, payload: bytes) -> SnapshotRequest | None:
        """Parse one ``frigate/events`` message; a request when a new snapshot should be fetched."""
        try:
            message = json.loads(payload)
            event = _EVENT(message)
        except vol.Invalid as err:
            self._reject(topic, _reason(err))
            return None
        except (ValueError, RecursionError) as err:
            self._reject(topic, f"not JSON ({err})")
            return None
        after: dict[str, Any] = event["after"]
        event_id: str = after["id"]
        if event["type"] == "end":
            self._events.pop(event_id, None)
            return self._ignore()
        if after["label"] != "person" or after["false_positive"]:
            return self._ignore()
        snapshot = after["snapshot"] or {}
        box_values = snapshot.get("box") or after["box"]
        score = snapshot.get("score")
        if score is None:
            score = after["score"] or 0.0
        if box_values is None or score < self._min_score:
            return self._ignore()
        if self._zones and not self._zones.intersection(after["current_zones"] or []):
            return self._ignore()
        camera = self._camera(after["camera"])
        if camera is None:
            return self._ignore()
        key = _snapshot_key(after)
        if self._events.get(event_id) == key:
            self.stats.extra["skipped_duplicates"] += 1
            return None
        self._remember(event_id, key)
        x1, y1, x2, y2 = box_values
        if x2 <= x1 or y2 <= y1:
            self._reject(topic, f"event {event_id} has an empty box {box_values}")
            return None
        timestamp = (
            snapshot.get("frame_time")
            or after["snapshot_time"]
            or after["frame_time"]
            or after["start_time"]
        )
        return SnapshotRequest(
            event_id=event_id,
            frigate_camera=after["camera"],
            camera=camera,
            box=Box(x1, y1, x2, y2),
            score=float(score),
            timestamp=float(timestamp) if timestamp else 0.0,
            sub_label=after["sub_label"],
        )

    def _ignore(self) -> SnapshotRequest | None:
        """Not worth a picture: counted, so received always adds up."""
        self.stats.extra["ignored"] += 1
        return None

    def _remember(self, event_id: str, key: tuple[Any, ...]) -> None:
        self._events[event_id] = key
        self._events.move_to_end(event_id)
        while len(self._events) > MAX_TRACKED_EVENTS:
            self._events.popitem(last=False)

    def _forget(self, event_id: str) -> None:
        """A failed download must not block the next update of the same event."""
        self._events.pop(event_id, None)

    def _camera(self, frigate_camera: str) -> str | None:
        mapped = self._camera_map.get(frigate_camera)
        if mapped is not None:
            return mapped
        if CAMERA_NAME.match(frigate_camera):
            return frigate_camera
        if frigate_camera not in self._warned_cameras:
            self._warned_cameras.add(frigate_camera)
            _LOGGER.warning(
                "Frigate camera %r is not a valid camera name here and has no entry in "
                "sources.frigate.camera_map; its events are ignored (add e.g. %r: %s)",
                frigate_camera,
                frigate_camera,
                re.sub(r"[^a-z0-9_]", "_", frigate_camera.lower())[:64] or "camera",
            )
        return None

    def _reject(self, topic: str, reason: str) -> None:
        self.stats.rejected += 1
        _QUIET.warning(
            f"reject:{topic}:{reason}", "ignored a Frigate message on %s: %s", topic, reason
        )

    async def _fetch_and_offer(self, request: SnapshotRequest) -> None:
        url = f"{self._url}/api/events/{quote(request.event_id, safe='')}/snapshot.jpg"
        params = {
            "bbox": "0",
            "timestamp": "0",
            "crop": "1" if self._crop else "0",
            "quality": "95",
        }
        async with self._fetch_slots:
            try:
                data = await fetch_bytes(
                    self._session,
                    url,
                    params=params,
                    max_bytes=self._max_bytes,
                    timeout_s=self._timeout_s,
                )
            except FetchError as err:
                self._forget(request.event_id)
                if err.status == 404:
                    self.stats.extra["no_snapshot"] += 1
                    _LOGGER.debug("Frigate has no snapshot yet for %s", request.event_id)
                    return
                self.stats.extra["fetch_errors"] += 1
                self._set_down(str(err))
                return
        self._set_up()
        self.stats.extra["fetched"] += 1
        loop = asyncio.get_running_loop()
        try:
            image = await loop.run_in_executor(
                None, lambda: decode_image(data, max_bytes=self._max_bytes)
            )
        except BadFrameError as err:
            self._reject(url, f"snapshot of event {request.event_id}: {err.message}")
            return
        frame = Frame(
            camera=request.camera,
            image=image,
            timestamp=request.timestamp or time.time(),
            source="frigate",
            frame_id=f"frigate-{request.event_id}-{self.stats.extra['fetched']}",
            extra=self._extra(request),
        )
        if not self._crop:
            box = request.box
            height, width = image.shape[:2]
            if (
                box.x1 >= width
                or box.y1 >= height
                or box.x2 > width * 1.05
                or box.y2 > height * 1.05
            ):
                self._reject(
                    url,
                    f"Frigate's box {box.as_list()} for event {request.event_id} does not fit "
                    f"its {width}x{height} snapshot; is the snapshot resized (h=) or cropped? "
                    "use sources.frigate.snapshot: crop for such setups",
                )
                return
            frame.detections = [
                Detection(
                    box=box.clipped(width, height),
                    score=request.score,
                    label="person",
                    track_id=f"frigate-{request.event_id}",
                )
            ]
        if self._work.stopped:
            self.stats.dropped += 1
            return
        offer(self._sink, frame, self.stats)

    @staticmethod
    def _extra(request: SnapshotRequest) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "frigate_event_id": request.event_id,
            "frigate_camera": request.frigate_camera,
        }
        if request.sub_label:
            extra["frigate_sub_label"] = request.sub_label
        return extra

    def _set_down(self, problem: str) -> None:
        self.stats.problem = f"Frigate API unreachable: {problem}"
        self.stats.state = "degraded"
        if not self._frigate_down:
            self._frigate_down = True
            _LOGGER.warning(
                "cannot fetch Frigate snapshots (%s); check sources.frigate.url. "
                "Events keep being tried as they come",
                problem,
            )

    def _set_up(self) -> None:
        if self._frigate_down:
            self._frigate_down = False
            _LOGGER.info("Frigate snapshots reachable again at %s", self._url)
        self.stats.problem = None
        self.stats.state = "listening"
