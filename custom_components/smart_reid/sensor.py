"""Sensors: who is here now, counts for today, where each identity was last seen.

A busy camera reports many sightings a second, and every change of a state or an attribute is a
row in Home Assistant's database. So these sensors change when something a person would notice
changes: someone arrives or leaves, a visit starts, a count moves. The camera's last person is
the last one to arrive (not whoever happened to be sighted last in a crowd), a person's location
stays on a camera while that camera still sees them, and "last seen" times move forward in
steps of a minute while people stay in view. See docs/integration.md, "History and database".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .const import LAST_SEEN_STEP_S, LOCATION_AWAY, RISK_NONE
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator, risk_key
from .entity import (
    SmartReidCameraEntity,
    SmartReidEntity,
    SmartReidHubEntity,
    SmartReidPersonEntity,
    async_setup_dynamic_entities,
)
from .models import RISK_LEVELS, CameraState, Person

# Values come from MQTT pushes held in memory; nothing to throttle.
PARALLEL_UPDATES = 0


def _timestamp(value: float | None) -> datetime | None:
    return dt_util.utc_from_timestamp(value) if value is not None else None


def _step_due(shown: float | None, new: float | None) -> bool:
    """A "last seen" time moves when it is new, goes back, or is a whole step further on."""
    if shown is None or new is None:
        return shown != new
    return new < shown or new - shown >= LAST_SEEN_STEP_S


@dataclass(frozen=True, kw_only=True)
class DailySensorDescription(SensorEntityDescription):
    """`daily`: a count for today that the server starts again at local midnight."""

    daily: bool = False


@dataclass(frozen=True, kw_only=True)
class HubSensorDescription(DailySensorDescription):
    """A sensor of the server, read from the whole coordinator (hub state and info)."""

    value_fn: Callable[[SmartReidCoordinator], StateType]


@dataclass(frozen=True, kw_only=True)
class CameraSensorDescription(DailySensorDescription):
    """A sensor of one camera, read from its retained camera state."""

    value_fn: Callable[[CameraState], StateType | datetime]


@dataclass(frozen=True, kw_only=True)
class PersonSensorDescription(SensorEntityDescription):
    """A sensor of one identity, read from its retained person state."""

    value_fn: Callable[[Person], StateType | datetime]


HUB_SENSORS: tuple[HubSensorDescription, ...] = (
    HubSensorDescription(
        key="people_present",
        translation_key="people_present",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda c: c.hub.people_present if c.hub else None,
    ),
    HubSensorDescription(
        key="distinct_people_today",
        translation_key="distinct_people_today",
        state_class=SensorStateClass.TOTAL,
        daily=True,
        value_fn=lambda c: c.hub.distinct_people_today if c.hub else None,
    ),
    HubSensorDescription(
        key="visits_today",
        translation_key="visits_today",
        state_class=SensorStateClass.TOTAL,
        daily=True,
        value_fn=lambda c: c.hub.visits_today if c.hub else None,
    ),
    HubSensorDescription(
        key="frames_processed",
        translation_key="frames_processed",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda c: c.hub.frames_processed if c.hub else None,
    ),
    HubSensorDescription(
        key="frames_dropped",
        translation_key="frames_dropped",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda c: c.hub.frames_dropped if c.hub else None,
    ),
    HubSensorDescription(
        key="detector_model",
        translation_key="detector_model",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda c: c.info.detector.name if c.info and c.info.detector else None,
    ),
    HubSensorDescription(
        key="reid_model",
        translation_key="reid_model",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda c: c.info.reid.name if c.info and c.info.reid else None,
    ),
    HubSensorDescription(
        key="runtime",
        translation_key="runtime",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda c: (
            f"{c.info.reid.runtime} ({c.info.reid.device})"
            if c.info and c.info.reid and c.info.reid.runtime
            else None
        ),
    ),
)

CAMERA_SENSORS: tuple[CameraSensorDescription, ...] = (
    CameraSensorDescription(
        key="people_present",
        translation_key="people_present",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.people_present,
    ),
    CameraSensorDescription(
        key="last_person",
        translation_key="last_person",
        value_fn=lambda s: s.last_label,
    ),
    CameraSensorDescription(
        key="last_seen",
        translation_key="last_seen",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda s: _timestamp(s.last_seen),
    ),
    CameraSensorDescription(
        key="distinct_people_today",
        translation_key="distinct_people_today",
        state_class=SensorStateClass.TOTAL,
        daily=True,
        value_fn=lambda s: s.distinct_people_today,
    ),
    CameraSensorDescription(
        key="sightings_today",
        translation_key="sightings_today",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.TOTAL,
        daily=True,
        value_fn=lambda s: s.sightings_today,
    ),
)

PERSON_SENSORS: tuple[PersonSensorDescription, ...] = (
    PersonSensorDescription(
        key="location",
        translation_key="location",
        device_class=SensorDeviceClass.ENUM,
        value_fn=lambda p: p.camera if p.present and p.camera else LOCATION_AWAY,
    ),
    PersonSensorDescription(
        key="last_seen",
        translation_key="last_seen",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda p: _timestamp(p.last_seen),
    ),
    PersonSensorDescription(
        key="visit_count",
        translation_key="visit_count",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda p: p.visit_count,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartReidConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the hub's sensors, and each camera's and identity's as they appear."""
    coordinator = entry.runtime_data.coordinator
    async_setup_dynamic_entities(
        entry,
        async_add_entities,
        hub=lambda: (
            *(HubSensor(coordinator, d) for d in HUB_SENSORS),
            RiskLevelSensor(coordinator, None),
        ),
        camera=lambda camera: (
            *(CameraSensor(coordinator, d, camera) for d in CAMERA_SENSORS),
            RiskLevelSensor(coordinator, camera),
        ),
        person=lambda pid: (PersonSensor(coordinator, d, pid) for d in PERSON_SENSORS),
    )


