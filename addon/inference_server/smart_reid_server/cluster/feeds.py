"""Camera streams decoded on the worker that holds the camera (``sources.streams`` in a cluster).

A worker that takes a camera's lease starts the camera's ``StreamSource`` and stops it when it
hands the camera back or loses the lease; the next owner starts it afresh. Decoding a video
stream is the heaviest part of ingest, so it runs where the camera's frames are processed
instead of on the matcher.

Sampled frames go into the camera's own frames stream (``<prefix>:frames:<camera>``), the same
path as frames the matcher queues: the worker's reader takes them in order with everything that
path gives (at-least-once with the matcher's high-water mark, a dead worker's pending frames
claimed by the next, drop-oldest shedding, the look-again feedback). The write is fenced: a
Lua script appends only while this worker still holds the camera's lease, so a worker that lost
its lease never interleaves frames with the new owner's. The decoded picture stays in memory
until the worker's reader takes the entry back, so a frame is JPEG-encoded once (the matcher
needs the JPEG anyway, for snapshots) and never decoded again on this worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError

from ..ingest.sources import SourceStats
from ..ingest.stream import StreamSource
from ..types import Frame, Image
from .messages import FrameMsg, MessageError, encode_jpeg
from .transport import Keys, Outage, text

_LOGGER = logging.getLogger(__name__)

# Frames sampled but not yet in Redis, per camera: beyond this the oldest is dropped (counted).
FEED_QUEUE = 8
# Decoded pictures kept for the worker's own reader, per camera (entries a reader never takes,
# e.g. trimmed by the stream's backlog, fall out oldest first).
KEEP_PICTURES = 64
RETRY_S = 1.0

# Append a frame only while the lease is ours (KEYS: owner, stream; ARGV: token, maxlen, data).
_FENCED_XADD = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return false
end
return redis.call('xadd', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[3])
"""


