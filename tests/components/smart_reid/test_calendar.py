"""The visits calendar, read through Home Assistant's own calendar HTTP API and its state.

Visits come from conftest's FakeServer (`GET /api/visits` as docs/contract.md agrees); visit
changes arrive as real MQTT messages through the integration.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.smart_reid.calendar import visit_to_event

from .conftest import (
    BASE,
    PERSON_B,
    FakeServer,
    publish,
    state,
    visit_event_payload,
    visit_payload,
    wait_for,
)

CALENDAR = "calendar.smart_reid_visits"


def _visit_requests(server: FakeServer) -> list[tuple[float, float]]:
    periods = []
    for _, path in server.requests:
        if path.startswith("/api/visits?"):
            query = parse_qs(urlsplit(path).query)
            periods.append((float(query["start"][0]), float(query["end"][0])))
    return periods


async def _events(client: Any, start: datetime, end: datetime, status: int = HTTPStatus.OK) -> Any:
    response = await client.get(
        f"/api/calendars/{CALENDAR}",
        params={"start": start.isoformat(), "end": end.isoformat()},
    )
    assert response.status == status, await response.text()
    return await response.json()


async def test_visits_are_events(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """Who, when, where and how worrying, as the calendar panel shows it; an ongoing visit
    lasts until now and turns the calendar on."""
    now = dt_util.now()
    alice = visit_payload(
        "00000000000a",
        (now - timedelta(hours=5)).timestamp(),
        600,
        person_id=PERSON_B,
        label="Alice",
        known=True,
        cameras=["driveway", "front"],
    )
    stranger = visit_payload(
        "00000000000b", (now - timedelta(hours=2)).timestamp(), 120, level="high"
    )
    ongoing = visit_payload(
        "00000000000c", (now - timedelta(minutes=3)).timestamp(), None, level="medium"
    )
    server.visits = [alice, stranger, ongoing]
    client = await hass_client()
    events = await _events(client, now - timedelta(days=1), now + timedelta(hours=1))

    assert [e["uid"] for e in events] == ["00000000000a", "00000000000b", "00000000000c"]
    assert [e["summary"] for e in events] == [
        "Alice",
        "Visitor 3 (stranger) \u2013 high",
        "Visitor 3 (stranger) \u2013 medium",
    ]
    assert events[0]["location"] == "driveway"
    assert events[0]["description"].startswith("Cameras: driveway -> front")
    description = events[1]["description"]
    assert "Cameras: front -> back" in description
    assert "Risk: high (score 70)" in description
    assert "Reasons: unknown person; reached back (sensitivity 0.8); 02:47 at night" in description
    start = datetime.fromisoformat(events[1]["start"]["dateTime"])
    end = datetime.fromisoformat(events[1]["end"]["dateTime"])
    assert end - start == timedelta(seconds=120)
    ongoing_end = datetime.fromisoformat(events[2]["end"]["dateTime"])
    assert abs((ongoing_end - dt_util.now()).total_seconds()) < 10

    assert await async_setup_component(hass, "homeassistant", {})
    await hass.services.async_call(
        "homeassistant", "update_entity", {"entity_id": CALENDAR}, blocking=True
    )
    calendar = state(hass, CALENDAR)
    assert calendar.state == "on"
    assert calendar.attributes["message"] == "Visitor 3 (stranger) \u2013 medium"
    assert calendar.attributes["location"] == "front"


async def test_the_calendar_follows_visits(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
) -> None:
    """A visit starts and ends over MQTT: the calendar turns on and off by itself."""
    assert state(hass, CALENDAR).state == "off"
    now = dt_util.now()
    visit = visit_payload("0d0d0d0d0d0d", now.timestamp() - 5, None, level="low")
    server.visits = [visit]
    await publish(
        hass,
        f"{BASE}/events/visit_updated",
        visit_event_payload("camera_added", visit_id="0d0d0d0d0d0d", ended_at=None),
    )
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=3))
    await wait_for(hass, lambda: state(hass, CALENDAR).state == "on", "the calendar to turn on")

    visit["ended_at"] = now.timestamp()
    await publish(
        hass,
        f"{BASE}/events/visit_ended",
        visit_event_payload("ended", visit_id="0d0d0d0d0d0d", ended_at=now.timestamp()),
    )
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=3))
    await wait_for(hass, lambda: state(hass, CALENDAR).state == "off", "the calendar to turn off")


async def test_long_ranges_cache_and_errors(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """The month view's six weeks are asked for in pieces the server accepts (at most 31
    days); the same range again comes from the cache until a visit changes; an unreachable
    server is an error message, not an empty calendar."""
    now = dt_util.now()
    server.visits = [
        visit_payload("000000000001", (now - timedelta(days=40)).timestamp()),
        visit_payload("000000000002", (now - timedelta(days=2)).timestamp()),
    ]
    client = await hass_client()
    start, end = now - timedelta(days=42), now
    before = len(_visit_requests(server))
    events = await _events(client, start, end)
    assert [e["uid"] for e in events] == ["000000000001", "000000000002"]
    pieces = _visit_requests(server)[before:]
    assert len(pieces) == 2
    assert all(0 < b - a <= 31 * 86400 for a, b in pieces)
    assert pieces[0][0] == pytest.approx(start.timestamp(), abs=0.01)
    assert pieces[-1][1] == pytest.approx(end.timestamp(), abs=0.01)

    await _events(client, start, end)
    assert len(_visit_requests(server)) == before + 2

    changes = async_capture_events(hass, "smart_reid.visit_updated")
    await publish(hass, f"{BASE}/events/visit_updated", visit_event_payload("better_snapshot"))
    await wait_for(hass, lambda: len(changes) == 1, "the visit change to arrive")
    count = len(_visit_requests(server))
    await _events(client, start, end)
    assert len(_visit_requests(server)) == count + 2

    await server.stop()
    answer = await _events(
        client, now - timedelta(days=3), now, status=HTTPStatus.INTERNAL_SERVER_ERROR
    )
    assert "Cannot read the visits from the Smart ReID server Smart ReID" in answer["message"]


def test_odd_visit_records() -> None:
    """A record without id or start is left out; a household member's low level is not
    mentioned; the LLM's narrative joins the description."""
    now = dt_util.now()
    assert visit_to_event({"visit_id": "000000000001"}, now) is None
    assert visit_to_event({"started_at": 1763740000.0}, now) is None
    alice = visit_payload("000000000002", 1763740000.0, label="Alice", known=True)
    event = visit_to_event(alice, now)
    assert event is not None and event.summary == "Alice"
    stranger = visit_payload("000000000003", 1763740000.0, 0.0, level="critical")
    stranger["risk"]["summary"] = "Someone tried the back door."
    stranger["risk"]["level"] = "unheard-of"
    event = visit_to_event(stranger, now)
    assert event is not None
    assert event.summary == "Visitor 3 (stranger)"
    assert event.end - event.start == timedelta(seconds=1)
    stranger["risk"]["level"] = "critical"
    event = visit_to_event(stranger, now)
    assert event is not None and event.description is not None
    assert event.description.endswith("Someone tried the back door.")
