"""Video streams in a cluster: decoded by the worker that holds the camera, never by the matcher.

Real engines: a private redis-server per test (``cluster_support.RedisServer``), the real
models, and a real video stream (vtest.avi played as a looping file at its own speed, the way
test_stream.py makes a camera without a network).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from cluster_support import (
    RedisServer,
    cluster_settings,
    matcher_of,
    start_worker_process,
    stop_processes,
    two_workers,
    wait_until,
)
from cluster_support import redis_server as redis_server
from server_support import running_app
from smart_reid_server.cluster.feeds import CameraFeed, stream_configs, streams_digest
from smart_reid_server.cluster.transport import Keys, text
from smart_reid_server.cluster.worker import ClusterError, ClusterWorker
from smart_reid_server.types import Frame


def stream_config(video_dir: Path) -> dict[str, Any]:
    """Camera "a" has a video stream; "b" only takes uploads."""
    return {
        "camera": "a",
        "url": str(video_dir / "vtest.avi"),
        "loop": True,
        "sample_fps": 2.0,
        "motion_gate": False,
    }


def sources_for(video_dir: Path) -> dict[str, Any]:
    return {"streams": [stream_config(video_dir)]}


def stream_status(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in status.get("sources", []) if s["source"] == "stream:a"), None)


async def test_stream_runs_on_the_owner_and_moves_on_hand_back(
    tmp_path: Path, models_dir: Path, video_dir: Path, redis_server: RedisServer
) -> None:
    sources = sources_for(video_dir)
    settings = cluster_settings(
        tmp_path, models_dir, "matcher", redis_server, "matcher", sources=sources
    )
    async with running_app(settings) as app:
        matcher = matcher_of(app)
        # The matcher declares the camera but never opens its stream.
        assert "a" in app.cameras.names
        assert app.sources is not None and app.sources.status() == []
        async with two_workers(app, tmp_path, models_dir, redis_server, sources=sources) as workers:
            owner = next(w for w in workers if "a" in w.cameras)
            other = next(w for w in workers if w is not owner)
            assert stream_status(await other.status()) is None

            async def decided(count: int) -> bool:
                return matcher.counters["observations"] >= count and "a" in matcher.hwm

            await wait_until(lambda: decided(3), 60, "stream frames decided by the matcher")
            running = stream_status(await owner.status())
            assert running is not None and running["state"] == "streaming"
            assert running["written"] >= 3
            # The owner's reader took its own frames back without decoding them again.
            assert owner.stats.local_pictures >= 3
            assert app.sources.status() == []  # still nothing opened on the matcher

            # Hand the camera back (the owner stops): the other worker starts the stream.
            before = matcher.counters["observations"]
            await owner.stop()
            workers.remove(owner)

            async def moved() -> bool:
                status = stream_status(await other.status())
                return status is not None and status["written"] >= 2

            await wait_until(moved, 30, "the other worker to run the stream")
            await wait_until(lambda: decided(before + 2), 60, "decisions to continue")
            assert matcher.counters["moved"] >= 1
            assert not any("sources.streams" in r for r in matcher.health_reasons())
            # A worker started with other stream settings is named in the matcher's health.
            matcher.workers.append({"worker_id": "odd", "streams_settings": "0123456789ab"})
            assert any(
                "worker odd has other sources.streams" in r for r in matcher.health_reasons()
            )


async def test_a_worker_that_lost_the_lease_cannot_append(
    redis_server: RedisServer, video_dir: Path
) -> None:
    """Fencing: frames from a worker whose lease moved on never reach the camera's stream."""
    keys = Keys("fence")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set(keys.owner("a"), "someone-else")
        feed = CameraFeed(stream_config(video_dir), client, keys, "me", backlog=10)
        feed._sender = asyncio.get_running_loop().create_task(feed._send_all())
        import numpy as np

        picture = np.zeros((64, 64, 3), np.uint8)
        for n in range(3):
            feed.offer(Frame("a", picture, 1.0 + n, frame_id=f"a-{n}"))

        async def refused() -> bool:
            return feed.fenced == 3

        await wait_until(refused, 10, "three fenced frames")
        assert await client.exists(keys.frames("a")) == 0
        await client.set(keys.owner("a"), "me")
        feed.offer(Frame("a", picture, 9.0, frame_id="a-9"))

        async def written() -> bool:
            return feed.written == 1

        await wait_until(written, 10, "the frame appended once the lease is ours")
        entries: Any = await client.xrange(keys.frames("a"))
        assert len(entries) == 1
        picture_back = await feed.take_picture(text(entries[0][0]))
        assert picture_back is picture
        await feed.stop()
    finally:
        await client.aclose()


