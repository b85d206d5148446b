"""Which matcher leads: a PostgreSQL session advisory lock held on a connection of its own.

The matcher and its standby call ``acquire()``; the first to get the lock leads, the other polls
(``pg_try_advisory_lock`` every ``POLL_S``) until the lock is free. PostgreSQL releases a session
lock when the session ends, so the standby takes over when the leader dies:

- the leader process is killed (kill -9, crash, host power-off with a clean TCP reset):
  PostgreSQL sees the connection close at once and the standby leads within ``POLL_S`` (0.2 s)
  plus its connection time;
- PostgreSQL restarts: every session ends; the leader notices within ``CHECK_S + CHECK_TIMEOUT_S``
  (``lost()`` returns), and whichever process reconnects first leads next;
- the leader's host is cut off (a partition, no TCP reset): the leader's own check fails within
  ``CHECK_S + CHECK_TIMEOUT_S`` (3 s) and it must stop deciding; PostgreSQL drops the silent session
  by TCP keepalives set for this session (``SERVER_KEEPALIVE``: idle 5 s, then 3 probes 2 s apart,
  plus ``tcp_user_timeout`` 10 s for unacknowledged data), so the standby leads after about 11 s.
  The old leader has given up before the new one starts: no two leaders at once as long as
  both clocks run at the same rate.

When only the lock session ends (``pg_terminate_backend``, a proxy) the standby leads at once,
up to ``CHECK_S + CHECK_TIMEOUT_S`` before the old leader notices. The lock cannot fence the
old leader's store writes (another connection); the store does: each leader takes a new
leadership epoch when it opens the store, and a write of an older epoch is refused
(``identity.store_pg`` "Fencing").

One connection per Leadership, used only for the lock and its checks (never for queries of the
store, which has its own). Async (psycopg's AsyncConnection): call from the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psycopg

_LOGGER = logging.getLogger(__name__)

POLL_S = 0.2  # how often a standby tries the lock
CHECK_S = 1.0  # how often the leader checks that its session is alive
CHECK_TIMEOUT_S = 2.0  # a check that takes longer counts as a lost session
RETRY_S = 1.0  # wait after a failed connection before trying again
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "application_name": "smart_reid_leader",
}
# Per-session server settings: PostgreSQL drops a silent leader's session (and its lock) after
# about 11 s instead of the operating system's default of hours.
SERVER_KEEPALIVE = (
    b"SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
    b" SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000"
)


class Leadership:
    """Leadership of ``key`` among the processes that share the PostgreSQL at ``dsn``."""

    def __init__(self, dsn: str, key: str = "smart_reid_matcher") -> None:
        self.dsn = dsn
        self.key = key
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self._leader = False
        self._reported: str | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def acquire(self) -> None:
        """Wait until this process leads. Connection problems are logged (once per kind) and
        retried; cancel the task to stop waiting."""
        if self._leader:
            return
        waiting_logged = False
        while True:
            try:
                conn = await self._connection()
                cursor = await conn.execute(
                    b"SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.key,)
                )
                row = await cursor.fetchone()
                if row is not None and row[0]:
                    self._leader = True
                    self._reported = None
                    _LOGGER.info("leading as %s", self.key)
                    return
                if not waiting_logged:
                    _LOGGER.info("standing by: another process leads %s", self.key)
                    waiting_logged = True
                await asyncio.sleep(POLL_S)
            except psycopg.Error as err:
                await self._drop()
                self._report(f"cannot reach PostgreSQL for leadership ({_first_line(err)})")
                await asyncio.sleep(RETRY_S)

    async def lost(self) -> None:
        """Return once leadership is lost (the session ended or stopped answering); at once
        when not leading."""
        while self._leader and self._conn is not None:
            await asyncio.sleep(CHECK_S)
            conn = self._conn
            if conn is None:
                break
            started = time.monotonic()
            why = await self._ask(conn, b"SELECT 1")
            if why is None:
                continue
            _LOGGER.warning(
                "lost leadership of %s: the PostgreSQL session failed its check after %.1f s "
                "(%s); stop deciding and wait to lead again",
                self.key,
                time.monotonic() - started,
                why,
            )
            break
        self._leader = False
        await self._drop()

    async def release(self) -> None:
        """Give leadership up (the standby takes over within ``POLL_S``)."""
        conn = self._conn
        if self._leader and conn is not None:
            unlock = b"SELECT pg_advisory_unlock(hashtextextended(%s, 0))"
            await self._ask(conn, unlock, (self.key,))
        self._leader = False
        await self._drop()

    async def _ask(
        self,
        conn: psycopg.AsyncConnection[tuple[Any, ...]],
        query: bytes,
        args: tuple[object, ...] = (),
    ) -> str | None:
        """Run ``query``; None when it succeeded, else why not. Not cancelled by a timeout:
        psycopg would wait for the server to confirm the cancellation, which a stalled server
        never does; a query left without an answer is abandoned and its connection closed."""
        task = asyncio.ensure_future(conn.execute(query, args))
        done, _ = await asyncio.wait({task}, timeout=CHECK_TIMEOUT_S)
        if not done:
            task.add_done_callback(_consume)
            await self._drop()
            task.cancel()
            return f"no answer within {CHECK_TIMEOUT_S:.0f} s"
        return _failure(task)

    async def _connection(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, **CONNECT_OPTIONS
            )
            try:
                await conn.execute(SERVER_KEEPALIVE)
            except psycopg.Error:
                await conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    def _report(self, problem: str) -> None:
        if problem != self._reported:
            _LOGGER.warning("%s; retrying every %.0f s", problem, RETRY_S)
            self._reported = problem


def _failure(check: asyncio.Future[Any]) -> str | None:
    """Why a finished check failed; None when it passed."""
    err = check.exception()
    if err is None:
        return None
    if isinstance(err, psycopg.Error | OSError):
        return _first_line(err)
    raise err


def _consume(check: asyncio.Future[Any]) -> None:
    if not check.cancelled():
        check.exception()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
