"""Image entities: the best picture of each identity, so a dashboard can show who is who.

A picture entity exists only once there is a picture: an identity gets it with the first state
that names a thumbnail (the server publishes `thumbnail_url: null` until a crop passed its
quality gates), never before, so a dashboard never shows a broken image for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .api import SmartReidError
from .const import LOGGER
from .coordinator import SmartReidConfigEntry, SmartReidCoordinator
from .entity import SmartReidPersonEntity

# Pictures are fetched from the server one request per view; the server copes with that.
PARALLEL_UPDATES = 0

THUMBNAIL = ImageEntityDescription(key="thumbnail", translation_key="thumbnail")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartReidConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add an identity's picture when it has a device and its first thumbnail is known."""
    coordinator = entry.runtime_data.coordinator
    pictured: set[str] = set()

    @callback
    def add_if_pictured(person_id: str) -> None:
        if person_id in pictured or person_id not in coordinator.person_devices:
            return
        person = coordinator.persons.get(person_id)
        if person is None or not person.thumbnail_url:
            return
        pictured.add(person_id)
        async_add_entities(
            [PersonThumbnail(coordinator, THUMBNAIL, person_id, on_remove=pictured.discard)]
        )

    # Platforms are set up before the coordinator subscribes: nobody has a device yet.
    entry.async_on_unload(coordinator.async_add_person_changed_callback(add_if_pictured))


class PersonThumbnail(SmartReidPersonEntity, ImageEntity):
    """The server's best crop of the identity, fetched with the server's token.

    The server's URL carries the picture's version (`?v=`), so the picture is fetched again,
    and its time moves on, only when the URL changes. An older server kept one URL while the
    crop behind it improved; with such a URL a new picture is assumed whenever the number of
    stored exemplars changes. The last picture that
    arrived is kept: when fetching a newer one fails (server restarting, network), the entity
    goes on showing the last good one, and the failure is logged once until a fetch works.
    """

    _attr_content_type = "image/jpeg"

    def __init__(
        self,
        coordinator: SmartReidCoordinator,
        description: ImageEntityDescription,
        person_id: str,
        *,
        on_remove: Callable[[str], None],
    ) -> None:
        SmartReidPersonEntity.__init__(self, coordinator, description, person_id)
        ImageEntity.__init__(self, coordinator.hass)
        self._picture_gone = on_remove
        # The picture to show, by (url, exemplars); the last picture fetched and its version.
        self._version: tuple[str, int] | None = None
        self._image: bytes | None = None
        self._image_version: tuple[str, int] | None = None
        self._failing = False
        self._refresh_version()

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(lambda: self._picture_gone(self.person_id))

    @property
    def available(self) -> bool:
        """Unavailable rather than broken while the server has no picture file and none was
        fetched before (`thumbnail_url` back to null)."""
        person = self.person
        has_picture = self._image is not None or (person is not None and person.thumbnail_url)
        return super().available and bool(has_picture)

    def _refresh_version(self) -> bool:
        person = self.person
        if person is None or not person.thumbnail_url:
            return False
        url = person.thumbnail_url
        version = (url, 0 if "?v=" in url else person.exemplars)
        if version == self._version:
            return False
        self._version = version
        self._attr_image_last_updated = self._seen_at()
        return True

    def _seen_at(self) -> datetime:
        person = self.person
        if person is not None and person.last_seen is not None:
            return dt_util.utc_from_timestamp(person.last_seen)
        return dt_util.utcnow()

    @callback
    def _follow(self) -> None:
        self._refresh_version()

    async def async_image(self) -> bytes | None:
        if self._version is None or (
            self._image is not None and self._image_version == self._version
        ):
            return self._image
        version = self._version
        try:
            content, content_type = await self.coordinator.api.image(version[0])
        except SmartReidError as err:
            if not self._failing:
                self._failing = True
                LOGGER.warning(
                    "Could not fetch the picture of %s from the server (%s); %s",
                    self.person_id,
                    err,
                    "showing the previous one" if self._image else "trying again when shown",
                )
            else:
                LOGGER.debug("Still no picture of %s from the server: %s", self.person_id, err)
            return self._image
        if self._failing:
            self._failing = False
            LOGGER.info("Fetched the picture of %s from the server again", self.person_id)
        self._attr_content_type = content_type
        self._image = content
        self._image_version = version
        return content
