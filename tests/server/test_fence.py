"""Fencing matcher leadership: once a standby leads (and has taken a newer leadership epoch),
the old leader's store writes are refused, even before the old leader notices that its lock
session ended; a transaction of the old leader in flight finishes before the new leader starts."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_support import psycopg, temp_database, wait_until
from smart_reid_server.cluster.leader import Leadership
from smart_reid_server.cluster.matcher import step_down
from smart_reid_server.errors import EXIT_LOST_LEADERSHIP
from smart_reid_server.identity.store import NotLeaderError, StoreUnavailableError
from smart_reid_server.identity.store_pg import PgStore

T0 = 1_763_740_000.0


@pytest.fixture
def database() -> Iterator[str]:
    with temp_database() as url:
        yield url


@pytest.fixture
def key() -> str:
    return f"test_fence_{uuid.uuid4().hex[:12]}"


def _persons(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        return {str(r[0]) for r in db.execute(b"SELECT person_id FROM persons").fetchall()}


def _epoch(url: str, key: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute(b"SELECT epoch FROM leadership WHERE key = %s", (key,)).fetchone()
    assert row is not None
    return int(row[0])


def _end_lock_session(url: str, lead: Leadership) -> None:
    """End the leader's lock session the way an administrator or a network cut would: only
    that backend, only in this test's database (the shared server runs other sessions)."""
    assert lead._conn is not None
    pid = lead._conn.info.backend_pid
    with psycopg.connect(url, autocommit=True) as db:
        ended = db.execute(
            b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s"
            b" AND datname = current_database() AND application_name = 'smart_reid_leader'",
            (pid,),
        ).fetchall()
    assert ended == [(True,)]


async def test_the_old_leaders_writes_are_refused_once_the_standby_leads(
    database: str, key: str, tmp_path: Path
) -> None:
    first, second = Leadership(database, key), Leadership(database, key)
    await first.acquire()
    loop = asyncio.get_running_loop()
    app = _App()
    fenced: list[str] = []

    def on_fenced(why: str) -> None:  # what the server does (serve/app.py), and a record
        fenced.append(why)
        loop.call_soon_threadsafe(step_down, app, why)

    old = PgStore(database, tmp_path / "a", fence=key, on_fenced=on_fenced)
    new: PgStore | None = None
    try:
        assert old.epoch == 1
        old.create_person("before", T0)  # leading: stored
        standby = asyncio.create_task(second.acquire())
        _end_lock_session(database, first)
        # The standby leads; the old leader has not noticed (its check runs every second).
        await asyncio.wait_for(standby, 10)
        assert first.is_leader, "the old leader must not have noticed yet for this test"
        new = PgStore(database, tmp_path / "b", fence=key)
        assert new.epoch == 2 == _epoch(database, key)

        with pytest.raises(NotLeaderError, match="another matcher leads now") as refused:
            old.create_person("after", T0 + 1)
        assert isinstance(refused.value, StoreUnavailableError)  # the matcher steps down on it
        assert fenced and "epoch 2" in fenced[0] and "is 1" in fenced[0]
        # Single statements, pictures and every later try are refused too; none is stored.
        with pytest.raises(NotLeaderError):
            old.add_exemplar(1, "before", _unit(), "m", T0 + 2)
        with pytest.raises(NotLeaderError):
            old.save_snapshot("visit-after", b"\xff\xd8jpeg")
        with pytest.raises(NotLeaderError):
            old.record_sighting("before", "door", T0 + 3)
        assert len(fenced) == 1, "the step-down hook runs once"
        await asyncio.wait_for(app.stop_requested.wait(), 10)
        assert app.exit_code == EXIT_LOST_LEADERSHIP and app.halted == 1

        new.create_person("by-new", T0 + 4)  # the new leader writes
        assert _persons(database) == {"before", "by-new"}
        assert old.exemplar_count() == 0  # reads still work: they decide nothing
        assert old.snapshot_path("visit-after") is None
        assert new.require("before").last_seen == T0  # the refused sighting left no trace
    finally:
        old.close()
        if new is not None:
            new.close()
        await first.release()  # its session is gone: only forgets it
        await second.release()


def _unit() -> Any:
    import numpy as np

    vector = np.zeros(8, dtype=np.float32)
    vector[0] = 1.0
    return vector


def test_a_new_leader_waits_for_the_old_leaders_transaction_in_flight(
    database: str, key: str, tmp_path: Path
) -> None:
    """The old leader's transaction that checked the epoch before the take-over commits, and
    the new leader's epoch increment waits for it (FOR SHARE): the new leader then sees it."""
    old = PgStore(database, tmp_path / "a", fence=key)
    opened: list[PgStore] = []
    try:
        with old.transaction():
            old.create_person("in-flight", T0)
            opening = threading.Thread(
                target=lambda: opened.append(PgStore(database, tmp_path / "b", fence=key))
            )
            opening.start()
            wait_until(lambda: _waiting_on_a_lock(database), 10, "the new leader's epoch to wait")
            assert not opened
        opening.join(10)
        assert opened and opened[0].epoch == 2
        assert opened[0].person("in-flight") is not None
        with pytest.raises(NotLeaderError):
            old.create_person("late", T0 + 1)
        assert _persons(database) == {"in-flight"}
    finally:
        old.close()
        for store in opened:
            store.close()


def _waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url) as db:
        row = db.execute(
            b"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            b" AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO leadership%'"
        ).fetchone()
    return bool(row and row[0])


def test_a_store_without_fence_checks_nothing(database: str, key: str, tmp_path: Path) -> None:
    single = PgStore(database, tmp_path / "a")
    leader = PgStore(database, tmp_path / "b", fence=key)
    try:
        assert single.epoch is None and leader.epoch == 1
        # A fenced store's session is dropped by PostgreSQL soon after its host goes silent,
        # so a transaction cut off mid-way cannot hold the leadership row for hours.
        assert leader._one("SHOW tcp_user_timeout") == ("10000",)  # ms
        with psycopg.connect(database, autocommit=True) as db:
            db.execute(b"UPDATE leadership SET epoch = epoch + 1")
        single.create_person("single", T0)  # a single server has no leadership to lose
        with pytest.raises(NotLeaderError):
            leader.create_person("leader", T0)
        assert _persons(database) == {"single"}
    finally:
        single.close()
        leader.close()


class _App:
    def __init__(self) -> None:
        self.exit_code = 0
        self.halted = 0
        self.stop_requested = asyncio.Event()
        self.cluster = self

    def halt(self) -> None:
        self.halted += 1

    def request_stop(self) -> None:
        self.stop_requested.set()


async def test_a_refused_write_makes_the_matcher_step_down(
    database: str, key: str, tmp_path: Path
) -> None:
    """The hook the server gives the store: step_down on the event loop, from the store's
    thread, whatever write met the fence (a decision, housekeeping, an API call)."""
    loop = asyncio.get_running_loop()
    app = _App()

    def fenced(why: str) -> None:
        loop.call_soon_threadsafe(step_down, app, why)

    old = PgStore(database, tmp_path / "a", fence=key, on_fenced=fenced)
    new = PgStore(database, tmp_path / "b", fence=key)
    try:
        with pytest.raises(NotLeaderError):
            await asyncio.to_thread(
                old.update_visit,
                "v",
                person_id="p",
                started_at=T0,
                last_seen=T0,
                cameras=["door"],
                last_camera="door",
                sightings=1,
            )
        await asyncio.wait_for(app.stop_requested.wait(), 10)  # on the loop, not the thread
        assert app.exit_code == EXIT_LOST_LEADERSHIP and app.halted == 1
    finally:
        old.close()
        new.close()
