"""A token that stops working while the entry runs asks the user for the new one, once."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.smart_reid.const import CONF_TOKEN, DOMAIN

from .conftest import PERSON_A, FakeServer, wait_for


def _reauth_flows(hass: HomeAssistant) -> list[str]:
    return [
        flow["flow_id"]
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_REAUTH
    ]


async def _mark_known(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        DOMAIN, "mark_known", {"person_id": PERSON_A}, blocking=True, return_response=True
    )


async def test_action_rejected_starts_reauth_once(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: FakeServer
) -> None:
    """The server's token changed: the action fails, one re-authentication flow opens, and the
    new token makes actions work again."""
    assert _reauth_flows(hass) == []
    server.token = "rotated"
    for _ in range(3):
        with pytest.raises(HomeAssistantError) as err:
            await _mark_known(hass)
        assert err.value.translation_key == "invalid_auth"
    await wait_for(hass, lambda: bool(_reauth_flows(hass)), "a re-authentication flow")
    flows = _reauth_flows(hass)
    assert len(flows) == 1
    assert loaded_entry.state is ConfigEntryState.LOADED

    result = await hass.config_entries.flow.async_configure(flows[0], {CONF_TOKEN: "rotated"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    await _mark_known(hass)
    assert server.persons[PERSON_A]["known"] is True


async def test_picture_rejected_starts_reauth(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    client = await hass_client()
    server.token = "rotated"
    path = f"/api/smart_reid/{loaded_entry.entry_id}/persons/{PERSON_A}/thumbnail.jpg"
    response = await client.get(path)
    assert response.status == HTTPStatus.BAD_GATEWAY
    await wait_for(hass, lambda: len(_reauth_flows(hass)) == 1, "a re-authentication flow")


async def test_periodic_check_notices_a_rejected_token(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    issue_registry: ir.IssueRegistry,
) -> None:
    """With nobody using pictures or actions, the minutely check still finds the bad token;
    the server answers, so no "unreachable" repair is raised on top of the flow."""
    server.token = "rotated"
    before = len(server.requests)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await wait_for(hass, lambda: len(_reauth_flows(hass)) == 1, "a re-authentication flow")
    assert ("GET", "/api/info") in server.requests[before:]
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))
    await hass.async_block_till_done()
    assert loaded_entry.runtime_data.coordinator.http_ok is True
    assert [i for i in issue_registry.issues.values() if i.domain == DOMAIN] == []
    assert len(_reauth_flows(hass)) == 1
