"""Serve the server's snapshots and thumbnails through Home Assistant.

A phone that gets a notification must fetch its picture. The server is usually not reachable
from the phone (and may need a token the phone should not have), so Home Assistant passes the
picture through, and the bus events carry links to this view signed with a short expiry
(`async_sign_path`): the companion app can load them without a login, nobody else for long.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from aiohttp import web
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView

from .api import SmartReidApiError, SmartReidAuthError, SmartReidError
from .const import DOMAIN, IMAGE_VIEW_PREFIX, LOGGER
from .coordinator import SmartReidConfigEntry

# Only the server's picture routes pass; this view must never become a general proxy.
IMAGE_PATH = re.compile(
    r"^(persons/[0-9a-z_-]{1,64}/thumbnail\.jpg"
    r"|visits/[0-9a-z_-]{1,64}/snapshot\.jpg"
    r"|cameras/[a-z0-9_]{1,64}/snapshot\.jpg)$"
)


class SmartReidImageView(HomeAssistantView):
    """`GET /api/smart_reid/<entry_id>/<persons|visits|cameras>/<id>/<picture>.jpg`."""

    url = IMAGE_VIEW_PREFIX + "/{entry_id}/{path:.+}"
    name = "api:smart_reid:image"
    requires_auth = True

    async def get(self, request: web.Request, entry_id: str, path: str) -> web.Response:
        hass: HomeAssistant = request.app[KEY_HASS]
        if not IMAGE_PATH.match(path):
            return web.Response(status=HTTPStatus.NOT_FOUND, text="not a Smart ReID picture")
        entry: SmartReidConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
            return web.Response(status=HTTPStatus.NOT_FOUND, text="no such Smart ReID server")
        try:
            content, content_type = await entry.runtime_data.api.image(f"/api/{path}")
        except SmartReidApiError as err:
            status = HTTPStatus.NOT_FOUND if err.status == 404 else HTTPStatus.BAD_GATEWAY
            return web.Response(status=status, text=err.message)
        except SmartReidAuthError:
            return web.Response(
                status=HTTPStatus.BAD_GATEWAY, text="the server rejected Home Assistant's token"
            )
        except SmartReidError as err:
            LOGGER.debug("Cannot pass %s through: %s", path, err)
            return web.Response(status=HTTPStatus.BAD_GATEWAY, text="the server is unreachable")
        return web.Response(
            body=content,
            content_type=content_type,
            headers={"Cache-Control": "private, max-age=300"},
        )
