"""Zones and lines: where on a camera's picture a person is, and which lines they cross.

Each camera may have named polygons (zones) and named directed lines, in normalised picture
coordinates (0-1, x to the right, y down, so a 16:9 and a 4:3 stream of the same camera share
them). A person is placed by their **foot point**: the middle of the bottom edge of their box,
which is where they stand on the ground.

The state is kept per person and camera (the server decides one person per track, so this is
the track's state). It has hysteresis so that a foot point jittering on an edge does not flap:

- zones: the first foot point of a person on a camera that is inside a zone is an ``enter``.
  After that, a person inside leaves only once the foot point is outside *and* at least
  ``margin`` away from the zone's edge, and a person outside enters only once inside and at
  least ``margin`` from the edge. Leaving is an ``exit`` (reason ``left``); so is a person not
  seen on the camera for ``lost_after_s`` or whose visit ended (reason ``lost``).
- lines: a side counts only at least ``margin`` away from the line; a ``cross`` is a change from
  one counted side to the other whose path passes through the line segment itself (not its
  extension). ``direction`` is ``in`` when the new side is the line's "in" side.

Pure and typed: no I/O, no threads. The server calls it on its identity thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

type Point = tuple[float, float]
type Side = Literal["left", "right"]

DEFAULT_MARGIN = 0.02
DEFAULT_LOST_AFTER_S = 4.0


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    polygon: tuple[Point, ...]
    sensitivity: float | None = None  # None: the camera's (risk.cameras)


@dataclass(frozen=True, slots=True)
class Line:
    """A directed segment from ``a`` to ``b``. ``in_side``: which side is "in", as seen on the
    picture when walking from ``a`` to ``b``."""

    name: str
    a: Point
    b: Point
    in_side: Side = "left"


@dataclass(frozen=True, slots=True)
class CameraZones:
    zones: tuple[Zone, ...] = ()
    lines: tuple[Line, ...] = ()

    def zone(self, name: str) -> Zone | None:
        return next((z for z in self.zones if z.name == name), None)


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    """The ``zones`` section, parsed (config.py validates it)."""

    cameras: Mapping[str, CameraZones] = field(default_factory=dict)
    margin: float = DEFAULT_MARGIN
    lost_after_s: float = DEFAULT_LOST_AFTER_S

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> ZoneConfig:
        section = section or {}
        cameras: dict[str, CameraZones] = {}
        for camera, spec in (section.get("cameras") or {}).items():
            zones = tuple(
                Zone(
                    str(name),
                    tuple((float(x), float(y)) for x, y in z["polygon"]),
                    None if z.get("sensitivity") is None else float(z["sensitivity"]),
                )
                for name, z in (spec.get("zones") or {}).items()
            )
            lines = tuple(
                Line(
                    str(name),
                    (float(l_["points"][0][0]), float(l_["points"][0][1])),
                    (float(l_["points"][1][0]), float(l_["points"][1][1])),
                    l_.get("in", "left"),
                )
                for name, l_ in (spec.get("lines") or {}).items()
            )
            if zones or lines:
                cameras[str(camera)] = CameraZones(zones, lines)
        return cls(
            cameras=cameras,
            margin=float(section.get("margin", DEFAULT_MARGIN)),
            lost_after_s=float(section.get("lost_after_s", DEFAULT_LOST_AFTER_S)),
        )

    def layout(self, camera: str) -> dict[str, list[str]]:
        """What the camera state lists: the names of the camera's zones and lines."""
        spec = self.cameras.get(camera)
        if spec is None:
            return {"zones": [], "lines": []}
        return {"zones": [z.name for z in spec.zones], "lines": [l_.name for l_ in spec.lines]}


# -- geometry ----------------------------------------------------------------------------------


def foot_point(box: Sequence[float], width: float, height: float) -> Point:
    """The middle of the box's bottom edge, normalised to 0-1 (clamped to the picture)."""
    x1, _y1, x2, y2 = (float(v) for v in box[:4])
    if width <= 0 or height <= 0:
        raise ValueError(f"picture size {width}x{height} must be positive")
    x = min(max((x1 + x2) / 2.0 / width, 0.0), 1.0)
    y = min(max(y2 / height, 0.0), 1.0)
    return (x, y)


