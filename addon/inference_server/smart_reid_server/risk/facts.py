"""The facts of one visit, as the rules see them.

A visit's path and times come from ``visits.Visit`` (cameras in order of first sighting, first
and last sighting per camera). What a Visit does not hold is collected here as frames arrive:
who else was in the frame with the person (``Companions``). The rest is looked up when the visit
is assessed: the identity's status and how often it came lately (the store), and the local time
of day (``TimeOfDay``: a configured time zone; night as fixed hours or from sunset to sunrise).

Dwell on a camera is the time between the first and the last sighting there, so a person who
stood at the back door for six minutes has a six-minute dwell even if the camera saw them in
bursts. Zones (``zones.py``) a visit touched are collected as frames arrive too (``ZoneLog``):
dwell in a zone adds up the time between sightings inside it that are at most the zones'
``lost_after_s`` apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any, Protocol

from ..identity.visits import Visit

DAY_S = 86400.0
WEEK_S = 7 * DAY_S


class IdentityStatus(StrEnum):
    """How well the household knows the person, most trusted first."""

    HOUSEHOLD = "household"  # listed in risk.household
    KNOWN = "known"  # marked known by the user
    NAMED = "named"  # given a name by the user, not marked known
    RETURNING = "returning_stranger"  # seen on an earlier visit, never named
    NEW = "new_stranger"  # first visit ever

    @property
    def trusted(self) -> bool:
        return self in (IdentityStatus.HOUSEHOLD, IdentityStatus.KNOWN)


class PersonLookup(Protocol):
    """What facts need from the identity store (``store.Store`` provides it)."""

    def person(self, person_id: str) -> Any: ...

    def visit_counts(self, person_id: str, at: float, windows: Sequence[float]) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class CameraStay:
    camera: str
    first_seen: float
    last_seen: float

    @property
    def dwell_s(self) -> float:
        return max(0.0, self.last_seen - self.first_seen)


def sun_is_down(timestamp: float, latitude: float, longitude: float) -> bool:
    """Whether the sun is below the horizon (upper limb, with refraction: -0.833 degrees) at
    ``timestamp`` seen from the place; the sunrise equation, good to a minute or two away from
    the poles. Polar night counts as night, midnight sun as day."""
    days = timestamp / DAY_S + 2440587.5 - 2451545.0  # days since J2000
    n = round(days + longitude / 360.0)  # the solar noon nearest to ``timestamp``
    mean = n - longitude / 360.0
    anomaly = math.radians((357.5291 + 0.98560028 * mean) % 360.0)
    centre = (
        1.9148 * math.sin(anomaly) + 0.02 * math.sin(2 * anomaly) + 0.0003 * math.sin(3 * anomaly)
    )
    ecliptic = math.radians((math.degrees(anomaly) + centre + 180.0 + 102.9372) % 360.0)
    transit = mean + 0.0053 * math.sin(anomaly) - 0.0069 * math.sin(2 * ecliptic)
    declination = math.asin(math.sin(ecliptic) * math.sin(math.radians(23.4397)))
    phi = math.radians(latitude)
    cos_hour = (math.sin(math.radians(-0.833)) - math.sin(phi) * math.sin(declination)) / (
        math.cos(phi) * math.cos(declination)
    )
    if cos_hour >= 1.0:
        return True  # the sun does not rise that day
    if cos_hour <= -1.0:
        return False  # the sun does not set
    half_day = math.degrees(math.acos(cos_hour)) / 360.0
    return abs(days - transit) > half_day


@dataclass(frozen=True, slots=True)
class ZoneStay:
    """A zone the person was in during the visit (``sensitivity``: the zone's, else its
    camera's)."""

    camera: str
    zone: str
    sensitivity: float
    first_seen: float
    last_seen: float
    dwell_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "zone": self.zone,
            "sensitivity": self.sensitivity,
            "dwell_s": round(self.dwell_s, 1),
        }


