"""Real video through the real server, offline: one camera, or regions of the picture as cameras.

``SmartReidApp`` runs exactly as ``serve`` and the demo run it (Pipeline, tracker, Identities,
visits; HTTP and MQTT off), with the video's own clock as frame time. Only the two models are
wrapped in a memo: the detector's boxes for a picture and the embedder's vector for a crop are
computed once and kept on disk, keyed by a hash of the pixels, so trying a matching or tracking
setting replays a minute of video in seconds. The vectors are the ones the product computes: the
memo only answers a question the product already asked once.

Camera layouts (``LAYOUTS``): ``one`` (the whole picture, re-entries), ``split2`` (left and right
halves, side by side, no overlap), ``overlap2`` (left 60 % and right 60 %: a person in the middle
is seen by both cameras at once). A strip camera's boxes are the whole picture's detections cut to
the strip (``_strip_boxes``), so every camera sees the people the labels cover; a person crossing
a strip's side is cut off there, as by a real camera's frame.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from smart_reid_server.config import Settings, load, validate
from smart_reid_server.demo import video_frames
from smart_reid_server.models.download import ModelManager
from smart_reid_server.pipeline import FrameResult, Pipeline
from smart_reid_server.serve.app import SmartReidApp
from smart_reid_server.types import Box, Detection, Frame, Image
from smart_reid_server.vision.detect import Detector
from smart_reid_server.vision.embed import Embedder
from smart_reid_server.vision.tracker import TrackedDetection, Tracks

from eval.data import REPO, models_dir, shared_dir

CACHE = REPO / "eval" / "results" / "cache" / "realvideo"
START = 1_767_000_000.0  # frame time of the video's first frame (any fixed value: determinism)

# Camera name -> (x from, x to) as fractions of the picture width.
LAYOUTS: dict[str, dict[str, tuple[float, float]]] = {
    "one": {"street": (0.0, 1.0)},
    "split2": {"left": (0.0, 0.5), "right": (0.5, 1.0)},
    "overlap2": {"left": (0.0, 0.6), "right": (0.4, 1.0)},
}


def video_path(name: str) -> Path:
    return shared_dir() / "data" / "video" / name


def read_frames(path: Path, step: int, limit: int = 0) -> Iterator[tuple[int, float, Image]]:
    """(frame index, seconds into the video, BGR picture) of every ``step``-th frame: the
    demo's reader, which the server's own demo runs."""
    if not path.is_file():
        raise FileNotFoundError(f"cannot open {path}")
    return video_frames(path, step, limit)


def _digest(image: npt.NDArray[Any]) -> str:
    return hashlib.blake2b(
        np.ascontiguousarray(image).tobytes() + repr(image.shape).encode(), digest_size=16
    ).hexdigest()


class Memo:
    """Detector boxes and crop vectors already computed, by pixel hash (on disk between runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Plain tuples (x1, y1, x2, y2, score): the cache outlives changes to ``Detection``.
        self.boxes: dict[str, list[tuple[float, float, float, float, float]]] = {}
        self.vectors: dict[str, npt.NDArray[np.float32]] = {}
        self.changed = False
        if path.is_file():
            with path.open("rb") as handle:
                self.boxes, self.vectors = pickle.load(handle)

    def save(self) -> None:
        if self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A temporary file of this process's own: two evaluations run side by side each
            # write the whole memo, and the last one to finish wins.
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as handle:
                pickle.dump((self.boxes, self.vectors), handle)
            tmp.replace(self.path)
            self.changed = False


class MemoDetector:
    """The product's detector, remembered per picture."""

    def __init__(self, inner: Detector, memo: Memo) -> None:
        self.inner = inner
        self.memo = memo
        self.name = inner.name
        self.runtime = inner.runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def detect(self, image: Image) -> list[Detection]:
        key = _digest(image)
        found = self.memo.boxes.get(key)
        if found is None:
            found = self.memo.boxes[key] = [
                (d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score) for d in self.inner.detect(image)
            ]
            self.memo.changed = True
        return [Detection(Box(x1, y1, x2, y2), score) for x1, y1, x2, y2, score in found]


class MemoEmbedder:
    """The product's embedder, remembered per crop."""

    def __init__(self, inner: Embedder, memo: Memo) -> None:
        self.inner = inner
        self.memo = memo

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed(self, crops: Sequence[Image]) -> npt.NDArray[np.float32]:
        keys = [_digest(c) for c in crops]
        todo = [i for i, k in enumerate(keys) if k not in self.memo.vectors]
        if todo:
            fresh = self.inner.embed([crops[i] for i in todo])
            for j, i in enumerate(todo):
                self.memo.vectors[keys[i]] = fresh[j]
            self.memo.changed = True
        if not keys:
            return np.zeros((0, self.inner.dim), np.float32)
        return np.stack([self.memo.vectors[k] for k in keys]).astype(np.float32)


class RecordingTracks(Tracks):
    """The product's tracker, with every assignment written down (for tracker metrics)."""

    def __init__(self, log: list[tuple[str, float, Box, str]], **settings: Any) -> None:
        super().__init__(**settings)
        self.log = log

    def update(
        self,
        camera: str,
        detections: Sequence[Detection],
        timestamp: float,
        sharpness: Sequence[float] | None = None,
    ) -> list[TrackedDetection]:
        out = super().update(camera, detections, timestamp, sharpness)
        self.log.extend((camera, timestamp, t.detection.box, t.track_id) for t in out)
        return out


@dataclass(slots=True)
class Sighting:
    """One decision, with its box in the whole picture's coordinates."""

    camera: str
    frame_index: int
    timestamp: float
    box: tuple[float, float, float, float]
    person_id: str
    new_person: bool
    match: str
    similarity: float
    issued_at: float  # frame time of the frame whose processing made the decision


@dataclass(slots=True)
class Run:
    layout: str
    cameras: dict[str, tuple[int, int]]  # camera -> pixel columns [from, to)
    frame_times: dict[int, float] = field(default_factory=dict)  # frame index -> frame time
    sightings: list[Sighting] = field(default_factory=list)
    # (camera, frame index) -> person ids the server counts as present there after that frame
    presence: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    tracks: list[tuple[str, int, tuple[float, float, float, float], str]] = field(
        default_factory=list
    )
    merges: list[tuple[float, str, str]] = field(default_factory=list)  # time, kept, dropped
    seconds: float = 0.0
    index_of: dict[float, int] = field(default_factory=dict)  # frame time -> frame index

    def frame_index_at(self, timestamp: float, default: int) -> int:
        """The frame taken at ``timestamp`` (frame times are exact: computed once each)."""
        return self.index_of.get(timestamp, default)


class EvalApp(SmartReidApp):
    """``SmartReidApp`` with memoised models (the tracker is swapped for a recording one)."""

    memo: Memo
    track_log: list[tuple[str, float, Box, str]]

    def _load_models(self, manager: ModelManager) -> tuple[Detector, Embedder]:
        detector, embedder = super()._load_models(manager)
        return (
            MemoDetector(detector, self.memo),  # type: ignore[return-value]
            MemoEmbedder(embedder, self.memo),  # type: ignore[return-value]
        )


def eval_settings(
    cameras: Sequence[str], data_dir: str, overrides: Mapping[str, Any] | None = None
) -> Settings:
    raw: dict[str, Any] = dict(load(None).raw)
    raw.update(
        cameras=list(cameras),
        data_dir=data_dir,
        log_level="warning",
        http={**raw["http"], "enabled": False},
        mqtt={**raw["mqtt"], "enabled": False},
        models={**raw["models"], "dir": str(models_dir())},
    )
    for section, values in (overrides or {}).items():
        if isinstance(values, Mapping):
            raw[section] = {**raw.get(section, {}), **values}
        else:
            raw[section] = values
    return validate(raw)


def replay(
    video: str = "walk_bike_sample.mp4",
    layout: str = "one",
    *,
    step: int = 3,
    limit: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> Run:
    """Run the server over the video in ``layout``; every decision and presence, in order."""
    columns = LAYOUTS[layout]
    path = video_path(video)
    memo = Memo(CACHE / f"{Path(video).stem}.v2.pkl")
    return run_server(
        list(columns),
        memo,
        lambda app, clock: _drive(app, path, layout, step, limit, clock),
        overrides=overrides,
        prefix="realvideo-",
    )


def run_server(
    cameras: Sequence[str],
    memo: Memo,
    drive: Callable[[EvalApp, list[float]], Coroutine[Any, Any, Run]],
    *,
    overrides: Mapping[str, Any] | None = None,
    prefix: str = "eval-",
) -> Run:
    """The real server (``EvalApp``, memoised models) on a fresh data folder, its clock the
    frame time ``drive`` sets in the list it is given; the memo is saved however it ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        settings = eval_settings(list(cameras), data_dir, overrides)
        clock = [START]
        app = EvalApp(settings, clock=lambda: clock[0])
        app.memo = memo
        app.track_log = []
        started = time.monotonic()
        try:
            run = asyncio.run(drive(app, clock))
        finally:
            memo.save()
        run.seconds = time.monotonic() - started
        return run


async def start_app(app: EvalApp) -> tuple[Pipeline, list[tuple[float, str, str]]]:
    """Start the server with the recording tracker; its pipeline and the merges it will make."""
    await app.start()
    pipeline = app.pipeline
    assert pipeline is not None
    pipeline.tracks = RecordingTracks(app.track_log)
    merges: list[tuple[float, str, str]] = []
    app.on_merged = lambda when, kept, dropped: merges.append((when, kept, dropped))
    return pipeline, merges


def finish_run(run: Run, app: EvalApp, merges: list[tuple[float, str, str]]) -> Run:
    """The tracker's assignments in the whole picture's coordinates, and the merges."""
    offset_of = {name: x0 for name, (x0, _) in run.cameras.items()}
    for camera, timestamp, box, track_id in app.track_log:
        dx = offset_of[camera]
        run.tracks.append(
            (
                camera,
                run.index_of[timestamp],
                (box.x1 + dx, box.y1, box.x2 + dx, box.y2),
                track_id,
            )
        )
    run.merges = merges
    return run


async def _drive(
    app: EvalApp, path: Path, layout: str, step: int, limit: int, clock: list[float]
) -> Run:
    pipeline, merges = await start_app(app)
    run: Run | None = None
    try:
        for index, offset, image in read_frames(path, step, limit):
            width = image.shape[1]
            if run is None:
                run = Run(
                    layout,
                    {
                        name: (round(a * width), round(b * width))
                        for name, (a, b) in LAYOUTS[layout].items()
                    },
                )
            timestamp = START + offset
            clock[0] = timestamp
            run.frame_times[index] = timestamp
            run.index_of[timestamp] = index
            if len(run.cameras) > 1:
                _strip_boxes(app.memo, app.detector, image, run.cameras)
            # One camera's frame at a time: live, cameras are matched in the order their frames
            # finish, which varies; offline, a fixed order keeps the whole run deterministic.
            for camera, (x0, x1) in run.cameras.items():
                frame = Frame(
                    camera=camera,
                    image=np.ascontiguousarray(image[:, x0:x1]),
                    timestamp=timestamp,
                    source="eval",
                    frame_id=f"{index:05d}_{camera}",
                )
                result: FrameResult = await pipeline.submit(frame)
                _collect(run, camera, index, result)
            for camera in run.cameras:
                run.presence[(camera, index)] = await app._call(_presence, camera, timestamp)
        await pipeline.expire_now()
    finally:
        await app.stop()
    assert run is not None
    return finish_run(run, app, merges)


def _strip_boxes(
    memo: Memo, detector: Any, image: Image, cameras: Mapping[str, tuple[int, int]]
) -> None:
    """Each strip camera sees the people the whole picture's detector finds (the labelled
    ones), cut to its strip: a detector run on a narrow strip alone finds smaller, farther
    people the labels do not cover, which would leave most of its sightings unscored."""
    whole = detector.detect(image)
    for x0, x1 in cameras.values():
        strip = np.ascontiguousarray(image[:, x0:x1])
        boxes = []
        for d in whole:
            b = d.box
            if b.x2 <= x0 + 1 or b.x1 >= x1 - 1:
                continue
            cut = Box(max(b.x1, x0) - x0, b.y1, min(b.x2, x1) - x0, b.y2)
            if cut.width >= 4:
                boxes.append((cut.x1, cut.y1, cut.x2, cut.y2, d.score))
        memo.boxes[_digest(strip)] = boxes


def _presence(identities: Any, camera: str, now: float) -> list[str]:
    """Who the camera state counts: named people, plus one entry per track still being looked
    at (``pending:<n>``)."""
    pending = int(getattr(identities, "camera_unidentified", lambda *_: 0)(camera, now))
    return list(identities.camera_presence(camera, now)) + [f"pending:{n}" for n in range(pending)]


def _collect(run: Run, camera: str, index: int, result: FrameResult) -> None:
    dx = run.cameras[camera][0]
    for d in result.decisions:
        b = d.box
        run.sightings.append(
            Sighting(
                camera=camera,
                # A track decided while out of sight is reported at its last sighting.
                frame_index=run.frame_index_at(d.timestamp, index),
                timestamp=d.timestamp,
                box=(b.x1 + dx, b.y1, b.x2 + dx, b.y2),
                person_id=d.person_id,
                new_person=d.new_person,
                match=d.match.value,
                similarity=d.similarity,
                issued_at=run.frame_times[index],
            )
        )
