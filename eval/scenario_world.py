"""A simulated multi-camera day built from real people: who walks where, when, in which frames.

No multi-camera video of the same people exists here, so the day is assembled from CUHK03
labeled identities (see ``../shared/data/README.md``): every identity was filmed by two camera
views, A and B. Four simulated cameras (by default) sit on a ring ``front - drive - back - garden -
front`` and alternate views (front and back show view-A crops, drive and garden view-B crops), so
every walk from one camera to its neighbour is a hand-over between the two real views, the hard
case for appearance. Crops are pasted at their own size onto a 1280x720 background per camera, with a
little jitter (scale, brightness) so repeated crops are not identical pixels, and uploaded with
one supplied detection box per person covering exactly the pasted crop (the server does not run
its detector; this measures identity, not detection).

People: a few household members seen several times a day, returning visitors seen twice (more
than the visit window apart), one-time visitors; some visitors arrive in pairs (same path, same
frames). A visit enters at ``front`` or ``drive`` and walks past 1-3 neighbouring cameras,
staying a few seconds in view of each with 5-40 s transit between them. Each camera takes a
frame every ``1/fps`` s while anyone is in view. Everything is drawn from one seeded generator,
so a seed and a split give the same day every time.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from eval.data import Split

CAMERAS: tuple[str, ...] = ("front", "drive", "back", "garden")
CANVAS_W, CANVAS_H = 1280, 720
JPEG_QUALITY = 90


def view_of(cameras: tuple[str, ...], camera: str) -> int:
    """Cameras alternate CUHK03 views around the ring: A (0), B (1), A, B."""
    return cameras.index(camera) % 2


def adjacency(cameras: tuple[str, ...] = CAMERAS) -> dict[str, list[str]]:
    """The ring as the product's ``match.adjacency`` setting."""
    n = len(cameras)
    return {
        c: sorted({cameras[(i - 1) % n], cameras[(i + 1) % n]} - {c}) for i, c in enumerate(cameras)
    }


class Role(StrEnum):
    HOUSEHOLD = "household"
    RETURNING = "returning"
    VISITOR = "visitor"


@dataclass(frozen=True, slots=True)
class Params:
    """Shape of the day. The defaults are the reported scenario (4 cameras, 60 identities)."""

    identities: int = 60
    cameras: tuple[str, ...] = CAMERAS  # a ring; the first two are where visits come in
    household: int = 4
    household_visits: int = 4
    returning: int = 12
    pair_share: float = 0.15  # share of one-time visitors who arrive together with another
    mean_arrival_gap_s: float = 90.0
    household_gap_s: float = 600.0  # at least this between two visits of one person
    return_gap_s: float = 300.0
    dwell_s: tuple[float, float] = (3.0, 10.0)
    transit_s: tuple[float, float] = (5.0, 40.0)
    path_lengths: tuple[float, float, float] = (0.3, 0.4, 0.3)  # P(1, 2, 3 cameras)
    fps: float = 1.0
    start: float = 1_900_000_000.0  # simulated Unix time of the first arrival

    def __post_init__(self) -> None:
        multi = self.household + self.returning
        if multi > self.identities:
            raise ValueError(f"{multi} household/returning people but {self.identities} identities")
        if len(self.cameras) < 2:
            raise ValueError("the scenario needs at least two cameras")
        if self.transit_s[0] <= 0 or self.dwell_s[0] <= 0:
            raise ValueError("dwell and transit times must be positive")


@dataclass(frozen=True, slots=True)
class Person:
    pid: int  # CUHK03 identity within the split
    role: Role
    crops: tuple[tuple[Path, ...], tuple[Path, ...]]  # view A crops, view B crops


@dataclass(frozen=True, slots=True)
class Segment:
    """A person in view of one camera from ``enter`` to ``leave`` (simulated Unix seconds)."""

    camera: str
    enter: float
    leave: float


@dataclass(frozen=True, slots=True)
class TrueVisit:
    """One real visit: what the product should announce exactly once."""

    index: int
    pid: int
    segments: tuple[Segment, ...]
    group: int  # visits with the same group walked together

    @property
    def start(self) -> float:
        return self.segments[0].enter

    @property
    def end(self) -> float:
        return self.segments[-1].leave


@dataclass(frozen=True, slots=True)
class Appearance:
    """One person in one frame: the crop pasted and where."""

    pid: int
    visit: int
    crop: Path
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 on the canvas
    scale: float
    gain: float  # brightness factor


