"""The dashboard cards' websocket API: people, visits and their live updates.

Each test runs the integration against a real broker and the in-memory server of conftest, and
talks to Home Assistant over its real websocket, as the cards in a browser do.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from .conftest import (
    BASE,
    PERSON_A,
    PERSON_B,
    FakeServer,
    cuhk03_image,
    decision_payload,
    person_payload,
    publish,
    risk_payload,
    visit_event_payload,
    wait_for,
)

NOW = time.time()


def server_visit(visit_id: str, started_at: float, **overrides: Any) -> dict[str, Any]:
    """A visit as `GET /api/visits` answers it (docs/contract.md)."""
    visit: dict[str, Any] = {
        "visit_id": visit_id,
        "person_id": PERSON_A,
        "label": "Visitor 3",
        "known": False,
        "is_new_identity": True,
        "started_at": started_at,
        "last_seen": started_at + 90,
        "ended_at": started_at + 150,
        "cameras": ["front", "back"],
        "first_camera": "front",
        "last_camera": "back",
        "sightings": 12,
        "snapshot_url": f"/api/visits/{visit_id}/snapshot.jpg",
        "thumbnail_url": f"/api/persons/{PERSON_A}/thumbnail.jpg?v=5c0e91d2",
        "risk": None,
    }
    visit.update(overrides)
    return visit


async def test_people_lists_everyone_with_signed_pictures(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_ws_client: WebSocketGenerator,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """A person shows with status, where they are, and a picture the browser can load."""
    server.persons[PERSON_B] = person_payload(
        PERSON_B, label="Alice", known=True, present=False, camera=None
    )
    await server.publish_person(PERSON_B)
    coordinator = loaded_entry.runtime_data.coordinator
    await wait_for(hass, lambda: PERSON_B in coordinator.persons, "Alice's state")

    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "smart_reid/people"})
    answer = await client.receive_json()
    assert answer["success"], answer
    result = answer["result"]
    assert result["servers"] == [
        {
            "entry_id": loaded_entry.entry_id,
            "title": "Smart ReID",
            "online": True,
            "cameras": ["back", "front"],
        }
    ]
    people = {p["person_id"]: p for p in result["people"]}
    # Present people first.
    assert [p["person_id"] for p in result["people"]] == [PERSON_A, PERSON_B]
    assert people[PERSON_A]["status"] == "unknown"
    assert people[PERSON_A]["present"] is True
    assert people[PERSON_A]["camera"] == "front"
    assert people[PERSON_B]["status"] == "household"
    assert people[PERSON_B]["label"] == "Alice"
    url = people[PERSON_A]["thumbnail_url"]
    assert url.startswith(f"/api/smart_reid/{loaded_entry.entry_id}/persons/{PERSON_A}/")
    assert server.url not in url and "authSig=" in url
    picture = await (await hass_client_no_auth()).get(url)
    assert picture.status == HTTPStatus.OK
    assert await picture.read() == cuhk03_image(1, 0).read_bytes()


async def test_people_leaves_out_strangers_not_seen_recently(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """A busy street's passers-by of last week stay out unless the card asks for them."""
    old = "c2d3e4f5a6b7"
    server.persons[old] = person_payload(
        old, label="Visitor 9", present=False, camera=None, last_seen=NOW - 3 * 86400
    )
    await server.publish_person(old)
    coordinator = loaded_entry.runtime_data.coordinator
    await wait_for(hass, lambda: old in coordinator.persons, "the old stranger's state")
    client = await hass_ws_client(hass)
    for hours, expected in ((None, [PERSON_A]), (96, [PERSON_A, old])):
        await client.send_json_auto_id(
            {"type": "smart_reid/people"} | ({"hours": hours} if hours else {})
        )
        answer = await client.receive_json()
        assert [p["person_id"] for p in answer["result"]["people"]] == expected, hours


async def test_people_uncertain_badge(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """A present person last matched only `uncertain` is "probably" that person."""
    coordinator = loaded_entry.runtime_data.coordinator
    await publish(
        hass,
        f"{BASE}/events/sighting",
        decision_payload(new_person=False, match="uncertain", similarity=0.48),
    )
    await wait_for(hass, lambda: "front" in coordinator.last_decisions, "the sighting")
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "smart_reid/people"})
    person = (await client.receive_json())["result"]["people"][0]
    assert person["uncertain"] == {"similarity": 0.48, "camera": "front"}


