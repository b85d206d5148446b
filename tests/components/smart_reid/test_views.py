"""Pictures for notifications: signed links through Home Assistant to the server."""

from __future__ import annotations

import base64
import json
from http import HTTPStatus

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.smart_reid.const import EVENT_NEW_PERSON

from .conftest import BASE, PERSON_A, FakeServer, cuhk03_image, decision_payload, publish, wait_for


async def _signed_links(hass: HomeAssistant) -> tuple[str, str]:
    events = async_capture_events(hass, EVENT_NEW_PERSON)
    await publish(hass, f"{BASE}/events/new_person", decision_payload())
    await wait_for(hass, lambda: bool(events), "the new_person event")
    return events[0].data["snapshot_url"], events[0].data["thumbnail_url"]


async def test_signed_links_work_without_login(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """The companion app fetches the event's links with no token and gets the JPEGs."""
    snapshot_url, thumbnail_url = await _signed_links(hass)
    client = await hass_client_no_auth()
    response = await client.get(snapshot_url)
    assert response.status == HTTPStatus.OK
    assert response.content_type == "image/jpeg"
    assert await response.read() == cuhk03_image(1, 5).read_bytes()
    response = await client.get(thumbnail_url)
    assert response.status == HTTPStatus.OK
    assert await response.read() == cuhk03_image(1, 0).read_bytes()


async def test_links_expire_within_an_hour(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    snapshot_url, _ = await _signed_links(hass)
    token = snapshot_url.split("authSig=", 1)[1]
    claims = token.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert payload["exp"] - payload["iat"] == 3600


async def test_unsigned_requests_are_refused(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """Without a signature or a login nobody gets the server's pictures."""
    client = await hass_client_no_auth()
    path = f"/api/smart_reid/{loaded_entry.entry_id}/persons/{PERSON_A}/thumbnail.jpg"
    response = await client.get(path)
    assert response.status == HTTPStatus.UNAUTHORIZED
    snapshot_url, _ = await _signed_links(hass)
    tampered = snapshot_url.replace("9c8b7a6d5e4f", "000000000000")
    assert (await client.get(tampered)).status == HTTPStatus.UNAUTHORIZED


async def test_view_is_not_a_proxy(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """Only the server's picture routes pass, and only for loaded entries."""
    client = await hass_client()
    entry_id = loaded_entry.entry_id
    before = len(server.requests)
    for path in (
        f"/api/smart_reid/{entry_id}/info",
        f"/api/smart_reid/{entry_id}/persons/{PERSON_A}/../../settings",
        f"/api/smart_reid/{entry_id}/persons/{PERSON_A}",
        f"/api/smart_reid/not-an-entry/persons/{PERSON_A}/thumbnail.jpg",
        f"/api/smart_reid/{entry_id}/persons/ffffffffffff/thumbnail.jpg",
    ):
        response = await client.get(path)
        assert response.status == HTTPStatus.NOT_FOUND, path
    # Only the well-formed picture path reached the server (which does not know the person).
    assert server.requests[before:] == [("GET", "/api/persons/ffffffffffff/thumbnail.jpg")]


async def test_server_trouble_is_bad_gateway(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """A server that refuses Home Assistant or is down is the server's problem: 502."""
    client = await hass_client()
    path = f"/api/smart_reid/{loaded_entry.entry_id}/visits/9c8b7a6d5e4f/snapshot.jpg"
    server.token = "rotated"
    response = await client.get(path)
    assert response.status == HTTPStatus.BAD_GATEWAY
    assert "token" in await response.text()
    await server.stop()
    response = await client.get(path)
    assert response.status == HTTPStatus.BAD_GATEWAY
    assert "unreachable" in await response.text()
