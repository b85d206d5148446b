"""Event entities: one per camera, firing when a visit starts there.

They make "someone arrived at the front door" usable in the automation editor and show the
latest arrival on the camera's device page; the bus events carry the full details.
"""

from __future__ import annotations

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import EVENT_TYPE_KNOWN, EVENT_TYPE_NEW, EVENT_TYPE_RETURNING, EVENT_TYPES
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator, camera_event_key
from .entity import SmartReidCameraEntity, async_setup_dynamic_entities
from .models import Decision

# Events are pushed by the coordinator; nothing to throttle.
PARALLEL_UPDATES = 0

VISIT_STARTED = EventEntityDescription(
    key="visit_started",
    translation_key="visit_started",
    event_types=list(EVENT_TYPES),
)


def event_type_for(decision: Decision) -> str:
    """Household first: a known person is `known_person` even on their first visit ever."""
    if decision.known:
        return EVENT_TYPE_KNOWN
    return EVENT_TYPE_NEW if decision.is_new_identity else EVENT_TYPE_RETURNING


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartReidConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up one event entity per camera, including cameras that appear later."""
    coordinator = entry.runtime_data.coordinator
    async_setup_dynamic_entities(
        entry,
        async_add_entities,
        camera=lambda camera: [VisitStartedEvent(coordinator, VISIT_STARTED, camera)],
    )


class VisitStartedEvent(SmartReidCameraEntity, EventEntity):
    """Fires new_person / returning_person / known_person when a visit starts here."""

    def __init__(
        self, coordinator: SmartReidCoordinator, description: EventEntityDescription, camera: str
    ) -> None:
        super().__init__(coordinator, description, camera)
        # Camera counts do not change the last event: only availability changes reach it.
        self._listen_key = camera_event_key(camera)

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.async_add_camera_event_listener(self.camera, self._handle_visit)
        )

    @callback
    def _handle_visit(self, decision: Decision) -> None:
        self._trigger_event(
            event_type_for(decision),
            {
                "person_id": decision.person_id,
                "label": decision.label,
                "visit_id": decision.visit_id,
                "similarity": decision.similarity,
                "known": decision.known,
            },
        )
        self.async_write_ha_state()