@dataclass(slots=True)
class ZoneLog:
    """The zones each visit touched, with dwell (collected as frames arrive)."""

    gap_s: float = 4.0  # sightings inside further apart than this do not add dwell
    _stays: dict[str, dict[tuple[str, str], ZoneStay]] = field(default_factory=dict)

    def saw(
        self, visit_id: str, camera: str, zone: str, sensitivity: float, timestamp: float
    ) -> None:
        stays = self._stays.setdefault(visit_id, {})
        stay = stays.get((camera, zone))
        if stay is None:
            stays[(camera, zone)] = ZoneStay(camera, zone, sensitivity, timestamp, timestamp, 0.0)
            return
        step = timestamp - stay.last_seen
        if step < 0:
            return  # frames of another camera may arrive a little out of order
        dwell = stay.dwell_s + (step if step <= self.gap_s else 0.0)
        stays[(camera, zone)] = ZoneStay(
            camera, zone, sensitivity, stay.first_seen, timestamp, dwell
        )

    def of(self, visit_id: str) -> tuple[ZoneStay, ...]:
        """In the order the visit first entered them."""
        return tuple(self._stays.get(visit_id, {}).values())

    def drop(self, visit_ids: Iterable[str]) -> None:
        for visit_id in visit_ids:
            self._stays.pop(visit_id, None)

    def keep_only(self, visit_ids: Iterable[str]) -> None:
        keep = set(visit_ids)
        for visit_id in [v for v in self._stays if v not in keep]:
            del self._stays[visit_id]


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    """Local time in a fixed zone (None: the server's) and when it is night.

    Night is between sunset and sunrise at ``sun`` (latitude, longitude) when that is set, else
    fixed hours: ``night_start`` / ``night_end`` are minutes after local midnight; a night that
    starts after it ends (22:00 to 06:00) spans midnight, equal values mean no night at all.
    """

    zone: tzinfo | None = None
    night_start: int = 22 * 60
    night_end: int = 6 * 60
    sun: tuple[float, float] | None = None

    def local(self, timestamp: float) -> datetime:
        if self.zone is None:
            return datetime.fromtimestamp(timestamp).astimezone()
        return datetime.fromtimestamp(timestamp, self.zone)

    def is_night(self, timestamp: float) -> bool:
        if self.sun is not None:
            return sun_is_down(timestamp, *self.sun)
        when = self.local(timestamp)
        minute = when.hour * 60 + when.minute
        if self.night_start == self.night_end:
            return False
        if self.night_start < self.night_end:
            return self.night_start <= minute < self.night_end
        return minute >= self.night_start or minute < self.night_end


@dataclass(frozen=True, slots=True)
class VisitFacts:
    """Everything the rules use about one visit (plain data; ``to_json`` for the contract)."""

    visit_id: str
    person_id: str
    label: str
    status: IdentityStatus
    started_at: float
    last_seen: float
    ended: bool
    path: tuple[CameraStay, ...]
    companions: tuple[IdentityStatus, ...] = ()  # statuses of the others seen in frame with them
    visits_24h: int = 1  # visits started in the 24 h up to this one's start, this one included
    visits_7d: int = 1
    local_time: str = ""  # "02:47", at the visit's start
    night: bool = False  # the visit started or was last seen during night hours
    zones: tuple[ZoneStay, ...] = ()  # zones the visit touched, in the order first entered

    @property
    def cameras(self) -> list[str]:
        return [stay.camera for stay in self.path]

    @property
    def group_size(self) -> int:
        """Other people seen in a frame with this person during the visit."""
        return len(self.companions)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.last_seen - self.started_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "cameras": self.cameras,
            "dwell_s": {stay.camera: round(stay.dwell_s, 1) for stay in self.path},
            "duration_s": round(self.duration_s, 1),
            "group_size": self.group_size,
            "visits_24h": self.visits_24h,
            "visits_7d": self.visits_7d,
            "local_time": self.local_time,
            "night": self.night,
            "zones": [stay.to_json() for stay in self.zones],
        }


