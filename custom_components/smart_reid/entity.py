"""Base entities: one per kind of device (the server hub, a camera, an identity).

Each entity subscribes to the coordinator for exactly its part of the state, so a sighting on
one camera rewrites that camera's few entities and not the whole house. Device info is a link to
the device the coordinator already created (it owns names and versions, which change at run
time: a renamed identity, a server update).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import (
    HUB,
    SmartReidConfigEntry,
    SmartReidCoordinator,
    camera_key,
    person_key,
)
from .models import CameraState, Person


class SmartReidEntity(Entity):
    """Common wiring: naming, no polling, availability, listening to one part of the state."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self,
        coordinator: SmartReidCoordinator,
        description: EntityDescription,
        *,
        listen_key: str,
        unique_suffix: str,
        identifier: tuple[str, str],
    ) -> None:
        self.coordinator = coordinator
        self.entity_description = description
        self._listen_key = listen_key
        self._attr_unique_id = f"{coordinator.server_id}_{unique_suffix}_{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={identifier})

    @property
    def available(self) -> bool:
        return self.coordinator.available

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.async_add_listener(self._listen_key, self._handle_update)
        )
        self._follow()

    @callback
    def _follow(self) -> None:
        """Take in the coordinator's latest state before it is shown: on being added and on
        every update. Entities that keep their own view of it (coalesced values, a picture's
        version) override this."""

    @callback
    def _handle_update(self) -> None:
        self._follow()
        self.async_write_ha_state()


class SmartReidHubEntity(SmartReidEntity):
    """An entity of the server itself."""

    def __init__(self, coordinator: SmartReidCoordinator, description: EntityDescription) -> None:
        super().__init__(
            coordinator,
            description,
            listen_key=HUB,
            unique_suffix="hub",
            identifier=coordinator.hub_identifier(),
        )


class SmartReidCameraEntity(SmartReidEntity):
    """An entity of one camera the server processes."""

    def __init__(
        self, coordinator: SmartReidCoordinator, description: EntityDescription, camera: str
    ) -> None:
        super().__init__(
            coordinator,
            description,
            listen_key=camera_key(camera),
            unique_suffix=f"camera_{camera}",
            identifier=coordinator.camera_identifier(camera),
        )
        self.camera = camera

    @property
    def camera_state(self) -> CameraState | None:
        return self.coordinator.cameras.get(self.camera)


class SmartReidPersonEntity(SmartReidEntity):
    """An entity of one identity in the gallery; removed with the identity's device (when the
    identity is forgotten, or a stranger was not seen for the retention time)."""

    def __init__(
        self, coordinator: SmartReidCoordinator, description: EntityDescription, person_id: str
    ) -> None:
        super().__init__(
            coordinator,
            description,
            listen_key=person_key(person_id),
            unique_suffix=f"person_{person_id}",
            identifier=coordinator.person_identifier(person_id),
        )
        self.person_id = person_id

    @property
    def person(self) -> Person | None:
        return self.coordinator.persons.get(self.person_id)

    @property
    def available(self) -> bool:
        return super().available and self.person_id in self.coordinator.persons


def async_setup_dynamic_entities(
    entry: SmartReidConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    *,
    hub: Callable[[], Iterable[Entity]] | None = None,
    camera: Callable[[str], Iterable[Entity]] | None = None,
    person: Callable[[str], Iterable[Entity]] | None = None,
) -> None:
    """Add a platform's entities now and whenever a camera first appears or an identity gets
    a device (see `SmartReidCoordinator.wants_device`)."""
    coordinator = entry.runtime_data.coordinator
    if hub is not None:
        async_add_entities(hub())
    if camera is not None:
        camera_factory = camera

        @callback
        def add_camera(name: str) -> None:
            async_add_entities(camera_factory(name))

        for name in list(coordinator.cameras):
            add_camera(name)
        entry.async_on_unload(coordinator.async_add_new_camera_callback(add_camera))
    if person is not None:
        person_factory = person

        @callback
        def add_person(person_id: str) -> None:
            async_add_entities(person_factory(person_id))

        for person_id in list(coordinator.person_devices):
            add_person(person_id)
        entry.async_on_unload(coordinator.async_add_new_person_callback(add_person))
