"""Redis Streams plumbing shared by the roles: key names, consumer groups, camera leases.

Keys (``prefix`` is ``cluster.prefix``):
- ``<prefix>:frames:<camera>``: the camera's frames, group ``workers``; only the worker holding
  the camera's lease reads it, so one tracker sees the camera's frames in order.
- ``<prefix>:observations``: every worker's observations, group ``matcher``.
- ``<prefix>:feedback:<worker token>``: the matcher's look-again answers for one worker.
- ``<prefix>:owner:<camera>``: the lease (worker token, expires after ``cluster.lease_s``).
- ``<prefix>:cameras`` (set), ``<prefix>:workers`` (zset of heartbeats),
  ``<prefix>:worker:<token>`` (the worker's status), ``<prefix>:hwm`` (hash: camera -> the last
  frames-stream entry the matcher decided, for idempotency).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

_LOGGER = logging.getLogger(__name__)

WORKERS_GROUP = "workers"
MATCHER_GROUP = "matcher"
MAX_CONNECTIONS = 256
POOL_WAIT_S = 30.0

# Renew only a lease we still hold; release only our own.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def frames(self, camera: str) -> str:
        return f"{self.prefix}:frames:{camera}"

    @property
    def observations(self) -> str:
        return f"{self.prefix}:observations"

    def feedback(self, owner: str) -> str:
        return f"{self.prefix}:feedback:{owner}"

    def owner(self, camera: str) -> str:
        return f"{self.prefix}:owner:{camera}"

    @property
    def cameras(self) -> str:
        return f"{self.prefix}:cameras"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def worker(self, token: str) -> str:
        return f"{self.prefix}:worker:{token}"

    @property
    def hwm(self) -> str:
        return f"{self.prefix}:hwm"


def redact_redis_url(url: str) -> str:
    """``url`` without its password, for messages and logs (``redis://:pw@hub:6379/0``)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return parts._replace(netloc=f"{parts.username or ''}:**redacted**@{host}").geturl()
    except ValueError:
        return "redis://(unparsable URL)"


class Outage:
    """Says once that Redis stopped answering and once that it is back, for one process:
    every task of a role retries on its own, and each retry is logged only at debug level."""

    def __init__(self, url: str, logger: logging.Logger, retry_s: float) -> None:
        self.url = redact_redis_url(url)
        self._logger = logger
        self._retry_s = retry_s
        self.since: float | None = None  # monotonic time of the first failure
        self.outages = 0

    @property
    def ok(self) -> bool:
        return self.since is None

    def failed(self, doing: str, err: BaseException) -> None:
        """A call to Redis failed while ``doing`` (e.g. "sending an observation")."""
        if self.since is None:
            self.since = time.monotonic()
            self.outages += 1
            self._logger.warning(
                "Redis at %s unreachable (%s: %s); work waits and every task retries each "
                "%.0f s; one line follows when it is back",
                self.url,
                doing,
                _first_line(err),
                self._retry_s,
            )
        else:
            self._logger.debug("%s failed again (%s)", doing, _first_line(err))

    def succeeded(self) -> None:
        if self.since is not None:
            self._logger.info(
                "Redis at %s reachable again after %.1f s", self.url, time.monotonic() - self.since
            )
            self.since = None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def connect(url: str) -> aioredis.Redis:
    """A client that survives a broker restart (commands fail while it is down; callers retry)."""
    # Blocking pool: a burst of frames waits for a free connection instead of failing; each
    # owned camera holds one connection in a blocking read.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        socket_connect_timeout=5.0,
        health_check_interval=10,
        retry_on_timeout=True,
    )
    return aioredis.Redis(connection_pool=pool)


async def ensure_group(client: aioredis.Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) unless it exists."""
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


async def take_lease(client: aioredis.Redis, key: str, token: str, lease_ms: int) -> bool:
    return bool(await client.set(key, token, nx=True, px=lease_ms))


async def renew_lease(client: aioredis.Redis, key: str, token: str, lease_ms: int) -> bool:
    return bool(await client.eval(_RENEW, 1, key, token, lease_ms))  # type: ignore[misc]


async def release_lease(client: aioredis.Redis, key: str, token: str) -> None:
    with contextlib.suppress(Exception):
        await client.eval(_RELEASE, 1, key, token)  # type: ignore[misc]


async def claim_pending(
    client: aioredis.Redis, stream: str, group: str, consumer: str
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry pending in ``group`` (a dead consumer's, or our own from before a restart),
    now ours, oldest first. Entries trimmed away meanwhile are acknowledged and left out."""
    out: list[tuple[bytes, dict[bytes, bytes]]] = []
    start: Any = "0-0"
    while True:
        reply = await client.xautoclaim(stream, group, consumer, 0, start_id=start, count=200)
        start, entries = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        out.extend((eid, fields) for eid, fields in entries if fields)
        if deleted:
            await client.xack(stream, group, *deleted)
        if start in (b"0-0", "0-0"):
            break
    return out


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