@dataclass(slots=True)
class Companions:
    """Who was seen in a frame with whom, per visit (collected as frames arrive)."""

    _with: dict[str, set[str]] = field(default_factory=dict)  # visit_id -> other person ids

    def saw_together(self, visits: Mapping[str, str]) -> None:
        """One frame: ``visits`` maps each person in it to their visit id."""
        if len(visits) < 2:
            return
        for person_id, visit_id in visits.items():
            others = self._with.setdefault(visit_id, set())
            others.update(p for p in visits if p != person_id)

    def of(self, visit_id: str) -> set[str]:
        return self._with.get(visit_id, set())

    def drop(self, visit_ids: Iterable[str]) -> None:
        for visit_id in visit_ids:
            self._with.pop(visit_id, None)

    def keep_only(self, visit_ids: Iterable[str]) -> None:
        keep = set(visit_ids)
        for visit_id in [v for v in self._with if v not in keep]:
            del self._with[visit_id]


def identity_status(
    record: Any, is_new_identity: bool, household: frozenset[str]
) -> IdentityStatus:
    """The status of a stored person (``store.PersonRecord``; None: unknown to the store)."""
    if record is None:
        return IdentityStatus.NEW if is_new_identity else IdentityStatus.RETURNING
    if record.person_id in household or str(record.label).strip().casefold() in household:
        return IdentityStatus.HOUSEHOLD
    if record.known:
        return IdentityStatus.KNOWN
    if not record.auto_label:
        return IdentityStatus.NAMED
    return IdentityStatus.NEW if is_new_identity else IdentityStatus.RETURNING


def visit_counts(store: PersonLookup, visit: Visit) -> list[int]:
    """The person's visits started in the 24 h and the 7 days up to ``visit``'s start."""
    return store.visit_counts(visit.person_id, visit.started_at, (DAY_S, WEEK_S))


def collect(
    visit: Visit,
    store: PersonLookup,
    companions: Iterable[str],
    *,
    clock: TimeOfDay,
    household: frozenset[str] = frozenset(),
    counts: Sequence[int] | None = None,
    zones: Iterable[ZoneStay] = (),
) -> VisitFacts:
    """The facts of ``visit`` now (``household``: person ids and case-folded labels;
    ``counts``: the person's visits in 24 h and 7 d when the caller already has them;
    ``zones``: the zones it touched, from a ``ZoneLog``)."""
    record = store.person(visit.person_id)
    status = identity_status(record, visit.is_new_identity, household)
    others: list[IdentityStatus] = []
    for other in sorted(companions):
        other_record = store.person(other)
        if other_record is not None:
            others.append(identity_status(other_record, False, household))
    if counts is None:
        counts = visit_counts(store, visit)
    path = tuple(
        CameraStay(
            camera,
            visit.camera_first_seen.get(camera, visit.started_at),
            visit.camera_last_seen.get(camera, visit.last_seen),
        )
        for camera in visit.cameras
    )
    night_start = clock.is_night(visit.started_at)
    night_end = clock.is_night(visit.last_seen)
    # The time quoted is the start, or the moment it turned night for a visit that began before.
    quoted = visit.last_seen if night_end and not night_start else visit.started_at
    return VisitFacts(
        visit_id=visit.visit_id,
        person_id=visit.person_id,
        label=str(record.label) if record is not None else visit.person_id,
        status=status,
        started_at=visit.started_at,
        last_seen=visit.last_seen,
        ended=visit.ended_at is not None,
        path=path,
        companions=tuple(others),
        visits_24h=max(1, counts[0]),
        visits_7d=max(1, counts[1]),
        local_time=clock.local(quoted).strftime("%H:%M"),
        night=night_start or night_end,
        zones=tuple(zones),
    )
