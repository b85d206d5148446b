"""A scripted two-camera scene: real CUHK03 people walking across generated backgrounds.

No footage of the same people on two cameras exists here, and in the labelled street film nobody
leaves the view and comes back. So this scene is built: CUHK03 labeled ``val`` identities (never
used for tuning; ``../shared/data/README.md``) walk across two cameras, ``hall`` (their view-A
crops) and ``yard`` (their view-B crops: a real change of camera). Each camera films 640x360
pictures at 10 frames/s of a static generated background (wall and floor with texture, a little
sensor noise). A person enters at a side edge (the first frames cut by the picture's edge), walks
at walking speed with a slight change of depth and so of size, and leaves at the other side. The
crop shown changes among the person's crops of that view every 0.5-1 s (a new pose), each time
with a little brightness and scale jitter. Each crop is padded with its own edge pixels, faded
out into the background (the product's detector finds pasted people far more often that way than
hard rectangles). Where people overlap, the nearer one (lower feet) is pasted on top.

The script (``_script``) is fixed; the seed picks the identities, the crops, the exact times,
speeds and depths. It holds, over about 3.7 minutes and 20 people: crossings (two people walking
opposite ways at nearly the same depth), pairs walking together, re-entries on one camera (out of
view 8-38 s: the same visit), hand-overs from ``hall`` to ``yard`` (two pairs among them, and one
after about 40 s), overlaps (seen on both cameras at once for a while, both directions), returns
after the visit window (a new visit of a known person, on the same or the other camera), and
people standing partly behind another. The truth of every frame is each person's box (clipped to
the picture), the share of it inside the picture, the share hidden by nearer people, and the box
of what is still visible.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from eval.data import Split, load_split

CAMERAS: tuple[str, ...] = ("hall", "yard")
VIEW = {"hall": 0, "yard": 1}  # CUHK03 camera view shown by each camera (A, B)
WIDTH, HEIGHT = 640, 360
FPS = 10.0
HORIZON_Y = 105.0  # feet this far down would make a person 0 px tall
HEIGHT_PER_PX = 1.0  # person height per pixel of feet below the horizon
FEET_Y = (285.0, 330.0)  # where people walk: 180-225 px tall
PAD_X, PAD_Y = 0.25, 0.04  # a crop's own edge pixels repeated around it, faded out
WALK_SPEED = 0.75  # person heights per second (about 1.3 m/s)
FLOOR_Y = 215  # where the wall meets the floor in the background
OFF = 0.3  # a person this many heights beyond a side is out of view
RETURN_GAP_S = 70.0  # a "return" comes back at least this long after the last sighting
SAME_VISIT_GAP_S = 45.0  # re-entries and hand-overs come back within this
NOISE_BANK = 7

Box4 = tuple[float, float, float, float]
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Person:
    name: str  # s01 ...
    pid: int  # CUHK03 identity within the val split
    crops: tuple[tuple[Path, ...], tuple[Path, ...]]  # view A crops, view B crops


@dataclass(frozen=True, slots=True)
class Look:
    """One pose: shown from ``start`` until the next look."""

    start: float
    crop: Path
    gain: float  # brightness factor
    scale: float  # size factor


@dataclass(frozen=True, slots=True)
class Walk:
    """One person in view of one camera along a path of (scene seconds, centre x, foot y)."""

    person: str
    camera: str
    event: str  # the scripted event it belongs to, e.g. "crossing 1"
    path: tuple[tuple[float, float, float], ...]
    looks: tuple[Look, ...]

    @property
    def start(self) -> float:
        return self.path[0][0]

    @property
    def end(self) -> float:
        return self.path[-1][0]

    def at(self, t: float) -> tuple[float, float] | None:
        """(centre x, foot y) at scene time ``t``, or None outside the walk."""
        if t < self.start or t > self.end:
            return None
        times = [p[0] for p in self.path]
        i = max(1, bisect.bisect_right(times, t))
        if i >= len(self.path):
            return self.path[-1][1], self.path[-1][2]
        (t0, x0, f0), (t1, x1, f1) = self.path[i - 1], self.path[i]
        a = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        return x0 + a * (x1 - x0), f0 + a * (f1 - f0)

    def look(self, t: float) -> Look:
        starts = [look.start for look in self.looks]
        return self.looks[max(0, bisect.bisect_right(starts, t) - 1)]


@dataclass(frozen=True, slots=True)
class Event:
    name: str  # "crossing 1"
    kind: str  # walk, crossing, pair, re-entry, hand-over, overlap, return, standing
    people: tuple[str, ...]
    cameras: tuple[str, ...]
    note: str
    spans: tuple[tuple[str, str, float, float], ...]  # (person, camera, start, end) of its walks


@dataclass(frozen=True, slots=True)
class Truth:
    """One person in one camera frame."""

    person: str
    camera: str
    walk: int  # index into Scene.walks
    box: Box4  # the pasted crop's box, clipped to the picture
    full: Box4  # the same box unclipped
    visible: Box4 | None  # the box of its pixels no nearer person covers (None: all covered)
    in_frame: float  # share of the full box inside the picture
    occluded: float  # share of the clipped box covered by nearer people


@dataclass(frozen=True, slots=True)
class Rendered:
    image: Image
    truths: tuple[Truth, ...]
    owner: npt.NDArray[np.int16]  # per pixel: index into truths of the person on top, or -1


def person_height(foot: float) -> float:
    return HEIGHT_PER_PX * (foot - HORIZON_Y)


@dataclass(slots=True)
class Scene:
    seed: int
    people: dict[str, Person]
    walks: list[Walk]
    events: list[Event]
    duration_s: float
    _backgrounds: dict[str, Image] = field(default_factory=dict, repr=False)
    _noise: dict[str, list[npt.NDArray[np.int16]]] = field(default_factory=dict, repr=False)

    @property
    def frames(self) -> int:
        """Frames per camera; frame k is taken at k / FPS scene seconds."""
        return round(self.duration_s * FPS)

    def time(self, k: int) -> float:
        return k / FPS

    def render(self, camera: str, k: int) -> Rendered:
        """The camera's picture at frame ``k`` with its truth (deterministic)."""
        t = self.time(k)
        placed: list[tuple[float, str, int, tuple[int, int, int, int], Image]] = []
        for index, walk in enumerate(self.walks):
            if walk.camera != camera:
                continue
            where = walk.at(t)
            if where is None:
                continue
            cx, foot = where
            look = walk.look(t)
            crop = _read(look.crop)
            h = person_height(foot) * look.scale
            w = h * crop.shape[1] / crop.shape[0]
            x1, y1 = round(cx - w / 2.0), round(foot - h)
            iw, ih = max(2, round(w)), max(2, round(h))
            if x1 >= WIDTH or x1 + iw <= 0:
                continue
            placed.append((foot, walk.person, index, (x1, y1, x1 + iw, y1 + ih), _shaded(look)))
        placed.sort(key=lambda p: (p[0], p[1]))  # farther (feet higher up) first
        image = self._background(camera).astype(np.float32)
        owner = np.full((HEIGHT, WIDTH), -1, np.int16)
        body: list[int] = []
        for n, (_, _, _, (x1, y1, x2, y2), pixels) in enumerate(placed):
            core = cv2.resize(pixels, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
            px, py = round(PAD_X * (x2 - x1)), round(PAD_Y * (y2 - y1))
            padded = cv2.copyMakeBorder(core, py, py, px, px, cv2.BORDER_REPLICATE)
            alpha = _feather(x2 - x1, y2 - y1, px, py)
            ox1, oy1, ox2, oy2 = x1 - px, y1 - py, x2 + px, y2 + py
            cx1, cy1, cx2, cy2 = max(ox1, 0), max(oy1, 0), min(ox2, WIDTH), min(oy2, HEIGHT)
            if cx2 > cx1 and cy2 > cy1:
                part = padded[cy1 - oy1 : cy2 - oy1, cx1 - ox1 : cx2 - ox1].astype(np.float32)
                a = alpha[cy1 - oy1 : cy2 - oy1, cx1 - ox1 : cx2 - ox1]
                region = image[cy1:cy2, cx1:cx2]
                image[cy1:cy2, cx1:cx2] = region + a[..., None] * (part - region)
            # The person is the crop itself; the padding around it is their street, faded out.
            bx1, by1, bx2, by2 = max(x1, 0), max(y1, 0), min(x2, WIDTH), min(y2, HEIGHT)
            owner[by1:by2, bx1:bx2] = n
            body.append(max(0, bx2 - bx1) * max(0, by2 - by1))
        noise = self._noise_bank(camera)[k % NOISE_BANK]
        picture = np.clip(image + noise, 0, 255).astype(np.uint8)
        truths = []
        for n, (_, name, index, (x1, y1, x2, y2), _) in enumerate(placed):
            cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, WIDTH), min(y2, HEIGHT)
            mine = owner[cy1:cy2, cx1:cx2] == n
            ys, xs = np.nonzero(mine)
            visible: Box4 | None = None
            if len(xs):
                visible = (
                    float(cx1 + xs.min()),
                    float(cy1 + ys.min()),
                    float(cx1 + xs.max() + 1),
                    float(cy1 + ys.max() + 1),
                )
            full_area = float((x2 - x1) * (y2 - y1))
            truths.append(
                Truth(
                    person=name,
                    camera=camera,
                    walk=index,
                    box=(float(cx1), float(cy1), float(cx2), float(cy2)),
                    full=(float(x1), float(y1), float(x2), float(y2)),
                    visible=visible,
                    in_frame=(cx2 - cx1) * (cy2 - cy1) / full_area,
                    occluded=1.0 - len(xs) / body[n] if body[n] else 1.0,
                )
            )
        return Rendered(picture, tuple(truths), owner)

    def _background(self, camera: str) -> Image:
        if camera not in self._backgrounds:
            self._backgrounds[camera] = background(self.seed, CAMERAS.index(camera))
        return self._backgrounds[camera]

    def _noise_bank(self, camera: str) -> list[npt.NDArray[np.int16]]:
        if camera not in self._noise:
            rng = np.random.default_rng([self.seed, 7, CAMERAS.index(camera)])
            self._noise[camera] = [
                np.rint(rng.normal(0.0, 2.0, (HEIGHT, WIDTH, 3))).astype(np.int16)
                for _ in range(NOISE_BANK)
            ]
        return self._noise[camera]


