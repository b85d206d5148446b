"""The integration serves its dashboard cards and has every dashboard load them.

Home Assistant's real `frontend` integration is set up (it needs the `home-assistant-frontend`
package: in the venv, or unpacked into `.cache/ha-frontend` by scripts/setup).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.smart_reid import frontend as cards
from custom_components.smart_reid.const import DOMAIN

from .conftest import REPO

BUNDLE = REPO / "custom_components" / "smart_reid" / "frontend" / "smart-reid-cards.js"
FRONTEND_CACHE = REPO / ".cache" / "ha-frontend"


@pytest.fixture
def ha_frontend() -> None:
    """Make Home Assistant's front-end package importable, or skip saying how to get it."""
    if importlib.util.find_spec("hass_frontend") is None and FRONTEND_CACHE.is_dir():
        sys.path.append(str(FRONTEND_CACHE))
    if importlib.util.find_spec("hass_frontend") is None:
        pytest.skip("home-assistant-frontend is not installed: run ./scripts/setup")


async def test_cards_are_served_and_loaded_on_every_dashboard(
    hass: HomeAssistant,
    ha_frontend: None,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """With the frontend running, the module is served and listed with a version."""
    assert await async_setup_component(hass, "frontend", {})
    # The integration was set up before the frontend here; a restart orders them
    # (after_dependencies). Registering again is what the next start does.
    await cards.async_register_cards(hass)
    urls = [u for u in hass.data[DATA_EXTRA_MODULE_URL].urls if "smart-reid-cards" in u]
    assert len(urls) == 1
    url = urls[0]
    assert url.startswith("/smart_reid_static/smart-reid-cards.js?v=0.1.0-")
    assert url.endswith(str(int(BUNDLE.stat().st_mtime)))

    client = await hass_client()
    response = await client.get(url)
    assert response.status == HTTPStatus.OK
    assert await response.read() == BUNDLE.read_bytes()
    assert "javascript" in response.content_type

    # Once per Home Assistant, however many servers and reloads.
    await cards.async_register_cards(hass)
    assert len([u for u in hass.data[DATA_EXTRA_MODULE_URL].urls if "smart-reid" in u]) == 1


async def test_start_order_with_the_frontend_first(
    hass: HomeAssistant, ha_frontend: None, hass_client: ClientSessionGenerator
) -> None:
    """As Home Assistant starts: frontend, then the integration registers the cards."""
    assert await async_setup_component(hass, "frontend", {})
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    assert any("smart-reid-cards.js" in u for u in hass.data[DATA_EXTRA_MODULE_URL].urls)
    client = await hass_client()
    assert (await client.get(cards.CARDS_URL)).status == HTTPStatus.OK


async def test_set_up_before_the_frontend(
    hass: HomeAssistant, ha_frontend: None, hass_client: ClientSessionGenerator
) -> None:
    """A config flow during start-up can set the integration up before the frontend is
    loaded: the cards are registered as soon as it is."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert not hass.data.get(cards.DATA_REGISTERED)
    assert await async_setup_component(hass, "frontend", {})
    await hass.async_block_till_done()
    assert any("smart-reid-cards.js" in u for u in hass.data[DATA_EXTRA_MODULE_URL].urls)
    client = await hass_client()
    assert (await client.get(cards.CARDS_URL)).status == HTTPStatus.OK


async def test_a_missing_bundle_is_logged_not_fatal(
    hass: HomeAssistant,
    ha_frontend: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(cards, "FRONTEND_DIR", tmp_path)
    assert await async_setup_component(hass, "frontend", {})
    with caplog.at_level(logging.WARNING):
        assert await async_setup_component(hass, DOMAIN, {})
    assert "npm ci && npm run build" in caplog.text
    assert not any("smart-reid" in u for u in hass.data[DATA_EXTRA_MODULE_URL].urls)


async def test_without_a_frontend_nothing_is_registered(hass: HomeAssistant) -> None:
    """A Home Assistant without the frontend (tests, headless set-ups) still gets the rest."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert DATA_EXTRA_MODULE_URL not in hass.data
    assert not hass.data.get(cards.DATA_REGISTERED)


async def test_a_caller_during_registration_waits_for_it(
    hass: HomeAssistant, ha_frontend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frontend's "loaded" event and an entry's set-up may register at the same moment:
    the second caller returns only once the module is listed, and it is listed once."""
    assert await async_setup_component(hass, "frontend", {})
    release = asyncio.Event()
    looked_up = asyncio.Event()
    real_lookup = cards.async_get_integration

    async def slow_lookup(hass_: HomeAssistant, domain: str) -> Any:
        looked_up.set()
        await release.wait()  # the first registration is held half-way
        return await real_lookup(hass_, domain)

    monkeypatch.setattr(cards, "async_get_integration", slow_lookup)
    first = hass.async_create_task(cards.async_register_cards(hass))
    await looked_up.wait()
    second = hass.async_create_task(cards.async_register_cards(hass))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not second.done(), "the second caller returned before the module was listed"
    release.set()
    await asyncio.gather(first, second)
    urls = [u for u in hass.data[DATA_EXTRA_MODULE_URL].urls if "smart-reid-cards" in u]
    assert len(urls) == 1
