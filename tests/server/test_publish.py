"""The MQTT publisher against a real Mosquitto: what Home Assistant would see on the wire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from smart_reid_server.publish import Publisher

pytestmark = pytest.mark.timeout(60)


def _publisher(port: int, **cfg: Any) -> Publisher:
    return Publisher(
        {"host": "127.0.0.1", "port": port, "base_topic": "sr_test", **cfg},
        client_id="sr-test-publisher",
    )


async def _until(condition: Callable[[], bool], within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_status_info_and_states_are_retained_for_late_subscribers(
    mosquitto_broker: tuple[str, int], mqtt_collector: Callable[..., Any]
) -> None:
    host, port = mosquitto_broker
    pub = _publisher(port)
    pub.set_retained("info", {"contract": 1, "server_id": "abc"})
    pub.start(asyncio.get_running_loop())
    await _until(lambda: pub.connected)
    pub.set_retained("person/p1/state", {"person_id": "p1", "label": "Visitor 1"})
    pub.set_retained("state", {"people_present": 1})
    late = mqtt_collector(host, port, "sr_test/#")
    status = await late.await_for("sr_test/status")
    assert status[0].payload == b"online" and status[0].retain
    assert (await late.await_for("sr_test/info"))[0].json()["server_id"] == "abc"
    person = (await late.await_for("sr_test/person/p1/state"))[0]
    assert person.retain and person.json()["label"] == "Visitor 1"
    await pub.stop()
    offline = await late.await_for("sr_test/status", lambda m: m.payload == b"offline")
    assert offline[0].payload == b"offline"


async def test_forgetting_clears_the_retained_person_state(
    mosquitto_broker: tuple[str, int], mqtt_collector: Callable[..., Any]
) -> None:
    host, port = mosquitto_broker
    pub = _publisher(port)
    pub.start(asyncio.get_running_loop())
    await _until(lambda: pub.connected)
    pub.set_retained("person/p1/state", {"person_id": "p1"})
    pub.set_retained("person/p2/state", {"person_id": "p2"})
    watcher = mqtt_collector(host, port, "sr_test/person/#")
    await watcher.await_for("sr_test/person/+/state", count=2)
    pub.set_retained("person/p1/state", None)
    cleared = await watcher.await_for("sr_test/person/p1/state", lambda m: m.payload == b"")
    assert cleared[0].payload == b""
    # A subscriber arriving afterwards gets only the person that still exists.
    late = mqtt_collector(host, port, "sr_test/person/#")
    await late.await_for("sr_test/person/p2/state")
    await asyncio.sleep(0.3)
    assert [m.topic for m in late.on("sr_test/person/#")] == ["sr_test/person/p2/state"]
    await pub.stop()


async def test_events_sent_while_the_broker_is_down_arrive_in_order_after_it_starts(
    broker_factory: Callable[..., Any], mqtt_collector: Callable[..., Any]
) -> None:
    broker = broker_factory()
    pub = _publisher(broker.port)
    pub.set_retained("info", {"server_id": "abc"})
    pub.start(asyncio.get_running_loop())
    await asyncio.sleep(0.3)
    assert not pub.connected
    assert pub.health_reasons() == [f"mqtt: broker 127.0.0.1:{broker.port} unreachable"]
    for n in range(3):
        pub.sighting({"person_id": f"p{n}", "new_person": True, "n": n})
    pub.event("visit_ended", {"reason": "ended", "n": 99})
    assert pub.buffered == 7
    broker.start()
    watcher = mqtt_collector(broker.host, broker.port, "sr_test/#")
    new = await watcher.await_for("sr_test/events/new_person", count=3, within=20)
    assert [m.json()["n"] for m in new] == [0, 1, 2]
    assert (await watcher.await_for("sr_test/events/visit_ended"))[0].json()["n"] == 99
    assert len(watcher.on("sr_test/events/sighting")) == 3
    await _until(lambda: pub.connected and pub.buffered == 0)
    assert pub.health_reasons() == []
    await pub.stop()


async def test_reconnect_republishes_retained_state_to_a_fresh_broker(
    broker_factory: Callable[..., Any], mqtt_collector: Callable[..., Any]
) -> None:
    broker = broker_factory()
    broker.start()
    pub = _publisher(broker.port)
    pub.start(asyncio.get_running_loop())
    await _until(lambda: pub.connected)
    pub.set_retained("camera/front/state", {"camera": "front", "sightings_today": 3})
    broker.stop()  # no persistence: the broker forgets every retained message
    await _until(lambda: not pub.connected)
    pub.event("new_person", {"person_id": "p9"})
    broker.start()
    await _until(lambda: pub.connected, within=20)
    late = mqtt_collector(broker.host, broker.port, "sr_test/#")
    assert (await late.await_for("sr_test/camera/front/state"))[0].json()["sightings_today"] == 3
    assert (await late.await_for("sr_test/status"))[0].payload == b"online"
    assert pub.connects == 2
    await pub.stop()


async def test_full_buffer_gives_up_sightings_before_notifications(
    broker_factory: Callable[..., Any], mqtt_collector: Callable[..., Any]
) -> None:
    broker = broker_factory()
    pub = _publisher(broker.port, buffer_size=10)
    pub.start(asyncio.get_running_loop())
    for n in range(8):
        pub.sighting({"person_id": "p", "new_person": n % 4 == 0, "n": n})
    # 8 sightings + 2 new_person = 10 messages fit; each later one pushes out a sighting.
    pub.event("visit_updated", {"reason": "camera_added", "n": 100})
    pub.event("visit_ended", {"reason": "ended", "n": 101})
    assert pub.buffered == 10
    assert pub.dropped_sightings == 2 and pub.dropped_events == 0
    broker.start()
    watcher = mqtt_collector(broker.host, broker.port, "sr_test/events/#")
    new = await watcher.await_for("sr_test/events/new_person", count=2)
    assert [m.json()["n"] for m in new] == [0, 4]
    await watcher.await_for("sr_test/events/visit_ended")
    sightings = await watcher.await_for("sr_test/events/sighting", count=6)
    assert [m.json()["n"] for m in sightings] == [2, 3, 4, 5, 6, 7]
    assert pub.stats()["dropped_sightings"] == 2
    await pub.stop()


async def test_ingest_subscription_delivers_on_the_event_loop_and_survives_reconnect(
    broker_factory: Callable[..., Any],
) -> None:
    broker = broker_factory()
    broker.start()
    loop = asyncio.get_running_loop()
    got: list[tuple[str, bytes]] = []
    threads: set[bool] = set()

    def handler(topic: str, payload: bytes) -> None:
        threads.add(asyncio.get_running_loop() is loop)
        got.append((topic, payload))

    pub = _publisher(broker.port)
    pub.subscribe("sr_test/ingest/+", handler)
    pub.start(loop)
    await _until(lambda: pub.connected)
    await asyncio.sleep(0.2)
    sender = _publisher(broker.port, client_id="sender")
    sender._client_id = "sr-test-sender"
    sender.start(loop)
    await _until(lambda: sender.connected)
    sender.event("ignored", {})  # goes to events/, not ingest/
    assert sender._client is not None
    sender._client.publish("sr_test/ingest/front", b"\xff\xd8raw", qos=1)
    await _until(lambda: len(got) == 1)
    broker.stop()
    await _until(lambda: not pub.connected)
    broker.start()
    await _until(lambda: pub.connected and sender.connected, within=20)
    await asyncio.sleep(0.2)
    sender._client.publish("sr_test/ingest/back", json.dumps({"image": ""}).encode(), qos=1)
    await _until(lambda: len(got) == 2)
    assert [t for t, _ in got] == ["sr_test/ingest/front", "sr_test/ingest/back"]
    assert threads == {True}
    await sender.stop()
    await pub.stop()
