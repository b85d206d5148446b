"""Websocket commands for the dashboard cards (frontend/, docs/integration.md "Dashboard cards").

- `smart_reid/people`: everyone the loaded servers know, with a status badge, where they are or
  were last seen, visits today and a signed picture link.
- `smart_reid/people/subscribe`: the same answer now and again whenever someone changes.
- `smart_reid/visits`: the visits of a period, newest first, from the server's `GET /api/visits`
  (a server without that route: the visits this Home Assistant saw since it started).
- `smart_reid/visits/subscribe`: one message per visit that starts, changes, ends or gets a risk
  assessment, in the same shape as the items of `smart_reid/visits`.

Every command needs a logged-in user (any user may look; the actions the cards offer are the
integration's services). Pictures are links to the integration's image view, signed for a short
time: the browser never sees the server's address or token.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import voluptuous as vol
from homeassistant.components import websocket_api
from homeassistant.components.http.auth import async_sign_path
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.decorators import async_response, websocket_command
from homeassistant.components.websocket_api.messages import event_message
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util
from yarl import URL

from .api import SmartReidApiError, SmartReidError
from .const import (
    DOMAIN,
    EVENT_NEW_PERSON,
    EVENT_PERSON_MERGED,
    EVENT_RISK_ASSESSED,
    EVENT_VISIT_ENDED,
    EVENT_VISIT_UPDATED,
    SIGNED_URL_TTL,
)
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator, server_path_to_view

RISK_LEVELS = ("low", "medium", "high", "critical")
# Visits remembered from the bus per Home Assistant (the fallback for servers without
# `GET /api/visits`, and the memory that lets a risk assessment join its visit).
VISIT_MEMORY = 500
# Person changes come in bursts (a visit moves several people at once): one push per second.
PEOPLE_PUSH_DELAY_S = 1.0
MAX_PERIOD = timedelta(days=31)

DATA_VISIT_LOG = f"{DOMAIN}_visit_log"


@callback
def async_setup(hass: HomeAssistant) -> None:
    """Register the commands (once per Home Assistant, from `async_setup`)."""
    websocket_api.async_register_command(hass, ws_people)
    websocket_api.async_register_command(hass, ws_people_subscribe)
    websocket_api.async_register_command(hass, ws_visits)
    websocket_api.async_register_command(hass, ws_visits_subscribe)
    _visit_log(hass)


# --- helpers -----------------------------------------------------------------------------------


def _loaded_entries(hass: HomeAssistant, entry_id: str | None) -> list[SmartReidConfigEntry]:
    entries: list[SmartReidConfigEntry] = [
        e
        for e in hass.config_entries.async_entries(DOMAIN)
        if e.state is ConfigEntryState.LOADED and (entry_id is None or e.entry_id == entry_id)
    ]
    return entries


def _no_entry_message(entry_id: str | None) -> str:
    if entry_id:
        return f"Smart ReID server {entry_id} is not set up or not loaded; check the card's server"
    return "Smart ReID is not set up: add the integration under Settings > Devices & services"


def _sign(hass: HomeAssistant, url: str | None) -> str | None:
    """A fresh short-lived signature for a link to our image view (drops an old one)."""
    if not url:
        return None
    parsed = URL(url)
    query = {k: v for k, v in parsed.query.items() if k != "authSig"}
    path = str(parsed.with_query(query)) if query else parsed.path
    return async_sign_path(hass, path, SIGNED_URL_TTL, use_content_user=True)


def _server_image(hass: HomeAssistant, entry_id: str, server_path: Any) -> str | None:
    if not isinstance(server_path, str):
        return None
    return _sign(hass, server_path_to_view(entry_id, server_path))


def _person_status(known: bool, named: bool | None, label: str) -> str:
    """`household` (marked known), `known` (named by a user), `unknown` (a stranger)."""
    if known:
        return "household"
    if named or (named is None and not label.startswith("Visitor ")):
        return "known"
    return "unknown"


def _start_of_today() -> float:
    return dt_util.start_of_local_day().timestamp()


# --- people ------------------------------------------------------------------------------------


def _people_payload(
    hass: HomeAssistant, entries: Iterable[SmartReidConfigEntry], hours: float
) -> dict[str, Any]:
    """Household and named people, everyone present, and strangers seen within `hours`."""
    log = _visit_log(hass)
    today = _start_of_today()
    since = time.time() - hours * 3600
    servers: list[dict[str, Any]] = []
    people: list[dict[str, Any]] = []
    for entry in entries:
        coordinator = entry.runtime_data.coordinator
        servers.append(
            {
                "entry_id": entry.entry_id,
                "title": entry.title,
                "online": coordinator.available,
                "cameras": sorted(coordinator.cameras),
            }
        )
        uncertain = _uncertain_people(coordinator)
        for person in coordinator.persons.values():
            status = _person_status(person.known, person.named, person.label)
            if status == "unknown" and not person.present and (person.last_seen or 0.0) < since:
                continue
            people.append(
                {
                    "entry_id": entry.entry_id,
                    "person_id": person.person_id,
                    "label": person.label,
                    "named": person.named,
                    "known": person.known,
                    "status": status,
                    "uncertain": uncertain.get(person.person_id),
                    "present": person.present,
                    "camera": person.camera,
                    "cameras": list(person.cameras),
                    "first_seen": person.first_seen,
                    "last_seen": person.last_seen,
                    "visit_count": person.visit_count,
                    "visit_id": person.visit_id,
                    "visits_today": log.count_since(entry.entry_id, person.person_id, today),
                    "thumbnail_url": coordinator.sign_image(person.thumbnail_url),
                }
            )
    people.sort(key=lambda p: (not p["present"], -(p["last_seen"] or 0.0)))
    return {"servers": servers, "people": people}


def _uncertain_people(coordinator: SmartReidCoordinator) -> dict[str, dict[str, Any]]:
    """People present whose latest decision was only `uncertain`: "probably Visitor 4"."""
    found: dict[str, dict[str, Any]] = {}
    for decision in coordinator.last_decisions.values():
        if decision.match != "uncertain":
            continue
        person = coordinator.persons.get(decision.person_id)
        if person is None or not person.present:
            continue
        found[decision.person_id] = {
            "similarity": round(decision.similarity, 3),
            "camera": decision.camera,
        }
    return found


# Strangers seen within this many hours (the people card's `hours`); at most 30 days.
HOURS = vol.All(vol.Coerce(float), vol.Range(min=0.1, max=720))


@websocket_command(
    {
        vol.Required("type"): "smart_reid/people",
        vol.Optional("entry_id"): str,
        vol.Optional("hours", default=24.0): HOURS,
    }
)
@callback
def ws_people(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Everyone the server(s) know now."""
    entries = _loaded_entries(hass, msg.get("entry_id"))
    if not entries:
        connection.send_error(msg["id"], "not_loaded", _no_entry_message(msg.get("entry_id")))
        return
    connection.send_result(msg["id"], _people_payload(hass, entries, msg["hours"]))


