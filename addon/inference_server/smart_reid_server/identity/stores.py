"""Opening the identity store that ``store.url`` names (SQLite by default, or PostgreSQL).

Apart from ``store.py`` so that neither store module imports the other back: ``store_pg`` builds on
``store``'s base class, records and errors, and only this module knows both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .store import IdentityStore, Store, StoreError


def is_postgres_url(url: str | None) -> bool:
    return url is not None and url.split("://", 1)[0].lower() in ("postgresql", "postgres")


def open_store(
    data_dir: str | Path,
    url: str | None = None,
    *,
    reconnect: bool = False,
    fence: str | None = None,
    on_fenced: Callable[[str], None] | None = None,
) -> IdentityStore:
    """The identity store ``store.url`` names: SQLite under ``data_dir`` when it is None (or
    ``sqlite``/``sqlite://``), else PostgreSQL (``postgresql://...``), with ``data_dir`` as
    the local picture cache. ``reconnect``: a PostgreSQL store reconnects by itself after
    losing its connection (a single server) instead of staying broken (a cluster matcher,
    which steps down). ``fence``/``on_fenced``: a cluster matcher's leadership key and what to
    do when another matcher took the lead (``store_pg`` "Fencing"; PostgreSQL only: a SQLite
    store is local to one host). StoreError says what is wrong."""
    if url is None or url.strip().lower() in ("", "sqlite", "sqlite://"):
        return Store(data_dir)
    if is_postgres_url(url):
        try:
            from .store_pg import PgStore
        except ImportError as err:  # psycopg is an optional dependency (the cluster extra)
            raise StoreError(
                "store.url names PostgreSQL but psycopg is not installed; install it with "
                "pip install 'smart-reid[cluster]' (or 'psycopg[binary]>=3.1')"
            ) from err
        return PgStore(url, data_dir, reconnect=reconnect, fence=fence, on_fenced=on_fenced)
    raise StoreError(
        f"store.url must be a postgresql:// URL or empty for SQLite, got scheme "
        f"{url.split('://', 1)[0]!r}"
    )
