"""The daily digest: set in the options, due at its time of day in Home Assistant's time zone.

Home Assistant's clock is conftest's `Clock` (freezegun would stall the real MQTT client): the
test moves it to the digest time and lets Home Assistant's own time tracking run the timer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.smart_reid.const import CONF_DIGEST_TIME, DOMAIN

from .conftest import Clock, FakeServer, visit_payload, wait_for

DIGEST = f"{DOMAIN}.daily_digest"


async def _set_digest_time(hass: HomeAssistant, entry: MockConfigEntry, at: str | None) -> None:
    """Through the options flow, as a user does (no forwarded cameras)."""
    flow = await hass.config_entries.options.async_init(entry.entry_id)
    user_input: dict[str, Any] = {"cameras": [], "stranger_hours": 24, "stranger_devices": 25}
    if at is not None:
        user_input[CONF_DIGEST_TIME] = at
    result = await hass.config_entries.options.async_configure(flow["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(dt_util.utcnow())
    monkeypatch.setattr(dt_util, "utcnow", clock)
    monkeypatch.setattr("homeassistant.helpers.event.time_tracker_utcnow", clock)
    return clock


async def test_the_digest_comes_at_its_time(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    clock: Clock,
) -> None:
    """At the chosen local time the event carries the last 24 hours' summary, once a day."""
    await hass.config.async_set_time_zone("Europe/Berlin")
    due = (dt_util.now() + timedelta(minutes=2)).replace(microsecond=0)
    server.visits = [
        visit_payload("000000000001", (due - timedelta(hours=3)).timestamp(), level="high"),
        visit_payload("000000000002", (due - timedelta(hours=30)).timestamp()),  # the day before
    ]
    await _set_digest_time(hass, loaded_entry, due.strftime("%H:%M:%S"))
    assert loaded_entry.options[CONF_DIGEST_TIME] == due.strftime("%H:%M:%S")
    digests = async_capture_events(hass, DIGEST)

    clock.now = dt_util.as_utc(due) - timedelta(seconds=5)
    async_fire_time_changed(hass, clock.now)
    await hass.async_block_till_done()
    assert digests == []

    clock.now = dt_util.as_utc(due)
    async_fire_time_changed(hass, clock.now)
    await wait_for(hass, lambda: len(digests) == 1, "the daily digest")
    data = digests[0].data
    assert data["config_entry_id"] == loaded_entry.entry_id
    assert data["source"] == "rules"
    assert data["highest_level"] == "high"
    assert [h["visit_id"] for h in data["highlights"]] == ["000000000001"]
    assert data["highlights"][0]["snapshot_url"].startswith("/api/smart_reid/")
    assert datetime.fromisoformat(data["end"]) == due
    assert datetime.fromisoformat(data["start"]) == due - timedelta(hours=24)
    path = next(p for _, p in reversed(server.requests) if p.startswith("/api/summary"))
    query = parse_qs(urlsplit(path).query)
    assert float(query["end"][0]) - float(query["start"][0]) == pytest.approx(86400)

    # Not again until the same time tomorrow.
    clock.now += timedelta(hours=12)
    async_fire_time_changed(hass, clock.now)
    await hass.async_block_till_done()
    assert len(digests) == 1


async def test_an_offline_server_still_gets_a_digest_that_says_so(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    clock: Clock,
) -> None:
    """No answer from the server must not read like a quiet day: the digest says the server
    was offline, in Home Assistant's language."""
    hass.config.language = "de"
    due = (dt_util.now() + timedelta(minutes=2)).replace(microsecond=0)
    await _set_digest_time(hass, loaded_entry, due.strftime("%H:%M:%S"))
    digests = async_capture_events(hass, DIGEST)
    await server.stop()
    clock.now = dt_util.as_utc(due)
    async_fire_time_changed(hass, clock.now)
    await wait_for(hass, lambda: len(digests) == 1, "the daily digest")
    data = digests[0].data
    assert data["source"] == "offline"
    assert data["title"] == "Smart ReID: keine Tageszusammenfassung"
    assert "Smart ReID war für die Tageszusammenfassung nicht erreichbar" in data["summary"]
    assert data["highest_level"] is None and data["highlights"] == []


async def test_no_digest_unless_chosen(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    clock: Clock,
) -> None:
    """Off by default, and off again when the time is cleared in the options."""
    due = (dt_util.now() + timedelta(minutes=2)).replace(microsecond=0)
    await _set_digest_time(hass, loaded_entry, due.strftime("%H:%M:%S"))
    await _set_digest_time(hass, loaded_entry, None)
    assert CONF_DIGEST_TIME not in loaded_entry.options
    digests = async_capture_events(hass, DIGEST)
    clock.now = dt_util.as_utc(due)
    async_fire_time_changed(hass, clock.now)
    await hass.async_block_till_done()
    assert digests == []


async def test_a_bad_stored_time_is_reported(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An option edited by hand into something that is no time: a warning that says what
    to do, and the integration runs on without a digest."""
    hass.config_entries.async_update_entry(loaded_entry, options={CONF_DIGEST_TIME: "25:99"})
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert "Ignoring the daily digest time '25:99'" in caplog.text