def background(seed: int, camera: int) -> Image:
    """A static scene: a wall (with doors or windows) over a tiled floor, lit unevenly."""
    rng = np.random.default_rng([seed, 100 + camera])

    def texture(cell: int, sigma: float, colour: float) -> npt.NDArray[np.float32]:
        """Blotches ``cell`` px wide: brightness by ``sigma``, hue by ``colour``."""
        shape = (HEIGHT // cell + 2, WIDTH // cell + 2)
        small = rng.normal(0.0, sigma, (*shape, 1)) + rng.normal(0.0, colour, (*shape, 3))
        big = cv2.resize(
            small, (WIDTH + 2 * cell, HEIGHT + 2 * cell), interpolation=cv2.INTER_CUBIC
        )
        return np.asarray(big[cell : cell + HEIGHT, cell : cell + WIDTH], np.float32)

    wall = rng.uniform(100, 180) * rng.uniform(0.85, 1.15, 3)
    floor = rng.uniform(70, 140) * rng.uniform(0.85, 1.15, 3)
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    image[:FLOOR_Y] = wall
    image[FLOOR_Y:] = floor
    # Openings in the wall: doors reaching the floor, windows above it.
    x = rng.uniform(10, 80)
    while x < WIDTH - 60:
        w = rng.uniform(50, 110)
        if rng.random() < 0.5:
            y1, y2 = float(rng.uniform(60, 110)), float(FLOOR_Y)
        else:
            y1, y2 = float(rng.uniform(30, 70)), float(rng.uniform(130, 170))
        shade = wall * rng.uniform(0.45, 0.8)
        ix1, ix2, iy1, iy2 = int(x), int(min(x + w, WIDTH)), int(y1), int(y2)
        image[iy1:iy2, ix1:ix2] = shade
        cv2.rectangle(image, (ix1, iy1), (ix2, iy2), [float(v) for v in wall * 0.35], 3)
        x += w + rng.uniform(60, 200)
    image[FLOOR_Y - 6 : FLOOR_Y] = wall * 0.6  # skirting
    # Floor tiles in perspective: lines towards a vanishing point, rows closer together far away.
    vx = WIDTH / 2 + rng.uniform(-120, 120)
    line = [float(v) for v in floor * 0.7]
    for bottom in np.arange(-6 * WIDTH, 7 * WIDTH, rng.uniform(70, 120)):
        top = vx + (bottom - vx) * (FLOOR_Y - HORIZON_Y) / (HEIGHT * 1.6 - HORIZON_Y)
        cv2.line(image, (int(top), FLOOR_Y), (int(bottom), int(HEIGHT * 1.6)), line, 1)
    depth = 1.0
    y = float(FLOOR_Y)
    while y < HEIGHT:
        cv2.line(image, (0, int(y)), (WIDTH, int(y)), line, 1)
        depth *= 1.35
        y += 9.0 * depth
    rows = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None, None]
    cols = np.linspace(-1.0, 1.0, WIDTH, dtype=np.float32)[None, :, None]
    light = 0.85 + 0.25 * rows - 0.12 * cols * rng.uniform(-1, 1)
    lit = image * light + texture(32, 9.0, 2.0) + texture(6, 3.0, 1.0)
    return np.clip(lit, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1024)