def stream_configs(raw_settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``sources.streams`` by camera. Two streams for one camera cannot both own it: an error."""
    sources = raw_settings.get("sources") or {}
    out: dict[str, dict[str, Any]] = {}
    for config in sources.get("streams") or []:
        camera = str(config["camera"])
        if camera in out:
            raise ValueError(
                f"sources.streams lists camera {camera!r} twice; in a cluster each camera has "
                "one stream (give the second a camera name of its own)"
            )
        out[camera] = dict(config)
    return out


def streams_digest(configs: Mapping[str, Mapping[str, Any]]) -> str:
    """A short fingerprint of the stream settings (passwords included, never shown), so the
    matcher can say when the hosts were given different settings."""
    data = json.dumps({c: dict(v) for c, v in sorted(configs.items())}, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:12]


class CameraFeed:
    """One owned camera's stream source and the ordered hand-over of its frames to Redis.

    ``offer`` is the source's sink (event loop, never blocks); a sender task encodes and appends
    the frames in their order. ``take_picture`` gives the worker's reader the decoded picture
    of an entry this feed wrote.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        client: Any,
        keys: Keys,
        token: str,
        *,
        backlog: int,
        outage: Outage | None = None,
    ) -> None:
        self.camera = str(config["camera"])
        self._outage = outage
        self._config = config
        self._client = client
        self._keys = keys
        self._token = token
        self._backlog = backlog
        self._waiting: collections.deque[Frame] = collections.deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()  # set while no sampled frame waits for Redis
        self._drained.set()
        self._pictures: collections.OrderedDict[str, Image] = collections.OrderedDict()
        self._appending: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.source: StreamSource | None = None
        self._stopped = False
        self.written = 0
        self.fenced = 0  # frames refused because the lease had moved on
        self.encode_ms = 0.0

    @property
    def stats(self) -> SourceStats:
        return self.source.stats if self.source is not None else SourceStats(state="stopped")

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sender = loop.create_task(self._send_all(), name=f"feed-{self.camera}")
        self.source = StreamSource(self._config, self, loop)
        self.source.start()

    async def stop(self, *, flush_s: float = 0.0) -> None:
        """Stop decoding; with ``flush_s``, first give the frames already sampled that long to
        reach Redis (a hand-back: the next owner processes them)."""
        self._stopped = True
        if self.source is not None:
            await self.source.stop()
        if flush_s > 0 and self._sender is not None and not self._sender.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), flush_s)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._waiting and self.source is not None:
            self.source.stats.dropped += len(self._waiting)
        self._waiting.clear()
        self._pictures.clear()

    # -- frames in (the source's sink) -------------------------------------------------------

    def offer(self, frame: Frame) -> bool:
        if self._stopped and self._sender is not None and self._sender.done():
            return False  # decoded just before the source stopped
        if len(self._waiting) >= FEED_QUEUE:
            self._waiting.popleft()  # drop the oldest: Redis is slow or away
            if self.source is not None:
                self.source.stats.dropped += 1
        self._waiting.append(frame)
        self._drained.clear()
        self._wake.set()
        return True

    async def _send_all(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                frame = self._waiting[0]
                started = time.perf_counter()
                try:
                    jpeg = await loop.run_in_executor(None, encode_jpeg, frame.image)
                except MessageError as err:
                    _LOGGER.warning("camera %s: frame not encodable (%s)", self.camera, err)
                    self._drop_head(frame)
                    continue
                self.encode_ms += (time.perf_counter() - started) * 1000.0
                msg = FrameMsg(
                    frame.camera,
                    frame.timestamp,
                    jpeg,
                    frame.frame_id,
                    frame.source,
                    frame.detections,
                    frame.extra,
                    enqueued_at=time.time(),
                )
                entry = await self._append(msg, frame.image)
                if entry is None:
                    self._drop_head(frame)
                    self.fenced += 1
                    continue
                self._drop_head(frame)
                self.written += 1
            self._drained.set()

    def _drop_head(self, frame: Frame) -> None:
        if self._waiting and self._waiting[0] is frame:
            self._waiting.popleft()

    async def _append(self, msg: FrameMsg, image: Image) -> str | None:
        """The entry id, or None when the lease is no longer ours. Retried while Redis is
        away (newer frames meanwhile push the oldest out of ``_waiting``)."""
        data = msg.encode()
        warned = False
        outage = self._outage
        while True:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._appending = done
            try:
                reply = await self._client.eval(
                    _FENCED_XADD,
                    2,
                    self._keys.owner(self.camera),
                    self._keys.frames(self.camera),
                    self._token,
                    self._backlog,
                    data,
                )
            except RedisError as err:
                if outage is not None:
                    outage.failed(f"queueing camera {self.camera}'s stream frames", err)
                elif not warned:
                    _LOGGER.warning(
                        "camera %s: queueing a stream frame failed (%s); retrying", self.camera, err
                    )
                    warned = True
                await asyncio.sleep(RETRY_S)
                continue
            finally:
                self._appending = None
                done.set_result(None)
            if outage is not None:
                outage.succeeded()
            if reply is None:
                return None
            entry = text(reply)
            self._pictures[entry] = image
            while len(self._pictures) > KEEP_PICTURES:
                self._pictures.popitem(last=False)
            return entry

    async def take_picture(self, entry: str) -> Image | None:
        """The decoded picture of an entry this feed appended (None: not ours, or forgotten)."""
        picture = self._pictures.pop(entry, None)
        if picture is None and self._appending is not None:
            # The reader can see the entry before the append's reply reached us.
            await asyncio.shield(self._appending)
            picture = self._pictures.pop(entry, None)
        return picture

    def status(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "source": f"stream:{self.camera}",
            "state": stats.state,
            "problem": stats.problem,
            "received": stats.received,
            "offered": stats.offered,
            "dropped": stats.dropped,
            "rejected": stats.rejected,
            "written": self.written,
            "fenced": self.fenced,
            **stats.extra,
        }


def feeds_status(feeds: Sequence[CameraFeed]) -> list[dict[str, Any]]:
    return [feed.status() for feed in sorted(feeds, key=lambda f: f.camera)]


__all__ = ["CameraFeed", "feeds_status", "stream_configs", "streams_digest"]
