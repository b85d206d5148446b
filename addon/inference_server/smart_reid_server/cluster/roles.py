"""Starting the cluster roles: the worker process, and the matcher's extra start-up steps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from redis.exceptions import RedisError

from .transport import Keys, connect, redact_redis_url, text
from .worker import ClusterError, ClusterWorker

_LOGGER = logging.getLogger(__name__)


def leader_url(settings: Any) -> str | None:
    """Where matcher and standby agree who leads: ``cluster.leader_url``, else ``store.url``
    when the store is PostgreSQL; None: a lone matcher (no standby)."""
    url = settings.section("cluster").get("leader_url")
    if not url:
        store = settings.raw.get("store") or {}
        url = store.get("url") if isinstance(store, dict) else None
    if url and str(url).startswith(("postgresql://", "postgres://")):
        return str(url)
    return None


async def become_leader(app: Any) -> None:
    """Share the server id through Redis (HA sees one server whichever matcher leads), then,
    with a leadership URL, wait as standby (HTTP up, health says standby) until this one leads."""
    from ..errors import StartupError

    keys = Keys(str(app.settings.section("cluster")["prefix"]))
    url = str(app.settings.section("cluster")["redis_url"])
    client = connect(url)
    try:
        await client.set(keys.prefix + ":server_id", app.server_id, nx=True)
        app.server_id = text(await client.get(keys.prefix + ":server_id") or app.server_id)
    except RedisError as err:
        raise StartupError(
            f"cannot reach Redis at {redact_redis_url(url)} ({err}); start it or set "
            "cluster.redis_url"
        ) from err
    finally:
        await client.aclose()
    dsn = leader_url(app.settings)
    if dsn is None:
        _LOGGER.info("matcher without standby (no cluster.leader_url or PostgreSQL store.url)")
        return
    from ..identity.store_pg import redact_url
    from .leader import Leadership

    app.leadership = Leadership(dsn, key=f"smart_reid_matcher:{keys.prefix}")
    if app.settings.section("http")["enabled"]:
        app.state = "standby"
        await app._start_http()
    _LOGGER.info("asking PostgreSQL %s which matcher leads", redact_url(dsn))
    await app.leadership.acquire()
    app.state = "starting"
    _LOGGER.info("this matcher leads now")
    app._spawn(_step_down_when_lost(app))


async def _step_down_when_lost(app: Any) -> None:
    from .matcher import step_down

    await app.leadership.lost()
    if app.state in ("stopping", "stopped"):
        return
    step_down(app, "its PostgreSQL session ended (PostgreSQL restarted or is unreachable)")


async def start_matcher(app: Any) -> Any:
    """The matcher's consumer of observations; returns the frame intake for every input."""
    from ..errors import StartupError
    from .matcher import ClusterMatcher

    app.cluster = ClusterMatcher(app)
    try:
        return await app.cluster.start()
    except ClusterError as err:
        raise StartupError(str(err)) from err


async def run_worker(settings: Any) -> None:
    """``smart-reid serve`` with ``cluster.role: worker``: models, then frames until SIGTERM."""
    from ..errors import StartupError
    from ..models.download import ModelManager
    from ..models.loading import load_models

    loop = asyncio.get_running_loop()
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StartupError(f"data_dir {settings.data_dir} is not usable ({err.strerror})") from err
    manager = ModelManager.from_config(settings.section("models"), settings.data_dir)
    detector, embedder, _ = await loop.run_in_executor(None, load_models, settings, manager)
    try:
        worker = ClusterWorker(settings, detector, embedder)
        await worker.start()
    except ClusterError as err:
        raise StartupError(str(err)) from err
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await worker.stop()