def test_stream_settings_are_checked() -> None:
    one = {"camera": "a", "url": "rtsp://cam/1"}
    assert stream_configs({"sources": {"streams": [one]}}) == {"a": one}
    assert stream_configs({}) == {}
    with pytest.raises(ValueError, match="camera 'a' twice"):
        stream_configs({"sources": {"streams": [one, {**one, "url": "rtsp://cam/2"}]}})
    digest = streams_digest({"a": one})
    assert digest == streams_digest({"a": dict(one)})
    assert digest != streams_digest({"a": {**one, "password": "other"}})


async def test_worker_refuses_two_streams_for_one_camera(
    tmp_path: Path, models_dir: Path, video_dir: Path, redis_server: RedisServer
) -> None:
    twice = {"streams": [stream_config(video_dir), stream_config(video_dir)]}
    settings = cluster_settings(tmp_path, models_dir, "w", redis_server, "worker", sources=twice)
    with pytest.raises(ClusterError, match="camera 'a' twice"):
        ClusterWorker(settings, object(), object())  # type: ignore[arg-type]


# -- kill -9 the worker that decodes the stream -----------------------------------------------


async def test_killed_worker_stream_restarts_on_the_survivor(
    tmp_path: Path, models_dir: Path, video_dir: Path, redis_server: RedisServer
) -> None:
    sources = sources_for(video_dir)
    settings = cluster_settings(
        tmp_path, models_dir, "matcher", redis_server, "matcher", sources=sources
    )
    procs = [
        start_worker_process(tmp_path, models_dir, redis_server, f"p{i}", sources) for i in range(2)
    ]
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running_app(settings) as app:
            matcher = matcher_of(app)

            async def owner_of_a() -> str | None:
                value = await client.get("t:owner:a")
                return text(value) if value else None

            async def runners() -> list[str]:
                """Workers that report the stream of camera "a" running."""
                topology = await matcher.topology()
                return [
                    w["worker_id"]
                    for w in topology
                    if (s := stream_status(w)) is not None and s["state"] == "streaming"
                ]

            async def one_runner() -> bool:
                found = await runners()
                return len(found) == 1 and found[0] == await owner_of_a()

            await wait_until(one_runner, 120, "exactly one worker running the stream")

            async def decided(count: int) -> bool:
                return matcher.counters["observations"] >= count and "a" in matcher.hwm

            await wait_until(lambda: decided(3), 60, "stream frames decided")
            victim_token = await owner_of_a()
            assert victim_token is not None
            victim = next(p for i, p in enumerate(procs) if victim_token.startswith(f"p{i}-"))
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            killed = time.monotonic()
            decided_at_kill = matcher.counters["observations"]

            async def survivor_streams() -> bool:
                owner = await owner_of_a()
                return owner not in (None, victim_token) and await runners() == [owner]

            lease_s = 1.5
            # Lease expiry, the survivor's next lease round, the stream opening: well within
            # a few lease periods (the status is published once per lease_s / 3).
            await wait_until(survivor_streams, lease_s * 4 + 5, "the survivor to run the stream")
            restarted_s = time.monotonic() - killed
            await wait_until(lambda: decided(decided_at_kill + 3), 60, "decisions to continue")
            assert matcher.counters["moved"] >= 1
            # The matcher never opened the stream: it has no source of its own, and says the
            # streams run on the workers.
            assert app.sources is not None and app.sources.status() == []
            assert all("sources.streams" not in r for r in matcher.health_reasons())
            print(f"stream restarted on the survivor {restarted_s:.2f} s after kill -9")
    finally:
        await client.aclose()
        stop_processes(procs)