async def test_people_subscription_follows_a_rename(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """Renaming through the action reaches a subscribed card without it asking again."""
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "smart_reid/people/subscribe"})
    assert (await client.receive_json())["success"]
    first = await client.receive_json()
    assert first["type"] == "event"
    assert first["event"]["people"][0]["label"] == "Visitor 3"

    await hass.services.async_call(
        "smart_reid", "rename_person", {"person_id": PERSON_A, "name": "Bob"}, blocking=True
    )
    pushed = await client.receive_json()
    assert pushed["event"]["people"][0]["label"] == "Bob"
    assert pushed["event"]["people"][0]["status"] == "known"

    await client.send_json_auto_id({"type": "unsubscribe_events", "subscription": first["id"]})
    assert (await client.receive_json())["success"]


async def test_visits_from_the_server_with_risk(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_ws_client: WebSocketGenerator,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """`smart_reid/visits` asks the server for the period and signs the pictures."""
    risk = risk_payload(level="medium", score=45, summary="A stranger walked front -> back.")
    server.visits = [
        server_visit("0a1b2c3d4e5f", NOW - 7200),
        server_visit("9c8b7a6d5e4f", NOW - 600, risk=risk),
        server_visit("111111111111", NOW - 40 * 3600),  # before the period
    ]
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "smart_reid/visits", "start": NOW - 86400})
    answer = await client.receive_json()
    assert answer["success"], answer
    visits = answer["result"]["visits"]
    assert [v["visit_id"] for v in visits] == ["9c8b7a6d5e4f", "0a1b2c3d4e5f"]
    newest = visits[0]
    assert newest["risk"]["level"] == "medium"
    assert newest["risk"]["summary"] == "A stranger walked front -> back."
    assert newest["risk"]["reasons"][0]["code"] == "identity"
    assert [step["camera"] for step in newest["path"]] == ["front", "back"]
    assert newest["path"][0]["at"] == NOW - 600
    assert "authSig=" in newest["snapshot_url"] and server.url not in newest["snapshot_url"]
    picture = await (await hass_client_no_auth()).get(newest["snapshot_url"])
    assert picture.status == HTTPStatus.OK
    # The calendar entity asks for its own periods too: find the card's request.
    queries = [q for _, q in server.requests if q.startswith("/api/visits?")]
    assert any(f"start={NOW - 86400:.3f}" in q and "limit=50" in q for q in queries), queries


async def test_live_visits_and_fallback_without_the_server_route(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """A visit that starts, moves on and is assessed reaches a subscribed card at once; a
    server without `GET /api/visits` still gets the visits Home Assistant saw."""
    server.visits = None
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "smart_reid/visits/subscribe"})
    assert (await client.receive_json())["success"]

    started = time.time()
    await publish(hass, f"{BASE}/events/new_person", decision_payload(timestamp=started))
    first = (await client.receive_json())["event"]["visit"]
    assert first["visit_id"] == "9c8b7a6d5e4f"
    assert first["path"] == [{"camera": "front", "at": started}]
    assert first["ended_at"] is None

    await publish(
        hass,
        f"{BASE}/events/visit_updated",
        visit_event_payload(started_at=started, last_seen=started + 30),
    )
    moved = (await client.receive_json())["event"]["visit"]
    assert moved["path"] == [
        {"camera": "front", "at": started},
        {"camera": "back", "at": started + 30},
    ]
    await publish(hass, f"{BASE}/events/risk_assessed", risk_payload(level="high", score=70))
    assessed = (await client.receive_json())["event"]["visit"]
    assert assessed["risk"]["level"] == "high"
    assert assessed["path"] == moved["path"]

    await client.send_json_auto_id({"type": "smart_reid/visits", "min_level": "medium"})
    answer = await client.receive_json()
    assert answer["success"], answer
    assert [v["visit_id"] for v in answer["result"]["visits"]] == ["9c8b7a6d5e4f"]
    await client.send_json_auto_id({"type": "smart_reid/visits", "min_level": "critical"})
    assert (await client.receive_json())["result"]["visits"] == []

    # "Visits today" on the people card counts it.
    await client.send_json_auto_id({"type": "smart_reid/people"})
    people = (await client.receive_json())["result"]["people"]
    assert people[0]["visits_today"] == 1

    # A rename reaches the timeline, and later answers carry the new name.
    await hass.services.async_call(
        "smart_reid", "rename_person", {"person_id": PERSON_A, "name": "Bob"}, blocking=True
    )
    assert (await client.receive_json())["event"] == {"labels": {PERSON_A: "Bob"}}
    await client.send_json_auto_id({"type": "smart_reid/visits"})
    assert (await client.receive_json())["result"]["visits"][0]["label"] == "Bob"


async def test_errors_say_what_to_do(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_ws_client: WebSocketGenerator,
) -> None:
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "smart_reid/people", "entry_id": "nope"})
    answer = await client.receive_json()
    assert answer["error"]["code"] == "not_loaded"
    assert "not set up" in answer["error"]["message"]

    await client.send_json_auto_id(
        {"type": "smart_reid/visits", "start": NOW - 40 * 86400, "end": NOW}
    )
    answer = await client.receive_json()
    assert answer["error"]["code"] == "invalid_period"

    await server.stop()
    await client.send_json_auto_id({"type": "smart_reid/visits"})
    answer = await client.receive_json()
    assert answer["error"]["code"] == "server_unreachable"
    assert "check that it runs" in answer["error"]["message"]


