"""A calendar of visits: `calendar.<server>_visits`, one event per visit.

Home Assistant's calendar panel and the calendar card show the day's visits (who, from when to
when, which cameras, the risk level and its reasons); the entity is on while a visit is going on,
so it also works as a "someone is here" trigger with the visit as its event. The events come from
the server's `GET /api/visits`; a range is asked for in pieces of at most 31 days (the server's
limit), and answers are kept a short while so the calendar panel moving between views does not
ask again. The current visit is re-read when the server announces a visit change over MQTT.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.calendar import CalendarEntity, CalendarEvent
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .api import SmartReidError
from .const import (
    ATTR_CONFIG_ENTRY_ID,
    DOMAIN,
    EVENT_NEW_PERSON,
    EVENT_RISK_ASSESSED,
    EVENT_VISIT_ENDED,
    EVENT_VISIT_UPDATED,
    LOGGER,
    MAX_PERIOD,
)
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator
from .entity import SmartReidHubEntity
from .models import RISK_LEVELS

PARALLEL_UPDATES = 0

VISITS = EntityDescription(key="visits", translation_key="visits")

# Answers to event requests are kept this long, at most this many ranges.
CACHE_TTL_S = 60.0
CACHE_SIZE = 8
# A range longer than this is cut to its most recent part (the calendar panel asks for at most
# about six weeks; a year of visits would be many requests for nobody to read).
MAX_RANGE = 4 * MAX_PERIOD
# Per request; a range with more visits shows the newest (the calendar says nothing more useful).
VISITS_PER_REQUEST = 1000
# The current visit is looked up over this recent window.
CURRENT_WINDOW = timedelta(hours=12)
REFRESH_COOLDOWN_S = 2.0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartReidConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One visits calendar per server."""
    async_add_entities([SmartReidVisitsCalendar(entry.runtime_data.coordinator)])


def visit_to_event(visit: dict[str, Any], now: datetime) -> CalendarEvent | None:
    """A visit as a calendar event; `None` for a record without its id or start."""
    visit_id = visit.get("visit_id")
    started = visit.get("started_at")
    if not isinstance(visit_id, str) or not isinstance(started, int | float):
        return None
    start = dt_util.as_local(dt_util.utc_from_timestamp(float(started)))
    ended = visit.get("ended_at")
    # A visit still going on lasts until now (at least a second, so it is shown).
    end = (
        dt_util.as_local(dt_util.utc_from_timestamp(float(ended)))
        if isinstance(ended, int | float)
        else now
    )
    end = max(end, start + timedelta(seconds=1))
    label = str(visit.get("label") or visit.get("person_id") or "?")
    known = bool(visit.get("known"))
    risk = visit.get("risk") if isinstance(visit.get("risk"), dict) else None
    level = risk.get("level") if risk else None
    level = level if level in RISK_LEVELS else None
    summary = label if known else f"{label} (stranger)"
    if level is not None and (not known or level != "low"):
        summary = f"{summary} \u2013 {level}"
    cameras = [str(c) for c in visit.get("cameras") or [] if isinstance(c, str)]
    lines = []
    if cameras:
        lines.append(f"Cameras: {' -> '.join(cameras)}")
    if risk and level is not None:
        lines.append(f"Risk: {level} (score {risk.get('score')})")
        reasons = [
            str(r.get("text"))
            for r in risk.get("reasons") or []
            if isinstance(r, dict) and r.get("text")
        ]
        if reasons:
            lines.append("Reasons: " + "; ".join(reasons))
        if isinstance(risk.get("summary"), str) and risk["summary"]:
            lines.append(risk["summary"])
    return CalendarEvent(
        start=start,
        end=end,
        summary=summary,
        description="\n".join(lines) or None,
        location=cameras[0] if cameras else None,
        uid=visit_id,
    )


