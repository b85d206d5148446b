"""The inference worker (``cluster.role: worker``): frames in, observations out; no identities.

A worker holds leases on a fair share of the cameras (``ceil(cameras / live workers)``), reads
each owned camera's frames stream in order, and runs the single-process pipeline's first half
(decode -> detect -> crop -> track -> embed). Instead of matching, each frame's crops, vectors
and picture go to ``<prefix>:observations``; the matcher answers on this worker's feedback stream
which tracks to look at afresh, exactly the answer the single process gets from its own matcher
(``Pipeline._track`` waits for the frame two before), so decisions stay the same.

A frame's stream entry is acknowledged only once its observation is in the observations stream
(or it was shed as overload, or it cannot be read): a worker killed mid-stream leaves its
unacknowledged frames pending, and the worker that takes the camera next claims them first.

A camera with a video stream (``sources.streams``, the same settings on every host) is decoded
by the worker that holds its lease (``feeds.CameraFeed``): started with the lease, stopped when
the camera is handed back or the lease is lost, started afresh by the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..config import Settings
from ..pipeline import (
    DetectorLike,
    EmbedderLike,
    FrameDroppedError,
    FrameResult,
    IdentityThread,
    Looks,
    Pipeline,
    quality_crops,
)
from ..serve.stats import CameraBook
from ..types import Crop, Detection, Frame
from ..vision.crops import extract_crops
from ..vision.decode import BoxBudget, decode_image
from ..vision.tracker import Tracks
from .feeds import CameraFeed, feeds_status, stream_configs, streams_digest
from .messages import FrameMsg, MessageError, Observation, encode_jpeg
from .transport import (
    WORKERS_GROUP,
    Keys,
    Outage,
    claim_pending,
    connect,
    ensure_group,
    release_lease,
    renew_lease,
    take_lease,
    text,
)

_LOGGER = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
RETRY_S = 1.0
FEEDBACK_KEEP = 1000


class ClusterError(RuntimeError):
    """The cluster transport cannot be used; the message says what to fix."""


@dataclass(slots=True)
class _Entry:
    """Where a frame came from in its camera's stream."""

    entry: str
    ref: str
    enqueued_at: float
    picture: bytes = b""  # the frame as it came (the matcher gets it as is, not re-encoded)


@dataclass(slots=True)
class _Owned:
    """A camera this worker holds the lease of."""

    camera: str
    reader: asyncio.Task[None] | None = None
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    releasing: bool = False
    feed: CameraFeed | None = None  # the camera's video stream, decoded here


@dataclass(slots=True)
class WorkerStats:
    frames: int = 0  # frames read from the streams
    observations: int = 0  # observations sent to the matcher
    dropped: int = 0  # shed as overload (oldest first) or unreadable
    claimed: int = 0  # pending frames taken over from a worker that left
    local_pictures: int = 0  # stream frames taken back without decoding (decoded here)
    failed: int = 0  # detection or embedding failed
    feedback_timeouts: int = 0  # frames that embedded every crop afresh: no answer in time
    leases_lost: int = 0
    hop_ms: list[float] = field(default_factory=list)  # observation sent -> feedback back


