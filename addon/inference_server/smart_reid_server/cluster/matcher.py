"""The matcher side of a cluster (``cluster.role: matcher``): the one authority on identities.

``SmartReidApp`` runs as in a single process (identities, visits, risk, MQTT, HTTP, the same
contract) with two parts added here:

- ``FrameGateway`` stands where the pipeline stood for every input the matcher receives (HTTP
  uploads, MQTT ingest, sources): a frame goes into its camera's frames stream, and a caller
  that waits (an HTTP upload) gets the decisions once the matcher decided them.
- ``ClusterMatcher`` reads ``<prefix>:observations`` in order, matches each frame through the
  pipeline's identity half (``Pipeline.observe_remote``), answers the worker which tracks to look
  at afresh, and records per camera the last frames-stream entry decided (``<prefix>:hwm``): an
  observation redelivered after a worker or matcher crash is acknowledged and skipped, so one
  frame never makes two decisions (at-least-once delivery, idempotent handling).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..errors import EXIT_LOST_LEADERSHIP
from ..identity.store import NotLeaderError, StoreUnavailableError
from ..pipeline import FrameDroppedError, FrameResult, Pipeline
from ..serve.stats import CameraBook, LatencyStats
from ..types import Frame
from .feeds import stream_configs, streams_digest
from .messages import FrameMsg, MessageError, Observation, encode_jpeg, entry_key
from .transport import (
    MATCHER_GROUP,
    Keys,
    Outage,
    claim_pending,
    connect,
    ensure_group,
    text,
)
from .worker import ClusterError

_LOGGER = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
RETRY_S = 1.0
FEEDBACK_KEEP = 1000
FEEDBACK_TTL_MS = 600_000
WAIT_FOR_WORKER_S = 60.0


class FrameGateway:
    """Pipeline-shaped intake (``submit``/``offer``/``process``) that queues frames for the
    workers and resolves a caller's future when the matcher has decided the frame."""

    def __init__(
        self, client: Any, keys: Keys, cameras: CameraBook, *, backlog: int, max_bytes: int
    ) -> None:
        self._client = client
        self.keys = keys
        self.cameras = cameras
        self.backlog = backlog
        self.max_bytes = max_bytes
        self._waiting: dict[str, asyncio.Future[FrameResult]] = {}
        self._outbox: asyncio.Queue[tuple[FrameMsg, asyncio.Future[bytes] | None]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._known: set[str] = set()
        self.sent = 0

    def submit(self, frame: Frame) -> asyncio.Future[FrameResult]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FrameResult] = loop.create_future()
        if not self.cameras.admit(frame.camera):
            self.cameras.rejected(frame.camera)
            future.set_exception(
                FrameDroppedError(
                    f"dropped: unknown camera {frame.camera!r}; add it to `cameras` "
                    "or set auto_add_cameras: true"
                )
            )
            return future
        # Encoded in parallel, sent in arrival order (a camera's frames must stay in order).
        jpeg = loop.run_in_executor(None, encode_jpeg, frame.image)
        msg = FrameMsg(
            frame.camera,
            frame.timestamp,
            b"",
            frame.frame_id,
            frame.source,
            frame.detections,
            frame.extra,
            ref=secrets.token_hex(8),
        )
        return self._queue_msg(msg, future, jpeg)

    def submit_encoded(self, msg: FrameMsg) -> asyncio.Future[FrameResult]:
        """Queue a frame already encoded (JPEG/PNG bytes, no decode here); the future
        resolves to its result once decided."""
        future: asyncio.Future[FrameResult] = asyncio.get_running_loop().create_future()
        msg.ref = msg.ref or secrets.token_hex(8)
        return self._queue_msg(msg, future, None)

    def _queue_msg(
        self,
        msg: FrameMsg,
        future: asyncio.Future[FrameResult],
        jpeg: asyncio.Future[bytes] | None,
    ) -> asyncio.Future[FrameResult]:
        self._waiting[msg.ref] = future
        self._outbox.put_nowait((msg, jpeg))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())
        loop = asyncio.get_running_loop()
        handle = loop.call_later(WAIT_FOR_WORKER_S, self._expire, msg.ref)
        future.add_done_callback(lambda _: handle.cancel())
        return future

    def offer(self, frame: Frame) -> bool:
        future = self.submit(frame)
        if future.done():
            return False
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return True

    async def process(self, frame: Frame) -> FrameResult:
        return await self.submit(frame)

    def queued(self, camera: str | None = None) -> int:
        return self._outbox.qsize()

    async def _send_all(self) -> None:
        while not self._outbox.empty():
            msg, jpeg = self._outbox.get_nowait()
            try:
                if jpeg is not None:
                    msg.image = await jpeg
                await enqueue(self._client, self.keys, msg, backlog=self.backlog, known=self._known)
                self.sent += 1
            except (RedisError, MessageError) as err:
                self.resolve(msg.ref, FrameDroppedError(f"dropped: the frame queue failed ({err})"))

    def _expire(self, ref: str) -> None:
        self.resolve(
            ref,
            FrameDroppedError(
                f"dropped: no worker decided the frame within {WAIT_FOR_WORKER_S:.0f} s; "
                "start a worker (cluster.role: worker) for this camera"
            ),
        )

    def resolve(self, ref: str, outcome: FrameResult | BaseException) -> None:
        future = self._waiting.pop(ref, None)
        if future is None or future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        for ref in list(self._waiting):
            self.resolve(ref, FrameDroppedError("dropped: server shutting down"))


