"""Binary sensors: is the server up, is a stranger at a camera, is an identity here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import STATUS_ONLINE
from .coordinator import SmartReidConfigEntry
from .entity import (
    SmartReidCameraEntity,
    SmartReidHubEntity,
    SmartReidPersonEntity,
    async_setup_dynamic_entities,
)
from .models import CameraState, Person

# Values come from MQTT pushes held in memory; nothing to throttle.
PARALLEL_UPDATES = 0

SERVER_CONNECTIVITY = BinarySensorEntityDescription(
    key="server",
    translation_key="server",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


@dataclass(frozen=True, kw_only=True)
class CameraBinarySensorDescription(BinarySensorEntityDescription):
    """A yes/no fact about one camera."""

    value_fn: Callable[[CameraState], bool]


@dataclass(frozen=True, kw_only=True)
class PersonBinarySensorDescription(BinarySensorEntityDescription):
    """A yes/no fact about one identity."""

    value_fn: Callable[[Person], bool]


CAMERA_BINARY_SENSORS: tuple[CameraBinarySensorDescription, ...] = (
    CameraBinarySensorDescription(
        key="unknown_present",
        translation_key="unknown_present",
        device_class=BinarySensorDeviceClass.OCCUPANCY,
        value_fn=lambda s: s.unknown_present,
    ),
)

PERSON_BINARY_SENSORS: tuple[PersonBinarySensorDescription, ...] = (
    PersonBinarySensorDescription(
        key="present",
        translation_key="present",
        device_class=BinarySensorDeviceClass.PRESENCE,
        value_fn=lambda p: p.present,
    ),
    PersonBinarySensorDescription(
        key="known",
        translation_key="known",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda p: p.known,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartReidConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the server's connectivity sensor and the camera and identity sensors."""
    coordinator = entry.runtime_data.coordinator
    async_setup_dynamic_entities(
        entry,
        async_add_entities,
        hub=lambda: [ServerConnectivitySensor(coordinator, SERVER_CONNECTIVITY)],
        camera=lambda camera: (
            CameraBinarySensor(coordinator, d, camera) for d in CAMERA_BINARY_SENSORS
        ),
        person=lambda pid: (PersonBinarySensor(coordinator, d, pid) for d in PERSON_BINARY_SENSORS),
    )


class ServerConnectivitySensor(SmartReidHubEntity, BinarySensorEntity):
    """On while the server says `online`; it is the one entity that stays available then."""

    @property
    def available(self) -> bool:
        return self.coordinator.mqtt_connected and self.coordinator.status is not None

    @property
    def is_on(self) -> bool:
        return self.coordinator.status == STATUS_ONLINE


class CameraBinarySensor(SmartReidCameraEntity, BinarySensorEntity):
    """A yes/no fact about one camera."""

    entity_description: CameraBinarySensorDescription

    @property
    def is_on(self) -> bool | None:
        if (state := self.camera_state) is None:
            return None
        return self.entity_description.value_fn(state)


class PersonBinarySensor(SmartReidPersonEntity, BinarySensorEntity):
    """A yes/no fact about one identity."""

    entity_description: PersonBinarySensorDescription

    @property
    def is_on(self) -> bool | None:
        if (person := self.person) is None:
            return None
        return self.entity_description.value_fn(person)