class WorkerPipeline(Pipeline):
    """The pipeline with matching done by the matcher: ``_identify`` sends, waits for feedback."""

    def __init__(self, *, link: ClusterWorker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._link = link

    async def _identify(
        self,
        frame: Frame,
        detections: list[Detection],
        crops: list[Crop],
        vectors: npt.NDArray[np.float32],
        looks: Looks | None,
        seq: int,
    ) -> tuple[Any, Any]:
        fresh = None if looks is None else [is_fresh for _, is_fresh in looks]
        ended = [track_id for _, track_id in self.take_ended(frame.camera, seq)]
        again = await self._link.observe(frame, detections, crops, vectors, fresh, seq, ended)
        if looks is not None:
            # No answer in time (None): look at every track afresh, never reuse blindly.
            self._remember_asks(frame.camera, crops, seq, lambda t: again is None or t in again)
        return None, None

    async def _housekeeping_after_frame(self, camera: str) -> None:
        """Nothing: the camera's lost tracks travel with its frame's observation (``ended``),
        and the matcher ends visits at its frame clock, exactly as one process does."""

    async def _forget_tracks(self, now: float, camera: str | None = None) -> None:
        if self.tracks is None:
            return
        ended = self.tracks.expire(now, camera)
        if ended:
            with self._track_lock:
                for key in ended:
                    self._track_looks.pop(key, None)
                    self._look_again.pop(key, None)
            await self._link.tracks_ended(ended)


class ClusterWorker:
    """One worker process (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        detector: DetectorLike,
        embedder: EmbedderLike,
        *,
        token: str | None = None,
    ) -> None:
        cfg = settings.section("cluster")
        self.settings = settings
        self.keys = Keys(str(cfg["prefix"]))
        self.url = str(cfg["redis_url"])
        self.outage = Outage(self.url, _LOGGER, RETRY_S)
        self.lease_ms = int(float(cfg["lease_s"]) * 1000)
        self.feedback_timeout_s = float(cfg["feedback_timeout_s"])
        name = cfg.get("worker_id") or f"{socket.gethostname()}-{os.getpid()}"
        self.token = token or f"{name}-{secrets.token_hex(3)}"
        self.max_bytes = int(settings.section("http")["max_upload_mb"]) * 1048576
        self.backlog = int(cfg["backlog"])
        try:
            self.streams = stream_configs(settings.raw)
        except ValueError as err:
            raise ClusterError(str(err)) from err
        self.streams_digest = streams_digest(self.streams)
        self.stats = WorkerStats()
        queue = settings.section("queue")
        boxes = BoxBudget(max_persons=int(settings.section("detect")["max_persons"]))
        from ..vision.crops import bounded_crops

        self.pipeline = WorkerPipeline(
            link=self,
            detector=detector,
            embedder=embedder,
            crops=bounded_crops(quality_crops(extract_crops, settings.section("quality")), boxes),
            identity_thread=IdentityThread(None),
            cameras=CameraBook([], auto_add=True),
            per_camera=int(queue["per_camera"]),
            workers=int(queue["workers"]),
            tracks=Tracks(),
        )
        self._client: Any = None
        self._owned: dict[str, _Owned] = {}
        self._entries: dict[int, _Entry] = {}
        self._waiting: dict[tuple[str, int], asyncio.Future[set[str] | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def cameras(self) -> list[str]:
        return sorted(self._owned)

    async def start(self) -> None:
        self._client = connect(self.url)
        try:
            await self._client.ping()
        except RedisError as err:
            await self._client.aclose()
            raise ClusterError(
                f"cannot reach Redis at {self.outage.url} ({err}); start it or set "
                "cluster.redis_url"
            ) from err
        declared = sorted({*self.settings.cameras, *self.streams})
        if declared:
            await self._client.sadd(self.keys.cameras, *declared)
        if self.streams:
            _LOGGER.info(
                "video streams decoded by the worker holding the camera: %s (settings %s)",
                ", ".join(sorted(self.streams)),
                self.streams_digest,
            )
        self.pipeline.start(housekeeping=False)
        self._tasks = [
            asyncio.create_task(self._leases(), name="cluster-leases"),
            asyncio.create_task(self._feedback(), name="cluster-feedback"),
            asyncio.create_task(self._expire_tracks(), name="cluster-tracks"),
        ]
        _LOGGER.info(
            "worker %s started (Redis %s, prefix %s)", self.token, self.outage.url, self.keys.prefix
        )

    async def stop(self) -> None:
        """Stop reading, finish the frames taken, hand the cameras back."""
        self._stopping = True
        _LOGGER.info(
            "worker %s stopping: finishing the frames it took, then handing back %s",
            self.token,
            ", ".join(sorted(self._owned)) or "no camera",
        )
        leases, *others = self._tasks
        await _cancel(leases)
        for owned in list(self._owned.values()):
            await self._stop_feed(owned, flush_s=self.lease_ms / 3000.0)
            await self._stop_reader(owned)
        await self.pipeline.stop()  # the feedback reader still answers the frames in flight
        for task in others:
            await _cancel(task)
        if self._spawned:
            await asyncio.gather(*list(self._spawned), return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(RedisError):
                for camera in list(self._owned):
                    await release_lease(self._client, self.keys.owner(camera), self.token)
                await self._client.zrem(self.keys.workers, self.token)
                await self._client.delete(self.keys.worker(self.token))
            await self._client.aclose()
        self._owned.clear()
        _LOGGER.info("worker %s stopped", self.token)

    # -- leases ------------------------------------------------------------------------------

    async def _leases(self) -> None:
        period = self.lease_ms / 3000.0
        while True:
            try:
                await self._lease_round()
                self.outage.succeeded()
            except asyncio.CancelledError:
                raise
            except RedisError as err:
                self.outage.failed("keeping the camera leases", err)
            except Exception:
                _LOGGER.exception("keeping the camera leases failed; retrying")
            await asyncio.sleep(period)

    async def _lease_round(self) -> None:
        client, keys = self._client, self.keys
        now_ms = int(time.time() * 1000)
        await client.zadd(keys.workers, {self.token: now_ms})
        await client.zremrangebyscore(keys.workers, 0, now_ms - 3 * self.lease_ms)
        alive = await client.zrangebyscore(keys.workers, now_ms - self.lease_ms, "+inf")
        cameras = sorted(text(c) for c in await client.smembers(keys.cameras))
        for camera, owned in list(self._owned.items()):
            key = keys.owner(camera)
            if await renew_lease(client, key, self.token, self.lease_ms):
                continue
            if not self._stopping and await take_lease(client, key, self.token, self.lease_ms):
                # Expired (Redis away, or this process paused, longer than lease_s) and nobody
                # took it: keep the camera, its tracker and its stream as they are.
                _LOGGER.warning(
                    "the lease on camera %s expired before this worker renewed it (Redis was "
                    "unreachable, or this worker paused, for longer than cluster.lease_s); "
                    "no other worker took it, so this one keeps the camera",
                    camera,
                )
                continue
            holder = await client.get(key)
            _LOGGER.warning(
                "lost the lease on camera %s; %s has it now",
                camera,
                f"worker {text(holder)}" if holder is not None else "no worker",
            )
            self.stats.leases_lost += 1
            owned.releasing = True
            self._spawn(self._stop_feed(owned))
            self._spawn(self._stop_reader(owned))
            self._owned.pop(camera, None)
        if not self._stopping:
            await self._balance(client, cameras, len(alive))
        await client.set(
            keys.worker(self.token), json.dumps(await self.status()), px=3 * self.lease_ms
        )

    async def _balance(self, client: Any, cameras: list[str], alive: int) -> None:
        """Take free cameras up to the fair share; hand one back when holding more."""
        keys = self.keys
        fair = math.ceil(len(cameras) / max(1, alive)) if cameras else 0
        for camera in cameras:
            if len(self._owned) >= fair:
                break
            if camera not in self._owned and await take_lease(
                client, keys.owner(camera), self.token, self.lease_ms
            ):
                self._own(camera)
        active = [o for o in self._owned.values() if not o.releasing]
        if len(active) > fair:
            self._spawn(self._hand_back(active[-1]))

    def _own(self, camera: str) -> None:
        owned = _Owned(camera)
        owned.idle.set()
        owned.reader = asyncio.create_task(self._read(owned), name=f"frames-{camera}")
        self._owned[camera] = owned
        config = self.streams.get(camera)
        if config is not None:
            owned.feed = CameraFeed(
                config,
                self._client,
                self.keys,
                self.token,
                backlog=self.backlog,
                outage=self.outage,
            )
            owned.feed.start()
        _LOGGER.info(
            "worker %s took camera %s%s",
            self.token,
            camera,
            " and started its video stream" if owned.feed is not None else "",
        )

    async def _hand_back(self, owned: _Owned) -> None:
        """More cameras than the fair share: finish this one's frames, then free its lease."""
        owned.releasing = True
        # The frames sampled so far reach the stream while the lease is still ours.
        await self._stop_feed(owned, flush_s=self.lease_ms / 3000.0)
        await self._stop_reader(owned)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(owned.idle.wait(), self.lease_ms / 1000.0)
        if self._owned.get(owned.camera) is owned:
            del self._owned[owned.camera]
            await release_lease(self._client, self.keys.owner(owned.camera), self.token)
            _LOGGER.info("worker %s handed camera %s back (rebalance)", self.token, owned.camera)

    async def _stop_feed(self, owned: _Owned, *, flush_s: float = 0.0) -> None:
        feed, owned.feed = owned.feed, None
        if feed is not None:
            try:
                await feed.stop(flush_s=flush_s)
            except Exception:
                _LOGGER.exception("camera %s: stopping its video stream failed", owned.camera)

    async def _stop_reader(self, owned: _Owned) -> None:
        task, owned.reader = owned.reader, None
        if task is not None:
            await _cancel(task)

    # -- frames in ---------------------------------------------------------------------------

    async def _read(self, owned: _Owned) -> None:
        """The camera's frames in stream order: first those pending (a previous owner's, or
        ours from before a restart), then new ones."""
        stream = self.keys.frames(owned.camera)
        client = self._client
        claimed = False
        while True:
            try:
                if not claimed:
                    await ensure_group(client, stream, WORKERS_GROUP)
                    pending = await claim_pending(client, stream, WORKERS_GROUP, self.token)
                    if pending:
                        self.stats.claimed += len(pending)
                        _LOGGER.info(
                            "camera %s: took over %d pending frames", owned.camera, len(pending)
                        )
                    for entry_id, fields in pending:
                        await self._take(owned, text(entry_id), fields)
                    claimed = True
                reply = await client.xreadgroup(
                    WORKERS_GROUP, self.token, {stream: ">"}, count=64, block=READ_BLOCK_MS
                )
                self.outage.succeeded()
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        await self._take(owned, text(entry_id), fields)
            except asyncio.CancelledError:
                raise
            except RedisError as err:
                self.outage.failed(f"reading camera {owned.camera}'s frames", err)
                if isinstance(err, RedisConnectionError) or "NOGROUP" in str(err):
                    claimed = False  # a restarted broker may have lost the group
                await asyncio.sleep(RETRY_S)

    async def _take(self, owned: _Owned, entry: str, fields: dict[bytes, bytes]) -> None:
        self.stats.frames += 1
        loop = asyncio.get_running_loop()
        try:
            msg = FrameMsg.decode(fields[b"m"])
            image = None
            if owned.feed is not None:
                image = await owned.feed.take_picture(entry)
            if image is None:
                image = await loop.run_in_executor(
                    None, lambda: decode_image(msg.image, max_bytes=self.max_bytes)
                )
            else:
                self.stats.local_pictures += 1
        except (KeyError, MessageError, ValueError) as err:
            _LOGGER.warning(
                "camera %s: frame %s unreadable (%s); skipped", owned.camera, entry, err
            )
            self.stats.dropped += 1
            await self._ack(owned.camera, entry)
            return
        frame = Frame(
            camera=owned.camera,
            image=image,
            timestamp=msg.timestamp,
            source=msg.source,
            frame_id=msg.frame_id,
            detections=msg.detections,
            extra=msg.extra,
            received_monotonic=time.monotonic(),
        )
        self._entries[id(frame)] = _Entry(entry, msg.ref, msg.enqueued_at, msg.image)
        owned.in_flight += 1
        owned.idle.clear()
        future = self.pipeline.submit(frame)
        future.add_done_callback(lambda f: self._spawn(self._finished(owned, frame, f)))

    async def _finished(
        self, owned: _Owned, frame: Frame, future: asyncio.Future[FrameResult]
    ) -> None:
        info = self._entries.pop(id(frame))
        try:
            err = future.exception()
            if err is not None and self._stopping and "shutting down" in str(err):
                return  # left pending: the next owner takes it
            if err is not None:
                if not isinstance(err, FrameDroppedError):
                    self.stats.failed += 1  # shed frames are counted by the pipeline
                if info.ref:
                    reason = "overloaded" if isinstance(err, FrameDroppedError) else "failed"
                    await self._send(
                        Observation(
                            "drop",
                            frame.camera,
                            self.token,
                            ref=info.ref,
                            reason=f"{reason}: {err}",
                        )
                    )
            await self._ack(frame.camera, info.entry)
        finally:
            owned.in_flight -= 1
            if owned.in_flight <= 0:
                owned.idle.set()

    async def _ack(self, camera: str, entry: str) -> None:
        with contextlib.suppress(RedisError):
            await self._client.xack(self.keys.frames(camera), WORKERS_GROUP, entry)

    # -- observations out, feedback in -------------------------------------------------------

    async def observe(
        self,
        frame: Frame,
        detections: list[Detection],
        crops: list[Crop],
        vectors: npt.NDArray[np.float32],
        fresh: list[bool] | None,
        seq: int,
        ended: list[str] | None = None,
    ) -> set[str] | None:
        """Send one frame's observation (with the camera's tracks that ended as of it); the
        tracks to look at afresh (None: no answer)."""
        info = self._entries.get(id(frame), _Entry("", "", 0.0))
        loop = asyncio.get_running_loop()
        obs = Observation(
            "obs",
            frame.camera,
            self.token,
            seq=seq,
            entry=info.entry,
            ref=info.ref,
            frame_id=frame.frame_id,
            source=frame.source,
            timestamp=frame.timestamp,
            width=frame.width,
            height=frame.height,
            supplied_boxes=frame.detections is not None,
            detections=detections,
            crops=crops,
            vectors=vectors if len(crops) else np.zeros((0, 0), np.float32),
            fresh=fresh,
            ended=list(ended or []),
            extra=frame.extra,
            enqueued_at=info.enqueued_at,
        )

        def encode() -> bytes:
            obs.frame_jpeg = info.picture or encode_jpeg(frame.image)
            obs.sent_at = time.time()
            return obs.encode()

        data = await loop.run_in_executor(None, encode)
        answer: asyncio.Future[set[str] | None] = loop.create_future()
        self._waiting[(frame.camera, seq)] = answer
        sent = time.monotonic()
        try:
            await self._send_raw(data)
            self.stats.observations += 1
            try:
                again = await asyncio.wait_for(asyncio.shield(answer), self.feedback_timeout_s)
                self.stats.hop_ms.append((time.monotonic() - sent) * 1000.0)
                del self.stats.hop_ms[:-2000]
                return again
            except TimeoutError:
                self.stats.feedback_timeouts += 1
                return None
        finally:
            self._waiting.pop((frame.camera, seq), None)

    async def tracks_ended(self, keys: list[tuple[str, str]]) -> None:
        by_camera: dict[str, list[str]] = {}
        for camera, track_id in keys:
            by_camera.setdefault(camera, []).append(track_id)
        for camera, tracks in by_camera.items():
            await self._send(Observation("end", camera, self.token, ended=tracks))

    async def _send(self, obs: Observation) -> None:
        await self._send_raw(obs.encode())

    async def _send_raw(self, data: bytes) -> None:
        """XADD to the observations stream, retrying while Redis is away (the frame stays
        pending meanwhile, so nothing is lost if this worker dies)."""
        while True:
            try:
                await self._client.xadd(self.keys.observations, {"o": data})
                self.outage.succeeded()
                return
            except RedisError as err:
                self.outage.failed("sending an observation", err)
                await asyncio.sleep(RETRY_S)

    async def _feedback(self) -> None:
        stream = self.keys.feedback(self.token)
        last: Any = "0-0"
        while True:
            try:
                reply = await self._client.xread({stream: last}, count=256, block=READ_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except RedisError as err:
                self.outage.failed("reading the matcher's answers", err)
                await asyncio.sleep(RETRY_S)
                continue
            self.outage.succeeded()
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    key = (text(fields[b"cam"]), int(fields[b"seq"]))
                    waiter = self._waiting.get(key)
                    if waiter is None or waiter.done():
                        continue
                    again = text(fields[b"again"])
                    waiter.set_result(None if again == "*" else set(json.loads(again)))

    async def _expire_tracks(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.expire_idle_tracks()
            except asyncio.CancelledError:
                raise
            except Exception:
                _LOGGER.exception("ending lost tracks failed")

    async def expire_idle_tracks(self) -> None:
        """End the tracks lost by now while no frames come (frames end them while they do).
        Before the first frame has been matched the clock is the wall clock, not the frames'
        time: a first frame still being matched would have its tracks ended at once (recorded
        footage, a slow start), so nothing ends then."""
        if self.pipeline.has_frames() and not self.pipeline.streaming():
            await self.pipeline._forget_tracks(self.pipeline.now())

    # -- status ------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """What the matcher shows in ``info.cluster.workers``."""
        lag: dict[str, int] = {}
        for camera in list(self._owned):
            waiting = self.pipeline.queued(camera)
            with contextlib.suppress(RedisError, KeyError, IndexError, TypeError):
                groups = await self._client.xinfo_groups(self.keys.frames(camera))
                for group in groups:
                    if text(group["name"]) == WORKERS_GROUP:
                        waiting += int(group.get("lag") or 0) + int(group.get("pending") or 0)
            lag[camera] = waiting
        hops = sorted(self.stats.hop_ms)
        return {
            "worker_id": self.token,
            "host": socket.gethostname(),
            "cameras": self.cameras,
            "lag": lag,
            "frames": self.stats.frames,
            "observations": self.stats.observations,
            "dropped": self.stats.dropped + self.pipeline.counters.dropped,
            "failed": self.stats.failed,
            "claimed": self.stats.claimed,
            "sources": feeds_status([o.feed for o in self._owned.values() if o.feed is not None]),
            "streams_settings": self.streams_digest if self.streams else None,
            "local_pictures": self.stats.local_pictures,
            "feedback_timeouts": self.stats.feedback_timeouts,
            "hop_ms_p50": round(hops[len(hops) // 2], 2) if hops else None,
            "at": round(time.time(), 3),
        }

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


__all__ = ["ClusterError", "ClusterWorker", "WorkerPipeline"]
