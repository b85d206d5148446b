"""A week of a busy street-facing camera: how many devices and entities does a user end up with?

Every message is what the server publishes (docs/contract.md), sent through this test's real
broker: 300 different strangers a day pass between 07:00 and 21:00 (a retained person state
without a thumbnail when they are first seen, `new_person`, the state with a thumbnail, the
state when they leave and `visit_ended`), a few of them come back the next day, and three
household members come and go four times a day. Home Assistant's clock moves on an hour at a
time (conftest's `Clock`) and the periodic checks run as they would. The figures
are printed (run with `-s`) and are the ones in docs/integration.md. Before strangers' devices
expired (every identity a device for as long as the server kept it), the same week ended with
2,064 devices and 12,389 entities; with the 24-hour expiry alone (no cap on their number) with
315 devices and up to 336.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.smart_reid.const import (
    CONF_STRANGER_DEVICES,
    CONF_STRANGER_HOURS,
    DEFAULT_STRANGER_DEVICES,
    DEFAULT_STRANGER_HOURS,
)

from .conftest import (
    BASE,
    Clock,
    FakeServer,
    decision_payload,
    entry_for,
    person_payload,
    publish,
    visit_event_payload,
    wait_for,
)

DAYS = 7
STRANGERS_PER_DAY = 300
RETURNING_PER_DAY = 15
HOUSEHOLD = {"c0ffee00000a": "Alice", "c0ffee00000b": "Bob", "c0ffee00000c": "Carol"}


@dataclass
class Tally:
    devices: int = 0
    entities: int = 0
    peak_devices: int = 0
    peak_entities: int = 0
    strangers_seen: set[str] = field(default_factory=set)


def _count(hass: HomeAssistant, entry: MockConfigEntry, tally: Tally) -> None:
    tally.devices = len(dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id))
    tally.entities = len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id))
    tally.peak_devices = max(tally.peak_devices, tally.devices)
    tally.peak_entities = max(tally.peak_entities, tally.entities)


async def _visit(
    hass: HomeAssistant, number: int, person_id: str, label: str, known: bool, at: float
) -> None:
    """One person's visit to the street camera, as the server reports it."""
    visit_id = f"{number:012x}"
    state_topic = f"{BASE}/person/{person_id}/state"
    person: dict[str, Any] = {
        "label": label,
        "known": known,
        "first_seen": at,
        "last_seen": at,
        "visit_count": 1,
        "cameras": ["front"],
        "present": True,
        "camera": "front",
        "visit_id": visit_id,
        "exemplars": 1,
    }
    await publish(
        hass, state_topic, person_payload(person_id, **person, thumbnail_url=None), retain=True
    )
    await publish(
        hass,
        f"{BASE}/events/new_person",
        decision_payload(
            person_id=person_id,
            label=label,
            known=known,
            visit_id=visit_id,
            timestamp=at,
            is_new_identity=not known,
            thumbnail_url=None,
        ),
    )
    person.update(exemplars=3, last_seen=at + 20)
    await publish(hass, state_topic, person_payload(person_id, **person), retain=True)
    person.update(present=False, camera=None, visit_id=None, last_seen=at + 40)
    await publish(hass, state_topic, person_payload(person_id, **person), retain=True)
    await publish(
        hass,
        f"{BASE}/events/visit_ended",
        visit_event_payload(
            "ended",
            visit_id=visit_id,
            person_id=person_id,
            label=label,
            known=known,
            started_at=at,
            last_seen=at + 40,
            ended_at=at + 100,
            cameras=["front"],
            last_camera="front",
        ),
    )


async def _processed(
    hass: HomeAssistant, entry: MockConfigEntry, person_id: str, seen: float, what: str
) -> None:
    """Messages arrive in order: once the last state sent is in, all before it are too."""
    coordinator = entry.runtime_data.coordinator

    def arrived() -> bool:
        person = coordinator.persons.get(person_id)
        return person is not None and bool(person.last_seen == seen)

    await wait_for(hass, arrived, f"{what} to be processed", within=60)