class SmartReidVisitsCalendar(SmartReidHubEntity, CalendarEntity):
    """The server's visits; on while one is going on."""

    # Newer Home Assistant reads a colour from the description otherwise; the user picks one.
    _attr_initial_color: str | None = None

    def __init__(self, coordinator: SmartReidCoordinator) -> None:
        super().__init__(coordinator, VISITS)
        self._current: dict[str, Any] | None = None
        self._cache: OrderedDict[tuple[float, float], tuple[float, list[dict[str, Any]]]] = (
            OrderedDict()
        )
        self._refresher: Debouncer[Any] | None = None

    @property
    def event(self) -> CalendarEvent | None:
        """The visit going on now (the most recently started one), else none."""
        if self._current is None:
            return None
        return visit_to_event(self._current, dt_util.now() + timedelta(minutes=1))

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self._refresher = Debouncer(
            self.hass,
            LOGGER,
            cooldown=REFRESH_COOLDOWN_S,
            immediate=False,
            function=self._async_refresh_current,
            background=True,
        )
        self.async_on_remove(self._refresher.async_cancel)
        for event_type in (
            EVENT_NEW_PERSON,
            EVENT_VISIT_UPDATED,
            EVENT_VISIT_ENDED,
            EVENT_RISK_ASSESSED,
        ):
            self.async_on_remove(self.hass.bus.async_listen(event_type, self._visit_changed))
        # In the background: a server that does not answer must not hold up the set-up.
        self.coordinator.entry.async_create_background_task(
            self.hass, self._async_refresh_current(), f"{DOMAIN} current visit"
        )

    @callback
    def _visit_changed(self, event: Event) -> None:
        """A visit of this server started, changed or ended: forget cached answers and look
        up the current visit again (a few seconds later, once for a burst of changes)."""
        if event.data.get(ATTR_CONFIG_ENTRY_ID) != self.coordinator.entry.entry_id:
            return
        self._cache.clear()
        if self._refresher is not None:
            self._refresher.async_schedule_call()

    async def _async_refresh_current(self) -> None:
        now = dt_util.now()
        try:
            answer = await self.coordinator.api.visits(
                (now - CURRENT_WINDOW).timestamp(), now.timestamp(), limit=20
            )
        except SmartReidError as err:
            LOGGER.debug("Cannot look up the current visit: %s", err)
            return
        ongoing = [
            v
            for v in answer.get("visits") or []
            if isinstance(v, dict) and v.get("ended_at") is None
        ]
        self._current = max(ongoing, key=lambda v: v.get("started_at") or 0, default=None)
        self.async_write_ha_state()

    async def async_update(self) -> None:
        """Not polled; kept for `homeassistant.update_entity`."""
        await self._async_refresh_current()

    async def async_get_events(
        self, hass: HomeAssistant, start_date: datetime, end_date: datetime
    ) -> list[CalendarEvent]:
        """Visits overlapping the range, oldest first."""
        start = max(dt_util.as_utc(start_date), dt_util.as_utc(end_date) - MAX_RANGE)
        end = dt_util.as_utc(end_date)
        if end <= start:
            return []
        visits: dict[str, dict[str, Any]] = {}
        piece_start = start
        while piece_start < end:
            piece_end = min(piece_start + MAX_PERIOD, end)
            for visit in await self._async_visits(piece_start, piece_end):
                if isinstance(visit.get("visit_id"), str):
                    visits[visit["visit_id"]] = visit
            piece_start = piece_end
        now = dt_util.now()
        events = [e for v in visits.values() if (e := visit_to_event(v, now)) is not None]
        return sorted(events, key=lambda e: e.start_datetime_local)

    async def _async_visits(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        key = (start.timestamp(), end.timestamp())
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < CACHE_TTL_S:
            return cached[1]
        try:
            answer = await self.coordinator.api.visits(key[0], key[1], limit=VISITS_PER_REQUEST)
        except SmartReidError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="calendar_failed",
                translation_placeholders={
                    "name": self.coordinator.entry.title,
                    "error": str(err),
                },
            ) from err
        visits = [v for v in answer.get("visits") or [] if isinstance(v, dict)]
        self._cache[key] = (time.monotonic(), visits)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return visits
