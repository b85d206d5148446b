"""Each identity's picture, fetched from the server with its token."""

from __future__ import annotations

from http import HTTPStatus

from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from .conftest import (
    BASE,
    PERSON_A,
    PERSON_B,
    FakeServer,
    cuhk03_image,
    person_payload,
    publish,
    state,
    wait_for,
)

THUMBNAIL = f"/api/persons/{PERSON_A}/thumbnail.jpg"


async def test_picture_of_identity(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """The picture is the server's crop, fetched once until the server has a new one."""
    client = await hass_client()
    response = await client.get("/api/image_proxy/image.visitor_3_picture")
    assert response.status == HTTPStatus.OK
    assert await response.read() == cuhk03_image(1, 0).read_bytes()
    await client.get("/api/image_proxy/image.visitor_3_picture")
    assert server.requests.count(("GET", THUMBNAIL)) == 1

    before = state(hass, "image.visitor_3_picture").state
    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(exemplars=7, last_seen=1763740300.0),
        retain=True,
    )
    await wait_for(
        hass,
        lambda: state(hass, "image.visitor_3_picture").state != before,
        "a new picture time",
    )
    await client.get("/api/image_proxy/image.visitor_3_picture")
    assert server.requests.count(("GET", THUMBNAIL)) == 2


async def test_identity_without_picture(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """No crop passed the quality gates yet: no picture, and no request to the server."""
    await publish(
        hass,
        f"{BASE}/person/{PERSON_B}/state",
        person_payload(PERSON_B, label="Visitor 4", thumbnail_url=None),
        retain=True,
    )
    await wait_for(
        hass, lambda: hass.states.get("image.visitor_4_picture") is not None, "the image entity"
    )
    assert state(hass, "image.visitor_4_picture").state == STATE_UNKNOWN
    client = await hass_client()
    response = await client.get("/api/image_proxy/image.visitor_4_picture")
    assert response.status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert not any(PERSON_B in path for _, path in server.requests)


async def test_picture_when_server_fails(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    await server.stop()
    client = await hass_client()
    response = await client.get("/api/image_proxy/image.visitor_3_picture")
    assert response.status == HTTPStatus.INTERNAL_SERVER_ERROR
