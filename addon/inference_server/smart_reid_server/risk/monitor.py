"""When visits are assessed, and where the latest assessment is kept.

A visit is assessed on every frame it appears in (the rules cost microseconds) but an
assessment is *published* only when it says something new:

- the first one, at the visit's start (interim);
- whenever the level rises (interim): the stranger who walks on from the driveway to the back
  garden is reported when they get there, not at the next interval;
- every ``risk.interim_s`` seconds (frame clock) while the visit lasts, also when no frames come
  (``tick``), so a visit that never ends is still assessed;
- once when the visit ends (final).

Each published assessment is also stored with the visit (``Store.save_risk``) for the HTTP API.
Runs on the identities worker thread (it reads the store), like everything that touches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..identity.visits import Visit
from .facts import Companions, PersonLookup, ZoneLog, collect, visit_counts
from .rules import LEVELS, Assessment, RiskConfig, assess


class RiskStore(PersonLookup, Protocol):
    def save_risk(self, visit_id: str, assessment: dict[str, Any]) -> None: ...


class RecoveryStore(RiskStore, Protocol):
    def visit(self, visit_id: str) -> Any: ...

    def visit_risk(self, visit_id: str) -> dict[str, Any] | None: ...


class ActiveVisits(Protocol):
    def active_for(self, person_id: str) -> Visit | None: ...

    def active(self) -> list[Visit]: ...


@dataclass(slots=True)
class _Published:
    level: str
    at: float  # frame time of the last published assessment


class RiskMonitor:
    """Assesses visits as they happen (see the module docstring)."""

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self.companions = Companions()
        self.zones = ZoneLog()  # filled by the server's zone watcher (zones.py)
        self._published: dict[str, _Published] = {}
        # Visits before a visit's start do not change while it lasts: counted once per visit
        # (again if a merge changes its person or start).
        self._counts: dict[str, tuple[tuple[str, float], list[int]]] = {}

    def on_frame(
        self,
        store: RiskStore,
        visits: ActiveVisits,
        person_ids: Iterable[str],
        timestamp: float,
        ended: Sequence[Visit] = (),
    ) -> list[Assessment]:
        """One processed frame: the people in it and the visits it ended; what to publish."""
        if not self.config.enabled:
            return []
        out = self.on_ended(store, ended)
        in_frame: dict[str, str] = {}
        for person_id in dict.fromkeys(person_ids):
            visit = visits.active_for(person_id)
            if visit is not None:
                in_frame[person_id] = visit.visit_id
        self.companions.saw_together(in_frame)
        for person_id in in_frame:
            visit = visits.active_for(person_id)
            assert visit is not None
            assessment = self._assess(store, visit, final=False, now=timestamp)
            if self._due(assessment, timestamp):
                out.append(self._publish(store, assessment, timestamp))
        return out

    def on_ended(self, store: RiskStore, ended: Sequence[Visit]) -> list[Assessment]:
        """Final assessments of visits that just ended."""
        if not self.config.enabled:
            return []
        out = []
        for visit in ended:
            timestamp = visit.ended_at if visit.ended_at is not None else visit.last_seen
            out.append(self._publish(store, self._assess(store, visit, True, timestamp), None))
            self._published.pop(visit.visit_id, None)
            self._counts.pop(visit.visit_id, None)
            self.companions.drop([visit.visit_id])
            self.zones.drop([visit.visit_id])
        return out

    def recover(self, store: RecoveryStore, visit_ids: Sequence[str]) -> list[Assessment]:
        """Final assessments of visits a crash or restart left open (``Store`` closed them at
        their last sighting when it opened). Dwell per camera comes from the visit's last
        stored assessment where it has one; company seen during the visit is not known."""
        if not self.config.enabled:
            return []
        out = []
        for visit_id in visit_ids:
            record = store.visit(visit_id)
            if record is None or store.person(record.person_id) is None:
                continue
            earlier = store.visit_risk(visit_id) or {}
            if earlier.get("final") is True:
                continue
            facts = earlier.get("facts")
            dwell = facts.get("dwell_s", {}) if isinstance(facts, dict) else {}
            first_seen: dict[str, float] = {}
            last_seen: dict[str, float] = {}
            for camera in record.cameras:
                stay = float(dwell.get(camera, 0.0)) if isinstance(dwell, dict) else 0.0
                if camera == record.last_camera:
                    first_seen[camera] = max(record.started_at, record.last_seen - stay)
                    last_seen[camera] = record.last_seen
                else:
                    first_seen[camera] = record.started_at
                    last_seen[camera] = record.started_at + stay
            visit = Visit(
                visit_id=record.visit_id,
                person_id=record.person_id,
                started_at=record.started_at,
                last_seen=record.last_seen,
                is_new_identity=record.is_new_identity,
                cameras=list(record.cameras),
                camera_first_seen=first_seen,
                camera_last_seen=last_seen,
                sightings=record.sightings,
                ended_at=record.ended_at if record.ended_at is not None else record.last_seen,
            )
            out.extend(self.on_ended(store, [visit]))
        return out

    def tick(self, store: RiskStore, visits: ActiveVisits, now: float) -> list[Assessment]:
        """Interim assessments that are due on the frame clock ``now`` without a frame."""
        if not self.config.enabled:
            return []
        active = visits.active()
        live = {v.visit_id for v in active}
        # Visits absorbed by a merge or forgotten never end: drop what was kept for them.
        for visit_id in [v for v in self._published if v not in live]:
            del self._published[visit_id]
        for visit_id in [v for v in self._counts if v not in live]:
            del self._counts[visit_id]
        self.companions.keep_only(live)
        self.zones.keep_only(live)
        out = []
        for visit in active:
            published = self._published.get(visit.visit_id)
            if published is not None and now - published.at >= self.config.interim_s:
                assessment = self._assess(store, visit, final=False, now=now)
                out.append(self._publish(store, assessment, now))
        return out

    def _assess(self, store: RiskStore, visit: Visit, final: bool, now: float) -> Assessment:
        key = (visit.person_id, visit.started_at)
        cached = self._counts.get(visit.visit_id)
        if cached is None or cached[0] != key:
            cached = (key, visit_counts(store, visit))
            self._counts[visit.visit_id] = cached
        facts = collect(
            visit,
            store,
            self.companions.of(visit.visit_id),
            clock=self.config.clock,
            household=self.config.household,
            counts=cached[1],
            zones=self.zones.of(visit.visit_id),
        )
        return assess(facts, self.config, final=final, timestamp=now)

    def _due(self, assessment: Assessment, now: float) -> bool:
        published = self._published.get(assessment.visit_id)
        if published is None:
            return True
        if LEVELS.index(assessment.level) > LEVELS.index(published.level):
            return True
        return now - published.at >= self.config.interim_s

    def _publish(self, store: RiskStore, assessment: Assessment, now: float | None) -> Assessment:
        if now is not None:
            self._published[assessment.visit_id] = _Published(assessment.level, now)
        store.save_risk(assessment.visit_id, assessment.to_json())
        return assessment
