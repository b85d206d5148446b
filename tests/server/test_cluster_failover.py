"""Matcher failover on the PostgreSQL store, as on two hosts: kill -9, PostgreSQL restart.

The leading matcher runs as its own process (so it can be killed), the standby in this process
(its decisions are recorded), each with its OWN data folder: identities, exemplars, visits and
pictures reach the standby through PostgreSQL only. One in-process worker (the standby's models)
serves both cameras over a private redis-server. Frames are the real two-camera clip of
test_cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from cluster_support import (
    CAMERAS,
    START,
    Clip,
    RedisServer,
    cluster_settings,
    serve_process,
    wait_until,
)
from cluster_support import clip as clip
from cluster_support import redis_server as redis_server
from conftest import free_port
from pg_support import LocalPostgres, local_postgres, temp_database
from server_support import settings_for
from smart_reid_server.cluster.matcher import enqueue
from smart_reid_server.cluster.messages import FrameMsg
from smart_reid_server.cluster.transport import Keys
from smart_reid_server.cluster.worker import ClusterWorker
from smart_reid_server.pipeline import FrameResult
from smart_reid_server.serve.app import EXIT_LOST_LEADERSHIP, SmartReidApp

psycopg = pytest.importorskip("psycopg")


class Cluster:
    """A matcher process, an in-process standby and an in-process worker on one store."""

    def __init__(
        self, tmp_path: Path, models_dir: Path, redis: RedisServer, store_url: str
    ) -> None:
        self.tmp_path = tmp_path
        self.models_dir = models_dir
        self.redis = redis
        self.store_url = store_url
        self.prefix = f"fo{os.getpid()}"
        self.keys = Keys(self.prefix)
        self.leader_port = free_port()
        self.standby_port = free_port()
        self.leader: subprocess.Popen[bytes] | None = None
        self.standby: SmartReidApp | None = None
        self.starting: asyncio.Task[None] | None = None
        self.worker: ClusterWorker | None = None
        self.client = aioredis.Redis.from_url(redis.url)
        self.http = aiohttp.ClientSession()
        # What the standby decided, in order: (monotonic time, frame id, result).
        self.decided: list[tuple[float, str, FrameResult]] = []
        self.last: dict[str, str] = {}
        self.launches = 0
        # Frames carry today's time, as live cameras' do (visits are timed by frame time).
        self.shift_s = time.time() - START

    def config(self, data: Path, port: int) -> dict[str, Any]:
        return {
            "data_dir": str(data),
            "log_level": "info",
            "models": {"dir": str(self.models_dir), "download": False},
            "cameras": list(CAMERAS),
            "quality": {"min_height_px": 64},
            "mqtt": {"enabled": False},
            "http": {"host": "127.0.0.1", "port": port},
            "queue": {"per_camera": 1000, "workers": 1},
            # Visits outlast a slow run: a person seen again after the take-over is on the
            # same visit however busy the machine.
            "visits": {"window_s": 600.0},
            "store": {"url": self.store_url},
            "cluster": {
                "role": "matcher",
                "redis_url": self.redis.url,
                "prefix": self.prefix,
                "lease_s": 1.5,
            },
        }

    def launch_leader(self) -> None:
        """The matcher process (as its supervisor would start it), data folder ``host-a``."""
        data = self.tmp_path / "host-a"
        data.mkdir(exist_ok=True)
        self.launches += 1
        self.leader = serve_process(
            self.config(data, self.leader_port),
            self.tmp_path / "matcher.yaml",
            self.tmp_path / f"matcher-{self.launches}.log",
        )

    def leader_log(self) -> str:
        return (self.tmp_path / f"matcher-{self.launches}.log").read_text(errors="replace")

    async def health(self, port: int) -> tuple[str, list[str]]:
        try:
            url = f"http://127.0.0.1:{port}/api/health"
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as reply:
                body = await reply.json()
                return str(body["status"]), list(body["reasons"])
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return "down", []

    async def start(self) -> None:
        self.launch_leader()

        async def leader_up() -> bool:
            return (await self.health(self.leader_port))[0] in ("ready", "degraded")

        await wait_until(leader_up, 90, "the first matcher to lead")
        data = self.tmp_path / "host-b"
        data.mkdir()
        config = self.config(data, self.standby_port)
        del config["data_dir"]
        standby = SmartReidApp(settings_for(data, self.models_dir, **config))
        original = standby._on_result

        async def record(result: FrameResult) -> None:
            self.decided.append((time.monotonic(), result.frame.frame_id, result))
            await original(result)

        standby._on_result = record  # type: ignore[method-assign]
        self.standby = standby
        self.starting = asyncio.create_task(standby.start())

        async def waiting() -> bool:
            status, reasons = await self.health(self.standby_port)
            return status == "starting" and any("standby" in r for r in reasons)

        await wait_until(waiting, 90, "the second matcher to wait as standby")
        # A standby answers (not ready) and has not opened the store.
        assert standby.identity_thread is None
        for path in ("/", "/api/info", "/api/stats", "/api/persons", "/api/visits"):
            async with self.http.get(f"http://127.0.0.1:{self.standby_port}{path}") as reply:
                assert reply.status in (200, 503), (path, reply.status, await reply.text())
        assert standby.detector is not None and standby.embedder is not None
        self.worker = ClusterWorker(
            cluster_settings(self.tmp_path, self.models_dir, "w", self.redis, "worker"),
            standby.detector,
            standby.embedder,
            token="w",
        )
        self.worker.keys = self.keys
        await self.worker.start()

    async def send(self, frames: Clip) -> None:
        for camera, frame_id, ts, jpeg in frames:
            msg = FrameMsg(camera, ts + self.shift_s, jpeg, frame_id)
            self.last[camera] = await enqueue(self.client, self.keys, msg, backlog=1000)

    async def decide_first_half(self, clip: Clip) -> int:
        """Send the first half of ``clip`` and wait until the leader decided it; returns where
        the second half starts."""
        half = len(clip) // 2
        await self.send(clip[:half])
        await wait_until(self.all_decided, 60, "the first matcher to decide the first half")
        return half

    async def all_decided(self) -> bool:
        hwm = await self.client.hgetall(self.keys.hwm)
        return {k.decode(): v.decode() for k, v in hwm.items()} == self.last

    async def server_id(self) -> str:
        return (await self.client.get(f"{self.prefix}:server_id") or b"").decode()

    async def close(self) -> None:
        if self.leader is not None and self.leader.poll() is None:
            self.leader.kill()
            self.leader.wait(timeout=10)
        if self.worker is not None:
            await self.worker.stop()
        if self.starting is not None and not self.starting.done():
            self.starting.cancel()
            await asyncio.gather(self.starting, return_exceptions=True)
        if self.standby is not None:
            await self.standby.stop()
        await self.client.aclose()
        await self.http.close()


@asynccontextmanager
async def cluster(
    tmp_path: Path, models_dir: Path, redis: RedisServer, store_url: str
) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, models_dir, redis, store_url)
    try:
        await c.start()
        yield c
    finally:
        await c.close()


def persons_in(url: str) -> set[str]:
    with psycopg.connect(url, connect_timeout=5) as db:
        return {str(r[0]) for r in db.execute(b"SELECT person_id FROM persons").fetchall()}


def with_thumbnail(url: str) -> set[str]:
    with psycopg.connect(url, connect_timeout=5) as db:
        return {str(r[0]) for r in db.execute(b"SELECT person_id FROM thumbnails").fetchall()}


def leaders(url: str) -> int:
    """How many sessions hold the matcher's leadership lock: granted advisory locks in this
    database (one cluster per database here; other tests' databases are left out)."""
    with psycopg.connect(url, connect_timeout=5) as db:
        row = db.execute(
            b"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            b" AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def store_db() -> Iterator[str]:
    with temp_database() as url:
        yield url


# -- kill -9 the matcher ---------------------------------------------------------------------------


async def test_standby_takes_over_on_postgres_with_every_identity(
    tmp_path: Path,
    models_dir: Path,
    redis_server: RedisServer,
    store_db: str,
    clip: Clip,
) -> None:
    async with cluster(tmp_path, models_dir, redis_server, store_db) as c:
        half = await c.decide_first_half(clip)
        before = persons_in(store_db)
        pictured = with_thumbnail(store_db)
        assert before and pictured, "the first half made no identities to take over"
        server_id = await c.server_id()
        first_half = {frame_id for _, frame_id, _, _ in clip[:half]}

        # Some frames in flight when the matcher dies: its unacknowledged ones are claimed.
        await c.send(clip[half : half + 4])
        assert c.leader is not None
        c.leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        c.leader.wait(timeout=10)
        await c.send(clip[half + 4 :])
        standby = c.standby
        assert standby is not None

        async def ready() -> bool:
            return (await c.health(c.standby_port))[0] == "ready"

        await wait_until(ready, 60, "the standby to lead and report ready")
        ready_s = time.monotonic() - killed
        await wait_until(c.all_decided, 60, "the standby to decide the second half")
        first_s = c.decided[0][0] - killed
        print(
            f"\ntake-over: health ready {ready_s:.2f} s, first decision {first_s:.2f} s after kill -9"
        )

        assert standby.state == "running" and standby.server_id == server_id
        async with c.http.get(f"http://127.0.0.1:{c.standby_port}/api/info") as reply:
            assert (await reply.json())["server_id"] == server_id
        known = {p["person_id"] for p in await standby.persons(None, None, None)}
        assert before <= known, "the standby lost identities"
        # Pictures come from PostgreSQL into the standby's own data folder.
        cache = tmp_path / "host-b" / "pg_cache" / "thumbnails"
        for person_id in pictured:
            url = f"http://127.0.0.1:{c.standby_port}/api/persons/{person_id}/thumbnail.jpg"
            async with c.http.get(url) as reply:
                assert reply.status == 200, person_id
                assert (await reply.read())[:2] == b"\xff\xd8"
        assert {p.stem for p in cache.iterdir()} >= pictured

        # No frame decided twice: none the first matcher acknowledged, none twice here.
        frame_ids = [frame_id for _, frame_id, _ in c.decided]
        assert len(frame_ids) == len(set(frame_ids)), "a frame decided twice"
        assert not set(frame_ids) & first_half
        assert set(frame_ids) >= {frame_id for _, frame_id, _, _ in clip[half + 4 :]}
        # The same people, seen again after the take-over, are not announced again.
        again = [d for _, _, r in c.decided for d in r.decisions if d.person_id in before]
        assert again, "nobody from before the take-over was seen again"
        assert not [d.person_id for d in again if d.new_person]
        assert ready_s < 30 and first_s < 30, (ready_s, first_s)


# -- PostgreSQL restarts under the matcher ---------------------------------------------------------


async def test_postgres_restart_leaves_one_leader_and_loses_nothing(
    tmp_path: Path,
    models_dir: Path,
    redis_server: RedisServer,
    clip: Clip,
) -> None:
    with local_postgres() as pg:
        store = f"{pg.url}/postgres"
        await _postgres_restart(tmp_path, models_dir, redis_server, clip, pg, store)


async def _postgres_restart(
    tmp_path: Path,
    models_dir: Path,
    redis: RedisServer,
    clip: Clip,
    pg: LocalPostgres,
    store: str,
) -> None:
    async with cluster(tmp_path, models_dir, redis, store) as c:
        half = await c.decide_first_half(clip)
        before = persons_in(store)
        assert before
        assert c.leader is not None and c.standby is not None
        standby = c.standby

        pg.stop("fast")
        # Frames keep coming while PostgreSQL is away: none may be lost.
        await c.send(clip[half : half + 4])
        pg.start()
        loop = asyncio.get_running_loop()
        code = await loop.run_in_executor(None, lambda: c.leader.wait(timeout=60))  # type: ignore[union-attr]
        assert code == EXIT_LOST_LEADERSHIP, c.leader_log()
        assert "lost matcher leadership" in c.leader_log()

        async def ready() -> bool:
            return (await c.health(c.standby_port))[0] == "ready"

        await wait_until(ready, 60, "the standby to lead after PostgreSQL came back")
        assert c.starting is not None and c.starting.done() and c.starting.exception() is None
        assert before <= {p["person_id"] for p in await standby.persons(None, None, None)}
        await c.send(clip[half + 4 :])
        await wait_until(c.all_decided, 60, "the new leader to decide every frame")
        frame_ids = [frame_id for _, frame_id, _ in c.decided]
        assert len(frame_ids) == len(set(frame_ids)), "a frame decided twice"
        assert set(frame_ids) == {frame_id for _, frame_id, _, _ in clip[half:]}, (
            "frames sent while PostgreSQL was away were lost"
        )
        assert all(r.decisions is not None for _, _, r in c.decided)

        # Its supervisor starts the old leader again: it waits as the standby.
        c.launch_leader()

        async def standing_by() -> bool:
            status, reasons = await c.health(c.leader_port)
            return status == "starting" and any("standby" in r for r in reasons)

        await wait_until(standing_by, 60, "the restarted matcher to wait as standby")
        assert leaders(store) == 1
        assert json.dumps(standby.health()[0]) == '"ready"'


# -- only the leadership session ends ---------------------------------------------------------


async def test_a_leader_whose_lock_session_ends_stops_deciding_and_the_standby_leads(
    tmp_path: Path,
    models_dir: Path,
    redis_server: RedisServer,
    store_db: str,
    clip: Clip,
) -> None:
    """PostgreSQL ends the leader's lock session only (an administrator, a proxy, a timeout):
    its store connection still works, yet it must stop deciding before the standby starts."""
    async with cluster(tmp_path, models_dir, redis_server, store_db) as c:
        half = await c.decide_first_half(clip)
        await c.send(clip[half:])  # in flight while leadership moves
        with psycopg.connect(store_db, autocommit=True) as db:
            # This test's database only: the shared server runs other tests' sessions too.
            ended = db.execute(
                b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                b" WHERE datname = current_database()"
                b" AND application_name = 'smart_reid_leader' AND pid IN"
                b" (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                b"  AND database = (SELECT oid FROM pg_database"
                b"                  WHERE datname = current_database()))"
            ).fetchall()
        assert ended == [(True,)]
        assert c.leader is not None
        loop = asyncio.get_running_loop()
        code = await loop.run_in_executor(None, lambda: c.leader.wait(timeout=60))  # type: ignore[union-attr]
        assert code == EXIT_LOST_LEADERSHIP, c.leader_log()
        await wait_until(c.all_decided, 60, "the standby to decide the rest")
        frame_ids = [frame_id for _, frame_id, _ in c.decided]
        assert len(frame_ids) == len(set(frame_ids)), "a frame decided twice"
        assert not set(frame_ids) & {frame_id for _, frame_id, _, _ in clip[:half]}
        log = c.leader_log()
        # Whichever comes first: its own lock check, or the fence refusing a write once the
        # standby has opened the store (a newer leadership epoch).
        assert (
            "lost matcher leadership: its PostgreSQL session ended" in log
            or "lost matcher leadership: another matcher leads now" in log
            or "lost matcher leadership: the identity store refused its write" in log
        ), log
        # No frame failed in the old leader while it shut down.
        gave_up = log.index("lost matcher leadership")
        assert "failed:" not in log[gave_up:]
        assert leaders(store_db) == 1