@websocket_command(
    {
        vol.Required("type"): "smart_reid/people/subscribe",
        vol.Optional("entry_id"): str,
        vol.Optional("hours", default=24.0): HOURS,
    }
)
@callback
def ws_people_subscribe(
    hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
) -> None:
    """The people now, then again (the whole list) at most once a second after changes."""
    entry_id: str | None = msg.get("entry_id")
    entries = _loaded_entries(hass, entry_id)
    if not entries:
        connection.send_error(msg["id"], "not_loaded", _no_entry_message(entry_id))
        return
    pending: list[Callable[[], None]] = []
    unsubscribe: list[Callable[[], None]] = []

    @callback
    def push(_now: datetime | None = None) -> None:
        pending.clear()
        connection.send_message(
            event_message(
                msg["id"], _people_payload(hass, _loaded_entries(hass, entry_id), msg["hours"])
            )
        )

    @callback
    def changed() -> None:
        if not pending:
            pending.append(async_call_later(hass, PEOPLE_PUSH_DELAY_S, push))

    @callback
    def visit_started(_event: Event) -> None:
        changed()

    for entry in entries:
        unsubscribe.append(entry.runtime_data.coordinator.async_add_change_listener(changed))
    # A visit starting changes "visits today" without a person state of its own.
    unsubscribe.append(hass.bus.async_listen(EVENT_NEW_PERSON, visit_started))

    @callback
    def stop() -> None:
        for cancel in pending:
            cancel()
        pending.clear()
        for undo in unsubscribe:
            undo()

    connection.subscriptions[msg["id"]] = stop
    connection.send_result(msg["id"])
    push()


# --- visits ------------------------------------------------------------------------------------


