"""Serve the dashboard cards (frontend/ built into `frontend/smart-reid-cards.js`).

The module is registered once per Home Assistant: a static path under `/smart_reid_static/`
and an extra module URL every dashboard loads, with the integration's version (and the file's
modification time, for development builds) in the query so browsers fetch a new build after
an update instead of using a cached one. Users add no resource by hand.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from homeassistant.components import frontend
from homeassistant.components.http import StaticPathConfig
from homeassistant.const import EVENT_COMPONENT_LOADED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.loader import async_get_integration
from homeassistant.setup import EventComponentLoaded

from .const import DOMAIN, LOGGER

FRONTEND_DIR = Path(__file__).parent / "frontend"
CARDS_FILE = "smart-reid-cards.js"
STATIC_PREFIX = "/smart_reid_static"
CARDS_URL = f"{STATIC_PREFIX}/{CARDS_FILE}"
DATA_REGISTERED = f"{DOMAIN}_frontend_registered"
DATA_WAITING = f"{DOMAIN}_frontend_waiting"
DATA_LOCK = f"{DOMAIN}_frontend_lock"


async def async_register_cards(hass: HomeAssistant) -> None:
    """Serve the cards' module and have every dashboard load it (once per Home Assistant).

    Callers that come while a registration is under way (the frontend's "loaded" event and an
    entry being set up at the same moment) wait for it: on return the module is listed."""
    lock: asyncio.Lock = hass.data.setdefault(DATA_LOCK, asyncio.Lock())
    async with lock:
        await _async_register(hass)


async def _async_register(hass: HomeAssistant) -> None:
    if hass.data.get(DATA_REGISTERED):
        return
    if "frontend" not in hass.config.components:
        # Set up before the frontend (a config flow during start-up, or no frontend at all):
        # register once it is loaded, if ever.
        if not hass.data.get(DATA_WAITING):
            hass.data[DATA_WAITING] = True

            @callback
            def is_frontend(data: EventComponentLoaded) -> bool:
                return data["component"] == "frontend"

            async def frontend_loaded(_event: Event[EventComponentLoaded]) -> None:
                unsubscribe()
                await async_register_cards(hass)

            unsubscribe = hass.bus.async_listen(
                EVENT_COMPONENT_LOADED, frontend_loaded, event_filter=is_frontend
            )
        LOGGER.debug("The frontend is not loaded (yet): the dashboard cards wait for it")
        return
    bundle = FRONTEND_DIR / CARDS_FILE
    exists = await hass.async_add_executor_job(bundle.is_file)
    if not exists:
        LOGGER.warning(
            "The dashboard cards are missing (%s); reinstall the integration, or build them "
            "with `npm ci && npm run build` in frontend/",
            bundle,
        )
        return
    hass.data[DATA_REGISTERED] = True
    integration = await async_get_integration(hass, DOMAIN)
    mtime = int(await hass.async_add_executor_job(lambda: bundle.stat().st_mtime))
    await hass.http.async_register_static_paths(
        [StaticPathConfig(STATIC_PREFIX, str(FRONTEND_DIR), cache_headers=True)]
    )
    frontend.add_extra_js_url(hass, f"{CARDS_URL}?v={integration.version}-{mtime}")