def _read(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return np.asarray(image, dtype=np.uint8)


@functools.lru_cache(maxsize=4096)
def _shaded(look: Look) -> Image:
    return np.clip(_read(look.crop).astype(np.float32) * look.gain, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4096)
def _feather(width: int, height: int, pad_x: int, pad_y: int) -> npt.NDArray[np.float32]:
    """Opacity of a pasted crop of ``width`` x ``height`` padded by its own edge pixels: the
    crop is opaque, its padding fades out to the scene. (Crops pasted as hard rectangles, or
    faded within themselves, are found by the detector less often: the person then touches the
    rectangle's edge with no street around them.)"""

    def ramp(n: int, pad: int) -> npt.NDArray[np.float32]:
        i = np.arange(n + 2 * pad, dtype=np.float32) + 0.5
        return np.asarray(
            np.clip(np.minimum(i, n + 2 * pad - i) / max(pad, 1), 0.0, 1.0), np.float32
        )

    return np.minimum(ramp(height, pad_y)[:, None], ramp(width, pad_x)[None, :])


# --- the script -----------------------------------------------------------------------------


class _Builder:
    def __init__(self, seed: int, split: Split) -> None:
        self.rng = np.random.default_rng([seed, 2024])
        self.walks: list[Walk] = []
        self.events: list[Event] = []
        self.people: dict[str, Person] = {}
        a_counts: dict[int, list[Path]] = {}
        b_counts: dict[int, list[Path]] = {}
        for path, pid, cam in zip(split.paths, split.pids, split.cams, strict=True):
            (a_counts if cam == 0 else b_counts).setdefault(int(pid), []).append(path)
        usable = sorted(
            p for p in a_counts if len(a_counts[p]) >= 3 and len(b_counts.get(p, [])) >= 3
        )
        self._pool = [int(p) for p in self.rng.permutation(usable)]
        self._a, self._b = a_counts, b_counts

    def person(self, name: str) -> str:
        if name not in self.people:
            pid = self._pool[len(self.people)]
            self.people[name] = Person(
                name, pid, (tuple(sorted(self._a[pid])), tuple(sorted(self._b[pid])))
            )
        return name

    def jitter(self, t: float, spread: float = 1.0) -> float:
        return t + float(self.rng.uniform(-spread, spread))

    def foot(self) -> float:
        return float(self.rng.uniform(*FEET_Y))

    def speed(self, foot: float) -> float:
        return WALK_SPEED * person_height(foot) * float(self.rng.uniform(0.85, 1.15))

    def looks(self, person: str, camera: str, start: float, end: float) -> tuple[Look, ...]:
        crops = self.people[person].crops[VIEW[camera]]
        out: list[Look] = []
        t, last = start, -1
        while t < end:
            choices = [i for i in range(len(crops)) if i != last]
            last = int(self.rng.choice(choices))
            out.append(
                Look(
                    t,
                    crops[last],
                    float(self.rng.uniform(0.9, 1.1)),
                    float(self.rng.uniform(0.96, 1.04)),
                )
            )
            t += float(self.rng.uniform(0.5, 1.0))
        return tuple(out)

    def add(
        self, person: str, camera: str, event: str, path: list[tuple[float, float, float]]
    ) -> Walk:
        looks = self.looks(person, camera, path[0][0], path[-1][0])
        walk = Walk(person, camera, event, tuple(path), looks)
        self.walks.append(walk)
        return walk

    def cross(
        self,
        person: str,
        camera: str,
        event: str,
        start: float,
        direction: int,
        *,
        foot: float | None = None,
        speed: float | None = None,
        stop: tuple[float, float] | None = None,
    ) -> Walk:
        """Walk across ``camera`` from one side (out of view) to the other; ``direction`` +1
        walks left to right. ``stop`` = (x, seconds) stands still at x on the way."""
        foot = self.foot() if foot is None else foot
        drift = float(np.clip(self.rng.uniform(-12.0, 12.0), FEET_Y[0] - 10 - foot, 340 - foot))
        speed = self.speed(foot) if speed is None else speed
        off = OFF * person_height(foot)
        x0, x1 = (-off, WIDTH + off) if direction > 0 else (WIDTH + off, -off)
        path: list[tuple[float, float, float]] = [(start, x0, foot)]
        total = abs(x1 - x0)
        if stop is not None:
            xs, dwell = stop
            a = abs(xs - x0) / total
            t_stop = start + abs(xs - x0) / speed
            f_stop = foot + a * drift
            path += [(t_stop, xs, f_stop), (t_stop + dwell, xs, f_stop)]
            start += dwell
        path.append((start + total / speed, x1, foot + drift))
        return self.add(person, camera, event, path)

    def event(self, name: str, kind: str, walks: list[Walk], note: str) -> None:
        people = tuple(dict.fromkeys(w.person for w in walks))
        cameras = tuple(dict.fromkeys(w.camera for w in walks))
        spans = tuple((w.person, w.camera, w.start, w.end) for w in walks)
        self.events.append(Event(name, kind, people, cameras, note, spans))


def time_at_x(walk: Walk, x: float) -> float:
    """When a walk's centre passes x (first time)."""
    for (t0, x0, _), (t1, x1, _) in zip(walk.path, walk.path[1:], strict=False):
        if min(x0, x1) <= x <= max(x0, x1) and x0 != x1:
            return t0 + (x - x0) / (x1 - x0) * (t1 - t0)
    raise ValueError(f"{walk.person} never passes x={x}")


def _crossing(
    b: _Builder, camera: str, event: str, meet_t: float, meet_x: float, right: list[str], left: str
) -> list[Walk]:
    """People of ``right`` (walking left to right, together) meet ``left`` at ``meet_x``."""
    walks: list[Walk] = []
    foot = b.foot()
    speed = b.speed(foot)
    off = OFF * person_height(foot)
    start = meet_t - (meet_x + off) / speed
    for n, name in enumerate(right):
        if n == 0:
            walks.append(b.cross(name, camera, event, start, +1, foot=foot, speed=speed))
        else:  # a companion half a body width behind, a little farther away
            width = 0.35 * person_height(foot)
            lag = float(b.rng.uniform(0.9, 1.4)) * width / speed
            walks.append(
                b.cross(
                    name, camera, event, start + lag, +1,
                    foot=foot - float(b.rng.uniform(6.0, 14.0)), speed=speed,
                )
            )  # fmt: skip
    other_foot = foot + float(b.rng.choice([-1.0, 1.0])) * float(b.rng.uniform(4.0, 12.0))
    other_speed = b.speed(other_foot)
    other_off = OFF * person_height(other_foot)
    other_start = meet_t - (WIDTH + other_off - meet_x) / other_speed
    walks.append(b.cross(left, camera, event, other_start, -1, foot=other_foot, speed=other_speed))
    return walks


def _pair(b: _Builder, camera: str, event: str, start: float, names: list[str]) -> list[Walk]:
    foot = b.foot()
    speed = b.speed(foot)
    lag = float(b.rng.uniform(0.3, 0.5)) * person_height(foot) / speed
    return [
        b.cross(names[0], camera, event, start, +1, foot=foot, speed=speed),
        b.cross(
            names[1], camera, event, start + lag, +1,
            foot=foot - float(b.rng.uniform(6.0, 14.0)), speed=speed,
        ),
    ]  # fmt: skip


def _script(b: _Builder) -> None:
    """The scene's events (nominal scene seconds, each moved by up to a second by the seed)."""
    p = b.person
    rnd = b.rng.uniform
    # hall
    w = b.cross(p("s01"), "hall", "walk 1", b.jitter(2), +1)
    b.event("walk 1", "walk", [w], "one person across the hall")
    ws = _crossing(
        b, "hall", "crossing 1", b.jitter(15), WIDTH * rnd(0.4, 0.6), [p("s02")], p("s03")
    )
    b.event("crossing 1", "crossing", ws, "two people cross mid-picture")
    ws = _pair(b, "hall", "pair 1", b.jitter(22), [p("s04"), p("s05")])
    gap = rnd(2.0, 5.0)
    ws2 = _pair(b, "yard", "pair 1", max(w.end for w in ws) + gap, ["s04", "s05"])
    b.event(
        "pair 1", "pair", ws + ws2, f"a pair walks across the hall, then the yard {gap:.1f} s later"
    )
    b.event("hand-over 1", "hand-over", ws + ws2, "the pair of pair 1 hands over to the yard")
    w = b.cross(p("s06"), "hall", "re-entry 1", b.jitter(34), +1)
    gap = rnd(8.0, 14.0)
    w2 = b.cross("s06", "hall", "re-entry 1", w.end + gap, -1)
    b.event("re-entry 1", "re-entry", [w, w2], f"leaves the hall and comes back {gap:.1f} s later")
    w = b.cross(p("s07"), "hall", "hand-over 2", b.jitter(64), +1)
    gap = rnd(2.0, 5.0)
    w2 = b.cross("s07", "yard", "hand-over 2", w.end + gap, +1)
    b.event("hand-over 2", "hand-over", [w, w2], f"hall to yard, {gap:.1f} s out of view")
    # Standing: s08 stops mid-picture; s09 stops in front of them, partly covering, then walks
    # on past them.
    t0 = b.jitter(76)
    foot = b.foot()
    xs = WIDTH * rnd(0.35, 0.45)
    speed = b.speed(foot)
    arrive = t0 + (xs + OFF * person_height(foot)) / speed
    front_foot = min(foot + rnd(14.0, 22.0), 338.0)
    front_x = xs + rnd(0.4, 0.5) * 0.35 * person_height(foot)
    front_speed = b.speed(front_foot)
    front_start = arrive + rnd(1.0, 3.0)
    front_dwell = rnd(5.0, 7.0)
    front = b.cross(
        p("s09"), "hall", "standing 1", front_start, -1,
        foot=front_foot, speed=front_speed, stop=(front_x, front_dwell),
    )  # fmt: skip
    leaves = time_at_x(front, xs - 0.5 * person_height(front_foot)) + 2.0
    back = b.cross(
        p("s08"), "hall", "standing 1", t0, +1, foot=foot, speed=speed,
        stop=(xs, leaves - arrive),
    )  # fmt: skip
    b.event("standing 1", "standing", [back, front], "one stands, another stops partly in front")
    # Overlap: the hall's right 40 % is the yard's left 40 %.
    foot = b.foot()
    w = b.cross(p("s10"), "hall", "overlap 1", b.jitter(100), +1, foot=foot)
    yard_foot = b.foot()
    w2 = b.cross("s10", "yard", "overlap 1", time_at_x(w, 0.6 * WIDTH), +1, foot=yard_foot)
    b.event("overlap 1", "overlap", [w, w2], "hall to yard through the part both cameras see")
    ws = _crossing(
        b, "hall", "crossing 2", b.jitter(114), WIDTH * rnd(0.82, 0.9), [p("s12")], p("s11")
    )
    b.event("crossing 2", "crossing", ws, "two people cross at the hall's right edge")
    w = b.cross("s01", "hall", "return 1", b.jitter(122), -1)
    b.event("return 1", "return", [w], "s01 comes back to the hall after the visit window")
    ws = _crossing(
        b,
        "hall",
        "crossing 3",
        b.jitter(137),
        WIDTH * rnd(0.4, 0.6),
        [p("s17"), p("s18")],
        p("s19"),
    )
    b.event("crossing 3", "crossing", ws, "a pair crosses a third person")
    gap = rnd(2.0, 5.0)
    pair = [w for w in ws if w.person in ("s17", "s18")]
    ws2 = _pair(b, "yard", "pair 2", max(w.end for w in pair) + gap, ["s17", "s18"])
    b.event(
        "pair 2",
        "pair",
        pair + ws2,
        f"the pair of crossing 3 walks on across the yard {gap:.1f} s later",
    )
    b.event("hand-over 3", "hand-over", pair + ws2, "the pair hands over to the yard")
    ws = _crossing(b, "hall", "crossing 4", b.jitter(166), WIDTH * rnd(0.4, 0.6), [p("s13")], "s05")
    b.event("crossing 4", "crossing", ws, "two people back after the visit window cross")
    b.event("return 2", "return", ws, "s13 (seen on the yard) and s05 come back to the hall")
    w = b.cross(p("s20"), "hall", "re-entry 2", b.jitter(180), +1)
    gap = rnd(28.0, 38.0)
    w2 = b.cross("s20", "hall", "re-entry 2", w.end + gap, -1)
    b.event("re-entry 2", "re-entry", [w, w2], f"leaves the hall and comes back {gap:.1f} s later")
    # yard
    w = b.cross("s13", "yard", "re-entry 3", b.jitter(3), +1)
    gap = rnd(30.0, 38.0)
    w2 = b.cross("s13", "yard", "re-entry 3", w.end + gap, -1)
    b.event("re-entry 3", "re-entry", [w, w2], f"leaves the yard and comes back {gap:.1f} s later")
    ws = _crossing(
        b, "yard", "crossing 5", b.jitter(19), WIDTH * rnd(0.4, 0.6), [p("s14")], p("s15")
    )
    b.event("crossing 5", "crossing", ws, "two people cross mid-picture")
    # Standing on the yard: s14 back after the window stands, s16 stops partly in front.
    t0 = b.jitter(116)
    foot = b.foot()
    xs = WIDTH * rnd(0.5, 0.6)
    speed = b.speed(foot)
    arrive = t0 + (WIDTH + OFF * person_height(foot) - xs) / speed
    front_foot = min(foot + rnd(14.0, 22.0), 338.0)
    front_x = xs - rnd(0.4, 0.5) * 0.35 * person_height(foot)
    front_speed = b.speed(front_foot)
    front_start = arrive + rnd(1.0, 3.0)
    front_dwell = rnd(5.0, 7.0)
    front = b.cross(
        p("s16"), "yard", "standing 2", front_start, +1,
        foot=front_foot, speed=front_speed, stop=(front_x, front_dwell),
    )  # fmt: skip
    leaves = time_at_x(front, xs + 0.5 * person_height(front_foot)) + 2.0
    back = b.cross(
        "s14", "yard", "standing 2", t0, -1, foot=foot, speed=speed,
        stop=(xs, leaves - arrive),
    )  # fmt: skip
    b.event(
        "standing 2", "standing", [back, front], "s14, back after the window, stands; s16 in front"
    )
    b.event("return 3", "return", [back], "s14 comes back to the yard after the visit window")
    # s12 left the hall to the right at about 120 s; here they reach the yard about 40 s later.
    s12_end = max(w.end for w in b.walks if w.person == "s12")
    late = s12_end + rnd(40.0, 44.0)
    ws = _crossing(b, "yard", "crossing 6", late + 3.0, WIDTH * rnd(0.4, 0.6), ["s12"], "s15")
    b.event(
        "crossing 6", "crossing", ws, "s12 (late hand-over) crosses s15 (back after the window)"
    )
    b.event(
        "hand-over 4",
        "hand-over",
        [w for w in b.walks if w.person == "s12"],
        "s12 reaches the yard about 40 s after leaving the hall (crossing 2)",
    )
    b.event(
        "return 4",
        "return",
        [w for w in ws if w.person == "s15"],
        "s15 comes back to the yard after the window",
    )
    w = b.cross("s03", "yard", "return 5", b.jitter(190), +1)
    b.event("return 5", "return", [w], "s03 (seen on the hall) comes back on the yard")
    # Overlap the other way: from the yard into the hall, s09 back after the window.
    w = b.cross("s09", "yard", "overlap 2", b.jitter(200), -1)
    w2 = b.cross("s09", "hall", "overlap 2", time_at_x(w, 0.4 * WIDTH), -1)
    b.event(
        "overlap 2",
        "overlap",
        [w, w2],
        "yard to hall through the shared part; s09 back after the window",
    )
    b.event("return 6", "return", [w, w2], "s09 comes back after the visit window")


def build(seed: int = 0, split: Split | None = None) -> Scene:
    """The scripted scene for ``seed`` (CUHK03 labeled val unless another split is given)."""
    builder = _Builder(seed, split if split is not None else load_split("val"))
    _script(builder)
    walks = sorted(builder.walks, key=lambda w: (w.start, w.camera, w.person))
    _check(builder.events, walks)
    duration = max(w.end for w in walks) + 2.0
    return Scene(seed, builder.people, walks, builder.events, duration)


def _check(events: list[Event], walks: list[Walk]) -> None:
    """The script means what it says for this seed: a person out of view comes back well within
    the visit window (re-entry, hand-over) or well after it (return), never near it."""
    for person in {w.person for w in walks}:
        spans = sorted((w.start, w.end) for w in walks if w.person == person)
        last = spans[0][1]
        for start, end in spans[1:]:
            if SAME_VISIT_GAP_S + 5.0 < start - last < RETURN_GAP_S:
                raise AssertionError(f"{person} away {start - last:.0f} s: too near the window")
            last = max(last, end)
    for event in events:
        if event.kind != "return":
            continue
        for person, _, start, _ in event.spans:
            before = [w.end for w in walks if w.person == person and w.end < start]
            if not before or start - max(before) < RETURN_GAP_S:
                raise AssertionError(f"{event.name}: {person} back too soon")


def short_crossing(seed: int = 0, split: Split | None = None) -> Scene:
    """One crossing on the hall (about 10 s): the quick check of the tests."""
    builder = _Builder(seed, split if split is not None else load_split("val"))
    ws = _crossing(
        builder, "hall", "crossing 1", 7.0, WIDTH * 0.5, [builder.person("s01")],
        builder.person("s02"),
    )  # fmt: skip
    builder.event("crossing 1", "crossing", ws, "two people cross mid-picture")
    walks = sorted(builder.walks, key=lambda w: (w.start, w.camera, w.person))
    start = min(w.start for w in walks)
    shifted = [
        Walk(
            w.person, w.camera, w.event,
            tuple((t - start, x, f) for t, x, f in w.path),
            tuple(Look(lk.start - start, lk.crop, lk.gain, lk.scale) for lk in w.looks),
        )
        for w in walks
    ]  # fmt: skip
    return Scene(seed, builder.people, shifted, builder.events, max(w.end for w in shifted) + 1.0)
