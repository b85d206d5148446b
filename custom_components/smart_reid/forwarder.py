"""Send frames of Home Assistant cameras to the server while their trigger sensor is on.

Many users have cameras in Home Assistant but no NVR that talks to Smart ReID. For each camera
chosen in the options, a motion or occupancy binary sensor gates the work: only while it is on
is a still grabbed every interval and posted to `POST /api/frames`, so an idle house costs
nothing. A frame still on its way is never overtaken by the next one: a slow server gets fewer
frames instead of a growing queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.camera import async_get_image
from homeassistant.const import STATE_ON
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_state_change_event, async_track_time_interval

from .api import SmartReidApi, SmartReidApiError, SmartReidError
from .const import CAMERA_NAME, CONF_CAMERA_ENTITY, CONF_INTERVAL_S, CONF_TRIGGER_ENTITY, LOGGER
from .coordinator import SmartReidConfigEntry


def camera_slug(entity_id: str) -> str:
    """The server-side camera name of a camera entity: its object id (`camera.front` -> `front`).

    Object ids longer than the contract's 64 characters are refused rather than cut, since two
    cut names could collide.
    """
    return entity_id.split(".", 1)[-1]


@dataclass(slots=True)
class _Route:
    """One forwarded camera and its running state."""

    camera_entity: str
    trigger_entity: str
    interval: timedelta
    camera: str
    stop_interval: CALLBACK_TYPE | None = None
    busy: bool = False
    failure: str | None = None
    frames_sent: int = 0
    last_decisions: int = 0


class CameraForwarder:
    """Posts stills of the configured cameras while their triggers are on."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SmartReidConfigEntry,
        api: SmartReidApi,
        routes: list[Mapping[str, Any]],
    ) -> None:
        self._hass = hass
        self._entry = entry
        self._api = api
        self._routes: list[_Route] = []
        for route in routes:
            camera = camera_slug(str(route[CONF_CAMERA_ENTITY]))
            if not CAMERA_NAME.match(camera):
                LOGGER.warning(
                    "Not forwarding %s: its object id %r is not a valid Smart ReID camera name "
                    "(a-z, 0-9 and _); rename the entity",
                    route[CONF_CAMERA_ENTITY],
                    camera,
                )
                continue
            self._routes.append(
                _Route(
                    camera_entity=str(route[CONF_CAMERA_ENTITY]),
                    trigger_entity=str(route[CONF_TRIGGER_ENTITY]),
                    interval=timedelta(seconds=float(route[CONF_INTERVAL_S])),
                    camera=camera,
                )
            )
        self._unsubscribe: list[CALLBACK_TYPE] = []

    @callback
    def async_start(self) -> None:
        """Watch the triggers; a trigger already on starts forwarding at once."""
        for route in self._routes:
            self._unsubscribe.append(
                async_track_state_change_event(
                    self._hass, [route.trigger_entity], self._trigger_changed(route)
                )
            )
            state = self._hass.states.get(route.trigger_entity)
            if state is not None and state.state == STATE_ON:
                self._start(route)

    @callback
    def async_stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for route in self._routes:
            self._stop(route)

    def diagnostics(self) -> list[dict[str, Any]]:
        return [
            {
                "camera_entity": route.camera_entity,
                "trigger_entity": route.trigger_entity,
                "camera": route.camera,
                "interval_s": route.interval.total_seconds(),
                "active": route.stop_interval is not None,
                "frames_sent": route.frames_sent,
                "persons_in_last_frame": route.last_decisions,
                "failure": route.failure,
            }
            for route in self._routes
        ]

    def _trigger_changed(self, route: _Route) -> Callable[[Event[EventStateChangedData]], None]:
        @callback
        def changed(event: Event[EventStateChangedData]) -> None:
            new_state = event.data["new_state"]
            if new_state is not None and new_state.state == STATE_ON:
                self._start(route)
            else:
                self._stop(route)

        return changed

    @callback
    def _start(self, route: _Route) -> None:
        if route.stop_interval is not None:
            return
        LOGGER.debug("Forwarding %s to the server as %s", route.camera_entity, route.camera)

        @callback
        def tick(_now: datetime | None = None) -> None:
            if route.busy:
                return
            route.busy = True
            self._entry.async_create_background_task(
                self._hass, self._send(route), f"smart_reid forward {route.camera}"
            )

        route.stop_interval = async_track_time_interval(
            self._hass, tick, route.interval, name=f"smart_reid forward {route.camera}"
        )
        tick()

    @callback
    def _stop(self, route: _Route) -> None:
        if route.stop_interval is not None:
            route.stop_interval()
            route.stop_interval = None
            LOGGER.debug("Stopped forwarding %s", route.camera_entity)

    async def _send(self, route: _Route) -> None:
        try:
            image = await async_get_image(self._hass, route.camera_entity)
            answer = await self._api.post_frame(route.camera, image.content, image.content_type)
        except SmartReidApiError as err:
            hint = ""
            if err.status == 404:
                hint = (
                    f"; add {route.camera} to the server's cameras list or set "
                    "auto_add_cameras: true"
                )
            self._failed(route, f"the server refused the frame: {err.message}{hint}")
        except SmartReidError as err:
            self._failed(route, str(err))
        except HomeAssistantError as err:
            self._failed(route, f"no image from {route.camera_entity}: {err}")
        else:
            route.frames_sent += 1
            decisions = answer.get("decisions")
            route.last_decisions = len(decisions) if isinstance(decisions, list) else 0
            if route.failure is not None:
                LOGGER.info("Forwarding %s to Smart ReID works again", route.camera_entity)
                route.failure = None
        finally:
            route.busy = False

    def _failed(self, route: _Route, reason: str) -> None:
        """Log the first failure as a warning; until it works again, only at debug level."""
        level = LOGGER.warning if route.failure is None else LOGGER.debug
        level("Cannot forward %s to Smart ReID: %s", route.camera_entity, reason)
        route.failure = reason
