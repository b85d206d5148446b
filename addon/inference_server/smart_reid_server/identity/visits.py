"""Visits: one person's continuous presence on any camera, the unit a user is notified about.

A visit starts with the first sighting of an identity and lasts while the gaps between its
sightings (on any camera) stay shorter than ``window_s``. The next sighting after a longer gap
starts a new visit, which is what re-arms the "new person" alert.

Frame timestamps drive everything, and frames from different cameras arrive slightly out of order.
A sighting older than the visit's ``last_seen`` simply joins the visit (it never looks like a gap
and never ends anything); only ``expire(now)`` or a sighting at least ``window_s`` after
``last_seen`` ends a visit. ``now`` must be on the same clock as the frame timestamps.

``TransitTimes`` learns how long people take to walk from one camera to another, from the
hand-overs the matcher was sure about, so that a crop on a second camera can be weighed by
whether anyone on a visit could have got there in the time (the active tier in ``match``).

Not thread-safe: owned by the identities worker thread.
"""

from __future__ import annotations

import bisect
import secrets
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

_RECENTLY_ENDED = 256  # ended visits kept for look-ups by id (the API links to them)


def new_visit_id() -> str:
    return secrets.token_hex(6)


def snapshot_url(visit_id: str) -> str:
    return f"/api/visits/{visit_id}/snapshot.jpg"


@dataclass(slots=True)
class Visit:
    """One visit. ``cameras`` is ordered by first appearance (by frame time)."""

    visit_id: str
    person_id: str
    started_at: float
    last_seen: float
    is_new_identity: bool = False
    cameras: list[str] = field(default_factory=list)
    camera_first_seen: dict[str, float] = field(default_factory=dict)
    camera_last_seen: dict[str, float] = field(default_factory=dict)
    sightings: int = 0
    ended_at: float | None = None
    best_snapshot_score: float | None = None

    @property
    def first_camera(self) -> str:
        return self.cameras[0] if self.cameras else ""

    @property
    def last_camera(self) -> str:
        if not self.camera_last_seen:
            return ""
        return max(self.camera_last_seen.items(), key=lambda item: item[1])[0]

    def copy(self) -> Visit:
        """An independent snapshot (events must not change when the live visit does)."""
        return replace(
            self,
            cameras=list(self.cameras),
            camera_first_seen=dict(self.camera_first_seen),
            camera_last_seen=dict(self.camera_last_seen),
        )

    def _see(self, camera: str, timestamp: float) -> bool:
        """Record a sighting; true when the camera is new to this visit."""
        self.sightings += 1
        self.last_seen = max(self.last_seen, timestamp)
        self.started_at = min(self.started_at, timestamp)
        first = self.camera_first_seen.get(camera)
        self.camera_last_seen[camera] = max(self.camera_last_seen.get(camera, timestamp), timestamp)
        if first is not None:
            if timestamp < first:
                self.camera_first_seen[camera] = timestamp
                self._order_cameras()
            return False
        self.camera_first_seen[camera] = timestamp
        starts = [self.camera_first_seen[c] for c in self.cameras]
        self.cameras.insert(bisect.bisect_right(starts, timestamp), camera)
        return True

    def _order_cameras(self) -> None:
        self.cameras.sort(key=lambda c: self.camera_first_seen[c])

    def to_json(
        self, *, label: str, known: bool, thumbnail_url: str | None = None
    ) -> dict[str, Any]:
        """The ``visit`` object of the contract's "Visit event"."""
        return {
            "visit_id": self.visit_id,
            "person_id": self.person_id,
            "label": label,
            "known": known,
            "is_new_identity": self.is_new_identity,
            "started_at": round(self.started_at, 3),
            "last_seen": round(self.last_seen, 3),
            "ended_at": None if self.ended_at is None else round(self.ended_at, 3),
            "cameras": list(self.cameras),
            "first_camera": self.first_camera,
            "last_camera": self.last_camera,
            "sightings": self.sightings,
            "snapshot_url": snapshot_url(self.visit_id),
            "thumbnail_url": thumbnail_url,
        }