class DailyReset(SensorEntity):
    """`total` counters for today: a new cycle starts when the count falls on a new day.

    The server restarts its daily counts at local midnight; Home Assistant's long-term
    statistics need to know that a fall to a small number is that restart and not people
    leaving (`total_increasing` would take forgetting someone, which lowers "distinct people
    today", for a new day, and warn). A fall on the same day (forgotten people) stays a fall.
    """

    entity_description: DailySensorDescription
    _previous_count: int | None = None
    _cycle_start: datetime | None = None

    @callback
    def _track_reset(self, value: StateType | datetime) -> None:
        if not self.entity_description.daily or not isinstance(value, int):
            return
        today = dt_util.start_of_local_day()
        if self._cycle_start is None or (
            self._previous_count is not None
            and value < self._previous_count
            and today > self._cycle_start
        ):
            self._cycle_start = self._attr_last_reset = today
        self._previous_count = value


class HubSensor(SmartReidHubEntity, DailyReset):
    """A count or model name of the server."""

    entity_description: HubSensorDescription

    @callback
    def _follow(self) -> None:
        self._track_reset(self.native_value)

    @property
    def native_value(self) -> StateType:
        return self.entity_description.value_fn(self.coordinator)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        hub = self.coordinator.hub
        if self.entity_description.key != "people_present" or hub is None:
            return None
        # Sorted: the server lists people in no particular order, and a new order alone must
        # not be a new row in the history.
        present = sorted(hub.person_ids_present)
        persons = self.coordinator.persons
        return {
            "person_ids": present,
            "people": [persons[pid].label if pid in persons else pid for pid in present],
        }


class CameraSensor(SmartReidCameraEntity, DailyReset):
    """What one camera sees.

    It keeps what it shows between updates: the last person to arrive and a "last seen" time
    that moves in steps, both decided by comparing each camera state with the one before.
    """

    entity_description: CameraSensorDescription

    def __init__(
        self, coordinator: SmartReidCoordinator, description: CameraSensorDescription, camera: str
    ) -> None:
        super().__init__(coordinator, description, camera)
        self._present_before: frozenset[str] = frozenset()
        self._last_id: str | None = None
        self._last_label: str | None = None
        self._seen: float | None = None

    @callback
    def _follow(self) -> None:
        if (state := self.camera_state) is None:
            return
        arrived = set(state.person_ids_present) - self._present_before
        persons = self.coordinator.persons
        last = state.last_person_id
        if last is None or last not in self._present_before:
            # Someone new in view (or the server forgot everyone): they are the last person.
            self._last_id, self._last_label = last, state.last_label
        elif named := [p for p in state.person_ids_present if p in arrived and p in persons]:
            # The crowd's last sighting was someone already here, but someone did arrive.
            self._last_id, self._last_label = named[-1], persons[named[-1]].label
        elif last == self._last_id:
            # The same person again: keep the name current after a rename.
            self._last_label = state.last_label
        if arrived or state.people_present == 0 or _step_due(self._seen, state.last_seen):
            self._seen = state.last_seen
        self._present_before = frozenset(state.person_ids_present)
        self._track_reset(self.entity_description.value_fn(state))

    @property
    def native_value(self) -> StateType | datetime:
        if (state := self.camera_state) is None:
            return None
        key = self.entity_description.key
        if key == "last_person":
            # The server's name for its last sighting is current; an earlier arrival's name
            # comes from the identity's own state, which follows a rename.
            if self._last_id != state.last_person_id and (
                person := self.coordinator.persons.get(str(self._last_id))
            ):
                return person.label
            return self._last_label
        if key == "last_seen":
            return _timestamp(self._seen)
        return self.entity_description.value_fn(state)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        state = self.camera_state
        if state is None:
            return None
        if self.entity_description.key == "last_person":
            return {"person_id": self._last_id}
        if self.entity_description.key == "people_present":
            return {"person_ids": sorted(state.person_ids_present)}
        return None


