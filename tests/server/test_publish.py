"""The MQTT publisher against a real Mosquitto: what Home Assistant would see on the wire."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from smart_reid_server.serve.app import SmartReidApp
from smart_reid_server.serve.publish import Publisher

from tests.server.server_support import CuhkPicker, cuhk, running_app, settings_for, upload_ok

pytestmark = pytest.mark.timeout(120)


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
    early = mqtt_collector(host, port, "sr_test/#")
    pub = _publisher(port)
    pub.set_retained("info", {"contract": 1, "server_id": "abc"})
    pub.set_ready()
    pub.start(asyncio.get_running_loop())
    await _until(lambda: pub.connected)
    pub.set_retained("person/p1/state", {"person_id": "p1", "label": "Visitor 1"})
    pub.set_retained("state", {"people_present": 1})
    await early.await_for("sr_test/state")  # on the broker now
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
    pub.set_ready()
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


async def test_online_waits_until_the_server_says_it_is_ready(
    broker_factory: Callable[..., Any], mqtt_collector: Callable[..., Any]
) -> None:
    broker = broker_factory()
    broker.start()
    watcher = mqtt_collector(broker.host, broker.port, "sr_test/#")
    pub = _publisher(broker.port)
    pub.set_retained("camera/front/state", {"camera": "front"})
    pub.start(asyncio.get_running_loop())
    await _until(lambda: pub.connected)
    await watcher.await_for("sr_test/camera/front/state")  # connected and publishing states...
    await asyncio.sleep(0.3)
    assert not watcher.on("sr_test/status")  # ...but not claiming to be online yet
    pub.set_retained("info", {"server_id": "abc", "http_url": "http://192.0.2.2:8756"})
    pub.set_ready()
    online = await watcher.await_for("sr_test/status", lambda m: m.payload == b"online")
    info = watcher.on("sr_test/info")
    assert info and info[0].at <= online[0].at  # the final info is there when online arrives
    # After ready, a reconnect announces online again by itself.
    broker.stop()
    await _until(lambda: not pub.connected)
    broker.start()
    late = mqtt_collector(broker.host, broker.port, "sr_test/#")
    assert (await late.await_for("sr_test/status", within=20))[0].payload == b"online"
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
    await _until(lambda: pub.subscribed)
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
    await _until(lambda: pub.subscribed and sender.connected, within=20)
    sender._client.publish("sr_test/ingest/back", json.dumps({"image": ""}).encode(), qos=1)
    await _until(lambda: len(got) == 2)
    assert [t for t, _ in got] == ["sr_test/ingest/front", "sr_test/ingest/back"]
    assert threads == {True}
    await sender.stop()
    await pub.stop()


# -- the whole server on a real broker ---------------------------------------------------------


def _app_settings(tmp_path: Path, models_dir: Path, port: int, **extra: Any) -> Any:
    return settings_for(
        tmp_path,
        models_dir,
        mqtt={"enabled": True, "host": "127.0.0.1", "port": port, "base_topic": "sr_app"},
        **extra,
    )


async def test_server_publishes_the_contract_on_mqtt(
    tmp_path: Path,
    models_dir: Path,
    cuhk03_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
) -> None:
    host, port = mosquitto_broker
    watcher = mqtt_collector(host, port, "sr_app/#")
    settings = _app_settings(tmp_path, models_dir, port, visits={"window_s": 2.0})
    async with running_app(settings) as app:
        base = app.http_url()
        await watcher.await_for("sr_app/status", lambda m: m.payload == b"online")
        info = (await watcher.await_for("sr_app/info"))[-1]
        assert info.json()["server_id"] == app.server_id
        assert info.json()["http_url"] == base and info.json()["contract"] == 1
        hub = (await watcher.await_for("sr_app/state"))[-1].json()
        assert hub["people_present"] == 0 and hub["visits_today"] == 0
        await watcher.await_for("sr_app/camera/+/state", count=2)

        picker = CuhkPicker(cuhk03_dir, app.embedder)
        view_a, view_b = picker.same_person(app.threshold + 0.02)
        now = time.time()
        first = (await upload_ok(base, "front", cuhk(cuhk03_dir, view_a), now))["decisions"][0]
        person_id = first["person_id"]
        new = await watcher.await_for("sr_app/events/new_person")
        assert new[0].json() == first  # MQTT and HTTP carry the same Decision
        assert not new[0].retain
        sighting = await watcher.await_for("sr_app/events/sighting")
        assert sighting[0].json()["person_id"] == person_id
        state_topic = f"sr_app/person/{person_id}/state"
        person = (await watcher.await_for(state_topic))[-1]
        assert person.json()["present"] is True and person.json()["named"] is False
        assert person.json()["thumbnail_url"] == first["thumbnail_url"]
        hub = await watcher.await_for("sr_app/state", lambda m: m.json()["visits_today"] == 1)
        assert hub[-1].json()["person_ids_present"] == [person_id]
        front = await watcher.await_for(
            "sr_app/camera/front/state", lambda m: m.json()["people_present"] == 1
        )
        assert front[-1].json()["last_person_id"] == person_id
        # Home Assistant starting now gets all of it as retained messages.
        late = mqtt_collector(host, port, "sr_app/#")
        for topic in ("sr_app/status", "sr_app/info", "sr_app/state", state_topic):
            assert (await late.await_for(topic))[0].retain, topic  # retained come first
        assert (await late.await_for("sr_app/status"))[-1].payload == b"online"
        assert (await late.await_for("sr_app/camera/front/state"))[0].retain
        late.close()

        await upload_ok(base, "back", cuhk(cuhk03_dir, view_b), now + 1)
        updated = await watcher.await_for("sr_app/events/visit_updated")
        event = updated[0].json()
        assert event["reason"] == "camera_added" and event["camera"] == "back"
        assert event["visit"]["cameras"] == ["front", "back"]
        assert len(watcher.on("sr_app/events/new_person")) == 1  # one alert for the visit

        # An operation publishes the changed person state.
        await app.update_person(person_id, "Alice", None)
        renamed = await watcher.await_for(state_topic, lambda m: m.json()["label"] == "Alice")
        assert renamed[-1].json()["named"] is True

        # Nobody seen for the visit window: the visit ends and presence clears.
        ended = await watcher.await_for("sr_app/events/visit_ended", within=10)
        visit = ended[0].json()["visit"]
        assert visit["person_id"] == person_id and visit["ended_at"] is not None
        gone = await watcher.await_for(state_topic, lambda m: m.json()["present"] is False)
        assert gone[-1].json()["camera"] is None
        # The ended visit's annotated snapshot is kept on disk for the notification.
        async with aiohttp.ClientSession() as session:
            for _ in range(50):
                async with session.get(f"{base}{first['snapshot_url']}") as response:
                    if response.status == 200:
                        assert (await response.read())[:2] == b"\xff\xd8"
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("visit snapshot never became available")

        # Forgetting clears the retained person state with an empty payload.
        await app.forget(person_id)
        await watcher.await_for(state_topic, lambda m: m.payload == b"")
    late = mqtt_collector(host, port, "sr_app/#")
    await late.await_for("sr_app/status", lambda m: m.payload == b"offline")
    await asyncio.sleep(0.3)
    assert not late.on(state_topic)  # nothing retained for a forgotten person


async def test_new_person_made_while_the_broker_is_down_arrives_after_it_starts(
    tmp_path: Path,
    models_dir: Path,
    cuhk03_dir: Path,
    broker_factory: Callable[..., Any],
    mqtt_collector: Callable[..., Any],
) -> None:
    broker = broker_factory()
    settings = _app_settings(tmp_path, models_dir, broker.port)
    async with running_app(settings) as app:
        await _until(lambda: "unreachable" in " ".join(app.health()[1]))
        status, reasons = app.health()
        assert status == "degraded"
        assert reasons == [f"mqtt: broker 127.0.0.1:{broker.port} unreachable"]
        decision = (
            await upload_ok(app.http_url(), "front", cuhk(cuhk03_dir, "0009_00"), time.time())
        )["decisions"][0]
        assert app.publisher.buffered >= 2  # sighting + new_person held back
        broker.start()
        watcher = mqtt_collector(broker.host, broker.port, "sr_app/#")
        new = await watcher.await_for("sr_app/events/new_person", within=30)
        assert new[0].json()["person_id"] == decision["person_id"]
        await watcher.await_for(f"sr_app/person/{decision['person_id']}/state")
        assert (await watcher.await_for("sr_app/info"))[-1].json()["server_id"] == app.server_id
        for _ in range(100):
            if app.health()[0] == "ready":
                break
            await asyncio.sleep(0.05)
        assert app.health() == ("ready", [])


async def test_a_persons_state_is_published_before_any_event_naming_them(
    tmp_path: Path,
    models_dir: Path,
    cuhk03_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
) -> None:
    host, port = mosquitto_broker
    watcher = mqtt_collector(host, port, "sr_app/#")
    settings = _app_settings(tmp_path, models_dir, port, visits={"window_s": 1.0})
    async with running_app(settings) as app:
        base = app.http_url()
        online = await watcher.await_for("sr_app/status", lambda m: m.payload == b"online")
        # Home Assistant reads info (with the real HTTP port) before it sees the server online.
        info = watcher.on("sr_app/info")
        assert info and info[-1].json()["http_url"] == base and info[-1].at <= online[0].at
        decision = (await upload_ok(base, "front", cuhk(cuhk03_dir, "0011_00"), time.time()))[
            "decisions"
        ][0]
        assert decision["is_new_identity"] and decision["new_person"]
        person_id = decision["person_id"]
        await watcher.await_for("sr_app/events/new_person")
        await watcher.await_for("sr_app/events/visit_ended", within=10)
    topics = [m.topic for m in watcher.messages]
    state = topics.index(f"sr_app/person/{person_id}/state")
    for event in ("sighting", "new_person", "visit_ended"):
        assert state < topics.index(f"sr_app/events/{event}"), (event, topics)
    # When the visit ends, the person's state says "away" before visit_ended is sent.
    away = [
        i
        for i, m in enumerate(watcher.messages)
        if m.topic == f"sr_app/person/{person_id}/state" and m.json()["present"] is False
    ]
    assert away and away[0] < topics.index("sr_app/events/visit_ended")


async def test_identities_deleted_by_retention_disappear_from_mqtt(
    tmp_path: Path,
    models_dir: Path,
    cuhk03_dir: Path,
    broker_factory: Callable[..., Any],
    mqtt_collector: Callable[..., Any],
) -> None:
    broker = broker_factory()
    broker.start()
    watcher = mqtt_collector(broker.host, broker.port, "sr_app/#")
    settings = _app_settings(tmp_path, models_dir, broker.port, retention_days=1)
    now = [time.time()]
    app = SmartReidApp(settings, clock=lambda: now[0])
    await app.start()
    try:
        assert app.pipeline is not None
        base = app.http_url()
        kept = (await upload_ok(base, "front", cuhk(cuhk03_dir, "0011_00"), now[0]))["decisions"][0]
        await app.update_person(kept["person_id"], None, True)  # known people are never purged
        picker = CuhkPicker(cuhk03_dir, app.embedder)
        stranger = picker.stranger(["0011_00"], below=app.uncertain_threshold - 0.1)
        # Two minutes later: the known person's visit is over, so only the gallery decides.
        now[0] += 120.0
        gone = (await upload_ok(base, "back", cuhk(cuhk03_dir, stranger), now[0]))["decisions"][0]
        gone_id = gone["person_id"]
        assert gone_id != kept["person_id"]
        topic = f"sr_app/person/{gone_id}/state"
        await watcher.await_for(topic)
        assert app.camera_state("back")["last_person_id"] == gone_id

        now[0] += 2 * 86400  # two days later, nobody seen since
        await app.pipeline.expire_now()
        assert await app.pipeline.purge_now() == [gone_id]
        await watcher.await_for(topic, lambda m: m.payload == b"")
        assert app.camera_state("back")["last_person_id"] is None
        assert app.publisher.retained(f"person/{gone_id}/state") is None
        with pytest.raises(KeyError):
            await app.person(gone_id)

        # A broker that lost everything gets the full retained state again: without the
        # deleted person, with the known one.
        broker.stop()
        await _until(lambda: not app.publisher.connected)
        broker.start()
        late = mqtt_collector(broker.host, broker.port, "sr_app/#")
        await late.await_for(f"sr_app/person/{kept['person_id']}/state", within=20)
        await late.await_for("sr_app/status", lambda m: m.payload == b"online")
        await asyncio.sleep(0.3)
        assert not late.on(topic)
    finally:
        await app.stop()


async def test_an_automatic_merge_clears_the_duplicate_then_announces_it(
    tmp_path: Path,
    models_dir: Path,
    cuhk03_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
) -> None:
    """What Home Assistant sees of an automatic merge (``Identities`` decides it; see
    test_tracklets): the duplicate's retained state is cleared, then ``events/merged`` names
    both, and the kept person's state is current. The merge itself is asked of the identity
    thread here, where a track's repair would make it."""
    from smart_reid_server.identity.identities import MergeEvent, ObserveResult
    from smart_reid_server.pipeline import FrameResult
    from smart_reid_server.types import Frame

    _, port = mosquitto_broker
    watcher = mqtt_collector("127.0.0.1", port, "sr_app/#")
    async with running_app(_app_settings(tmp_path, models_dir, port)) as app:
        base = app.http_url()
        now = time.time()
        kept = (await upload_ok(base, "front", cuhk(cuhk03_dir, "0011_00"), now))["decisions"][0]
        picker = CuhkPicker(cuhk03_dir, app.embedder)
        stranger = picker.stranger(["0011_00"], below=app.uncertain_threshold - 0.1)
        # Past the first visit's window, so the gallery decides: a new identity, as a track
        # that looked like nobody would have made.
        dup = (await upload_ok(base, "back", cuhk(cuhk03_dir, stranger), now + 120))["decisions"][0]
        assert dup["person_id"] != kept["person_id"]
        await watcher.await_for(f"sr_app/person/{dup['person_id']}/state")
        frame = Frame("back", np.zeros((8, 8, 3), np.uint8), now + 121)

        def repair(identities: Any) -> Any:
            identities.merge(kept["person_id"], dup["person_id"])
            merge = MergeEvent(
                kept=kept["person_id"],
                dropped=dup["person_id"],
                visit_id=kept["visit_id"],
                dropped_visit_id=dup["visit_id"],
                similarity=0.7,
                camera="back",
                timestamp=now + 121,
            )
            return app._after_observe(identities, ObserveResult([], merges=[merge]), frame)

        assert app.identity_thread is not None
        view = await app.identity_thread.call(repair)
        await app._on_result(FrameResult(frame, [], [], [], [], {}, view))
        (event,) = await watcher.await_for("sr_app/events/merged")
        payload = event.json()
        assert payload["person_id"] == kept["person_id"]
        assert payload["merged_person_id"] == dup["person_id"]
        assert payload["merged_visit_id"] == dup["visit_id"]
        cleared = watcher.on(f"sr_app/person/{dup['person_id']}/state", lambda m: m.payload == b"")
        assert cleared and cleared[0].at <= event.at, "the duplicate is gone before the event"
        assert app.publisher.retained(f"person/{dup['person_id']}/state") is None
        person = await app.person(kept["person_id"])
        assert "back" in person["cameras"]
