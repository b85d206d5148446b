"""Identity work while the store's database is away (a single server on PostgreSQL).

A store opened with ``reconnect`` (``store_pg.PgStore``) survives a PostgreSQL restart: it fails
fast while PostgreSQL is unreachable and reconnects by itself afterwards. What it cannot know is
the memory built on it: the frame that met the loss may have changed the gallery or the visits
and then failed to commit, or lost its connection during COMMIT after the database had kept it.
``before_identity_work`` runs before every job of the identity thread and settles that: while
the store is unreachable no job runs (memory is left as it was), and the first job after the
store is connected again reloads the identities from the database first.

A cluster matcher opens its store without ``reconnect``: it steps down instead, because a
standby may have taken the lead meanwhile (``cluster.matcher.step_down``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .identities import Identities


@runtime_checkable
class ReconnectingStore(Protocol):
    """A store that may lose its database and reconnect (``store_pg.PgStore``)."""

    reload_due: bool

    @property
    def outage(self) -> str | None: ...  # why it is unusable now; None while connected

    def ensure_connected(self) -> None: ...  # raises StoreUnavailableError while unreachable


def store_outage(store: object) -> str | None:
    """Why ``store`` cannot be used now (a health reason), None when it can."""
    return store.outage if isinstance(store, ReconnectingStore) else None


def before_identity_work(identities: Identities | None) -> None:
    """Raise StoreUnavailableError while the store is unreachable; after a loss, reload the
    identities from the store once it is connected again (see the module docstring)."""
    if identities is None:
        return
    store = identities.store
    if not isinstance(store, ReconnectingStore) or not store.reload_due:
        return
    store.ensure_connected()
    # Memory as the database has it: what a frame cut off by the outage left is gone.
    identities.resync("the identity store is back")
    store.reload_due = False
