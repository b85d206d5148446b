"""Retained MQTT states (hub, cameras, persons): read on the identity thread, published on the loop.

The identities facade may only be touched from its own thread, so ``gather`` runs there and
copies out plain data (``StateView``); ``StatePublisher.apply`` then builds the contract's JSON
on the event loop and hands it to the publisher.

Frame counters change with every frame; re-publishing a retained state 15 times a second would
make Home Assistant rewrite its entities just as often. A state is therefore re-sent at once when
something a user sees changed (who is present, last person, today's counts) and otherwise at
most every ``COUNTER_REFRESH_S``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .publish import Publisher
from .stats import CameraBook

COUNTER_REFRESH_S = 10.0
_VOLATILE = frozenset({"updated_at", "frames_processed", "frames_dropped"})


def local_midnight(now: float | None = None) -> float:
    """Unix time of the start of the local day containing ``now``."""
    moment = dt.datetime.fromtimestamp(time.time() if now is None else now).astimezone()
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


@dataclass(slots=True)
class StateView:
    """Plain data copied from the identities facade (safe to use on any thread)."""

    persons: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: forgotten
    thumbnails: dict[str, str | None] = field(default_factory=dict)
    presence: dict[str, tuple[list[str], bool]] = field(default_factory=dict)
    unidentified: dict[str, int] = field(default_factory=dict)  # camera -> pending tracks
    present_ids: list[str] = field(default_factory=list)
    visits_today: int = 0
    distinct_today: int = 0
    unidentified_total: int = 0
    merges: list[dict[str, Any]] = field(default_factory=list)  # automatic merges to announce
    risk: list[dict[str, Any]] = field(default_factory=list)  # risk assessments to publish
    zones: list[dict[str, Any]] = field(default_factory=list)  # zone events to publish


def gather(
    identities: Any,
    *,
    person_ids: Iterable[str] = (),
    forgotten: Iterable[str] = (),
    cameras: Iterable[str] = (),
    now: float | None = None,
) -> StateView:
    """On the identity thread: the states of ``person_ids`` and ``cameras``, plus the hub's."""
    now = time.time() if now is None else now
    view = StateView()
    for person_id in forgotten:
        view.persons[person_id] = None
    for person_id in person_ids:
        try:
            person = identities.person(person_id).to_json()
        except KeyError:
            view.persons[person_id] = None
            continue
        view.persons[person_id] = person
        view.thumbnails[person_id] = person.get("thumbnail_url")
    known_cache: dict[str, bool] = {}

    def is_known(person_id: str) -> bool:
        if person_id not in known_cache:
            record = identities.store.person(person_id)
            known_cache[person_id] = bool(record.known) if record is not None else False
        return known_cache[person_id]

    for camera in cameras:
        present = list(identities.camera_presence(camera, now))
        pending = int(getattr(identities, "camera_unidentified", lambda *_: 0)(camera, now))
        view.unidentified[camera] = pending
        view.presence[camera] = (
            present,
            pending > 0 or any(not is_known(pid) for pid in present),
        )
    view.present_ids = list(identities.presence(now))
    view.unidentified_total = int(getattr(identities, "unidentified", lambda *_: 0)(now))
    view.visits_today, view.distinct_today = identities.visit_stats(local_midnight(now))
    return view


class StatePublisher:
    """Turns ``StateView``s into retained hub, camera and person messages."""

    def __init__(self, publisher: Publisher, cameras: CameraBook) -> None:
        self.publisher = publisher
        self.cameras = cameras
        self._last_key: dict[str, Any] = {}
        self._last_sent: dict[str, float] = {}
        self.hub: dict[str, Any] = {}
        self.camera_states: dict[str, dict[str, Any]] = {}

    def apply(self, view: StateView, *, force: bool = False) -> None:
        now = time.time()
        for person_id, person in view.persons.items():
            self.publisher.set_retained(f"person/{person_id}/state", person)
        for camera, (present, unknown) in view.presence.items():
            state = self.cameras.camera_state(
                camera, present, unknown, now, unidentified=view.unidentified.get(camera, 0)
            )
            self.camera_states[camera] = state
            self._maybe_send(f"camera/{camera}/state", state, now, force)
        self.hub = self.cameras.hub_state(
            view.present_ids,
            view.visits_today,
            view.distinct_today,
            now,
            unidentified=view.unidentified_total,
        )
        self._maybe_send("state", self.hub, now, force)

    def _maybe_send(self, suffix: str, state: dict[str, Any], now: float, force: bool) -> None:
        key = {k: v for k, v in state.items() if k not in _VOLATILE}
        stale = now - self._last_sent.get(suffix, 0.0) >= COUNTER_REFRESH_S
        if force or stale or self._last_key.get(suffix) != key:
            self._last_key[suffix] = key
            self._last_sent[suffix] = now
            self.publisher.set_retained(suffix, state)