async def enqueue(
    client: Any, keys: Keys, msg: FrameMsg, *, backlog: int, known: set[str] | None = None
) -> str:
    """Put one frame into its camera's stream (the stream keeps about ``backlog`` frames; the
    camera joins ``<prefix>:cameras`` so a worker takes it). Returns the entry id."""
    if not msg.enqueued_at:
        msg.enqueued_at = time.time()
    if known is None or msg.camera not in known:
        await client.sadd(keys.cameras, msg.camera)
        if known is not None:
            known.add(msg.camera)
    entry = await client.xadd(
        keys.frames(msg.camera), {"m": msg.encode()}, maxlen=backlog, approximate=True
    )
    return text(entry)


class _StoreLost(Exception):
    """The identity store went away: this matcher stops consuming and steps down."""


class ClusterMatcher:
    """Consumes observations for one ``SmartReidApp`` (see the module docstring)."""

    def __init__(self, app: Any, *, consumer: str | None = None) -> None:
        cfg = app.settings.section("cluster")
        self.app = app
        self.keys = Keys(str(cfg["prefix"]))
        self.url = str(cfg["redis_url"])
        self.outage = Outage(self.url, _LOGGER, RETRY_S)
        self.lease_s = float(cfg["lease_s"])
        self.consumer = consumer or f"matcher-{app.server_id or secrets.token_hex(3)}"
        self.backlog = int(cfg["backlog"])
        self.client: Any = None
        self.gateway: FrameGateway | None = None
        self.hwm: dict[str, str] = {}
        self.owners: dict[str, str] = {}
        self.hop = LatencyStats()
        self.counters = {"observations": 0, "redelivered_skipped": 0, "failed": 0, "moved": 0}
        self.workers: list[dict[str, Any]] = []
        self.broker_ok = True
        self._tasks: list[asyncio.Task[None]] = []
        # sources.streams run on the workers; each host must have the same settings.
        try:
            streams = stream_configs(app.settings.raw)
        except ValueError as err:
            from ..errors import StartupError

            raise StartupError(str(err)) from err
        self.streams_digest = streams_digest(streams) if streams else None

    async def start(self) -> FrameGateway:
        self.client = connect(self.url)
        try:
            await self.client.ping()
            await ensure_group(self.client, self.keys.observations, MATCHER_GROUP)
            self.hwm = {
                text(k): text(v) for k, v in (await self.client.hgetall(self.keys.hwm)).items()
            }
            if self.app.settings.cameras:
                await self.client.sadd(self.keys.cameras, *self.app.settings.cameras)
        except RedisError as err:
            await self.client.aclose()
            raise ClusterError(
                f"cannot reach Redis at {self.outage.url} ({err}); start it or set "
                "cluster.redis_url"
            ) from err
        self.gateway = FrameGateway(
            self.client,
            self.keys,
            self.app.cameras,
            backlog=self.backlog,
            max_bytes=self.app.max_upload_bytes,
        )
        self._tasks = [
            asyncio.create_task(self._consume(), name="cluster-observations"),
            asyncio.create_task(self._watch(), name="cluster-topology"),
        ]
        _LOGGER.info("matcher %s reading %s", self.consumer, self.keys.observations)
        return self.gateway

    def halt(self) -> None:
        """Stop deciding now (leadership lost): observations not yet acknowledged stay pending
        for the next leader. ``stop`` still has to be awaited."""
        for task in self._tasks:
            if task.get_name() == "cluster-observations":
                task.cancel()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.gateway is not None:
            await self.gateway.stop()
        if self.client is not None:
            await self.client.aclose()

    # -- observations ------------------------------------------------------------------------

    async def _consume(self) -> None:
        stream = self.keys.observations
        claimed = False
        while True:
            try:
                if not claimed:
                    await ensure_group(self.client, stream, MATCHER_GROUP)
                    # Ours from before a restart, or a matcher's that died: handled first.
                    for entry_id, fields in await claim_pending(
                        self.client, stream, MATCHER_GROUP, self.consumer
                    ):
                        await self._handle(text(entry_id), fields)
                    claimed = True
                reply = await self.client.xreadgroup(
                    MATCHER_GROUP, self.consumer, {stream: ">"}, count=32, block=READ_BLOCK_MS
                )
                self.broker_ok = True
                self.outage.succeeded()
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        await self._handle(text(entry_id), fields)
            except asyncio.CancelledError:
                raise
            except _StoreLost:
                return
            except RedisError as err:
                self.broker_ok = False
                self.outage.failed("reading observations", err)
                if isinstance(err, RedisConnectionError) or "NOGROUP" in str(err):
                    claimed = False
                await asyncio.sleep(RETRY_S)

    async def _handle(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        stream = self.keys.observations
        try:
            obs = Observation.decode(fields[b"o"], images=False)
        except (KeyError, MessageError) as err:
            _LOGGER.warning("observation %s unreadable (%s); skipped", entry_id, err)
            await self.client.xack(stream, MATCHER_GROUP, entry_id)
            return
        if obs.kind == "end":
            keys = [(obs.camera, t) for t in obs.ended]
            await self.app._call(lambda ids: ids.end_tracks(keys))
            await self.client.xack(stream, MATCHER_GROUP, entry_id)
            return
        if obs.kind == "drop":
            if self.gateway is not None:
                self.gateway.resolve(obs.ref, FrameDroppedError(f"dropped: {obs.reason}"))
            await self.client.xack(stream, MATCHER_GROUP, entry_id)
            return
        done = self.hwm.get(obs.camera)
        if obs.entry and done is not None and entry_key(obs.entry) <= entry_key(done):
            # Redelivered (a worker died after sending, before acknowledging): decided already.
            self.counters["redelivered_skipped"] += 1
            await self._answer(entry_id, obs, None)
            return
        await self._moved(obs)
        try:
            result, again = await self._decide(fields[b"o"], obs)
        except StoreUnavailableError as err:
            # Not acknowledged: the observation stays pending and the next leader decides it
            # (claim_pending), once PostgreSQL answers again. Nothing of it was committed.
            _LOGGER.error(
                "frame %s from camera %s not decided: %s; leaving it to the next leader",
                obs.frame_id or obs.entry,
                obs.camera,
                err,
            )
            why = "the identity store lost its PostgreSQL connection"
            if isinstance(err, NotLeaderError):
                why = "the identity store refused its write: another matcher leads"
            step_down(self.app, why)
            raise _StoreLost from err
        await self._answer(entry_id, obs, again)
        if obs.ref and self.gateway is not None:
            self.gateway.resolve(
                obs.ref, result if result is not None else FrameDroppedError("failed: see the log")
            )

    async def _moved(self, obs: Observation) -> None:
        """A camera's frames now come from another worker: its tracker starts afresh, so the
        tracks the last worker reported are over (their ids may come back meaning others)."""
        previous = self.owners.get(obs.camera)
        self.owners[obs.camera] = obs.owner
        if previous is None or previous == obs.owner:
            return
        self.counters["moved"] += 1
        _LOGGER.info("camera %s moved from worker %s to %s", obs.camera, previous, obs.owner)
        camera = obs.camera

        def end(ids: Any) -> None:
            book = getattr(ids, "tracks", None)
            if book is not None:
                ids.end_tracks([(camera, s.track_id) for s in book.on_camera(camera)])

        await self.app._call(end)

    async def _decide(
        self, data: bytes, head: Observation
    ) -> tuple[FrameResult | None, set[str] | None]:
        loop = asyncio.get_running_loop()
        pipeline: Pipeline = self.app.pipeline
        try:
            obs, image = await loop.run_in_executor(None, _decode_full, data)
            frame = Frame(
                camera=obs.camera,
                image=image,
                timestamp=obs.timestamp,
                source=obs.source,
                frame_id=obs.frame_id,
                detections=obs.detections if obs.supplied_boxes else None,
                extra=obs.extra,
                received_monotonic=time.monotonic(),
            )
            if obs.sent_at:
                self.hop.record("worker_to_matcher", max(0.0, time.time() - obs.sent_at) * 1000.0)
            latency = dict(obs.latency_ms)
            result, again = await pipeline.observe_remote(
                frame, obs.detections, obs.crops, obs.vectors, obs.fresh, latency, obs.ended
            )
            if obs.enqueued_at:
                self.hop.record("enqueued_to_decided", (time.time() - obs.enqueued_at) * 1000.0)
            self.counters["observations"] += 1
            return result, again
        except StoreUnavailableError:
            raise
        except Exception as err:
            self.counters["failed"] += 1
            _LOGGER.warning(
                "frame %s from camera %s failed: %s: %s",
                head.frame_id or head.entry,
                head.camera,
                type(err).__name__,
                err,
            )
            return None, None

    async def _answer(self, entry_id: str, obs: Observation, again: set[str] | None) -> None:
        """Feedback to the worker, the camera's high-water mark, the acknowledgement: one
        round trip. Retried while the broker is away (the entry stays pending meanwhile)."""
        while True:
            try:
                pipe = self.client.pipeline(transaction=False)
                feedback = self.keys.feedback(obs.owner)
                pipe.xadd(
                    feedback,
                    {
                        "cam": obs.camera,
                        "seq": obs.seq,
                        "again": "*" if again is None else json.dumps(sorted(again)),
                    },
                    maxlen=FEEDBACK_KEEP,
                    approximate=True,
                )
                pipe.pexpire(feedback, FEEDBACK_TTL_MS)
                if obs.entry and (
                    obs.camera not in self.hwm
                    or entry_key(obs.entry) > entry_key(self.hwm[obs.camera])
                ):
                    pipe.hset(self.keys.hwm, obs.camera, obs.entry)
                    self.hwm[obs.camera] = obs.entry
                pipe.xack(self.keys.observations, MATCHER_GROUP, entry_id)
                await pipe.execute()
                self.outage.succeeded()
                return
            except RedisError as err:
                self.broker_ok = False
                self.outage.failed(f"answering worker {obs.owner}", err)
                await asyncio.sleep(RETRY_S)

    # -- topology ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(RedisError, ValueError):
                self.workers = await self.topology()
            await asyncio.sleep(max(0.5, self.lease_s / 3.0))

    async def topology(self) -> list[dict[str, Any]]:
        now_ms = int(time.time() * 1000)
        tokens = await self.client.zrangebyscore(
            self.keys.workers, now_ms - int(self.lease_s * 1000), "+inf"
        )
        out = []
        for token in tokens:
            raw = await self.client.get(self.keys.worker(text(token)))
            if raw:
                out.append(json.loads(raw))
        return sorted(out, key=lambda w: str(w.get("worker_id")))

    def info(self) -> dict[str, Any]:
        """``info.cluster``: who does what, how far behind, what was shed."""
        return {
            "role": "matcher",
            "broker": "redis",
            "broker_ok": self.broker_ok,
            "workers": self.workers,
            "frames_dropped": sum(int(w.get("dropped", 0)) for w in self.workers),
            "lag": {cam: n for w in self.workers for cam, n in (w.get("lag") or {}).items()},
            **self.counters,
            "hop_ms": self.hop.summary(),
        }

    def health_reasons(self) -> list[str]:
        reasons = []
        if not self.broker_ok:
            reasons.append(
                f"cluster: Redis at {self.outage.url} unreachable; frames wait until it is back"
            )
        if not self.workers:
            reasons.append("cluster: no worker is running; start one (cluster.role: worker)")
        for worker in self.workers:
            if worker.get("streams_settings", self.streams_digest) != self.streams_digest:
                reasons.append(
                    f"cluster: worker {worker.get('worker_id')} has other sources.streams "
                    "settings than the matcher; give every host the same settings file"
                )
        return reasons


def _decode_full(data: bytes) -> tuple[Observation, Any]:
    from ..vision.decode import decode_image

    obs = Observation.decode(data)
    return obs, decode_image(obs.frame_jpeg, max_bytes=len(obs.frame_jpeg) + 1)


def step_down(app: Any, why: str) -> None:
    """Stop this matcher because it may no longer decide; it exits with
    ``EXIT_LOST_LEADERSHIP`` so its supervisor starts it again as standby."""

    if app.exit_code == EXIT_LOST_LEADERSHIP:
        return
    app.exit_code = EXIT_LOST_LEADERSHIP
    if app.cluster is not None:
        app.cluster.halt()  # before the rest of the shutdown: no decision after this line
    _LOGGER.error(
        "lost matcher leadership: %s; stopping (exit code %d): the standby leads once it "
        "reaches PostgreSQL, and this matcher, restarted by its supervisor, waits as standby",
        why,
        EXIT_LOST_LEADERSHIP,
    )
    app.request_stop()


__all__ = ["ClusterMatcher", "FrameGateway", "enqueue", "step_down"]
