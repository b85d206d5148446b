"""Scale-out roles on real engines: Redis Streams between workers and the matcher.

Every test starts its own redis-server (append-only file on) on a free port; models are the
real detector and ReID model; frames are real video (vtest.avi), two cameras cut from two parts
of it, sent as JPEG like a camera would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
from cluster_support import (
    CAMERAS,
    START,
    Clip,
    RedisServer,
    cluster_settings,
    gateway_of,
    matcher_of,
    serve_process,
    start_worker_process,
    stop_processes,
    two_workers,
    wait_until,
)
from cluster_support import clip as clip
from cluster_support import redis_server as redis_server
from conftest import MqttCollector, free_port
from server_support import running_app, settings_for
from smart_reid_server.cluster.messages import (
    FrameMsg,
    MessageError,
    Observation,
    decode_jpeg,
    encode_jpeg,
    entry_key,
)
from smart_reid_server.cluster.worker import ClusterWorker
from smart_reid_server.pipeline import FrameResult
from smart_reid_server.serve.app import SmartReidApp
from smart_reid_server.types import Box, Crop, Decision, Detection, Frame, QualityReport
from smart_reid_server.vision.decode import decode_image


def canon(results: list[tuple[str, list[Decision]]]) -> list[tuple[Any, ...]]:
    """Decisions with person ids replaced by their order of first appearance (ids are random)."""
    ids: dict[str, int] = {}
    out = []
    for frame_id, decisions in results:
        for d in sorted(decisions, key=lambda d: (d.box.x1, d.box.y1)):
            person = ids.setdefault(d.person_id, len(ids))
            box = tuple(round(v) for v in d.box.as_list())
            out.append((frame_id, person, d.new_person, d.is_new_identity, d.match.value, box))
    return out


# -- encoding -----------------------------------------------------------------------------------


def test_observation_round_trip() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (120, 80, 3), dtype=np.uint8)
    # Every flag the tracker may set is on (a flag that did not travel would make the matcher
    # decide differently from one process: `group` once did not).
    flags = {f.name: True for f in dataclasses.fields(Detection) if f.type in (bool, "bool")}
    assert {"weak_link", "group"} <= flags.keys()
    det = Detection(Box(1.5, 2.0, 40.0, 110.0), 0.9, "person", "a:3", **flags)
    crop = Crop(det, image, QualityReport(False, 33.5, ("small",)))
    vectors = rng.standard_normal((1, 256)).astype(np.float32)
    obs = Observation(
        "obs",
        "front",
        "w1-abc",
        seq=7,
        entry="1700000000000-2",
        ref="r1",
        frame_id="f9",
        timestamp=START + 0.25,
        width=640,
        height=480,
        detections=[det],
        crops=[crop],
        vectors=vectors,
        fresh=[False],
        ended=["front:2"],
        frame_jpeg=encode_jpeg(image),
        extra={"frigate_event_id": "x"},
        latency_ms={"detect": 12.5},
    )
    back = Observation.decode(obs.encode())
    assert (back.kind, back.camera, back.owner, back.seq, back.entry, back.ref) == (
        "obs",
        "front",
        "w1-abc",
        7,
        "1700000000000-2",
        "r1",
    )
    assert back.detections == [det] and back.crops[0].detection == det
    assert back.crops[0].quality == crop.quality
    assert back.crops[0].image.shape == image.shape
    np.testing.assert_array_equal(back.vectors, vectors)
    assert back.fresh == [False] and back.extra == {"frigate_event_id": "x"}
    assert back.ended == ["front:2"]
    assert decode_jpeg(back.frame_jpeg).shape == image.shape
    assert back.latency_ms == {"detect": 12.5}
    # A notice carries no pictures; an unknown version is refused with a clear message.
    end = Observation.decode(Observation("end", "front", "w1", ended=["front:1"]).encode())
    assert end.ended == ["front:1"] and end.fresh is None and len(end.crops) == 0
    data = bytearray(obs.encode())
    data[3] = 99
    with pytest.raises(MessageError, match="same Smart ReID version"):
        Observation.decode(bytes(data))
    frame = FrameMsg("front", START, b"jpeg", "f1", "mqtt", [det], {"k": 1}, ref="r")
    again = FrameMsg.decode(frame.encode())
    assert again.detections == [det] and again.image == b"jpeg" and again.ref == "r"
    assert entry_key("1700000000000-10") > entry_key("1700000000000-9")


def test_cluster_settings_are_checked(tmp_path: Path, models_dir: Path) -> None:
    from smart_reid_server.config import ConfigError

    with pytest.raises(ConfigError, match=r"cluster\.role"):
        settings_for(tmp_path, models_dir, cluster={"role": "boss"})
    with pytest.raises(ConfigError, match=r"cluster\.redis_url"):
        settings_for(tmp_path, models_dir, cluster={"redis_url": "http://x"})
    assert settings_for(tmp_path, models_dir).section("cluster")["role"] == "all"


async def test_worker_without_redis_says_what_to_do(tmp_path: Path, models_dir: Path) -> None:
    from smart_reid_server.cluster.worker import ClusterError

    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(tmp_path, models_dir, cluster={"role": "worker", "redis_url": url})
    worker = ClusterWorker(settings, detector=object(), embedder=object())  # type: ignore[arg-type]
    with pytest.raises(ClusterError, match=r"cannot reach Redis at .*cluster\.redis_url"):
        await worker.start()


async def test_a_worker_keeps_the_tracks_of_a_first_frame_still_being_matched(
    tmp_path: Path, models_dir: Path
) -> None:
    """A recording's first frame is tracked and sent to the matcher; until its answer comes the
    worker's clock is the wall clock (years after the recording): the idle check must not end
    its tracks then. Once frames have been matched and then stop, lost tracks do end."""
    settings = settings_for(tmp_path, models_dir, cluster={"role": "worker"})
    worker = ClusterWorker(settings, detector=object(), embedder=object())  # type: ignore[arg-type]
    ended: list[list[tuple[str, str]]] = []

    async def record(keys: list[tuple[str, str]]) -> None:
        ended.append(keys)

    worker.tracks_ended = record  # type: ignore[method-assign]
    tracks = worker.pipeline.tracks
    assert tracks is not None
    recorded = 1_600_000_000.0  # the footage's own time, long before the wall clock
    tracks.update("front", [Detection(Box(10, 10, 60, 170), 0.9)], recorded)
    assert tracks.active == 1
    await worker.expire_idle_tracks()
    assert ended == [] and tracks.active == 1, "a frame still being matched keeps its track"
    # The frame was matched, and no frame has come for a while since: the track is lost.
    worker.pipeline._frame_clock["front"] = (recorded, time.time() - 60.0)
    await worker.expire_idle_tracks()
    assert [key for keys in ended for key in keys] == [("front", "front:1")]


# -- 2 workers + matcher == one process -----------------------------------------------------------


async def test_two_workers_decide_like_one_process(
    tmp_path: Path,
    models_dir: Path,
    redis_server: RedisServer,
    clip: Clip,
) -> None:
    single = settings_for(
        tmp_path / "single",
        models_dir,
        cameras=list(CAMERAS),
        quality={"min_height_px": 64},
        queue={"per_camera": 1000, "workers": 1},
        http={"enabled": False},
    )
    (tmp_path / "single").mkdir()
    expected: list[tuple[str, list[Decision]]] = []
    async with running_app(single) as app:
        assert app.pipeline is not None and app.cluster is None and app.intake is app.pipeline
        for camera, frame_id, ts, jpeg in clip:
            image = decode_image(jpeg, max_bytes=1 << 24)
            result = await app.pipeline.process(Frame(camera, image, ts, frame_id=frame_id))
            expected.append((frame_id, result.decisions))
    assert sum(len(d) for _, d in expected) > 20, "the clip should show people"

    settings = cluster_settings(tmp_path, models_dir, "matcher", redis_server, "matcher")
    async with (
        running_app(settings) as app,
        two_workers(app, tmp_path, models_dir, redis_server),
    ):
        got: list[tuple[str, list[Decision]]] = []
        gateway = gateway_of(app)
        for camera, frame_id, ts, jpeg in clip:
            result = await gateway.submit_encoded(FrameMsg(camera, ts, jpeg, frame_id))
            got.append((frame_id, result.decisions))
        info = app.info()["cluster"]
        topology = await matcher_of(app).topology()
    assert canon(got) == canon(expected)
    assert info["observations"] == len(clip) and info["redelivered_skipped"] == 0
    assert info["failed"] == 0 and info["hop_ms"]["worker_to_matcher"]["count"] == len(clip)
    assert sorted(cam for w in topology for cam in w["cameras"]) == sorted(CAMERAS)
    assert sum(w["feedback_timeouts"] for w in topology) == 0


# -- kill -9 a worker mid-stream ------------------------------------------------------------------


async def test_killed_worker_cameras_move_without_loss_or_double(
    tmp_path: Path,
    models_dir: Path,
    redis_server: RedisServer,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., MqttCollector],
    clip: Clip,
) -> None:
    host, port = mosquitto_broker
    collector = mqtt_collector(host, port, "cl/#")
    settings = cluster_settings(
        tmp_path,
        models_dir,
        "matcher",
        redis_server,
        "matcher",
        mqtt={"enabled": True, "host": host, "port": port, "base_topic": "cl", "ingest": False},
    )
    procs = [start_worker_process(tmp_path, models_dir, redis_server, f"p{i}") for i in range(2)]
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running_app(settings) as app:

            async def owners() -> dict[str, str]:
                out = {}
                for camera in CAMERAS:
                    value = await client.get(f"t:owner:{camera}")
                    if value:
                        out[camera] = value.decode()
                return out

            async def balanced() -> bool:
                found = await owners()
                return len(found) == 2 and len(set(found.values())) == 2

            await wait_until(balanced, 90, "two worker processes owning one camera each")
            victim_camera = "a"
            victim_token = (await owners())[victim_camera]
            victim = next(p for i, p in enumerate(procs) if victim_token.startswith(f"p{i}-"))
            gateway = gateway_of(app)
            matcher = matcher_of(app)
            futures = [
                gateway.submit_encoded(FrameMsg(camera, ts, jpeg, frame_id))
                for camera, frame_id, ts, jpeg in clip
            ]

            async def some_decided() -> bool:
                done = matcher.hwm.get(victim_camera)
                return matcher.counters["observations"] >= 6 and done is not None

            await wait_until(some_decided, 60, "the first frames decided")
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            results = await asyncio.wait_for(asyncio.gather(*futures), 120)
            assert all(isinstance(r, FrameResult) for r in results)
            survivor = (await owners())[victim_camera]
            assert survivor != victim_token
            # Every frame decided exactly once: no frame lost, none decided twice.
            assert matcher.counters["observations"] == len(clip)
            assert matcher.counters["moved"] >= 1

            async def taken_over() -> bool:
                # The survivor took over frames the victim had read but not finished.
                topology = await matcher.topology()
                return any(w["worker_id"] == survivor and w["claimed"] > 0 for w in topology)

            await wait_until(taken_over, 10, "the survivor to report the frames it took over")
            new_people = sum(d.new_person for r in results for d in r.decisions)
            assert new_people > 0
            events = await collector.await_for("cl/events/new_person", count=new_people, within=10)
            assert len(events) == new_people
            ids = [json.loads(e.payload)["visit_id"] for e in events]
            assert len(ids) == len(set(ids)), "a visit announced twice"
    finally:
        await client.aclose()
        stop_processes(procs)


# -- the broker restarts --------------------------------------------------------------------------


async def test_redis_restart_loses_nothing(
    tmp_path: Path,
    models_dir: Path,
    redis_server: RedisServer,
    clip: Clip,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="smart_reid_server.cluster")
    settings = cluster_settings(tmp_path, models_dir, "matcher", redis_server, "matcher")
    half = len(clip) // 2
    async with running_app(settings) as app:
        assert app.detector is not None and app.embedder is not None
        worker = ClusterWorker(
            cluster_settings(tmp_path, models_dir, "w", redis_server, "worker"),
            app.detector,
            app.embedder,
            token="w",
        )
        await worker.start()
        try:
            gateway = gateway_of(app)
            for camera, frame_id, ts, jpeg in clip[:half]:
                await gateway.submit_encoded(FrameMsg(camera, ts, jpeg, frame_id))
            redis_server.stop()

            async def noticed() -> bool:
                return not matcher_of(app).broker_ok

            await wait_until(noticed, 10, "the matcher to notice Redis is gone")
            redis_server.start()

            async def back() -> bool:
                return matcher_of(app).broker_ok and len(worker.cameras) == 2

            results = []
            for camera, frame_id, ts, jpeg in clip[half:]:
                results.append(
                    await asyncio.wait_for(
                        gateway.submit_encoded(FrameMsg(camera, ts, jpeg, frame_id)), 60
                    )
                )
            await wait_until(back, 30, "the matcher and the worker back on Redis")
            matcher = matcher_of(app)
            assert all(isinstance(r, FrameResult) for r in results)
            assert matcher.counters["observations"] == len(clip)
            assert matcher.counters["failed"] == 0
            # At-least-once: the same observation delivered again is answered, not decided.
            client = aioredis.Redis.from_url(redis_server.url)
            try:
                # The last frame's observation (tracks that ended since are notices after it).
                fields = next(
                    f
                    for _, f in await client.xrevrange("t:observations", count=100)
                    if Observation.decode(f[b"o"], images=False).kind == "obs"
                )
                # (the outage may already have redelivered one whose acknowledgement it cut off)
                before = matcher.counters["redelivered_skipped"]
                await client.xadd("t:observations", fields)

                async def skipped() -> bool:
                    return matcher.counters["redelivered_skipped"] == before + 1

                await wait_until(skipped, 10, "the redelivered observation skipped")
            finally:
                await client.aclose()
            assert matcher.counters["observations"] == len(clip)
            # The operator reads one line per process when Redis goes and one when it is back.
            down = [r for r in caplog.records if "unreachable (" in r.getMessage()]
            up = [r for r in caplog.records if "reachable again after" in r.getMessage()]
            assert down, "the restart went unnoticed: nothing exercised the outage"
            assert len(down) <= 2 and len({r.name for r in down}) == len(down), down
            assert {r.name for r in up} == {r.name for r in down}
        finally:
            await worker.stop()


# -- kill -9 the matcher: the standby takes over ---------------------------------------------------

PG_URL = os.environ.get("SMART_REID_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_reachable() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


async def test_standby_takes_over_from_a_killed_matcher(
    tmp_path: Path,
    models_dir: Path,
    redis_server: RedisServer,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., MqttCollector],
    clip: Clip,
) -> None:
    """Leadership through a PostgreSQL advisory lock (the shared test server; the lock is the
    session's, nothing is left behind). Matcher and standby share the data folder here (SQLite,
    opened by the standby only once it leads); across hosts it is the PostgreSQL store."""
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    from smart_reid_server.cluster.matcher import enqueue
    from smart_reid_server.cluster.transport import Keys

    host, port = mosquitto_broker
    collector = mqtt_collector(host, port, "fo/#")
    prefix = f"fo{os.getpid()}"
    data = tmp_path / "shared"
    data.mkdir()
    config = {
        "data_dir": str(data),
        "log_level": "info",
        "models": {"dir": str(models_dir), "download": False},
        "cameras": list(CAMERAS),
        "quality": {"min_height_px": 64},
        "mqtt": {"host": host, "port": port, "base_topic": "fo", "ingest": False},
        "http": {"port": 0},
        "queue": {"per_camera": 1000, "workers": 1},
        "cluster": {
            "role": "matcher",
            "redis_url": redis_server.url,
            "prefix": prefix,
            "lease_s": 1.5,
            "leader_url": PG_URL,
        },
    }
    leader = serve_process(config, tmp_path / "matcher.yaml", tmp_path / "matcher.log")
    client = aioredis.Redis.from_url(redis_server.url)
    keys = Keys(prefix)
    worker: ClusterWorker | None = None
    standby = SmartReidApp(
        settings_for(data, models_dir, **{k: v for k, v in config.items() if k != "data_dir"})
    )
    starting: asyncio.Task[None] | None = None
    try:
        await collector.await_for("fo/status", lambda m: m.payload == b"online", within=90)
        starting = asyncio.create_task(standby.start())

        async def waiting() -> bool:
            return (
                standby.state == "standby"
                and standby.detector is not None
                and standby.http_port is not None
            )

        await wait_until(waiting, 90, "the second matcher to wait as standby")
        assert standby.health() == ("starting", [standby.health()[1][0]])
        assert "standby" in standby.health()[1][0]
        # Its API says what it is and where to go instead of "try again in a moment".
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{standby.http_port}/api/info") as reply,
        ):
            assert reply.status == 503
            assert "standby matcher" in (await reply.json())["message"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{standby.http_port}/") as reply,
        ):
            assert (
                "standby matcher: takes over when the leading matcher stops" in await reply.text()
            )
        assert standby.detector is not None and standby.embedder is not None
        worker = ClusterWorker(
            cluster_settings(tmp_path, models_dir, "w", redis_server, "worker"),
            standby.detector,
            standby.embedder,
            token="w",
        )
        worker.keys = keys
        await worker.start()
        half = len(clip) // 2
        last: dict[str, str] = {}
        for camera, frame_id, ts, jpeg in clip[:half]:
            last[camera] = await enqueue(
                client, keys, FrameMsg(camera, ts, jpeg, frame_id), backlog=1000
            )

        async def first_half_decided() -> bool:
            hwm = {k.decode(): v.decode() for k, v in (await client.hgetall(keys.hwm)).items()}
            return hwm == last

        await wait_until(first_half_decided, 60, "the leader to decide the first half")
        before = await collector.await_for("fo/events/new_person", within=5)
        people = {json.loads(m.payload)["person_id"] for m in before}
        server_id = (await client.get(f"{prefix}:server_id") or b"").decode()
        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.wait(timeout=10)
        assert starting is not None
        await asyncio.wait_for(starting, 60)
        took_over_s = time.monotonic() - killed
        assert standby.state == "running" and standby.server_id == server_id
        known = {p["person_id"] for p in await standby.persons(None, None, None)}
        assert people <= known, "the standby lost identities"
        for camera, frame_id, ts, jpeg in clip[half:]:
            last[camera] = await enqueue(
                client, keys, FrameMsg(camera, ts, jpeg, frame_id), backlog=1000
            )
        await wait_until(first_half_decided, 60, "the standby to decide the second half")
        assert took_over_s < 30, took_over_s
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait(timeout=10)
        if worker is not None:
            await worker.stop()
        if starting is not None and not starting.done():
            starting.cancel()
        await standby.stop()
        await client.aclose()
