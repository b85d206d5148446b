"""The frame pipeline: queue -> detect -> crop -> embed -> match -> hand over for publishing.

Why it is shaped like this:
- Each camera has its own small queue. A busy or chatty camera can only push out its *own*
  oldest frames (counted, and the waiting caller is told "dropped: overloaded"), and workers
  take frames round-robin across cameras, so one camera can never starve another.
- ``queue.workers`` frames are in flight at once. Detection, cropping and embedding run in a
  thread pool (onnxruntime and OpenVINO release the GIL, so two frames really run in parallel);
  the identity gallery is thread-confined and runs in one dedicated thread (``IdentityThread``),
  which also serves the HTTP operations, so no lock is ever needed around identities.
- Frames of one camera are tracked, embedded and matched in the order they arrived (detection
  of later frames goes on meanwhile), so visits never see one camera's time run backwards and
  the same input always gives the same tracks and decisions.
- A person followed by the tracker reuses the vector of the track's last look: decisions are
  made per track (``tracklets``), and a decided track keeps its person. The matcher says which
  tracks need a fresh look (``look_again``: still pending, or checked after an overlap); those
  crops are embedded again whatever the tracker's own cadence.
- Time for visits and tracks is the frames' own (``now``). While frames come, each frame, once
  matched, hands the tracks the tracker lost over and ends the visits whose window has passed,
  in the frame order: a file processed offline ends the same tracks and visits after the same
  frames however fast the machine is. Only once no camera streams does a wall-clock loop do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from .identity.store import StoreUnavailableError
from .serve.stats import CameraBook, LatencyStats
from .types import Crop, Decision, Detection, Frame, Image
from .vision.tracker import Tracks

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

EXPIRE_EVERY_S = 1.0  # wall seconds between housekeeping rounds while no camera streams
LOOK_WAIT_S = 30.0  # how long a frame waits for the earlier frame's embedding it reuses
# A camera whose latest frame was matched within this long is "streaming": time is its frames'.
FRAME_CLOCK_IDLE_S = 2.0
PURGE_EVERY_S = 3600.0


class FrameDroppedError(RuntimeError):
    """The frame never reached the matcher (queue overflow or shutdown)."""


class DetectorLike(Protocol):
    def detect(self, image: Image) -> list[Detection]: ...


class EmbedderLike(Protocol):
    def embed(self, crops: Sequence[Image]) -> npt.NDArray[np.float32]: ...


type CropFn = Callable[[Frame, list[Detection]], list[Crop]]


class IdentityThread:
    """The one thread that may touch the identities facade; everything else asks it."""

    def __init__(self, identities: Any) -> None:
        self.identities = identities
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="identities")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(identities, *args)`` on the identity thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.identities, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


@dataclass(slots=True)
class FrameResult:
    """Everything one frame produced, handed to the publisher and to HTTP callers."""

    frame: Frame
    detections: list[Detection]
    decisions: list[Decision]
    visit_events: list[Any]
    changed_person_ids: list[str]
    latency_ms: dict[str, float]
    # Whatever the ``after_observe`` hook collected on the identity thread (states to publish).
    extra: Any = None


@dataclass(slots=True)
class _Job:
    frame: Frame
    future: asyncio.Future[FrameResult]
    queued_at: float
    previous_match: asyncio.Future[None] | None = None
    match_done: asyncio.Future[None] | None = None
    seq: int = 0  # the frame's number on its camera
    previous_track: asyncio.Future[None] | None = None
    track_done: asyncio.Future[None] | None = None
    feedback: asyncio.Future[None] | None = None  # the match of the frame two before


@dataclass(slots=True)
class _Look:
    """One embedding of a track's crop, reused for the track's next crops. Made when the frame
    is tracked (so which look a later frame reuses never depends on timing) and filled when
    the crop is embedded."""

    vector: npt.NDArray[np.float32] | None = None
    ready: threading.Event = field(default_factory=threading.Event)


# Per crop of a tracked frame: its look, and whether the look was taken for this very crop.
type Looks = list[tuple[_Look, bool]]
type ResultHandler = Callable[[FrameResult], Awaitable[None]]
type EventsHandler = Callable[[list[Any], Any], Awaitable[None]]
type PurgedHandler = Callable[[list[str], Any], Awaitable[None]]
type ObserveHook = Callable[[Any, Any, Frame], Any]


@dataclass(slots=True)
class PipelineCounters:
    accepted: int = 0
    dropped: int = 0
    failed: int = 0
    completed: int = 0
    in_flight: int = 0
    embedded: int = 0  # crops run through the embedder
    reused: int = 0  # crops whose track's vector was reused
    by_camera_dropped: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """Frames in (``offer``/``submit``/``process``), ``FrameResult`` out (``on_result``)."""

    def __init__(
        self,
        *,
        detector: DetectorLike,
        embedder: EmbedderLike,
        crops: CropFn,
        identity_thread: IdentityThread,
        cameras: CameraBook,
        per_camera: int = 4,
        workers: int = 2,
        on_result: ResultHandler | None = None,
        on_visit_events: EventsHandler | None = None,
        after_observe: ObserveHook | None = None,
        after_expire: Callable[[Any, list[Any]], Any] | None = None,
        on_purged: PurgedHandler | None = None,
        after_purge: Callable[[Any, list[str]], Any] | None = None,
        latency: LatencyStats | None = None,
        tracks: Tracks | None = None,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self._crops = crops
        self.identity_thread = identity_thread
        self.cameras = cameras
        self.per_camera = max(1, per_camera)
        self.workers = max(1, workers)
        self.on_result = on_result
        self.on_visit_events = on_visit_events
        self.after_observe = after_observe
        self.after_expire = after_expire
        self.on_purged = on_purged
        self.after_purge = after_purge
        self.latency = latency or LatencyStats()
        self.tracks = tracks
        self._track_looks: dict[tuple[str, str], _Look] = {}
        self._track_lock = threading.Lock()
        self.retention_days = retention_days
        self.counters = PipelineCounters()
        self._clock = clock
        self._queues: dict[str, deque[_Job]] = {}
        self._order: deque[str] = deque()
        self._match_tail: dict[str, asyncio.Future[None]] = {}
        self._track_tail: dict[str, asyncio.Future[None]] = {}
        self._recent_matches: dict[str, deque[asyncio.Future[None]]] = {}
        self._seq: dict[str, int] = {}
        # (camera, track) -> {frame number: whether the matcher asked for a fresh look}
        self._look_again: dict[tuple[str, str], dict[int, bool]] = {}
        # (camera, frame number) -> the camera's tracks that ended as of that frame's time, handed
        # to the matcher right after the frame is matched
        self._ended_after: dict[tuple[str, int], list[tuple[str, str]]] = {}
        # camera -> (latest frame time matched, the server's clock then): the frame clock
        self._frame_clock: dict[str, tuple[float, float]] = {}
        self._keeps_house = True
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._cpu = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="analyse")
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, housekeeping: bool = True) -> None:
        self._accepting = True
        self._keeps_house = housekeeping
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"pipeline-worker-{i}")
            for i in range(self.workers)
        ]
        if housekeeping:
            self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting, let queued and in-flight frames finish (up to ``grace_s``), stop."""
        self._accepting = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), grace_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for queue in self._queues.values():
            while queue:
                job = queue.popleft()
                if not job.future.done():
                    job.future.set_exception(FrameDroppedError("dropped: server shutting down"))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._cpu.shutdown, True)

    async def drain(self) -> None:
        """Wait until every queued frame has been processed."""
        while any(self._queues.values()) or self.counters.in_flight:
            self._idle.clear()
            await self._idle.wait()

    # -- ingest ------------------------------------------------------------------------------

    def offer(self, frame: Frame) -> bool:
        """Queue a frame without waiting for it (MQTT, streams); False when it was refused."""
        future = self.submit(frame)
        if future.done():
            return False
        future.add_done_callback(_consume_exception)
        return True

    def submit(self, frame: Frame) -> asyncio.Future[FrameResult]:
        """Queue a frame; the future resolves to its result or fails with FrameDroppedError."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FrameResult] = loop.create_future()
        if not self._accepting:
            future.set_exception(FrameDroppedError("dropped: the pipeline is not running"))
            return future
        if not self.cameras.admit(frame.camera):
            future.set_exception(
                FrameDroppedError(
                    f"dropped: unknown camera {frame.camera!r}; add it to `cameras` "
                    "or set auto_add_cameras: true"
                )
            )
            self.cameras.rejected(frame.camera)
            return future
        if not frame.received_monotonic:
            frame.received_monotonic = time.monotonic()
        queue = self._queues.get(frame.camera)
        if queue is None:
            queue = self._queues[frame.camera] = deque()
            self._order.append(frame.camera)
        if len(queue) >= self.per_camera:
            old = queue.popleft()
            self._count_drop(frame.camera)
            if not old.future.done():
                old.future.set_exception(
                    FrameDroppedError(
                        f"dropped: overloaded (camera {frame.camera} has {self.per_camera} "
                        "frames waiting; the oldest was discarded)"
                    )
                )
        queue.append(_Job(frame, future, time.monotonic()))
        self.counters.accepted += 1
        self._wakeup.set()
        return future

    async def process(self, frame: Frame) -> FrameResult:
        """Queue a frame and wait for its decisions (HTTP upload)."""
        return await self.submit(frame)

    def queued(self, camera: str | None = None) -> int:
        if camera is not None:
            return len(self._queues.get(camera, ()))
        return sum(len(q) for q in self._queues.values())

    def _count_drop(self, camera: str) -> None:
        self.counters.dropped += 1
        self.counters.by_camera_dropped[camera] = self.counters.by_camera_dropped.get(camera, 0) + 1
        self.cameras.dropped(camera)
        if self.counters.dropped in (1, 10, 100) or self.counters.dropped % 1000 == 0:
            _LOGGER.warning(
                "overloaded: dropped %d frames so far (latest from %s); lower the camera frame "
                "rate or raise queue.workers",
                self.counters.dropped,
                camera,
            )

    # -- workers -----------------------------------------------------------------------------

    def _next_job(self) -> _Job | None:
        for _ in range(len(self._order)):
            camera = self._order[0]
            self._order.rotate(-1)
            queue = self._queues[camera]
            if queue:
                job = queue.popleft()
                loop = asyncio.get_running_loop()
                job.seq = self._seq[camera] = self._seq.get(camera, 0) + 1
                job.previous_match = self._match_tail.get(camera)
                job.match_done = loop.create_future()
                self._match_tail[camera] = job.match_done
                job.previous_track = self._track_tail.get(camera)
                job.track_done = loop.create_future()
                self._track_tail[camera] = job.track_done
                recent = self._recent_matches.setdefault(camera, deque(maxlen=2))
                job.feedback = recent[0] if len(recent) == 2 else None
                recent.append(job.match_done)
                return job
        return None

    async def _worker(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                self._wakeup.clear()
                if not self.counters.in_flight:
                    self._idle.set()
                await self._wakeup.wait()
                continue
            self.counters.in_flight += 1
            try:
                await self._run(job)
            finally:
                self.counters.in_flight -= 1
                _release_track(job)
                _release(job)
                if self._match_tail.get(job.frame.camera) is job.match_done:
                    del self._match_tail[job.frame.camera]
                if self._track_tail.get(job.frame.camera) is job.track_done:
                    del self._track_tail[job.frame.camera]

                if not self.counters.in_flight and not any(self._queues.values()):
                    self._idle.set()

    async def _run(self, job: _Job) -> None:
        frame = job.frame
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        latency = {"queue": (started - job.queued_at) * 1000.0}
        try:
            detections, crops, timings = await loop.run_in_executor(self._cpu, self._detect, frame)
            # A camera's frames are tracked in arrival order, and tracking decides which crops
            # to embed from what the matcher said about the frame two before (which tracks are
            # still undecided or being checked): a fixed point, whatever the timing, so the same
            # input always gives the same decisions, while a frame's embedding still overlaps
            # the previous frame's embedding and matching.
            try:
                if job.previous_track is not None:
                    await asyncio.shield(job.previous_track)
                if job.feedback is not None:
                    await asyncio.shield(job.feedback)
                crops, looks_plan = self._track(frame, detections, crops, job.seq)
            finally:
                _release_track(job)
            t0 = time.monotonic()
            vectors, looks = await loop.run_in_executor(
                self._cpu, self._embed_selected, crops, looks_plan
            )
            timings["embed"] += (time.monotonic() - t0) * 1000.0
            latency.update(timings)
            if job.previous_match is not None:
                await asyncio.shield(job.previous_match)
            t0 = time.monotonic()
            observed, extra = await self._identify(
                frame, detections, crops, vectors, looks, job.seq
            )
            latency["match"] = (time.monotonic() - t0) * 1000.0
            self._note_time(frame)
            # Before this camera's next frame may be matched: the same frames, the same order.
            await self._housekeeping_after_frame(frame.camera)
        except Exception as err:
            self.counters.failed += 1
            _LOGGER.warning(
                "frame %s from camera %s failed: %s: %s",
                frame.frame_id or "-",
                frame.camera,
                type(err).__name__,
                err,
            )
            if not job.future.done():
                job.future.set_exception(err)
            return
        finally:
            _release(job)
        result = await self._deliver(frame, detections, observed, extra, latency, job.queued_at)
        if not job.future.done():
            job.future.set_result(result)

    async def _identify(
        self,
        frame: Frame,
        detections: list[Detection],
        crops: list[Crop],
        vectors: npt.NDArray[np.float32],
        looks: Looks | None,
        seq: int,
    ) -> tuple[Any, Any]:
        """Match the frame's crops (here: on the identity thread; a cluster worker sends them
        to the matcher instead, ``cluster.worker``)."""
        return await self.identity_thread.call(self._observe, frame, crops, vectors, looks, seq)

    def _note_time(self, frame: Frame) -> None:
        latest = self._frame_clock.get(frame.camera, (frame.timestamp, 0.0))[0]
        self._frame_clock[frame.camera] = (max(latest, frame.timestamp), self._clock())

    async def observe_remote(
        self,
        frame: Frame,
        detections: list[Detection],
        crops: list[Crop],
        vectors: npt.NDArray[np.float32],
        fresh: list[bool] | None,
        latency: dict[str, float],
        ended: Sequence[str] = (),
    ) -> tuple[FrameResult, set[str]]:
        """The identity half of a frame a cluster worker detected, tracked and embedded
        (``cluster.matcher``): match, hand the result over; returns it and the tracks the
        worker should look at afresh. Raises what matching raised."""
        t0 = time.monotonic()
        observed, extra = await self.identity_thread.call(
            self._observe_fresh, frame, crops, vectors, fresh, list(ended)
        )
        latency["match"] = (time.monotonic() - t0) * 1000.0
        self._note_time(frame)
        await self._housekeeping_after_frame(frame.camera)  # as in one process
        result = await self._deliver(frame, detections, observed, extra, latency, t0)
        return result, set(getattr(observed, "look_again", set()))

    def _observe_fresh(
        self,
        identities: Any,
        frame: Frame,
        crops: list[Crop],
        vectors: npt.NDArray[np.float32],
        fresh: list[bool] | None,
        ended: list[str],
    ) -> tuple[Any, Any]:
        observed = identities.observe(frame.camera, frame.timestamp, crops, vectors, frame, fresh)
        extra = self.after_observe(identities, observed, frame) if self.after_observe else None
        _end_tracks(identities, [(frame.camera, track_id) for track_id in ended])
        return observed, extra

    async def _deliver(
        self,
        frame: Frame,
        detections: list[Detection],
        observed: Any,
        extra: Any,
        latency: dict[str, float],
        queued_at: float,
    ) -> FrameResult:
        """Count the frame, hand its result to ``on_result``, record its latencies."""
        decisions: list[Decision] = list(getattr(observed, "decisions", []))
        result = FrameResult(
            frame=frame,
            detections=detections,
            decisions=decisions,
            visit_events=list(getattr(observed, "visit_events", [])),
            changed_person_ids=list(getattr(observed, "changed_person_ids", [])),
            latency_ms=latency,
            extra=extra,
        )
        self.cameras.processed(frame.camera, decisions)
        t0 = time.monotonic()
        if self.on_result is not None:
            try:
                await self.on_result(result)
            except Exception:
                _LOGGER.exception("publishing the result of a %s frame failed", frame.camera)
        done = time.monotonic()
        latency["publish"] = (done - t0) * 1000.0
        latency["total"] = (done - (frame.received_monotonic or queued_at)) * 1000.0
        for stage, ms in latency.items():
            self.latency.record(stage, ms)
        self.counters.completed += 1
        return result

    def _detect(self, frame: Frame) -> tuple[list[Detection], list[Crop], dict[str, float]]:
        """Detect (unless boxes came with the frame) and crop: in the thread pool."""
        t0 = time.monotonic()
        if frame.detections is None:
            detections = self.detector.detect(frame.image)
            detect_ms = (time.monotonic() - t0) * 1000.0
        else:
            detections = list(frame.detections)
            detect_ms = 0.0
        t1 = time.monotonic()
        crops = self._crops(frame, detections) if detections else []
        return detections, crops, {"detect": detect_ms, "embed": (time.monotonic() - t1) * 1000.0}

    def _track(
        self, frame: Frame, detections: list[Detection], crops: list[Crop], seq: int
    ) -> tuple[list[Crop], Looks | None]:
        """Link the crops to their camera's tracks (frames of one camera in order) and plan each
        crop's look: a new one to embed, or the track's last one to reuse (None: embed every
        crop, the frame is not tracked)."""
        # Track only what is known to be video: our own detections, or boxes an upstream tracker
        # already linked. Uploaded boxes without ids may be unrelated stills of anyone.
        trackable = frame.detections is None or all(d.track_id for d in detections)
        if self.tracks is None or not trackable:
            return crops, None
        tracked = (
            self.tracks.update(
                frame.camera,
                [c.detection for c in crops],
                frame.timestamp,
                sharpness=[c.quality.sharpness for c in crops],
            )
            if crops
            else []
        )
        # A camera's tracks end with its own frames (also the empty ones): lost as of this
        # frame's time, whatever the other cameras or the wall clock do, so the same frames
        # always end the same tracks, in one process or on a cluster worker.
        ended = self.tracks.expire(frame.timestamp, frame.camera)
        crops = [Crop(t.detection, c.image, c.quality) for c, t in zip(crops, tracked, strict=True)]
        plan: Looks = []
        with self._track_lock:
            for key in ended:
                self._track_looks.pop(key, None)
                self._look_again.pop(key, None)
            if ended:
                self._ended_after[(frame.camera, seq)] = ended
            if not crops:
                return crops, None
            for t in tracked:
                key = (frame.camera, t.track_id)
                look = self._track_looks.get(key)
                asked = self._look_again.get(key, {})
                told = [n for n in asked if n <= seq - 2]
                again = asked[max(told)] if told else False
                if t.embed or look is None or again:
                    look = self._track_looks[key] = _Look()
                    plan.append((look, True))
                else:
                    plan.append((look, False))
        return crops, plan

    def _embed_selected(
        self, crops: list[Crop], plan: Looks | None
    ) -> tuple[npt.NDArray[np.float32], Looks | None]:
        """Vectors for ``crops``: every crop (no plan), or the planned new looks embedded and
        the others taken from their track's earlier look (waiting for it if that frame is
        still being embedded)."""
        if not crops:
            return np.zeros((0, 0), np.float32), None
        if plan is None:
            self.counters.embedded += len(crops)
            return self.embedder.embed([c.image for c in crops]), None
        todo = [i for i, (_, fresh) in enumerate(plan) if fresh]
        try:
            if todo:
                vectors = self.embedder.embed([crops[i].image for i in todo])
                for j, i in enumerate(todo):
                    plan[i][0].vector = vectors[j]
        finally:
            for i in todo:
                plan[i][0].ready.set()
        out: Looks = []
        for i, (look, fresh) in enumerate(plan):
            if not fresh and (not look.ready.wait(LOOK_WAIT_S) or look.vector is None):
                # The earlier frame's embedding failed (or is stuck): look afresh.
                look = _Look(self.embedder.embed([crops[i].image])[0])
                look.ready.set()
                fresh = True
                todo.append(i)
            out.append((look, fresh))
        self.counters.embedded += len(todo)
        self.counters.reused += len(crops) - len(todo)
        rows = [look.vector for look, _ in out if look.vector is not None]
        assert len(rows) == len(out)
        vectors_out = np.stack(rows).astype(np.float32, copy=False)
        return vectors_out, out

    async def _forget_tracks(self, now: float, camera: str | None = None) -> None:
        if self.tracks is None:
            return
        ended = self.tracks.expire(now, camera)
        if ended:
            with self._track_lock:
                for key in ended:
                    self._track_looks.pop(key, None)
                    self._look_again.pop(key, None)
            await self.identity_thread.call(_end_tracks, ended)

    def _observe(
        self,
        identities: Any,
        frame: Frame,
        crops: list[Crop],
        vectors: npt.NDArray[np.float32],
        looks: Looks | None = None,
        seq: int = 0,
    ) -> tuple[Any, Any]:
        """On the identity thread: match and update visits, then let the app read states."""
        fresh = None if looks is None else [is_fresh for _, is_fresh in looks]
        observed = identities.observe(frame.camera, frame.timestamp, crops, vectors, frame, fresh)
        if looks is not None:
            again: set[str] = getattr(observed, "look_again", set())
            self._remember_asks(frame.camera, crops, seq, again.__contains__)
        extra = self.after_observe(identities, observed, frame) if self.after_observe else None
        _end_tracks(identities, self.take_ended(frame.camera, seq))
        return observed, extra

    def take_ended(self, camera: str, seq: int) -> list[tuple[str, str]]:
        """The tracks of ``camera`` that ended as of its frame ``seq`` (once)."""
        with self._track_lock:
            return self._ended_after.pop((camera, seq), [])

    def _remember_asks(
        self, camera: str, crops: list[Crop], seq: int, asked_again: Callable[[str], bool]
    ) -> None:
        """Note, per track in frame ``seq``, whether the matcher asked for a fresh look."""
        with self._track_lock:
            for crop in crops:
                track_id = crop.detection.track_id
                if track_id is None:
                    continue
                asked = self._look_again.setdefault((camera, track_id), {})
                asked[seq] = asked_again(track_id)
                for old in [n for n in asked if n < seq - 4]:
                    del asked[old]

    # -- housekeeping ------------------------------------------------------------------------

    def now(self) -> float:
        """The frame clock: what time it is for visits, tracks and presence.

        While cameras stream, it is the frame time the slowest streaming camera has reached, so
        visits and tracks end by the frames' own time whatever the wall clock says (a recording
        uploaded with its true timestamps, a file processed faster or slower than real time) and
        the same frames always end the same visits. Once no frame came for
        ``FRAME_CLOCK_IDLE_S``, time runs on from the latest frame; before any frame, it is the
        server's clock.
        """
        now = self._clock()
        if not self._frame_clock:
            return now
        streaming = [ts for ts, at in self._frame_clock.values() if now - at < FRAME_CLOCK_IDLE_S]
        if streaming:
            return min(streaming)
        ts, at = max(self._frame_clock.values())
        return ts + (now - at)

    def has_frames(self) -> bool:
        """Whether any frame has been matched yet (before that, ``now`` is the wall clock)."""
        return bool(self._frame_clock)

    def streaming(self) -> bool:
        """Whether a camera's frame was matched within ``FRAME_CLOCK_IDLE_S``: time is frames'."""
        now = self._clock()
        return any(now - at < FRAME_CLOCK_IDLE_S for _, at in self._frame_clock.values())

    async def expire_now(self, now: float | None = None) -> list[Any]:
        """End visits whose window has passed by ``now`` (default: the frame clock) and hand
        their events over; returns them."""
        now = self.now() if now is None else now
        events, extra = await self.identity_thread.call(self._expire, now)
        if events and self.on_visit_events is not None:
            await self.on_visit_events(events, extra)
        return events

    def _expire(self, identities: Any, now: float) -> tuple[list[Any], Any]:
        events = list(identities.expire(now))
        extra = self.after_expire(identities, events) if self.after_expire and events else None
        return events, extra

    async def purge_now(self) -> list[str]:
        """Retention: forget people unseen for ``retention_days`` and hand their ids over (the
        app clears their retained states); returns the ids."""
        now = self._clock()
        gone, extra = await self.identity_thread.call(self._purge, now)
        if gone and self.on_purged is not None:
            await self.on_purged(gone, extra)
        return gone

    def _purge(self, identities: Any, now: float) -> tuple[list[str], Any]:
        gone = list(identities.purge_stale(now))
        extra = self.after_purge(identities, gone) if self.after_purge and gone else None
        return gone, extra

    async def _keep_house(self, now: float) -> None:
        """Hand lost tracks over and end visits, as of ``now`` (frame clock)."""
        await self._forget_tracks(now)
        await self.expire_now(now)

    async def _housekeeping_after_frame(self, camera: str) -> None:
        """After each matched frame: visits end at the frame clock (the camera's lost tracks
        already ended with the frame, ``_track``). Frames alone decide when tracks and visits
        end, so the same frames always end the same ones at the same point."""
        if not self._keeps_house:
            return
        try:
            await self.expire_now(self.now())
        except Exception:
            _LOGGER.exception("housekeeping (visit expiry) failed")

    async def _housekeeping(self) -> None:
        """The wall-clock round: only while no camera streams (frames do it otherwise; a round
        here, at a moment that depends on the machine's speed, would make offline runs differ),
        and the retention purge."""
        next_purge = time.monotonic() + 60.0
        while True:
            await asyncio.sleep(EXPIRE_EVERY_S)
            try:
                if not self.streaming():
                    await self._keep_house(self.now())
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_EVERY_S
                    await self.purge_now()
            except asyncio.CancelledError:
                raise
            except StoreUnavailableError:
                pass  # PostgreSQL away: logged once by the store; expiry resumes once it is back
            except Exception:
                _LOGGER.exception("housekeeping (visit expiry / retention purge) failed")


def _end_tracks(identities: Any, keys: list[tuple[str, str]]) -> None:
    end = getattr(identities, "end_tracks", None)
    if end is not None:
        end(keys)


def _release(job: _Job) -> None:
    """Let the camera's next frame into the matcher, but never before this one's predecessor."""
    _release_after(job.match_done, job.previous_match)


def _release_track(job: _Job) -> None:
    """Let the camera's next frame into the tracker, never before this one's predecessor."""
    _release_after(job.track_done, job.previous_track)


def _release_after(
    done: asyncio.Future[None] | None, previous: asyncio.Future[None] | None
) -> None:
    """Resolve ``done`` now, or as soon as ``previous`` is resolved."""
    if done is None or done.done():
        return
    if previous is None or previous.done():
        done.set_result(None)
        return

    def follow(_: asyncio.Future[None]) -> None:
        if not done.done():
            done.set_result(None)

    previous.add_done_callback(follow)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def quality_crops(extract: Callable[..., list[Crop]], quality_cfg: Mapping[str, Any]) -> CropFn:
    """Bind the quality settings to ``crops.extract_crops``."""

    def run(frame: Frame, detections: list[Detection]) -> list[Crop]:
        return extract(frame, detections, quality_cfg)

    return run