def contains(polygon: Sequence[Point], p: Point) -> bool:
    """Whether ``p`` is inside ``polygon`` (even-odd rule; a point on an edge may go either
    way, which the margin makes irrelevant)."""
    x, y = p
    inside = False
    n = len(polygon)
    for i in range(n):
        ax, ay = polygon[i]
        bx, by = polygon[(i + 1) % n]
        if (ay > y) != (by > y):
            x_cross = ax + (y - ay) * (bx - ax) / (by - ay)
            if x < x_cross:
                inside = not inside
    return inside


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    return math.hypot(p[0] - (ax + t * dx), p[1] - (ay + t * dy))


def edge_distance(polygon: Sequence[Point], p: Point) -> float:
    """Distance from ``p`` to the nearest edge of ``polygon``."""
    n = len(polygon)
    return min(_segment_distance(p, polygon[i], polygon[(i + 1) % n]) for i in range(n))


def polygon_area(polygon: Sequence[Point]) -> float:
    n = len(polygon)
    twice = sum(
        polygon[i][0] * polygon[(i + 1) % n][1] - polygon[(i + 1) % n][0] * polygon[i][1]
        for i in range(n)
    )
    return abs(twice) / 2.0


def side_of(line: Line, p: Point) -> float:
    """Signed distance of ``p`` from ``line``'s infinite extension: positive on its "in" side.

    Picture coordinates have y pointing down, so the cross product of (b - a) and (p - a) is
    negative for a point to the left as seen on the picture walking from a to b.
    """
    (ax, ay), (bx, by) = line.a, line.b
    dx, dy = bx - ax, by - ay
    length = math.hypot(dx, dy)
    cross = dx * (p[1] - ay) - dy * (p[0] - ax)
    left = -cross / length
    return left if line.in_side == "left" else -left


def passes_through(line: Line, p: Point, q: Point) -> bool:
    """Whether the path from ``p`` to ``q`` (on opposite sides) meets the segment a-b."""
    sp, sq = side_of(line, p), side_of(line, q)
    if sp == sq:
        return False
    t = sp / (sp - sq)  # where along p->q the infinite line is met
    cx, cy = p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])
    (ax, ay), (bx, by) = line.a, line.b
    dx, dy = bx - ax, by - ay
    u = ((cx - ax) * dx + (cy - ay) * dy) / (dx * dx + dy * dy)
    return 0.0 <= u <= 1.0


# -- events and state --------------------------------------------------------------------------

type EventType = Literal["enter", "exit", "cross"]


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    """One enter, exit or cross (the contract's "Zone event", less the person's label)."""

    type: EventType
    camera: str
    name: str  # the zone's (enter, exit) or the line's (cross)
    person_id: str
    visit_id: str
    timestamp: float
    point: Point  # the foot point that decided it (for a lost track: its last one)
    direction: Literal["in", "out"] | None = None  # cross only
    reason: Literal["left", "lost"] | None = None  # exit only
    dwell_s: float | None = None  # exit only: entered to last seen inside

    def to_json(self, *, label: str | None = None, known: bool = False) -> dict[str, Any]:
        return {
            "type": self.type,
            "camera": self.camera,
            "kind": "line" if self.type == "cross" else "zone",
            "name": self.name,
            "direction": self.direction,
            "reason": self.reason,
            "dwell_s": None if self.dwell_s is None else round(self.dwell_s, 1),
            "person_id": self.person_id,
            "label": label if label is not None else self.person_id,
            "known": known,
            "visit_id": self.visit_id,
            "timestamp": round(self.timestamp, 3),
            "point": [round(self.point[0], 4), round(self.point[1], 4)],
        }


@dataclass(slots=True)
class _Inside:
    entered_at: float
    last_inside: float


@dataclass(slots=True)
class _Track:
    visit_id: str
    last_seen: float
    point: Point
    zones: dict[str, _Inside] = field(default_factory=dict)
    sides: dict[str, tuple[int, Point]] = field(default_factory=dict)  # line -> (side, anchor)


