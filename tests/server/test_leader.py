"""Leadership by a PostgreSQL advisory lock: one leader, a standby that takes over when the
leader is killed, and a leader that notices when its session dies or stops answering."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from pg_support import SERVER_URL, LocalPostgres, local_postgres, psycopg
from smart_reid_server.cluster import leader as leader_module
from smart_reid_server.cluster.leader import Leadership

# Generous: the expected figures are about 0.3 s for a take-over after kill -9 (poll 0.2 s plus a
# connection) and at most CHECK_S + CHECK_TIMEOUT_S = 3 s for a leader to notice a dead session.
TAKEOVER_BOUND_S = 5.0
NOTICE_BOUND_S = leader_module.CHECK_S + leader_module.CHECK_TIMEOUT_S + 2.0

_CANDIDATE = textwrap.dedent(
    """
    import asyncio, logging, sys
    from smart_reid_server.cluster.leader import Leadership

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")

    async def main():
        lead = Leadership(sys.argv[1], sys.argv[2])
        await lead.acquire()
        print("LEADER", flush=True)
        await lead.lost()
        print("LOST", flush=True)

    asyncio.run(main())
    """
)


class Candidate:
    """A matcher stand-in in its own process; its stdout lines are read by a thread."""

    def __init__(self, dsn: str, key: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CANDIDATE, dsn, key],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), line.strip()))

    def expect(self, start: str, timeout: float) -> float:
        """The time the first line starting with ``start`` was read; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                at, line = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"no line starting {start!r} within {timeout} s; saw {self.seen}"
                ) from None
            self.seen.append(line)
            if line.startswith(start):
                return at

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def _holders(key: str) -> int:
    with psycopg.connect(f"{SERVER_URL}/postgres") as db:
        row = db.execute(
            b"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            b" AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint)"
            b" = hashtextextended(%s, 0)",
            (key,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def key() -> str:
    return f"test_leader_{uuid.uuid4().hex[:12]}"


def test_the_standby_takes_over_when_the_leader_is_killed(key: str) -> None:
    dsn = f"{SERVER_URL}/postgres"
    first = Candidate(dsn, key)
    second: Candidate | None = None
    try:
        first.expect("LEADER", 60)
        second = Candidate(dsn, key)
        second.expect("standing by", 60)
        assert _holders(key) == 1, "exactly one process holds the lock"
        killed_at = time.monotonic()
        first.kill()
        took_over = second.expect("LEADER", 30) - killed_at
        print(f"take-over after kill -9 of the leader: {took_over:.2f} s")
        assert took_over < TAKEOVER_BOUND_S
        assert _holders(key) == 1
    finally:
        first.kill()
        if second is not None:
            second.kill()


async def test_a_released_lead_passes_to_the_standby(key: str) -> None:
    dsn = f"{SERVER_URL}/postgres"
    first, second = Leadership(dsn, key), Leadership(dsn, key)
    await first.acquire()
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(0)
    assert first.is_leader and not second.is_leader
    await first.release()
    await asyncio.wait_for(waiting, TAKEOVER_BOUND_S)
    assert second.is_leader and not first.is_leader
    await first.lost()  # not leading: returns at once
    await second.release()


@pytest.fixture(scope="module")
def private_server() -> Iterator[LocalPostgres]:
    with local_postgres() as server:
        yield server


async def test_the_leader_notices_a_postgresql_restart_and_leads_again(
    private_server: LocalPostgres, key: str
) -> None:
    lead = Leadership(f"{private_server.url}/postgres", key)
    await lead.acquire()
    watch = asyncio.create_task(lead.lost())
    stopped_at = time.monotonic()
    await asyncio.to_thread(private_server.stop)
    await asyncio.wait_for(watch, NOTICE_BOUND_S + 10)  # includes pg_ctl's own stop time
    noticed = time.monotonic() - stopped_at
    print(f"leader noticed the restart after {noticed:.2f} s")
    assert not lead.is_leader
    await asyncio.to_thread(private_server.start)
    await asyncio.wait_for(lead.acquire(), 30)
    assert lead.is_leader
    await lead.release()


async def test_the_leader_gives_up_when_its_session_stops_answering(
    private_server: LocalPostgres, key: str
) -> None:
    """A stalled or cut-off server (its backend frozen with SIGSTOP): the check times out."""
    lead = Leadership(f"{private_server.url}/postgres", key)
    await lead.acquire()
    conn = lead._conn
    assert conn is not None
    backend = conn.info.backend_pid
    watch = asyncio.create_task(lead.lost())
    os.kill(backend, signal.SIGSTOP)
    try:
        started = time.monotonic()
        await asyncio.wait_for(watch, NOTICE_BOUND_S)
        noticed = time.monotonic() - started
        print(f"leader gave up after {noticed:.2f} s without an answer")
        assert not lead.is_leader
    finally:
        os.kill(backend, signal.SIGCONT)