@dataclass(frozen=True, slots=True)
class VisitObservation:
    """What one sighting did to the visits.

    ``ended``: the person's previous visit, closed because this sighting came after a gap of at
    least the window (the caller reports it as ended before announcing the new one).
    """

    visit: Visit
    is_new_visit: bool
    camera_added: bool
    ended: Visit | None = None


class VisitTracker:
    """Active visits by person, with per-camera presence."""

    def __init__(self, window_s: float, presence_s: float | None = None) -> None:
        if window_s <= 0:
            raise ValueError(f"visit window must be positive seconds, got {window_s}")
        self.window_s = float(window_s)
        # "Present" is what the cameras see now: seen within ``presence_s`` (default: the
        # window, for callers that have no presence setting).
        self.presence_s = float(window_s if presence_s is None else presence_s)
        if self.presence_s <= 0:
            raise ValueError(f"presence must be positive seconds, got {presence_s}")
        self._active: dict[str, Visit] = {}
        self._by_id: dict[str, Visit] = {}
        self._ended: OrderedDict[str, Visit] = OrderedDict()
        self.latest_timestamp = 0.0

    def observe(
        self, person_id: str, camera: str, timestamp: float, *, is_new_identity: bool = False
    ) -> VisitObservation:
        """Record that ``person_id`` was seen on ``camera`` at frame time ``timestamp``."""
        self.latest_timestamp = max(self.latest_timestamp, timestamp)
        visit = self._active.get(person_id)
        ended: Visit | None = None
        if visit is not None and timestamp - visit.last_seen >= self.window_s:
            ended = self._end(visit, visit.last_seen + self.window_s)
            visit = None
        if visit is None:
            visit = Visit(
                visit_id=self._fresh_id(),
                person_id=person_id,
                started_at=timestamp,
                last_seen=timestamp,
                is_new_identity=is_new_identity,
            )
            visit._see(camera, timestamp)
            self._active[person_id] = visit
            self._by_id[visit.visit_id] = visit
            return VisitObservation(visit, is_new_visit=True, camera_added=False, ended=ended)
        if timestamp < visit.started_at - self.window_s:
            # A straggler from before this visit could have begun: count it, keep the history.
            timestamp = visit.started_at
        added = visit._see(camera, timestamp)
        return VisitObservation(visit, is_new_visit=False, camera_added=added)

    def resume(self, visit: Visit) -> None:
        """Carry on ``visit``, left open by another process (a matcher that died): the next
        sighting of its person continues it; it ends after the window like any other."""
        if visit.person_id in self._active:
            raise ValueError(f"person {visit.person_id} is already on visit")
        visit.ended_at = None
        self._active[visit.person_id] = visit
        self._by_id[visit.visit_id] = visit
        self.latest_timestamp = max(self.latest_timestamp, visit.last_seen)

    def expire(self, now: float) -> list[Visit]:
        """End every visit not seen for ``window_s`` before ``now``; returns them, oldest first."""
        stale = [v for v in self._active.values() if now - v.last_seen >= self.window_s]
        stale.sort(key=lambda v: v.last_seen)
        return [self._end(v, min(now, v.last_seen + self.window_s)) for v in stale]

    def active(self) -> list[Visit]:
        return list(self._active.values())

    def active_for(self, person_id: str) -> Visit | None:
        return self._active.get(person_id)

    def is_active(self, person_id: str, at: float | None = None) -> bool:
        """Whether the person is on a visit that a sighting at frame time ``at`` would continue."""
        visit = self._active.get(person_id)
        if visit is None:
            return False
        return at is None or at - visit.last_seen < self.window_s

    def visit(self, visit_id: str) -> Visit | None:
        """An active visit, or one that ended recently."""
        return self._by_id.get(visit_id) or self._ended.get(visit_id)

    def present_on(
        self, camera: str, now: float | None = None, within_s: float | None = None
    ) -> list[str]:
        """Person ids seen on ``camera`` within ``within_s`` (default ``presence_s``) before
        ``now`` (default: latest frame), most recent first."""
        now = self.latest_timestamp if now is None else now
        window = self.presence_s if within_s is None else within_s
        present = [
            (seen, v.person_id)
            for v in self._active.values()
            if (seen := v.camera_last_seen.get(camera)) is not None and now - seen < window
        ]
        return [pid for _, pid in sorted(present, reverse=True)]

    def present(
        self, now: float | None = None, windows: Mapping[str, float] | None = None
    ) -> list[str]:
        """Person ids seen on any camera within that camera's window (``windows``, default
        ``presence_s``) before ``now``, most recent first."""
        now = self.latest_timestamp if now is None else now
        windows = windows or {}
        present = [
            (v.last_seen, v.person_id)
            for v in self._active.values()
            if any(
                now - seen < windows.get(camera, self.presence_s)
                for camera, seen in v.camera_last_seen.items()
            )
        ]
        return [pid for _, pid in sorted(present, reverse=True)]

    def merge(self, keep: str, drop: str) -> Visit | None:
        """Give ``drop``'s active visit to ``keep``.

        When both are active, ``keep``'s visit absorbs the other (cameras, sightings, times) and the
        absorbed visit is returned so the caller can discard its record; otherwise None.
        """
        for ended in self._ended.values():
            if ended.person_id == drop:
                ended.person_id = keep
        dropped = self._active.pop(drop, None)
        if dropped is None:
            return None
        kept = self._active.get(keep)
        if kept is None:
            dropped.person_id = keep
            dropped.is_new_identity = False
            self._active[keep] = dropped
            return None
        del self._by_id[dropped.visit_id]
        kept.started_at = min(kept.started_at, dropped.started_at)
        kept.last_seen = max(kept.last_seen, dropped.last_seen)
        kept.sightings += dropped.sightings
        for camera, first in dropped.camera_first_seen.items():
            kept.camera_first_seen[camera] = min(kept.camera_first_seen.get(camera, first), first)
            last = dropped.camera_last_seen[camera]
            kept.camera_last_seen[camera] = max(kept.camera_last_seen.get(camera, last), last)
            if camera not in kept.cameras:
                kept.cameras.append(camera)
        kept._order_cameras()
        scores = [
            s for s in (kept.best_snapshot_score, dropped.best_snapshot_score) if s is not None
        ]
        kept.best_snapshot_score = max(scores) if scores else None
        return dropped

    def forget(self, person_id: str) -> Visit | None:
        """Drop the person's active visit without ending it (the identity is being deleted)."""
        visit = self._active.pop(person_id, None)
        if visit is not None:
            self._by_id.pop(visit.visit_id, None)
        for visit_id in [vid for vid, v in self._ended.items() if v.person_id == person_id]:
            del self._ended[visit_id]
        return visit

    def clear(self) -> None:
        self._active.clear()
        self._by_id.clear()
        self._ended.clear()

    def _end(self, visit: Visit, ended_at: float) -> Visit:
        visit.ended_at = ended_at
        del self._active[visit.person_id]
        del self._by_id[visit.visit_id]
        self._ended[visit.visit_id] = visit
        while len(self._ended) > _RECENTLY_ENDED:
            self._ended.popitem(last=False)
        return visit

    def _fresh_id(self) -> str:
        while True:
            visit_id = new_visit_id()
            if visit_id not in self._by_id and visit_id not in self._ended:
                return visit_id