@dataclass(frozen=True, slots=True)
class SimFrame:
    index: int
    camera: str
    timestamp: float
    people: tuple[Appearance, ...]

    @property
    def frame_id(self) -> str:
        return f"{self.camera}-{self.index:05d}"

    def detections(self) -> list[dict[str, object]]:
        """The supplied boxes, in the order the server will answer them."""
        return [{"box": list(p.box), "score": 0.9} for p in self.people]


@dataclass(slots=True)
class Day:
    params: Params
    seed: int
    split: str
    persons: dict[int, Person]
    visits: list[TrueVisit]
    frames: list[SimFrame]
    _backgrounds: dict[str, npt.NDArray[np.uint8]] = field(default_factory=dict, repr=False)

    @property
    def duration_s(self) -> float:
        return self.frames[-1].timestamp - self.frames[0].timestamp if self.frames else 0.0

    def crops(self) -> int:
        return sum(len(f.people) for f in self.frames)

    def render(self, frame: SimFrame) -> npt.NDArray[np.uint8]:
        """The camera picture: the camera's background with every person pasted in."""
        canvas = self._background(frame.camera).copy()
        for person in frame.people:
            x1, y1, x2, y2 = person.box
            canvas[y1:y2, x1:x2] = _jittered(person, x2 - x1, y2 - y1)
        return canvas

    def jpeg(self, frame: SimFrame) -> bytes:
        ok, buffer = cv2.imencode(
            ".jpg", self.render(frame), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise RuntimeError(f"could not encode frame {frame.frame_id}")
        return buffer.tobytes()

    def _background(self, camera: str) -> npt.NDArray[np.uint8]:
        if camera not in self._backgrounds:
            rng = np.random.default_rng([self.seed, self.params.cameras.index(camera)])
            base = rng.integers(70, 150, size=3)
            small = rng.normal(0.0, 18.0, size=(CANVAS_H // 40, CANVAS_W // 40, 3))
            texture = cv2.resize(small, (CANVAS_W, CANVAS_H), interpolation=cv2.INTER_CUBIC)
            self._backgrounds[camera] = np.clip(base + texture, 0, 255).astype(np.uint8)
        return self._backgrounds[camera]


@functools.lru_cache(maxsize=2048)
def _read(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return np.asarray(image, dtype=np.uint8)


def _jittered(person: Appearance, width: int, height: int) -> npt.NDArray[np.uint8]:
    image = cv2.resize(_read(person.crop), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(image.astype(np.float32) * person.gain, 0, 255).astype(np.uint8)


def _people(split: Split, params: Params, rng: np.random.Generator) -> dict[int, Person]:
    by_view: dict[int, tuple[list[Path], list[Path]]] = {}
    for path, pid, cam in zip(split.paths, split.pids, split.cams, strict=True):
        by_view.setdefault(int(pid), ([], []))[int(cam)].append(path)
    usable = sorted(pid for pid, (a, b) in by_view.items() if len(a) >= 2 and len(b) >= 2)
    if len(usable) < params.identities:
        raise ValueError(
            f"split {split.name} has {len(usable)} identities with 2+ crops in both views; "
            f"the scenario needs {params.identities}"
        )
    chosen = [int(p) for p in rng.permutation(usable)[: params.identities]]
    roles = (
        [Role.HOUSEHOLD] * params.household
        + [Role.RETURNING] * params.returning
        + [Role.VISITOR] * (params.identities - params.household - params.returning)
    )
    return {
        pid: Person(pid, role, (tuple(by_view[pid][0]), tuple(by_view[pid][1])))
        for pid, role in zip(chosen, roles, strict=True)
    }


def _path(rng: np.random.Generator, params: Params) -> list[str]:
    length = int(rng.choice([1, 2, 3], p=list(params.path_lengths)))
    ring = params.cameras
    camera = str(rng.choice(ring[:2]))
    step = int(rng.choice([-1, 1]))
    path = [camera]
    for _ in range(length - 1):
        camera = ring[(ring.index(camera) + step) % len(ring)]
        path.append(camera)
    return path


def _segments(
    start: float, cameras: list[str], rng: np.random.Generator, params: Params
) -> list[Segment]:
    out: list[Segment] = []
    t = start
    for i, camera in enumerate(cameras):
        if i:
            t += float(rng.uniform(*params.transit_s))
        dwell = float(rng.uniform(*params.dwell_s))
        out.append(Segment(camera, t, t + dwell))
        t += dwell
    return out


def _arrivals(
    persons: dict[int, Person], params: Params, rng: np.random.Generator
) -> list[tuple[float, list[int]]]:
    """(start time, persons walking together) for every visit of the day."""
    visitors = [p.pid for p in persons.values() if p.role is Role.VISITOR]
    groups: list[list[int]] = []
    queue = list(rng.permutation(visitors))
    while queue:
        pid = int(queue.pop())
        if queue and rng.random() < params.pair_share:
            groups.append([pid, int(queue.pop())])
        else:
            groups.append([pid])
    repeat = {
        p.pid: (params.household_visits if p.role is Role.HOUSEHOLD else 2)
        for p in persons.values()
        if p.role is not Role.VISITOR
    }
    slots = len(groups) + sum(repeat.values())
    times = params.start + np.cumsum(rng.exponential(params.mean_arrival_gap_s, size=slots))
    times -= times[0] - params.start
    day_end = float(times[-1])
    out: list[tuple[float, list[int]]] = []
    free = list(times)
    for pid, count in repeat.items():
        gap = params.household_gap_s if persons[pid].role is Role.HOUSEHOLD else params.return_gap_s
        for _ in range(20000):
            picks = sorted(rng.choice(len(free), size=count, replace=False))
            chosen = [free[i] for i in picks]
            if all(b - a >= gap for a, b in itertools.pairwise(chosen)):
                break
        else:
            raise ValueError(
                f"cannot fit {count} visits {gap:.0f} s apart in a {day_end:.0f} s day"
            )
        for i in reversed(picks):
            free.pop(i)
        out.extend((t, [pid]) for t in chosen)
    out.extend((t, group) for t, group in zip(free, groups, strict=True))
    out.sort(key=lambda item: item[0])
    return out


def build_day(split: Split, seed: int = 0, params: Params | None = None) -> Day:
    """The scenario for ``split`` (use train to tune, val to report) and ``seed``."""
    params = params or Params()
    rng = np.random.default_rng(seed)
    persons = _people(split, params, rng)
    visits: list[TrueVisit] = []
    for group_index, (start, group) in enumerate(_arrivals(persons, params, rng)):
        segments = _segments(start, _path(rng, params), rng, params)
        for pid in group:
            visits.append(TrueVisit(len(visits), pid, tuple(segments), group_index))
    _check_gaps(visits, params)
    frames = list(_frames(persons, visits, params, rng))
    return Day(params, seed, split.name, persons, visits, frames)


def _check_gaps(visits: list[TrueVisit], params: Params) -> None:
    """Two visits of one person must be further apart than any visit window in use."""
    last_end: dict[int, float] = {}
    for visit in sorted(visits, key=lambda v: v.start):
        previous = last_end.get(visit.pid)
        if previous is not None and visit.start - previous < params.return_gap_s / 2:
            raise ValueError(f"visits of identity {visit.pid} overlap; lower the arrival rate")
        last_end[visit.pid] = visit.end


def _frames(
    persons: dict[int, Person],
    visits: list[TrueVisit],
    params: Params,
    rng: np.random.Generator,
) -> Iterator[SimFrame]:
    period = 1.0 / params.fps
    ring = params.cameras
    phase = {camera: i * period / len(ring) for i, camera in enumerate(ring)}
    ticks: dict[tuple[str, float], list[TrueVisit]] = {}
    for visit in visits:
        for seg in visit.segments:
            first = np.ceil((seg.enter - params.start - phase[seg.camera]) / period)
            last = np.floor((seg.leave - params.start - phase[seg.camera]) / period)
            for k in range(int(first), int(last) + 1):
                t = round(params.start + phase[seg.camera] + k * period, 3)
                ticks.setdefault((seg.camera, t), []).append(visit)
    cursor: dict[tuple[int, int], int] = {}
    for index, ((camera, t), present) in enumerate(sorted(ticks.items(), key=lambda kv: kv[0][1])):
        view = view_of(ring, camera)
        people: list[Appearance] = []
        x = int(rng.integers(20, 120))
        for visit in sorted(present, key=lambda v: v.index):
            pool = persons[visit.pid].crops[view]
            key = (visit.index, view)
            if key not in cursor:
                cursor[key] = int(rng.integers(len(pool)))
            crop = pool[cursor[key] % len(pool)]
            cursor[key] += 1
            height, width = _read(crop).shape[:2]
            scale = float(rng.uniform(0.9, 1.1))
            h = min(CANVAS_H - 20, round(height * scale))
            w = max(8, round(width * h / height))
            y = int(rng.integers(10, CANVAS_H - h - 9))
            if x + w > CANVAS_W - 10:
                break  # a crowd wider than the picture: the rest stand outside it
            people.append(Appearance(visit.pid, visit.index, crop, (x, y, x + w, y + h), scale,
                                     float(rng.uniform(0.85, 1.15))))  # fmt: skip
            x += w + int(rng.integers(30, 160))
        yield SimFrame(index, camera, t, tuple(people))
