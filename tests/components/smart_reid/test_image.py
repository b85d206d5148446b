"""Each identity's picture, fetched from the server with its token, and only once there is one."""

from __future__ import annotations

import logging
from http import HTTPStatus

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from .conftest import (
    BASE,
    PERSON_A,
    PERSON_B,
    RECENT,
    FakeServer,
    cuhk03_image,
    person_payload,
    publish,
    state,
    wait_for,
)

THUMBNAIL = f"/api/persons/{PERSON_A}/thumbnail.jpg"
PROXY = "/api/image_proxy/image.visitor_3_picture"


async def test_picture_of_identity(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """The picture is the server's crop, fetched once until the server has a new one."""
    client = await hass_client()
    response = await client.get(PROXY)
    assert response.status == HTTPStatus.OK
    assert await response.read() == cuhk03_image(1, 0).read_bytes()
    await client.get(PROXY)
    assert server.requests.count(("GET", THUMBNAIL)) == 1

    before = state(hass, "image.visitor_3_picture").state
    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(exemplars=7, last_seen=RECENT + 200.0),
        retain=True,
    )
    await wait_for(
        hass,
        lambda: state(hass, "image.visitor_3_picture").state != before,
        "a new picture time",
    )
    await client.get(PROXY)
    assert server.requests.count(("GET", THUMBNAIL)) == 2


async def test_picture_appears_with_the_first_thumbnail(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
    entity_registry: er.EntityRegistry,
) -> None:
    """No crop passed the quality gates yet: the person has sensors but no picture entity (a
    dashboard shows no broken image), and the server is not asked; the first thumbnail adds
    the picture."""
    server.persons[PERSON_B] = person_payload(PERSON_B, label="Visitor 4", thumbnail_url=None)
    await server.publish_person(PERSON_B)
    await wait_for(
        hass, lambda: hass.states.get("sensor.visitor_4_location") is not None, "the sensors"
    )
    assert hass.states.get("image.visitor_4_picture") is None
    assert entity_registry.async_get("image.visitor_4_picture") is None
    client = await hass_client()
    response = await client.get("/api/image_proxy/image.visitor_4_picture")
    assert response.status == HTTPStatus.NOT_FOUND
    assert not any(PERSON_B in path for _, path in server.requests)

    server.persons[PERSON_B] = person_payload(PERSON_B, label="Visitor 4")
    await server.publish_person(PERSON_B)
    await wait_for(
        hass, lambda: hass.states.get("image.visitor_4_picture") is not None, "the picture"
    )
    response = await client.get("/api/image_proxy/image.visitor_4_picture")
    assert response.status == HTTPStatus.OK
    assert await response.read() == cuhk03_image(1, 0).read_bytes()


async def test_failed_fetch_keeps_the_last_good_picture(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server has a better crop but cannot hand it out right now: the dashboard goes on
    showing the previous one, the failure is logged once, and the new crop is shown once the
    server answers again."""
    client = await hass_client()
    assert (await client.get(PROXY)).status == HTTPStatus.OK
    first = cuhk03_image(1, 0).read_bytes()

    server.thumbnail_status = HTTPStatus.SERVICE_UNAVAILABLE
    server.thumbnail_crop = (2, 0)
    before = state(hass, "image.visitor_3_picture").state
    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(exemplars=7, last_seen=RECENT + 200.0),
        retain=True,
    )
    await wait_for(
        hass, lambda: state(hass, "image.visitor_3_picture").state != before, "the new crop"
    )
    caplog.clear()
    for _ in range(3):
        response = await client.get(PROXY)
        assert response.status == HTTPStatus.OK
        assert await response.read() == first
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and PERSON_A in r.getMessage()
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "showing the previous one" in warnings[0].getMessage()
    assert server.requests.count(("GET", THUMBNAIL)) == 4

    server.thumbnail_status = HTTPStatus.OK
    response = await client.get(PROXY)
    assert response.status == HTTPStatus.OK
    assert await response.read() == cuhk03_image(2, 0).read_bytes()
    assert "picture of a0b1c2d3e4f5 from the server again" in caplog.text


async def test_first_picture_when_server_fails(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """With no picture fetched yet and the server gone, there is nothing to show yet; the
    next view tries again."""
    await server.stop()
    client = await hass_client()
    response = await client.get(PROXY)
    assert response.status == HTTPStatus.INTERNAL_SERVER_ERROR


async def test_thumbnail_withdrawn(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """The server lost the picture file (`thumbnail_url` back to null): a picture shown before
    stays; one never fetched makes the entity unavailable instead of a broken image."""
    client = await hass_client()
    assert (await client.get(PROXY)).status == HTTPStatus.OK
    server.persons[PERSON_B] = person_payload(PERSON_B, label="Visitor 4")
    await server.publish_person(PERSON_B)
    await wait_for(
        hass, lambda: hass.states.get("image.visitor_4_picture") is not None, "the picture"
    )
    for person_id, label in ((PERSON_A, "Visitor 3"), (PERSON_B, "Visitor 4")):
        server.persons[person_id] = person_payload(
            person_id, label=label, thumbnail_url=None, visit_count=5
        )
        await server.publish_person(person_id)
    await wait_for(
        hass,
        lambda: state(hass, "image.visitor_4_picture").state == "unavailable",
        "the unfetched picture to become unavailable",
    )
    assert state(hass, "image.visitor_3_picture").state != "unavailable"
    response = await client.get(PROXY)
    assert response.status == HTTPStatus.OK
    assert await response.read() == cuhk03_image(1, 0).read_bytes()


async def test_a_versioned_picture_is_fetched_once_per_version(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """A server that versions its picture URLs (`?v=`): more exemplars alone change neither
    the picture entity's state (no database row) nor what is fetched; a new version does."""
    first_url = f"{THUMBNAIL}?v=0000000a"
    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(thumbnail_url=first_url, last_seen=RECENT + 100.0),
        retain=True,
    )
    client = await hass_client()
    await wait_for(
        hass,
        lambda: loaded_entry.runtime_data.coordinator.persons[PERSON_A].thumbnail_url == first_url,
        "the versioned picture",
    )
    assert (await client.get(PROXY)).status == HTTPStatus.OK
    assert server.requests.count(("GET", first_url)) == 1
    shown = state(hass, "image.visitor_3_picture").state

    # The person is seen again and learns exemplars; the picture is the same.
    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(thumbnail_url=first_url, exemplars=9, last_seen=RECENT + 300.0),
        retain=True,
    )
    await wait_for(
        hass,
        lambda: loaded_entry.runtime_data.coordinator.persons[PERSON_A].exemplars == 9,
        "the new exemplar count",
    )
    await hass.async_block_till_done()
    assert state(hass, "image.visitor_3_picture").state == shown
    assert (await client.get(PROXY)).status == HTTPStatus.OK
    assert server.requests.count(("GET", first_url)) == 1

    # A better crop: a new version, fetched once.
    server.thumbnail_crop = (2, 0)
    second_url = f"{THUMBNAIL}?v=0000000b"
    await publish(
        hass,
        f"{BASE}/person/{PERSON_A}/state",
        person_payload(thumbnail_url=second_url, exemplars=9, last_seen=RECENT + 400.0),
        retain=True,
    )
    await wait_for(
        hass, lambda: state(hass, "image.visitor_3_picture").state != shown, "the new picture"
    )
    response = await client.get(PROXY)
    assert await response.read() == cuhk03_image(2, 0).read_bytes()
    assert server.requests.count(("GET", second_url)) == 1
