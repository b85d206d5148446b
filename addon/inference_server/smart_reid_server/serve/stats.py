"""Counters users see (per camera, per day) and latencies operators see (per pipeline stage).

"Today" is the server's local calendar day: a household's "5 people today" resets at local
midnight, not at UTC midnight. Presence ("who is here now") is not kept here: it belongs to
the visit tracker, which knows the visit window.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..types import Decision

STAGES = ("queue", "decode", "detect", "embed", "match", "publish", "total")
MAX_AUTO_CAMERAS = 64

_LOGGER = logging.getLogger(__name__)


class LatencyStats:
    """Recent per-stage latencies in milliseconds (a sliding window, so old spikes age out)."""

    def __init__(self, window: int = 2048) -> None:
        self._samples: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._counts: dict[str, int] = dict.fromkeys(STAGES, 0)

    def record(self, stage: str, ms: float) -> None:
        if stage not in self._samples:
            self._samples[stage] = deque(maxlen=self._samples["total"].maxlen)
            self._counts[stage] = 0
        self._samples[stage].append(ms)
        self._counts[stage] += 1

    def samples(self, stage: str) -> list[float]:
        return list(self._samples.get(stage, ()))

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for stage, values in self._samples.items():
            if not values:
                continue
            arr = np.fromiter(values, dtype=np.float64)
            out[stage] = {
                "count": float(self._counts[stage]),
                "p50_ms": round(float(np.percentile(arr, 50)), 2),
                "p95_ms": round(float(np.percentile(arr, 95)), 2),
                "mean_ms": round(float(arr.mean()), 2),
            }
        return out


@dataclass(slots=True)
class CameraCounters:
    """What one camera did: frames in and out, and who it saw today."""

    name: str
    frames_processed: int = 0
    frames_dropped: int = 0
    frames_rejected: int = 0
    sightings_today: int = 0
    people_today: set[str] = field(default_factory=set)
    last_person_id: str | None = None
    last_label: str | None = None
    last_seen: float | None = None


class CameraBook:
    """Known cameras and their counters; decides whether a frame from a camera is accepted."""

    def __init__(
        self,
        cameras: Iterable[str],
        *,
        auto_add: bool,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self._cameras: dict[str, CameraCounters] = {c: CameraCounters(c) for c in cameras}
        # Replaced, never mutated: the identity thread may read it while the loop adds a camera.
        self._names: tuple[str, ...] = tuple(self._cameras)
        self.auto_add = auto_add
        self._today = today
        self._day = today()
        self._drop_times: deque[float] = deque(maxlen=100_000)
        self.on_added: Callable[[str], None] | None = None
        self._warned_full = False
        # camera -> {"zones": [names], "lines": [names]} (zones.py), listed in the camera state.
        self.layout: Callable[[str], dict[str, list[str]]] = lambda _camera: {
            "zones": [],
            "lines": [],
        }

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def __contains__(self, camera: object) -> bool:
        return camera in self._cameras

    def get(self, camera: str) -> CameraCounters | None:
        return self._cameras.get(camera)

    def accepts(self, camera: str) -> bool:
        """Whether frames from ``camera`` would be admitted (without adding it)."""
        if camera in self._cameras:
            return True
        return self.auto_add and len(self._cameras) < MAX_AUTO_CAMERAS

    def admit(self, camera: str) -> bool:
        """True when frames from ``camera`` may enter; adds it when auto-adding is on.

        Auto-adding stops at ``MAX_AUTO_CAMERAS`` cameras: whoever can publish on the ingest
        topic must not be able to grow the camera list (and every state message) without end.
        """
        if camera in self._cameras:
            return True
        if not self.accepts(camera):
            if self.auto_add and not self._warned_full:
                self._warned_full = True
                _LOGGER.warning(
                    "auto_add_cameras: already %d cameras; frames from new camera %s are "
                    "refused (list your cameras in `cameras` instead)",
                    len(self._cameras),
                    camera,
                )
            return False
        self.add(camera)
        return True

    def add(self, camera: str) -> None:
        """Declare a camera (auto-added, or named by a camera source's configuration)."""
        if camera in self._cameras:
            return
        self._cameras[camera] = CameraCounters(camera)
        self._names = (*self._names, camera)
        if self.on_added is not None:
            self.on_added(camera)

    def rollover(self) -> bool:
        """Reset the daily counters after local midnight; True when it did."""
        today = self._today()
        if today == self._day:
            return False
        self._day = today
        for counters in self._cameras.values():
            counters.sightings_today = 0
            counters.people_today.clear()
        return True

    def dropped(self, camera: str) -> None:
        counters = self._cameras.get(camera)
        if counters is not None:
            counters.frames_dropped += 1
        self._drop_times.append(time.monotonic())

    def recent_drops(self, window_s: float = 60.0) -> int:
        """Frames dropped for overload in the last ``window_s`` seconds (any camera)."""
        horizon = time.monotonic() - window_s
        while self._drop_times and self._drop_times[0] < horizon:
            self._drop_times.popleft()
        return len(self._drop_times)

    def rejected(self, camera: str) -> None:
        counters = self._cameras.get(camera)
        if counters is not None:
            counters.frames_rejected += 1

    def processed(self, camera: str, decisions: Iterable[Decision]) -> None:
        self.rollover()
        counters = self._cameras.get(camera)
        if counters is None:
            self.add(camera)
            counters = self._cameras[camera]
        counters.frames_processed += 1
        for decision in decisions:
            counters.sightings_today += 1
            counters.people_today.add(decision.person_id)
            if counters.last_seen is None or decision.timestamp >= counters.last_seen:
                counters.last_person_id = decision.person_id
                counters.last_label = decision.label
                counters.last_seen = decision.timestamp

    def forget(self, person_ids: Iterable[str]) -> None:
        """Drop forgotten people from today's "distinct people" (their data is gone)."""
        gone = set(person_ids)
        for counters in self._cameras.values():
            counters.people_today -= gone
            if counters.last_person_id in gone:
                counters.last_person_id = None
                counters.last_label = None

    def relabel(self, person_id: str, label: str) -> None:
        for counters in self._cameras.values():
            if counters.last_person_id == person_id:
                counters.last_label = label

    @property
    def frames_processed(self) -> int:
        return sum(c.frames_processed for c in self._cameras.values())

    @property
    def frames_dropped(self) -> int:
        return sum(c.frames_dropped for c in self._cameras.values())

    def camera_state(
        self,
        camera: str,
        present_ids: list[str],
        unknown_present: bool,
        now: float | None = None,
        *,
        unidentified: int = 0,
    ) -> dict[str, Any]:
        """The contract's Camera state (presence comes from the visit tracker; ``unidentified``:
        people in view whose track is still being looked at, counted but not yet named)."""
        counters = self._cameras.get(camera) or CameraCounters(camera)
        return {
            "camera": camera,
            "people_present": len(present_ids) + unidentified,
            "person_ids_present": list(present_ids),
            "unknown_present": unknown_present,
            "last_person_id": counters.last_person_id,
            "last_label": counters.last_label,
            "last_seen": None if counters.last_seen is None else round(counters.last_seen, 3),
            "sightings_today": counters.sightings_today,
            "distinct_people_today": len(counters.people_today),
            "frames_processed": counters.frames_processed,
            "frames_dropped": counters.frames_dropped,
            **self.layout(camera),
            "updated_at": round(time.time() if now is None else now, 3),
        }

    def hub_state(
        self,
        present_ids: list[str],
        visits_today: int,
        distinct_today: int,
        now: float | None = None,
        *,
        unidentified: int = 0,
    ) -> dict[str, Any]:
        """The contract's Hub state (today's visit counts come from the identity store)."""
        return {
            "people_present": len(present_ids) + unidentified,
            "person_ids_present": list(present_ids),
            "distinct_people_today": distinct_today,
            "visits_today": visits_today,
            "frames_processed": self.frames_processed,
            "frames_dropped": self.frames_dropped,
            "updated_at": round(time.time() if now is None else now, 3),
        }