class ZoneWatcher:
    """Per person and camera: which zones they are in, which side of each line (see module)."""

    def __init__(self, config: ZoneConfig) -> None:
        self.config = config
        self._tracks: dict[tuple[str, str], _Track] = {}

    def watches(self, camera: str) -> bool:
        return camera in self.config.cameras

    def inside(self, camera: str, person_id: str) -> list[str]:
        """The zones the person is in on ``camera`` now, in configured order."""
        track = self._tracks.get((camera, person_id))
        return list(track.zones) if track is not None else []

    def frame(
        self,
        camera: str,
        timestamp: float,
        sightings: Iterable[tuple[str, str, Point]],
    ) -> list[ZoneEvent]:
        """One processed frame of ``camera``: (person id, visit id, foot point) of each person
        in it. Returns its events: people who left or crossed, then people lost on it."""
        spec = self.config.cameras.get(camera)
        if spec is None:
            return []
        events: list[ZoneEvent] = []
        seen: set[str] = set()
        for person_id, visit_id, point in sightings:
            if person_id in seen:
                continue
            seen.add(person_id)
            events.extend(self._step(spec, camera, person_id, visit_id, point, timestamp))
        events.extend(self.expire(timestamp, camera=camera))
        return events

    def expire(self, now: float, *, camera: str | None = None) -> list[ZoneEvent]:
        """``exit`` (reason ``lost``) for everyone not seen for ``lost_after_s``."""
        gone = [
            key
            for key, track in self._tracks.items()
            if (camera is None or key[0] == camera)
            and now - track.last_seen > self.config.lost_after_s
        ]
        return [e for key in gone for e in self._lose(key)]

    def end(self, visit_ids: Iterable[str]) -> list[ZoneEvent]:
        """These visits ended: ``exit`` (``lost``) from every zone their people were in, on
        every camera."""
        wanted = set(visit_ids)
        gone = [key for key, track in self._tracks.items() if track.visit_id in wanted]
        return [e for key in gone for e in self._lose(key)]

    def _lose(self, key: tuple[str, str]) -> list[ZoneEvent]:
        track = self._tracks.pop(key)
        return [
            ZoneEvent(
                "exit",
                key[0],
                name,
                key[1],
                track.visit_id,
                inside.last_inside,
                track.point,
                reason="lost",
                dwell_s=inside.last_inside - inside.entered_at,
            )
            for name, inside in track.zones.items()
        ]

    def _step(
        self,
        spec: CameraZones,
        camera: str,
        person_id: str,
        visit_id: str,
        point: Point,
        timestamp: float,
    ) -> list[ZoneEvent]:
        margin = self.config.margin
        key = (camera, person_id)
        track = self._tracks.get(key)
        first = track is None
        if track is None:
            track = self._tracks[key] = _Track(visit_id, timestamp, point)
        events: list[ZoneEvent] = []
        # A track whose person was merged into someone on another visit keeps its zones.
        track.visit_id, track.last_seen, track.point = visit_id, timestamp, point
        for zone in spec.zones:
            is_in = contains(zone.polygon, point)
            current = track.zones.get(zone.name)
            if current is not None:
                if is_in:
                    current.last_inside = timestamp
                elif edge_distance(zone.polygon, point) >= margin:
                    del track.zones[zone.name]
                    events.append(
                        ZoneEvent(
                            "exit",
                            camera,
                            zone.name,
                            person_id,
                            visit_id,
                            timestamp,
                            point,
                            reason="left",
                            dwell_s=current.last_inside - current.entered_at,
                        )
                    )
            elif is_in and (first or edge_distance(zone.polygon, point) >= margin):
                track.zones[zone.name] = _Inside(timestamp, timestamp)
                events.append(
                    ZoneEvent("enter", camera, zone.name, person_id, visit_id, timestamp, point)
                )
        for line in spec.lines:
            distance = side_of(line, point)
            if abs(distance) < margin:
                continue  # too close to tell: keep the side it had
            side = 1 if distance > 0 else -1
            known = track.sides.get(line.name)
            if known is not None and known[0] != side and passes_through(line, known[1], point):
                events.append(
                    ZoneEvent(
                        "cross",
                        camera,
                        line.name,
                        person_id,
                        visit_id,
                        timestamp,
                        point,
                        direction="in" if side > 0 else "out",
                    )
                )
            track.sides[line.name] = (side, point)
        return events
