"""Image entities: the best picture of each identity, so a dashboard can show who is who."""

from __future__ import annotations

from datetime import datetime

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .api import SmartReidError
from .const import LOGGER
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator
from .entity import SmartReidPersonEntity, async_setup_dynamic_entities

# Pictures are fetched from the server one request per view; the server copes with that.
PARALLEL_UPDATES = 0

THUMBNAIL = ImageEntityDescription(key="thumbnail", translation_key="thumbnail")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartReidConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up one picture per identity as identities appear."""
    coordinator = entry.runtime_data.coordinator
    async_setup_dynamic_entities(
        entry,
        async_add_entities,
        person=lambda pid: [PersonThumbnail(coordinator, THUMBNAIL, pid)],
    )


class PersonThumbnail(SmartReidPersonEntity, ImageEntity):
    """The server's best crop of the identity, fetched with the server's token.

    The server keeps the same URL while the crop behind it improves, so a new picture is
    assumed whenever the URL or the number of stored exemplars changes.
    """

    _attr_content_type = "image/jpeg"

    def __init__(
        self, coordinator: SmartReidCoordinator, description: ImageEntityDescription, person_id: str
    ) -> None:
        SmartReidPersonEntity.__init__(self, coordinator, description, person_id)
        ImageEntity.__init__(self, coordinator.hass)
        self._version: tuple[str, int] | None = None
        self._image: bytes | None = None
        self._refresh_version()

    def _refresh_version(self) -> bool:
        person = self.person
        if person is None or not person.thumbnail_url:
            return False
        version = (person.thumbnail_url, person.exemplars)
        if version == self._version:
            return False
        self._version = version
        self._image = None
        self._attr_image_last_updated = self._seen_at()
        return True

    def _seen_at(self) -> datetime:
        person = self.person
        if person is not None and person.last_seen is not None:
            return dt_util.utc_from_timestamp(person.last_seen)
        return dt_util.utcnow()

    @callback
    def _handle_update(self) -> None:
        self._refresh_version()
        self.async_write_ha_state()

    async def async_image(self) -> bytes | None:
        if self._image is not None:
            return self._image
        if self._version is None:
            return None
        try:
            content, content_type = await self.coordinator.api.image(self._version[0])
        except SmartReidError as err:
            LOGGER.debug("No picture of %s from the server: %s", self.person_id, err)
            return None
        self._attr_content_type = content_type
        self._image = content
        return content
