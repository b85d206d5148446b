"""The daily digest: at a time the user chose, a summary of the last 24 hours as a bus event.

`smart_reid.daily_digest` carries what the `smart_reid.summarize` action answers (title,
summary, source, highest level, counts, highlights), for an automation or the digest blueprint
to send. If the server cannot be reached the event still fires, with `source: offline` and a
title and summary that say so in the user's language: a household that gets no digest, or an
empty one, would take it for a quiet day, which may not be true.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import translation
from homeassistant.helpers.event import async_track_time_change
from homeassistant.util import dt as dt_util

from .api import SmartReidError
from .const import (
    ATTR_CONFIG_ENTRY_ID,
    CONF_DIGEST_TIME,
    DOMAIN,
    EVENT_DAILY_DIGEST,
    LOGGER,
)
from .coordinator import SmartReidConfigEntry
from .summary import async_summarize

DIGEST_PERIOD = timedelta(hours=24)
SOURCE_OFFLINE = "offline"


@callback
def async_setup_digest(hass: HomeAssistant, entry: SmartReidConfigEntry) -> None:
    """Schedule the entry's daily digest, if it has one; it stops with the entry."""
    value = entry.options.get(CONF_DIGEST_TIME)
    if not value:
        return
    at = dt_util.parse_time(str(value))
    if at is None:
        LOGGER.warning(
            "Ignoring the daily digest time %r of %s: not a time of day (HH:MM:SS); "
            "set it again in the integration's options",
            value,
            entry.title,
        )
        return

    @callback
    def _due(now: datetime) -> None:
        entry.async_create_background_task(
            hass, async_send_digest(hass, entry, now), f"{DOMAIN} daily digest"
        )

    entry.async_on_unload(
        async_track_time_change(hass, _due, hour=at.hour, minute=at.minute, second=at.second)
    )


async def async_send_digest(
    hass: HomeAssistant, entry: SmartReidConfigEntry, now: datetime
) -> dict[str, Any]:
    """Fire `smart_reid.daily_digest` for the 24 hours up to `now`; returns its data."""
    # Time tracking calls half a second past the chosen second.
    end = dt_util.as_utc(now).replace(microsecond=0)
    start = end - DIGEST_PERIOD
    try:
        result = await async_summarize(hass, entry, start, end)
    except SmartReidError as err:
        LOGGER.info("Daily digest of %s: the server could not be asked (%s)", entry.title, err)
        title, summary = await _offline_texts(hass, entry.title, str(err))
        result = {
            "start": dt_util.as_local(start).isoformat(),
            "end": dt_util.as_local(end).isoformat(),
            "title": title,
            "summary": summary,
            "source": SOURCE_OFFLINE,
            "highest_level": None,
            "counts": {},
            "highlights": [],
            "error": str(err),
        }
    data = {ATTR_CONFIG_ENTRY_ID: entry.entry_id, **result}
    hass.bus.async_fire(EVENT_DAILY_DIGEST, data)
    return data


async def _offline_texts(hass: HomeAssistant, name: str, error: str) -> tuple[str, str]:
    """Title and summary of a digest without the server, in Home Assistant's language."""
    texts = await translation.async_get_translations(
        hass, hass.config.language, "exceptions", {DOMAIN}
    )
    prefix = f"component.{DOMAIN}.exceptions."
    title = texts.get(f"{prefix}digest_offline_title.message", "Smart ReID: no daily digest")
    summary = texts.get(
        f"{prefix}digest_offline.message",
        "The Smart ReID server {name} could not be reached for the daily digest ({error}).",
    )
    return title, summary.replace("{name}", name).replace("{error}", error)