async def _simulate_week(hass: HomeAssistant, entry: MockConfigEntry, clock: Clock) -> Tally:
    tally = Tally()
    number = 0
    last_topic_payload: tuple[str, float] | None = None
    for day in range(DAYS):
        day_strangers: list[str] = []
        for hour in range(24):
            clock.tick(timedelta(hours=1))
            async_fire_time_changed(hass, dt_util.utcnow())
            now = dt_util.utcnow().timestamp()
            visitors: list[tuple[str, str, bool]] = []
            if 7 <= hour < 21:
                per_hour = STRANGERS_PER_DAY // 14
                for _ in range(per_hour):
                    number += 1
                    person_id = f"5{number:011x}"
                    day_strangers.append(person_id)
                    visitors.append((person_id, f"Visitor {number}", False))
                if hour == 8 and day > 0:
                    # Some of yesterday's passers-by come back.
                    for person_id in sorted(tally.strangers_seen)[:RETURNING_PER_DAY]:
                        visitors.append((person_id, f"Visitor {int(person_id, 16) % 10**6}", False))
            if hour in (7, 12, 17, 20):
                visitors.extend((pid, name, True) for pid, name in HOUSEHOLD.items())
            for i, (person_id, label, known) in enumerate(visitors):
                number += 1
                at = now + i * 2
                await _visit(hass, number, person_id, label, known, at)
                last_topic_payload = (person_id, at + 40)
            if last_topic_payload is not None:
                await _processed(hass, entry, *last_topic_payload, f"day {day} hour {hour}")
            await hass.async_block_till_done()
            _count(hass, entry, tally)
        tally.strangers_seen.update(day_strangers)
    return tally


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stranger_hours", "stranger_devices"),
    [(DEFAULT_STRANGER_HOURS, DEFAULT_STRANGER_DEVICES), (0, DEFAULT_STRANGER_DEVICES)],
    ids=["defaults", "no-strangers"],
)
async def test_a_week_of_a_busy_street_camera(
    hass: HomeAssistant,
    mqtt_entry: MockConfigEntry,
    server: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    stranger_hours: int,
    stranger_devices: int,
) -> None:
    """Household members keep their devices, strangers do not pile up: at most
    `stranger_devices` of them at any time, the most recently seen."""
    clock = Clock(dt_util.utcnow())
    monkeypatch.setattr(dt_util, "utcnow", clock)
    await server.publish_basics()
    entry = entry_for(server)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry,
        options={CONF_STRANGER_HOURS: stranger_hours, CONF_STRANGER_DEVICES: stranger_devices},
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED

    tally = await _simulate_week(hass, entry, clock)

    strangers = len(tally.strangers_seen)
    print(
        f"\nstranger_hours={stranger_hours} stranger_devices={stranger_devices}: "
        f"{strangers} strangers in {DAYS} days; "
        f"end: {tally.devices} devices, {tally.entities} entities; "
        f"peak: {tally.peak_devices} devices, {tally.peak_entities} entities"
    )
    assert strangers == DAYS * (STRANGERS_PER_DAY // 14) * 14
    coordinator = entry.runtime_data.coordinator
    for person_id, name in HOUSEHOLD.items():
        device = coordinator.device(coordinator.person_identifier(person_id))
        assert device is not None and device.name == name
    # The server, two cameras and the household, plus at most `stranger_devices` strangers
    # (none with retention 0).
    fixed = 1 + 2 + len(HOUSEHOLD)
    if stranger_hours == 0:
        assert tally.peak_devices == tally.devices == fixed
    else:
        # The last day's 294 strangers are all within the retention: the cap is what limits.
        assert tally.devices == fixed + stranger_devices
        assert tally.peak_devices == fixed + stranger_devices
        # And the strangers who keep devices are the ones seen last.
        strangers_by_sighting = sorted(
            (p for p in coordinator.persons.values() if p.is_stranger),
            key=lambda p: p.last_seen or 0.0,
        )
        with_devices = [
            p.person_id
            for p in strangers_by_sighting
            if coordinator.device(coordinator.person_identifier(p.person_id)) is not None
        ]
        assert with_devices == [p.person_id for p in strangers_by_sighting[-stranger_devices:]]
    assert tally.peak_entities <= 60 + 6 * (tally.peak_devices - fixed + len(HOUSEHOLD))