class VisitLog:
    """The visits this Home Assistant heard about on the bus, newest last (bounded)."""

    def __init__(self) -> None:
        self.visits: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def count_since(self, entry_id: str, person_id: str, since: float) -> int:
        return sum(
            1
            for visit in self.visits.values()
            if visit["entry_id"] == entry_id
            and visit["person_id"] == person_id
            and (visit["started_at"] or 0.0) >= since
        )

    def query(
        self,
        entry_ids: set[str],
        start: float,
        end: float,
        person_id: str | None,
        camera: str | None,
        min_level: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for visit in reversed(self.visits.values()):
            if visit["entry_id"] not in entry_ids or not _overlaps(visit, start, end):
                continue
            if person_id and visit["person_id"] != person_id:
                continue
            if camera and camera not in visit["cameras"]:
                continue
            if min_level and not _level_at_least(visit.get("risk"), min_level):
                continue
            found.append(visit)
        found.sort(key=lambda v: -(v["started_at"] or 0.0))
        return found[:limit]

    @callback
    def handle(self, event: Event) -> None:
        data = event.data
        entry_id, visit_id = data.get("config_entry_id"), data.get("visit_id")
        if not isinstance(entry_id, str) or not isinstance(visit_id, str):
            return
        visit = self.visits.get(visit_id)
        if visit is None:
            visit = {
                "entry_id": entry_id,
                "visit_id": visit_id,
                "person_id": data.get("person_id"),
                "label": data.get("label"),
                "known": bool(data.get("known", False)),
                "is_new_identity": bool(data.get("is_new_identity", False)),
                "started_at": data.get("timestamp"),
                "last_seen": data.get("timestamp"),
                "ended_at": None,
                "cameras": [],
                "first_camera": data.get("camera"),
                "last_camera": data.get("camera"),
                "sightings": None,
                "snapshot_url": None,
                "thumbnail_url": None,
                "risk": None,
                "path": [],
            }
        self.visits[visit_id] = visit
        self.visits.move_to_end(visit_id)
        while len(self.visits) > VISIT_MEMORY:
            self.visits.popitem(last=False)
        if event.event_type == EVENT_RISK_ASSESSED:
            visit["risk"] = {
                k: data.get(k)
                for k in ("level", "score", "reasons", "final", "source", "summary", "timestamp")
            }
            visit["label"] = data.get("label") or visit["label"]
        elif event.event_type == EVENT_NEW_PERSON:
            camera = data.get("camera")
            cameras = [c for c in data.get("visit_cameras") or [] if isinstance(c, str)]
            visit["cameras"] = cameras or ([camera] if camera else [])
            for key in ("snapshot_url", "thumbnail_url"):
                visit[key] = data.get(key) or visit[key]
        else:
            for key in (
                "label",
                "known",
                "is_new_identity",
                "started_at",
                "last_seen",
                "ended_at",
                "first_camera",
                "last_camera",
                "sightings",
                "snapshot_url",
                "thumbnail_url",
            ):
                if data.get(key) is not None:
                    visit[key] = data[key]
            visit["cameras"] = [c for c in data.get("cameras") or [] if isinstance(c, str)]
        _record_path(visit, data.get("camera"), data.get("timestamp") or data.get("last_seen"))
        for listener in list(self.listeners):
            listener(visit)


def _record_path(visit: dict[str, Any], camera: Any, at: Any) -> None:
    """Remember when the visit first reached each camera (the timeline's path)."""
    cameras = visit["cameras"] or ([camera] if isinstance(camera, str) else [])
    seen = {step["camera"] for step in visit["path"]}
    for name in cameras:
        if name in seen:
            continue
        when = visit["started_at"] if not visit["path"] else at
        visit["path"].append(
            {"camera": name, "at": when if isinstance(when, int | float) else None}
        )
        seen.add(name)


def _overlaps(visit: dict[str, Any], start: float, end: float) -> bool:
    started = visit.get("started_at") or 0.0
    finished = visit.get("ended_at")
    return bool(started < end and (finished is None or finished > start))


def _level_at_least(risk: Any, min_level: str) -> bool:
    level = risk.get("level") if isinstance(risk, dict) else None
    return level in RISK_LEVELS and RISK_LEVELS.index(level) >= RISK_LEVELS.index(min_level)


def _visit_log(hass: HomeAssistant) -> VisitLog:
    log: VisitLog | None = hass.data.get(DATA_VISIT_LOG)
    if log is None:
        log = hass.data[DATA_VISIT_LOG] = VisitLog()
        for event_type in (
            EVENT_NEW_PERSON,
            EVENT_VISIT_UPDATED,
            EVENT_VISIT_ENDED,
            EVENT_RISK_ASSESSED,
        ):
            hass.bus.async_listen(event_type, log.handle)
    return log


def _current_label(hass: HomeAssistant, entry_id: str, person_id: Any) -> str | None:
    """The person's label now (a visit keeps the one it started with; a rename should show)."""
    entry: SmartReidConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
    if (
        entry is None
        or entry.state is not ConfigEntryState.LOADED
        or not isinstance(person_id, str)
    ):
        return None
    person = entry.runtime_data.coordinator.persons.get(person_id)
    return person.label if person is not None else None


def _item_for_client(hass: HomeAssistant, visit: dict[str, Any]) -> dict[str, Any]:
    """A visit as the cards read it, with freshly signed pictures and the current label."""
    item = dict(visit)
    item["label"] = _current_label(hass, visit["entry_id"], visit["person_id"]) or visit["label"]
    item["snapshot_url"] = _sign(hass, visit.get("snapshot_url"))
    item["thumbnail_url"] = _sign(hass, visit.get("thumbnail_url"))
    item["path"] = [dict(step) for step in visit.get("path", [])]
    return item


def _server_visit(
    hass: HomeAssistant, entry_id: str, raw: dict[str, Any], log: VisitLog
) -> dict[str, Any] | None:
    """A visit from `GET /api/visits`, in the cards' shape (the path from the log where known)."""
    visit_id = raw.get("visit_id")
    if not isinstance(visit_id, str):
        return None
    cameras = [c for c in raw.get("cameras") or [] if isinstance(c, str)]
    heard = log.visits.get(visit_id)
    path = heard["path"] if heard else []
    if not path:
        path = [
            {"camera": c, "at": raw.get("started_at") if i == 0 else None}
            for i, c in enumerate(cameras)
        ]
    risk = raw.get("risk")
    return {
        "entry_id": entry_id,
        "visit_id": visit_id,
        "person_id": raw.get("person_id"),
        "label": _current_label(hass, entry_id, raw.get("person_id")) or raw.get("label"),
        "known": bool(raw.get("known", False)),
        "is_new_identity": bool(raw.get("is_new_identity", False)),
        "started_at": raw.get("started_at"),
        "last_seen": raw.get("last_seen"),
        "ended_at": raw.get("ended_at"),
        "cameras": cameras,
        "first_camera": raw.get("first_camera"),
        "last_camera": raw.get("last_camera"),
        "sightings": raw.get("sightings"),
        "snapshot_url": _server_image(hass, entry_id, raw.get("snapshot_url")),
        "thumbnail_url": _server_image(hass, entry_id, raw.get("thumbnail_url")),
        "risk": _risk_for_client(risk) if isinstance(risk, dict) else None,
        "path": [dict(step) for step in path],
    }


def _risk_for_client(risk: dict[str, Any]) -> dict[str, Any]:
    return {
        k: risk.get(k)
        for k in ("level", "score", "reasons", "final", "source", "summary", "timestamp")
    }


def _period(msg: dict[str, Any]) -> tuple[float, float]:
    now = time.time()
    end = float(msg.get("end", now))
    start = float(msg.get("start", _start_of_today()))
    return start, end


@websocket_command(
    {
        vol.Required("type"): "smart_reid/visits",
        vol.Optional("entry_id"): str,
        vol.Optional("start"): vol.Coerce(float),
        vol.Optional("end"): vol.Coerce(float),
        vol.Optional("person_id"): vol.Match(r"^[0-9a-f]{12}$"),
        vol.Optional("camera"): vol.Match(r"^[a-z0-9_]{1,64}$"),
        vol.Optional("min_level"): vol.In(RISK_LEVELS),
        vol.Optional("limit", default=50): vol.All(int, vol.Range(min=1, max=1000)),
    }
)
@async_response
async def ws_visits(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Visits of a period (default: today so far), newest first."""
    entry_id: str | None = msg.get("entry_id")
    entries = _loaded_entries(hass, entry_id)
    if not entries:
        connection.send_error(msg["id"], "not_loaded", _no_entry_message(entry_id))
        return
    start, end = _period(msg)
    if end <= start or end - start > MAX_PERIOD.total_seconds():
        connection.send_error(
            msg["id"],
            "invalid_period",
            "the period must end after it starts and be at most 31 days long",
        )
        return
    log = _visit_log(hass)
    limit: int = msg["limit"]
    visits: list[dict[str, Any]] = []
    truncated = False
    errors: list[str] = []
    for entry in entries:
        try:
            answer = await entry.runtime_data.api.visits(
                start,
                end,
                limit=limit,
                min_level=msg.get("min_level"),
                person=msg.get("person_id"),
                camera=msg.get("camera"),
            )
        except SmartReidApiError as err:
            if err.status != 404:
                errors.append(f"{entry.title}: {err.message}")
                continue
            # A server from before `GET /api/visits`: what this Home Assistant saw.
            found = log.query(
                {entry.entry_id},
                start,
                end,
                msg.get("person_id"),
                msg.get("camera"),
                msg.get("min_level"),
                limit,
            )
            visits.extend(_item_for_client(hass, v) for v in found)
            continue
        except SmartReidError as err:
            errors.append(f"{entry.title}: {err}")
            continue
        truncated = truncated or bool(answer.get("truncated"))
        raw_visits = answer.get("visits")
        for raw in raw_visits if isinstance(raw_visits, list) else []:
            if isinstance(raw, dict) and (item := _server_visit(hass, entry.entry_id, raw, log)):
                visits.append(item)
    if errors and not visits:
        connection.send_error(
            msg["id"],
            "server_unreachable",
            "the Smart ReID server did not answer ("
            + "; ".join(errors)
            + "); check that it runs (docs/integration.md, when the server is offline)",
        )
        return
    visits.sort(key=lambda v: -(v["started_at"] or 0.0))
    connection.send_result(
        msg["id"],
        {
            "start": start,
            "end": end,
            "truncated": truncated or len(visits) > limit,
            "visits": visits[:limit],
            "errors": errors,
        },
    )


@websocket_command(
    {vol.Required("type"): "smart_reid/visits/subscribe", vol.Optional("entry_id"): str}
)
@callback
def ws_visits_subscribe(
    hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
) -> None:
    """Each visit that starts, moves on, ends or is assessed, as `{"visit": {...}}`; a merge
    as `{"merged": {"person_id", "merged_person_id", "merged_visit_id", "visit_id", "reason",
    "label", "known"}}` (`returning`: the visit goes on as `person_id`'s)."""
    entry_id: str | None = msg.get("entry_id")
    if not _loaded_entries(hass, entry_id):
        connection.send_error(msg["id"], "not_loaded", _no_entry_message(entry_id))
        return
    log = _visit_log(hass)

    @callback
    def forward(visit: dict[str, Any]) -> None:
        if entry_id is None or visit["entry_id"] == entry_id:
            connection.send_message(
                event_message(msg["id"], {"visit": _item_for_client(hass, visit)})
            )

    @callback
    def merged(event: Event) -> None:
        if entry_id is None or event.data.get("config_entry_id") == entry_id:
            connection.send_message(
                event_message(
                    msg["id"],
                    {
                        "merged": {
                            k: event.data.get(k)
                            for k in (
                                "person_id",
                                "merged_person_id",
                                "merged_visit_id",
                                "visit_id",
                                "reason",
                                "label",
                                "known",
                            )
                        }
                    },
                )
            )

    # Renames reach the timeline too: `{"labels": {person_id: label}}` for those that changed.
    labels = _labels(hass, entry_id)
    pending: list[Callable[[], None]] = []

    @callback
    def push_labels(_now: datetime | None = None) -> None:
        pending.clear()
        current = _labels(hass, entry_id)
        changed = {pid: label for pid, label in current.items() if labels.get(pid) != label}
        labels.clear()
        labels.update(current)
        if changed:
            connection.send_message(event_message(msg["id"], {"labels": changed}))

    @callback
    def people_changed() -> None:
        if not pending:
            pending.append(async_call_later(hass, PEOPLE_PUSH_DELAY_S, push_labels))

    log.listeners.append(forward)
    undo = [hass.bus.async_listen(EVENT_PERSON_MERGED, merged)]
    undo += [
        entry.runtime_data.coordinator.async_add_change_listener(people_changed)
        for entry in _loaded_entries(hass, entry_id)
    ]

    @callback
    def stop() -> None:
        log.listeners.remove(forward)
        for cancel in pending + undo:
            cancel()

    connection.subscriptions[msg["id"]] = stop
    connection.send_result(msg["id"])


def _labels(hass: HomeAssistant, entry_id: str | None) -> dict[str, str]:
    return {
        person_id: person.label
        for entry in _loaded_entries(hass, entry_id)
        for person_id, person in entry.runtime_data.coordinator.persons.items()
    }
