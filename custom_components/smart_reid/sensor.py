"""Sensors: who is here now, counts for today, where each identity was last seen."""

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
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .const import LOCATION_AWAY
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator
from .entity import (
    SmartReidCameraEntity,
    SmartReidHubEntity,
    SmartReidPersonEntity,
    async_setup_dynamic_entities,
)
from .models import CameraState, Person

# Values come from MQTT pushes held in memory; nothing to throttle.
PARALLEL_UPDATES = 0


def _timestamp(value: float | None) -> datetime | None:
    return dt_util.utc_from_timestamp(value) if value is not None else None


@dataclass(frozen=True, kw_only=True)
class HubSensorDescription(SensorEntityDescription):
    """A sensor of the server, read from the whole coordinator (hub state and info)."""

    value_fn: Callable[[SmartReidCoordinator], StateType]


@dataclass(frozen=True, kw_only=True)
class CameraSensorDescription(SensorEntityDescription):
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
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda c: c.hub.distinct_people_today if c.hub else None,
    ),
    HubSensorDescription(
        key="visits_today",
        translation_key="visits_today",
        state_class=SensorStateClass.MEASUREMENT,
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
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.distinct_people_today,
    ),
    CameraSensorDescription(
        key="sightings_today",
        translation_key="sightings_today",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.MEASUREMENT,
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
        hub=lambda: (HubSensor(coordinator, d) for d in HUB_SENSORS),
        camera=lambda camera: (CameraSensor(coordinator, d, camera) for d in CAMERA_SENSORS),
        person=lambda pid: (PersonSensor(coordinator, d, pid) for d in PERSON_SENSORS),
    )


class HubSensor(SmartReidHubEntity, SensorEntity):
    """A count or model name of the server."""

    entity_description: HubSensorDescription

    @property
    def native_value(self) -> StateType:
        return self.entity_description.value_fn(self.coordinator)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        hub = self.coordinator.hub
        if self.entity_description.key != "people_present" or hub is None:
            return None
        persons = self.coordinator.persons
        return {
            "person_ids": list(hub.person_ids_present),
            "people": [
                persons[pid].label if pid in persons else pid for pid in hub.person_ids_present
            ],
        }


class CameraSensor(SmartReidCameraEntity, SensorEntity):
    """What one camera sees."""

    entity_description: CameraSensorDescription

    @property
    def native_value(self) -> StateType | datetime:
        if (state := self.camera_state) is None:
            return None
        return self.entity_description.value_fn(state)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        state = self.camera_state
        if state is None:
            return None
        if self.entity_description.key == "last_person":
            return {"person_id": state.last_person_id}
        if self.entity_description.key == "people_present":
            return {"person_ids": list(state.person_ids_present)}
        return None


class PersonSensor(SmartReidPersonEntity, SensorEntity):
    """Where and when an identity was seen."""

    entity_description: PersonSensorDescription

    @property
    def native_value(self) -> StateType | datetime:
        if (person := self.person) is None:
            return None
        return self.entity_description.value_fn(person)

    @property
    def options(self) -> list[str] | None:
        if self.entity_description.device_class is not SensorDeviceClass.ENUM:
            return None
        cameras = list(self.coordinator.cameras)
        if (person := self.person) is not None and person.camera and person.camera not in cameras:
            cameras.append(person.camera)
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
