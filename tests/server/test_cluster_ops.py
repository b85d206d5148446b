"""What an operator reads while the cluster runs: one line per Redis outage, lease messages that
say what happened, no password in a log line. Real redis-server on a free port."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from cluster_support import RedisServer, wait_until
from cluster_support import redis_server as redis_server
from redis.exceptions import ConnectionError as RedisConnectionError
from server_support import settings_for
from smart_reid_server.cluster.transport import Outage, redact_redis_url
from smart_reid_server.cluster.worker import ClusterWorker
from smart_reid_server.serve.status_page import _cluster_rows


def test_redis_url_password_is_redacted() -> None:
    assert redact_redis_url("redis://:s3cret@hub:6379/0") == "redis://:**redacted**@hub:6379/0"
    assert redact_redis_url("rediss://app:s3cret@hub/1") == "rediss://app:**redacted**@hub/1"
    assert redact_redis_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_an_outage_is_one_warning_and_one_recovery_line(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.outage")
    outage = Outage("redis://:s3cret@hub:6379/0", log, 1.0)
    caplog.set_level(logging.INFO, logger="test.outage")
    outage.succeeded()  # nothing to say while all is well
    for doing in ("sending an observation", "reading camera a's frames", "keeping leases"):
        for _ in range(5):
            outage.failed(doing, RedisConnectionError("Error 111 connecting to hub:6379."))
    assert not outage.ok
    outage.succeeded()
    outage.succeeded()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    (level, down), (level_up, up) = lines
    assert level == logging.WARNING and level_up == logging.INFO
    assert "Redis at redis://:**redacted**@hub:6379/0 unreachable" in down
    assert "sending an observation: Error 111" in down
    assert "reachable again after" in up
    assert "s3cret" not in down + up
    assert outage.ok and outage.outages == 1


def test_the_status_page_says_which_matcher_this_is_and_its_workers() -> None:
    workers = [
        {"worker_id": "w1-ab12cd", "cameras": ["hall"]},
        {"worker_id": "w2-ef34ab", "cameras": []},
    ]
    cluster = {"role": "matcher", "broker_ok": True, "workers": workers}
    assert _cluster_rows("running", cluster, names=True) == [
        ("Cluster", "leading matcher, 2 workers: w1-ab12cd (hall); w2-ef34ab (no camera)")
    ]
    # With a token the page is public: counts only, no worker or camera names.
    down = {**cluster, "broker_ok": False, "workers": workers[:1]}
    assert _cluster_rows("running", down, names=False) == [
        ("Cluster", "leading matcher, 1 worker (Redis unreachable)")
    ]
    assert _cluster_rows("standby", None, names=True)[0][1].startswith("standby matcher")
    assert _cluster_rows("running", None, names=True) == []  # one process: no row


async def test_lease_messages_say_whether_it_expired_or_moved(
    tmp_path: Path,
    models_dir: Path,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(
        tmp_path,
        models_dir,
        cameras=["a"],
        cluster={"role": "worker", "redis_url": redis_server.url, "prefix": "t", "lease_s": 1.5},
        http={"enabled": False},
    )
    worker = ClusterWorker(settings, detector=object(), embedder=object(), token="w1")  # type: ignore[arg-type]
    client = aioredis.Redis.from_url(redis_server.url)
    caplog.set_level(logging.INFO, logger="smart_reid_server.cluster")
    await worker.start()
    try:

        async def owns_a() -> bool:
            return worker.cameras == ["a"] and await client.get("t:owner:a") == b"w1"

        await wait_until(owns_a, 10, "the worker to take camera a")
        held = worker._owned["a"]
        # The lease vanished (as when Redis was away longer than lease_s) and nobody took it:
        # the worker says so and keeps the camera as it is (same reader, tracker and stream).
        await client.delete("t:owner:a")

        def said(text: str) -> bool:
            return any(text in r.getMessage() for r in caplog.records)

        async def expired_said() -> bool:
            return said("the lease on camera a expired before this worker renewed it")

        await wait_until(expired_said, 10, "the expired-lease warning")
        await wait_until(owns_a, 10, "the worker to hold camera a again")
        assert said("no other worker took it, so this one keeps the camera")
        assert worker._owned["a"] is held, "the camera was restarted"
        assert not said("has it now") and worker.stats.leases_lost == 0
        # Another worker holds it: name that worker.
        await client.set("t:owner:a", "w9", px=60_000)

        async def moved_said() -> bool:
            return said("lost the lease on camera a; worker w9 has it now")

        await wait_until(moved_said, 10, "the lost-lease warning naming w9")
        assert "a" not in worker.cameras and worker.stats.leases_lost == 1
    finally:
        await worker.stop()
        await client.aclose()
