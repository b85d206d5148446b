"""The daily digest blueprint: it loads, and it sends the digest the integration fires.

As in test_blueprint.py a notify action registered by the test stands in for the companion
app's `notify.mobile_app_<phone>`; the digest is the integration's own (`async_send_digest`,
what the daily timer runs), asking conftest's FakeServer.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util.yaml import load_yaml_dict
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.smart_reid.digest import async_send_digest

from .conftest import REPO, FakeServer, visit_payload, wait_for
from .test_blueprint import _phone_device

BLUEPRINT = REPO / "blueprints" / "automation" / "smart_reid" / "daily_digest.yaml"


def test_blueprint_is_valid() -> None:
    blueprint = Blueprint(
        load_yaml_dict(str(BLUEPRINT)),
        path=str(BLUEPRINT),
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )
    assert set(blueprint.inputs) == {"notify_target", "skip_quiet_days"}


async def _phone(hass: HomeAssistant, tmp_path: Path, **inputs: Any) -> list[ServiceCall]:
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / "smart_reid"
    target.mkdir(parents=True)
    shutil.copy(BLUEPRINT, target / BLUEPRINT.name)
    calls: list[ServiceCall] = async_mock_service(hass, "notify", "mobile_app_test_phone")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "smart_reid_digest",
                "use_blueprint": {
                    "path": f"smart_reid/{BLUEPRINT.name}",
                    "input": {"notify_target": {"device_id": _phone_device(hass)}, **inputs},
                },
            }
        },
    )
    await hass.async_block_till_done()
    return calls


async def test_the_digest_is_sent(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer, tmp_path: Path
) -> None:
    """Title and summary as the server wrote them; a worrying day shows its worst visit."""
    calls = await _phone(hass, tmp_path)
    now = dt_util.now()
    server.visits = [
        visit_payload("000000000001", (now - timedelta(hours=2)).timestamp(), level="high")
    ]
    await async_send_digest(hass, loaded_entry, now)
    await wait_for(hass, lambda: len(calls) == 1, "the digest notification")
    sent = calls[0].data
    assert sent["title"] == "1 visits, 1 strangers"
    assert sent["message"] == "Visitor 3 at front."
    assert sent["data"]["tag"] == f"smart_reid_digest_{loaded_entry.entry_id}"
    assert sent["data"]["image"].startswith(f"/api/smart_reid/{loaded_entry.entry_id}/visits/")


async def test_quiet_days_can_be_skipped_but_not_an_offline_server(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer, tmp_path: Path
) -> None:
    calls = await _phone(hass, tmp_path, skip_quiet_days=True)
    await async_send_digest(hass, loaded_entry, dt_util.now())
    await hass.async_block_till_done()
    assert calls == []

    await server.stop()
    await async_send_digest(hass, loaded_entry, dt_util.now())
    await wait_for(hass, lambda: len(calls) == 1, "the offline digest")
    assert calls[0].data["title"] == "Smart ReID: no daily digest"
    assert "could not be reached" in calls[0].data["message"]