async def test_users_who_are_not_administrators_can_look(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
) -> None:
    client = await hass_ws_client(hass, hass_read_only_access_token)
    await client.send_json_auto_id({"type": "smart_reid/people"})
    answer = await client.receive_json()
    assert answer["success"]
    assert answer["result"]["people"][0]["person_id"] == PERSON_A


async def test_nothing_is_served_without_an_entry(
    hass: HomeAssistant, mqtt_entry: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    from homeassistant.setup import async_setup_component

    assert await async_setup_component(hass, "smart_reid", {})
    client = await hass_ws_client(hass)
    for command in ("smart_reid/people/subscribe", "smart_reid/visits/subscribe"):
        await client.send_json_auto_id({"type": command})
        answer = await client.receive_json()
        assert answer["error"]["code"] == "not_loaded"
        assert "Settings > Devices & services" in answer["error"]["message"]


async def test_visit_filters_merges_and_odd_answers(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """Filters by person and camera, a merge withdrawing a duplicate visit, and a server answer
    with entries that are not visits (skipped, not an error)."""
    server.visits = None
    entry_id = loaded_entry.entry_id
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "smart_reid/visits/subscribe", "entry_id": entry_id})
    assert (await client.receive_json())["success"]
    now = time.time()
    await publish(hass, f"{BASE}/events/new_person", decision_payload(timestamp=now - 5))
    await publish(
        hass,
        f"{BASE}/events/new_person",
        decision_payload(
            timestamp=now,
            person_id=PERSON_B,
            camera="back",
            visit_id="0a1b2c3d4e5f",
            visit_cameras=["back"],
        ),
    )
    for _ in range(2):
        assert "visit" in (await client.receive_json())["event"]

    for query, expected in (
        ({"person_id": PERSON_B}, ["0a1b2c3d4e5f"]),
        ({"camera": "front"}, ["9c8b7a6d5e4f"]),
        ({"start": now + 60, "end": now + 120}, ["0a1b2c3d4e5f", "9c8b7a6d5e4f"]),  # ongoing
    ):
        answer = await _ask(client, {"type": "smart_reid/visits", **query})
        assert [v["visit_id"] for v in answer["result"]["visits"]] == expected, query

    await publish(
        hass,
        f"{BASE}/events/merged",
        {
            "person_id": PERSON_A,
            "merged_person_id": PERSON_B,
            "visit_id": "9c8b7a6d5e4f",
            "merged_visit_id": "0a1b2c3d4e5f",
            "similarity": 0.62,
            "camera": "back",
            "timestamp": now,
            "reason": "same_person",
            "label": "Visitor 3",
            "known": False,
        },
    )
    event = (await client.receive_json())["event"]
    while "merged" not in event:  # the merge also moves people: label updates may come first
        event = (await client.receive_json())["event"]
    assert event["merged"] == {
        "person_id": PERSON_A,
        "merged_person_id": PERSON_B,
        "merged_visit_id": "0a1b2c3d4e5f",
        "visit_id": "9c8b7a6d5e4f",
        "reason": "same_person",
        "label": "Visitor 3",
        "known": False,
    }

    server.visits = [{"no": "visit id"}, "not an object", server_visit("9c8b7a6d5e4f", now - 60)]
    answer = await _ask(client, {"type": "smart_reid/visits", "entry_id": entry_id})
    assert [v["visit_id"] for v in answer["result"]["visits"]] == ["9c8b7a6d5e4f"]

    answer = await _ask(client, {"type": "smart_reid/visits", "entry_id": "other"})
    assert answer["error"]["code"] == "not_loaded"


async def _ask(client: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a command and return its result, passing over subscription events on the way."""
    await client.send_json_auto_id(payload)
    while True:
        message: dict[str, Any] = await client.receive_json()
        if message["type"] == "result":
            return message


async def test_unsubscribing_stops_pending_pushes(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: FakeServer,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """A card that goes away right after a change gets nothing more, and leaves no timer."""
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "smart_reid/people/subscribe"})
    subscription = (await client.receive_json())["id"]
    await client.receive_json()  # the people now
    server.persons[PERSON_A]["present"] = False
    await server.publish_person(PERSON_A)
    coordinator = loaded_entry.runtime_data.coordinator
    await wait_for(hass, lambda: not coordinator.persons[PERSON_A].present, "the change")
    await client.send_json_auto_id({"type": "unsubscribe_events", "subscription": subscription})
    assert (await client.receive_json())["success"]
