"""Matcher leadership through a PostgreSQL session advisory lock (minimal version; helper B's
fuller one replaces this file with the same interface).

The lock belongs to the session: when the leader dies its connection closes and the lock is
free, and the standby's next try takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from typing import Any

import psycopg

TRY_EVERY_S = 1.0
CHECK_EVERY_S = 1.0


class Leadership:
    def __init__(self, dsn: str, key: str = "smart_reid_matcher") -> None:
        self.dsn = dsn
        self.lock_id = zlib.crc32(key.encode())
        self._conn: Any = None
        self._leading = False

    async def acquire(self) -> None:
        """Wait until this process leads."""
        while True:
            with contextlib.suppress(psycopg.OperationalError):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_id,))
                row = await cur.fetchone()
                if row and row[0]:
                    self._leading = True
                    return
            await asyncio.sleep(TRY_EVERY_S)

    @property
    def is_leader(self) -> bool:
        return self._leading

    async def lost(self) -> None:
        """Return when leadership is lost (the connection is gone)."""
        while self._leading:
            try:
                await asyncio.wait_for(self._conn.execute("SELECT 1"), CHECK_EVERY_S * 3)
            except (psycopg.Error, TimeoutError, AttributeError):
                self._leading = False
                return
            await asyncio.sleep(CHECK_EVERY_S)

    async def release(self) -> None:
        self._leading = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None