# Configured transit: ``None`` (adjacent, time unknown) or (fastest, slowest) seconds; a
# fastest of ``None`` means ``min_transit_s``.
type TransitRange = tuple[float | None, float] | None
# camera -> its neighbours: names (time unknown) or name -> TransitRange.
type Adjacency = Mapping[str, Mapping[str, TransitRange] | Sequence[str]]


class PairKind(StrEnum):
    """What is known about walking between two cameras."""

    KNOWN = "known"  # configured as adjacent, or hand-overs were observed
    UNKNOWN = "unknown"  # nothing configured or learned
    NOT_ADJACENT = "not_adjacent"  # adjacency is configured for both and omits this pair


@dataclass(frozen=True, slots=True)
class TransitWindow:
    fastest: float  # quicker than this is implausible (the person is still elsewhere)
    slowest: float  # a known pair is plausible up to this
    kind: PairKind


# Two sightings this close in time on two cameras are "at the same moment" (a frame or two).
SIMULTANEOUS_S = 0.25


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class TransitTimes:
    """Walking times between cameras, configured (``match.adjacency``) and learned online.

    Pairs are symmetric. A pair with at least ``min_observations`` learned hand-overs uses the
    observed range, widened (half the fastest, 1.5 times the slowest), which also covers cameras
    that overlap (observed times near zero). Without observations the configured range applies,
    or ``min_transit_s`` up to the visit window.
    """

    def __init__(
        self,
        adjacency: Adjacency | None = None,
        *,
        min_transit_s: float = 2.0,
        window_s: float = 60.0,
        learn: bool = True,
        keep: int = 32,
        min_observations: int = 3,
    ) -> None:
        if min_transit_s < 0:
            raise ValueError(f"min_transit_s must be >= 0 seconds, got {min_transit_s}")
        self.min_transit_s = float(min_transit_s)
        self.window_s = float(window_s)
        self.learn = learn
        self.min_observations = max(1, min_observations)
        self._keep = max(1, keep)
        self._configured: dict[tuple[str, str], TransitRange] = {}
        self._listed: set[str] = set()
        for camera, others in (adjacency or {}).items():
            self._listed.add(camera)
            pairs = others.items() if isinstance(others, Mapping) else ((o, None) for o in others)
            for other, transit in pairs:
                self._listed.add(other)
                if transit is not None and not 0 <= (transit[0] or 0.0) <= transit[1]:
                    raise ValueError(
                        f"adjacency {camera} -> {other}: transit {list(transit)} must be "
                        "[fastest, slowest] seconds with 0 <= fastest <= slowest"
                    )
                self._configured[_pair(camera, other)] = transit
        self._seen: dict[tuple[str, str], deque[float]] = {}

    def observe(self, a: str, b: str, seconds: float) -> None:
        """A person the matcher was sure about walked from ``a`` to ``b`` in ``seconds``."""
        if not self.learn or a == b or not 0 <= seconds < self.window_s:
            return
        self._seen.setdefault(_pair(a, b), deque(maxlen=self._keep)).append(float(seconds))

    def window(self, a: str, b: str) -> TransitWindow:
        pair = _pair(a, b)
        seen = self._seen.get(pair)
        if seen is not None and len(seen) >= self.min_observations:
            return TransitWindow(0.5 * min(seen), 1.5 * max(seen) + 1.0, PairKind.KNOWN)
        if pair in self._configured:
            transit = self._configured[pair]
            if transit is None:
                return TransitWindow(self.min_transit_s, self.window_s, PairKind.KNOWN)
            fastest = self.min_transit_s if transit[0] is None else transit[0]
            return TransitWindow(fastest, transit[1], PairKind.KNOWN)
        if a in self._listed and b in self._listed:
            return TransitWindow(self.min_transit_s, self.window_s, PairKind.NOT_ADJACENT)
        return TransitWindow(self.min_transit_s, self.window_s, PairKind.UNKNOWN)

    def impossible(self, a: str, b: str, seconds: float) -> bool:
        """Whether nobody could have got from camera ``a`` to camera ``b`` in ``seconds``:
        quicker than the pair's fastest walk. Never for one camera, and never for cameras that
        overlap (``overlapping``), where one person is seen by both at the same moment."""
        return a != b and abs(seconds) < self.window(a, b).fastest

    def overlapping(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` may see one person at the same moment: configured with a
        fastest walk of 0 (``adjacency: {a: {b: [0, 10]}}``), or learned from sure hand-overs
        that were (nearly) simultaneous."""
        return a == b or self.window(a, b).fastest <= SIMULTANEOUS_S

    def plausibility(self, a: str, b: str, seconds: float) -> float:
        """-1 (could not have walked from ``a`` to ``b`` in ``seconds``) .. +1 (a usual walk).

        The same camera is 0: staying in view says nothing either way.
        """
        if a == b:
            return 0.0
        seconds = abs(seconds)
        window = self.window(a, b)
        if seconds < window.fastest:
            return -1.0
        if window.kind is PairKind.KNOWN:
            return 1.0 if seconds <= window.slowest else 0.0
        if window.kind is PairKind.NOT_ADJACENT:
            return -0.5
        return 0.0

    def learned(self) -> dict[str, list[float]]:
        """Observed transit seconds per pair ("a|b"), for diagnostics."""
        return {f"{a}|{b}": list(times) for (a, b), times in sorted(self._seen.items())}