class PersonSensor(SmartReidPersonEntity, SensorEntity):
    """Where and when an identity was seen.

    Location stays on a camera while that camera still sees the person, so someone in view of
    two cameras at once does not flip between them with every sighting; "last seen" moves in
    steps while they stay, and exactly when their visit starts or ends.
    """

    entity_description: PersonSensorDescription

    def __init__(
        self, coordinator: SmartReidCoordinator, description: PersonSensorDescription, pid: str
    ) -> None:
        super().__init__(coordinator, description, pid)
        self._location: str | None = None
        self._seen: float | None = None
        self._visit: tuple[str | None, bool] | None = None

    @callback
    def _follow(self) -> None:
        if (person := self.person) is None:
            return
        where = person.camera if person.present and person.camera else LOCATION_AWAY
        if not self._still_seen_at(person):
            self._location = where
        visit = (person.visit_id, person.present)
        if visit != self._visit or _step_due(self._seen, person.last_seen):
            self._seen = person.last_seen
        self._visit = visit

    def _still_seen_at(self, person: Person) -> bool:
        """Keep showing a camera while its presence list still has this person."""
        shown = self._location
        if shown in (None, LOCATION_AWAY, person.camera) or not person.present:
            return False
        state = self.coordinator.cameras.get(str(shown))
        return state is not None and self.person_id in state.person_ids_present

    @property
    def native_value(self) -> StateType | datetime:
        if (person := self.person) is None:
            return None
        key = self.entity_description.key
        if key == "location":
            return self._location
        if key == "last_seen":
            return _timestamp(self._seen)
        return self.entity_description.value_fn(person)

    @property
    def options(self) -> list[str] | None:
        if self.entity_description.device_class is not SensorDeviceClass.ENUM:
            return None
        cameras = list(self.coordinator.cameras)
        if self._location and self._location not in (*cameras, LOCATION_AWAY):
            cameras.append(self._location)
        return [*cameras, LOCATION_AWAY]

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        if self.entity_description.key != "location" or (person := self.person) is None:
            return None
        return {
            "person_id": person.person_id,
            "known": person.known,
            "visit_id": person.visit_id,
            "cameras": list(person.cameras),
        }


RISK_LEVEL = SensorEntityDescription(
    key="risk_level",
    translation_key="risk_level",
    device_class=SensorDeviceClass.ENUM,
    options=[RISK_NONE, *RISK_LEVELS],
)


class RiskLevelSensor(SmartReidEntity, SensorEntity):
    """How worrying the visits going on now are, on one camera or in the whole home.

    The state is the level of the most worrying visit still going on (its latest assessment),
    `none` when no visit is; when that visit ends the level falls back to the next one's.
    """

    # The explanation changes with every interim assessment; the level is what history shows.
    _unrecorded_attributes = frozenset({"score", "reasons", "visit_id", "person_id", "label"})

    def __init__(self, coordinator: SmartReidCoordinator, camera: str | None) -> None:
        super().__init__(
            coordinator,
            RISK_LEVEL,
            listen_key=risk_key(camera),
            unique_suffix=f"camera_{camera}" if camera else "hub",
            identifier=coordinator.camera_identifier(camera)
            if camera
            else coordinator.hub_identifier(),
        )
        self.camera = camera

    @property
    def native_value(self) -> str:
        risk = self.coordinator.current_risk(self.camera)
        return risk.level if risk is not None else RISK_NONE

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        if (risk := self.coordinator.current_risk(self.camera)) is None:
            return None
        return {
            "score": risk.score,
            "reasons": [reason.as_dict() for reason in risk.reasons],
            "visit_id": risk.visit_id,
            "person_id": risk.person_id,
            "label": risk.label,
        }
