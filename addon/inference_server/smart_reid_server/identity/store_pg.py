"""The identity store on PostgreSQL (``store.url: postgresql://...``), for several hosts.

Same interface and behaviour as the SQLite ``store.Store`` (persons, exemplars, camera means,
visits, risk, a "Visitor N" counter that only grows), so a matcher and its standby on another
host share one set of identities. Pictures (thumbnails, visit snapshots) live in PostgreSQL as
``bytea`` too, so a standby that takes over has them; ``thumbnail_path``/``snapshot_path`` still
answer a local file: a cached copy under ``<data_dir>/pg_cache/``, written atomically. The
thumbnail cache is brought in line with the database when the store opens; snapshots are
fetched when first asked for.

Schema changes are versioned (``schema_version``); each step runs in its own transaction under
a session advisory lock, so two processes starting at once migrate once.

Connection: one psycopg (sync) connection used from ONE thread (the identities executor), with
TCP keepalives (a dead peer is noticed within about 11 s). A lost connection raises
StoreUnavailableError. What happens next is the caller's choice (``reconnect``):

- off (a cluster matcher): the store stays broken; the matcher steps down, since a standby may
  lead meanwhile, and a new PgStore works once PostgreSQL is back;
- on (a single server): the store reconnects by itself on a later use, trying at most every
  ``RECONNECT_MAX_S`` (backoff from ``RECONNECT_FIRST_S``); until then every use fails fast
  with StoreUnavailableError. ``outage`` says why for health, and ``reload_due`` tells the
  owner of in-memory state built on the store (``Identities``) to reload it once connected
  again: the transaction that met the loss was rolled back, or, lost during COMMIT, may have
  been committed; only the database knows (``outages.before_identity_work``).

Forgetting: rows are deleted in one transaction, then the tables that lost rows are rewritten
(``VACUUM FULL``), so no dead copy of a forgotten person's rows stays in the table files.
PostgreSQL's write-ahead log and any backups keep older pages until they are recycled.

Only the leading matcher writes; open the store once leadership is held (``cluster.leader``):
opening closes the visits the previous run left open.

Fencing (``fence``: the leadership key, cluster matchers only): opening the store increments
the key's leadership epoch (table ``leadership``) and keeps the new value. Every write
transaction then first reads the stored epoch ``FOR SHARE``; a different value means another
matcher took the lead since, and the transaction is refused with NotLeaderError before it
writes anything. The row lock makes a new leader's increment wait for the old leader's
transactions in flight, and every later transaction of the old leader sees the new epoch: the
writes of at most one matcher count, even while the old leader has not yet noticed that its
lock session ended. Without ``fence`` (a single server) there is no check.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.types.json import Jsonb

from .store import (
    IdentityStore,
    NotLeaderError,
    PersonRecord,
    StoreError,
    StoreUnavailableError,
    _image_path,
    _unlink,
    _write_atomically,
    as_object,
    camera_mean_rows,
    risk_to_store,
    takes_thumbnail,
)

_LOGGER = logging.getLogger(__name__)

PG_SCHEMA_VERSION = 2
CACHE = "pg_cache"
MIGRATION_LOCK = "smart_reid_store_migration"
# Keepalives: idle 5 s, then 3 probes 2 s apart -> a silent peer is dropped after about 11 s.
CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "application_name": "smart_reid",
}
# Server side, for a fenced store: PostgreSQL drops a silent matcher's session after about 11 s,
# releasing the leadership row its transaction in flight holds (the new leader's epoch waits for
# it), instead of after the operating system's default of hours.
SERVER_KEEPALIVE = (
    b"SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
    b" SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000"
)
_LOST = (psycopg.OperationalError, psycopg.InterfaceError)
# Reconnecting (``reconnect=True``): the first try this long after the loss, then twice as long
# each time up to RECONNECT_MAX_S; each try waits at most RECONNECT_TIMEOUT_S for PostgreSQL.
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 5.0
RECONNECT_TIMEOUT_S = 3

Connection = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]


def redact_url(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user = parts.username or ""
            host = netloc.rsplit("@", 1)[1]
            netloc = f"{user}:**redacted**@{host}"
        query = "&".join(
            "password=**redacted**" if item.lower().startswith("password=") else item
            for item in parts.query.split("&")
        )
        return parts._replace(netloc=netloc, query=query).geturl()
    except ValueError:
        return "postgresql://(unparsable URL)"


# Each step upgrades version v to v + 1 and runs in its own transaction.
_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('visitor_counter', 0);
CREATE TABLE persons (
    person_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    number BIGINT NOT NULL,
    auto_label BOOLEAN NOT NULL DEFAULT TRUE,
    known BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    visit_count INTEGER NOT NULL DEFAULT 0,
    thumbnail_score DOUBLE PRECISION
);
CREATE TABLE person_cameras (
    person_id TEXT NOT NULL REFERENCES persons(person_id) ON DELETE CASCADE,
    camera TEXT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    sightings INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (person_id, camera)
);
CREATE TABLE exemplars (
    id BIGINT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(person_id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    camera TEXT
);
CREATE INDEX exemplars_person ON exemplars(person_id);
CREATE TABLE camera_means (
    model TEXT NOT NULL,
    camera TEXT NOT NULL,
    crops INTEGER NOT NULL,
    mean BYTEA NOT NULL,
    PRIMARY KEY (model, camera)
);
CREATE TABLE visits (
    visit_id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(person_id) ON DELETE CASCADE,
    started_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION,
    cameras JSONB NOT NULL DEFAULT '[]',
    last_camera TEXT NOT NULL DEFAULT '',
    sightings INTEGER NOT NULL DEFAULT 0,
    is_new_identity BOOLEAN NOT NULL DEFAULT FALSE,
    risk JSONB
);
CREATE INDEX visits_person ON visits(person_id);
CREATE INDEX visits_started ON visits(started_at);
CREATE TABLE thumbnails (
    person_id TEXT PRIMARY KEY REFERENCES persons(person_id) ON DELETE CASCADE,
    jpeg BYTEA NOT NULL
);
CREATE TABLE snapshots (visit_id TEXT PRIMARY KEY, jpeg BYTEA NOT NULL)
"""

# The leadership epoch per lock key (see "Fencing" in the module docstring).
_V2 = "CREATE TABLE leadership (key TEXT PRIMARY KEY, epoch BIGINT NOT NULL)"

MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2}

_TAKE_EPOCH = (
    "INSERT INTO leadership (key, epoch) VALUES (%s, 1) ON CONFLICT (key)"
    " DO UPDATE SET epoch = leadership.epoch + 1 RETURNING epoch"
)
_CHECK_EPOCH = "SELECT epoch FROM leadership WHERE key = %s FOR SHARE"

# Tables rewritten after deletions (see the module docstring).
_ERASABLE = ("persons", "person_cameras", "exemplars", "visits", "thumbnails", "snapshots")


class PgStore(IdentityStore):
    """The identity database on PostgreSQL (see the module docstring)."""

    _P = "%s"
    _HAS_CAMERA = "jsonb_exists(cameras, %s)"
    _RISK_LEVEL = "risk->>'level'"
    _VISIT_ID_ORDER = 'visit_id COLLATE "C"'
    _MERGE_CAMERAS = (
        "INSERT INTO person_cameras (person_id, camera, first_seen, last_seen, sightings)"
        " SELECT %s, camera, first_seen, last_seen, sightings FROM person_cameras"
        " WHERE person_id = %s ON CONFLICT (person_id, camera) DO UPDATE SET"
        " first_seen = least(person_cameras.first_seen, excluded.first_seen),"
        " last_seen = greatest(person_cameras.last_seen, excluded.last_seen),"
        " sightings = person_cameras.sightings + excluded.sightings"
    )

    def __init__(
        self,
        url: str,
        data_dir: str | Path,
        *,
        reconnect: bool = False,
        fence: str | None = None,
        on_fenced: Callable[[str], None] | None = None,
    ) -> None:
        """``fence``: the leadership key of a cluster matcher (see "Fencing" above);
        ``on_fenced(why)`` is called once, from the store's thread, when a write is refused
        because another matcher leads."""
        self.url = url
        self.path = redact_url(url)
        self.address = server_address(url)
        self.reconnect = reconnect
        # Set when the connection was lost (reconnect only); cleared once connected again.
        self._outage: _Outage | None = None
        self.reload_due = False
        self.data_dir = Path(data_dir)
        self.thumbnails_dir = self.data_dir / CACHE / "thumbnails"
        self.snapshots_dir = self.data_dir / CACHE / "snapshots"
        self.closed_at_start: list[str] = []
        self._depth = 0
        self._deleted: set[str] = set()
        self.fence = fence
        self.epoch: int | None = None  # this store's leadership epoch once taken (fence only)
        self._fenced_out: str | None = None
        self._on_fenced = on_fenced
        try:
            self.thumbnails_dir.mkdir(parents=True, exist_ok=True)
            self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create the picture cache {self.data_dir / CACHE}: {err.strerror}; "
                "set data_dir to a writable folder"
            ) from err
        try:
            self._db: Connection = psycopg.connect(url, autocommit=True, **CONNECT_OPTIONS)
        except psycopg.Error as err:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.path} ({_first_line(err)}); check that "
                "it runs and is reachable, and store.url (user, password, database)"
            ) from err
        try:
            if fence is not None:
                self._x(SERVER_KEEPALIVE.decode())
            self._migrate()
            if fence is not None:
                self._take_epoch(fence)
            self._close_open_visits()
            self._sync_cache()
        except BaseException:
            self._db.close()
            raise

    # ------------------------------------------------------------- plumbing
    def close(self) -> None:
        self._db.close()

    @property
    def outage(self) -> str | None:
        """Why the store cannot be used now (a health reason), None while connected."""
        outage = self._outage
        if outage is None:
            return None
        return (
            f"store: PostgreSQL at {self.address} unreachable since "
            f"{time.strftime('%H:%M:%S', time.localtime(outage.since))} ({outage.reason}); "
            "frames fail until it is back"
        )

    def _lost(self, err: Exception) -> StoreError:
        if not self.reconnect:
            return StoreUnavailableError(
                f"lost the connection to PostgreSQL at {self.path} ({_first_line(err)}); "
                "nothing after the last committed change was stored. Check that PostgreSQL "
                "runs; the store works again once it is reopened"
            )
        if self._outage is None:
            self._outage = _Outage(time.time(), _first_line(err), time.monotonic())
            self.reload_due = True
            with contextlib.suppress(psycopg.Error):
                self._db.close()
            _LOGGER.error(
                "identity store: PostgreSQL at %s unreachable (%s); frames fail until it is "
                "back (trying again at most every %.0f s)",
                self.address,
                _first_line(err),
                RECONNECT_MAX_S,
            )
        return StoreUnavailableError(
            f"lost the connection to PostgreSQL at {self.address} ({_first_line(err)}); "
            "nothing after the last committed change was stored. Check that PostgreSQL runs: "
            "the server reconnects by itself once it is back"
        )

    def ensure_connected(self) -> None:
        """Reconnect after a loss (``reconnect`` only) once the backoff allows; raises
        StoreUnavailableError while PostgreSQL is unreachable. Never inside a transaction:
        what it wrote before the loss is gone."""
        outage = self._outage
        if outage is None:
            return
        now = time.monotonic()
        if self._depth or now < outage.next_try:
            raise self._unavailable(outage)
        options = {**CONNECT_OPTIONS, "connect_timeout": RECONNECT_TIMEOUT_S}
        try:
            db: Connection = psycopg.connect(self.url, autocommit=True, **options)
        except psycopg.Error as err:
            outage.failed(_first_line(err), time.monotonic())
            _LOGGER.debug("identity store: reconnecting to %s failed: %s", self.address, err)
            raise self._unavailable(outage) from err
        self._db, self._outage = db, None
        _LOGGER.warning(
            "identity store: PostgreSQL at %s is back after %.0f s; frames are stored again",
            self.address,
            time.time() - outage.since,
        )

    def _unavailable(self, outage: _Outage) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"PostgreSQL at {self.address} unreachable since "
            f"{time.strftime('%H:%M:%S', time.localtime(outage.since))} ({outage.reason}); "
            "nothing was stored. Check that PostgreSQL runs: the server reconnects by itself "
            "once it is back"
        )

    def _x(self, sql: str, args: Sequence[object] | Mapping[str, object] = ()) -> Cursor:
        self.ensure_connected()
        try:
            return self._db.execute(sql.encode(), args)  # type: ignore[arg-type]
        except _LOST as err:
            raise self._lost(err) from err

    def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if not rows:
            return
        self.ensure_connected()
        try:
            with self._db.cursor() as cursor:
                cursor.executemany(sql.encode(), rows)  # type: ignore[arg-type]
        except _LOST as err:
            raise self._lost(err) from err

    def _run(self, sql: str, args: Sequence[object] = ()) -> int:
        return self._x(sql, args).rowcount

    def _write(self, sql: str, args: Sequence[object]) -> None:
        if self.epoch is not None:
            super()._write(sql, args)  # fenced: in a transaction that checks the epoch first
        else:
            self._x(sql, args)  # one statement commits on its own (autocommit)

    def _cameras_value(self, cameras: Sequence[str]) -> object:
        return Jsonb(list(cameras))

    def _one(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        try:
            return self._x(sql, args).fetchone()
        except _LOST as err:
            raise self._lost(err) from err

    def _all(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._x(sql, args).fetchall()
        except _LOST as err:
            raise self._lost(err) from err

    def _cameras_of(self, stored: object) -> list[str]:
        return [str(c) for c in stored] if isinstance(stored, list) else []

    def erase_deleted(self) -> None:
        """Rewrite the tables that lost rows (``VACUUM FULL``), so deleted rows leave no dead
        copy in the table files. No-op inside a transaction: the outermost writer calls it."""
        if self._depth or not self._deleted:
            return
        tables, self._deleted = sorted(self._deleted), set()
        try:
            self._x(f"VACUUM (FULL) {', '.join(tables)}")
        except psycopg.Error as err:
            if isinstance(err, _LOST):
                raise self._lost(err) from err
            _LOGGER.warning(
                "could not rewrite %s after deleting data (%s); deleted rows stay in free space "
                "until PostgreSQL reuses it (the store's user must own the tables)",
                ", ".join(tables),
                _first_line(err),
            )

    def _begin(self) -> None:
        if self._fenced_out is not None:
            raise NotLeaderError(self._fenced_out)
        self._x("BEGIN")
        if self.epoch is not None and self.fence is not None:
            try:
                row = self._one(_CHECK_EPOCH, (self.fence,))
            except BaseException:
                self._rollback()
                raise
            if row is None or int(row[0]) != self.epoch:
                self._rollback()
                self._refuse(None if row is None else int(row[0]))

    def _take_epoch(self, key: str) -> None:
        """Increment ``key``'s leadership epoch and keep it: from now on the writes of a
        matcher with an older epoch are refused."""
        row = self._one(_TAKE_EPOCH, (key,))
        assert row is not None
        self.epoch = int(row[0])
        _LOGGER.info("identity store: leadership epoch %d of %s", self.epoch, key)

    def _refuse(self, stored: int | None) -> None:
        why = (
            f"another matcher leads now (leadership epoch {stored} in PostgreSQL at "
            f"{self.address}, this matcher's is {self.epoch}); this write was refused and "
            "nothing of it was stored"
        )
        first = self._fenced_out is None
        self._fenced_out = why
        if first:
            _LOGGER.error("identity store: %s", why)
            if self._on_fenced is not None:
                self._on_fenced(why)
        raise NotLeaderError(why)

    def _rollback(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._db.execute(b"ROLLBACK")

    def _commit(self) -> None:
        self._x("COMMIT")

    def _migrate(self) -> None:
        """Upgrade to PG_SCHEMA_VERSION, one transaction per step, under an advisory lock."""
        self._x("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (MIGRATION_LOCK,))
        try:
            self._x("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._one("SELECT version FROM schema_version")
            version = 0 if row is None else int(row[0])
            if version > PG_SCHEMA_VERSION:
                raise StoreError(
                    f"the database at {self.path} was written by a newer Smart ReID (schema "
                    f"{version}, this one understands {PG_SCHEMA_VERSION}); upgrade every "
                    "server that shares it"
                )
            for step in range(version, PG_SCHEMA_VERSION):
                with self.transaction():
                    for statement in MIGRATIONS[step].split(";"):
                        if statement.strip():
                            self._x(statement)
                    self._x("DELETE FROM schema_version")
                    self._x("INSERT INTO schema_version (version) VALUES (%s)", (step + 1,))
                _LOGGER.info("identity store %s at schema version %d", self.path, step + 1)
        finally:
            with contextlib.suppress(psycopg.Error):
                self._db.execute(
                    b"SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (MIGRATION_LOCK,)
                )

    def _sync_cache(self) -> None:
        """Make the local thumbnail cache equal the database (another host may have changed
        it), drop cached snapshots (fetched again on demand) and orphaned snapshot rows, and
        forget a thumbnail score whose picture is missing."""
        with self.transaction():
            self._x("DELETE FROM snapshots WHERE visit_id NOT IN (SELECT visit_id FROM visits)")
            self._x(
                "UPDATE persons SET thumbnail_score = NULL WHERE thumbnail_score IS NOT NULL"
                " AND person_id NOT IN (SELECT person_id FROM thumbnails)"
            )
        stored = {
            str(pid): str(digest)
            for pid, digest in self._all("SELECT person_id, md5(jpeg) FROM thumbnails")
        }
        for entry in self.snapshots_dir.iterdir():
            _unlink(entry)
        for entry in self.thumbnails_dir.iterdir():
            digest = stored.get(entry.stem) if entry.suffix == ".jpg" else None
            if digest is None or _md5(entry) != digest:
                _unlink(entry)
        for pid in stored:
            path = _image_path(self.thumbnails_dir, pid)
            if path is None or path.is_file():
                continue
            row = self._one("SELECT jpeg FROM thumbnails WHERE person_id = %s", (pid,))
            if row is not None:
                _write_atomically(path, bytes(row[0]))

    # ------------------------------------------------------------- persons
    def create_person(self, person_id: str, timestamp: float) -> PersonRecord:
        """A new automatic identity "Visitor N" with the next never-used N."""
        with self.transaction():
            row = self._one(
                "UPDATE meta SET value = value + 1 WHERE key = 'visitor_counter' RETURNING value"
            )
            assert row is not None
            number = int(row[0])
            label = f"Visitor {number}"
            self._x(
                "INSERT INTO persons (person_id, label, number, first_seen, last_seen)"
                " VALUES (%s, %s, %s, %s, %s)",
                (person_id, label, number, timestamp, timestamp),
            )
        return PersonRecord(person_id, label, number, True, False, timestamp, timestamp, 0, None)

    def record_sighting(self, person_id: str, camera: str, timestamp: float) -> None:
        """The person was on ``camera`` at ``timestamp``: first/last seen and camera list."""
        with self.transaction():
            self._x(
                "UPDATE persons SET first_seen = least(first_seen, %s),"
                " last_seen = greatest(last_seen, %s) WHERE person_id = %s",
                (timestamp, timestamp, person_id),
            )
            self._x(
                "INSERT INTO person_cameras (person_id, camera, first_seen, last_seen, sightings)"
                " VALUES (%s, %s, %s, %s, 1) ON CONFLICT (person_id, camera) DO UPDATE SET"
                " first_seen = least(person_cameras.first_seen, excluded.first_seen),"
                " last_seen = greatest(person_cameras.last_seen, excluded.last_seen),"
                " sightings = person_cameras.sightings + 1",
                (person_id, camera, timestamp, timestamp),
            )

    def _delete_visit(self, visit_id: str) -> None:
        self._x("DELETE FROM visits WHERE visit_id = %s", (visit_id,))
        self._x("DELETE FROM snapshots WHERE visit_id = %s", (visit_id,))

    def _take_thumbnail(self, a: PersonRecord, b: PersonRecord) -> Callable[[], None] | None:
        row = self._one("SELECT jpeg FROM thumbnails WHERE person_id = %s", (b.person_id,))
        if row is None or not takes_thumbnail(a, b, True):
            return None
        jpeg = bytes(row[0])
        self._x(
            "INSERT INTO thumbnails (person_id, jpeg) VALUES (%s, %s)"
            " ON CONFLICT (person_id) DO UPDATE SET jpeg = excluded.jpeg",
            (a.person_id, jpeg),
        )
        target = self.thumbnails_dir / f"{a.person_id}.jpg"
        return lambda: _write_atomically(target, jpeg)

    def _delete_person(self, person_id: str) -> list[str]:
        found = self._all("SELECT visit_id FROM visits WHERE person_id = %s", (person_id,))
        visit_ids = [str(r[0]) for r in found]
        self._x("DELETE FROM snapshots WHERE visit_id = ANY(%s)", (visit_ids,))
        self._x("DELETE FROM persons WHERE person_id = %s", (person_id,))
        self._deleted.update(_ERASABLE)
        return visit_ids

    def _erasure_due(self) -> bool:
        return bool(self._deleted)

    def _delete_visits_ended_before(self, older_than: float) -> list[str]:
        visit_ids = [
            str(r[0])
            for r in self._all(
                "DELETE FROM visits WHERE ended_at IS NOT NULL AND ended_at < %s"
                " RETURNING visit_id",
                (older_than,),
            )
        ]
        self._x("DELETE FROM snapshots WHERE visit_id = ANY(%s)", (visit_ids,))
        if visit_ids:
            self._deleted.update(("visits", "snapshots"))
        return visit_ids

    # ------------------------------------------------------------- exemplars
    def delete_exemplars(self, keys: Iterable[int]) -> None:
        ids = [int(k) for k in keys]
        if ids:
            self._write("DELETE FROM exemplars WHERE id = ANY(%s)", (ids,))

    # ------------------------------------------------------------- camera means (centering)
    def save_camera_means(
        self, model: str, means: Mapping[str, tuple[int, npt.NDArray[np.float32]]]
    ) -> None:
        """Store each camera's running mean embedding (``match.CameraCentering``)."""
        with self.transaction():
            self._many(
                "INSERT INTO camera_means (model, camera, crops, mean) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (model, camera) DO UPDATE SET crops = excluded.crops,"
                " mean = excluded.mean",
                camera_mean_rows(model, means),
            )

    # ------------------------------------------------------------- visits
    def save_risk(self, visit_id: str, assessment: Mapping[str, object]) -> None:
        """Keep ``assessment`` as the visit's latest (see ``store.Store.save_risk``)."""
        with self.transaction():
            # Through JSON text, as the SQLite store does: what cannot be JSON fails here.
            text = risk_to_store(assessment, lambda: self._stored_risk(visit_id))
            self._x("UPDATE visits SET risk = %s::jsonb WHERE visit_id = %s", (text, visit_id))

    def visit_risk(self, visit_id: str) -> dict[str, object] | None:
        """The visit's latest risk assessment, None when it has none (or no such visit)."""
        row = self._one("SELECT risk FROM visits WHERE visit_id = %s", (visit_id,))
        if row is None or row[0] is None:
            return None
        return as_object(row[0])

    # ------------------------------------------------------------- images
    def save_thumbnail(self, person_id: str, jpeg: bytes, score: float) -> bool:
        """Keep ``jpeg`` as the person's picture if ``score`` beats the stored one."""
        with self.transaction():
            current = self.require(person_id).thumbnail_score
            has = self._one("SELECT 1 FROM thumbnails WHERE person_id = %s", (person_id,))
            if current is not None and score <= current and has is not None:
                return False
            self._x(
                "INSERT INTO thumbnails (person_id, jpeg) VALUES (%s, %s)"
                " ON CONFLICT (person_id) DO UPDATE SET jpeg = excluded.jpeg",
                (person_id, jpeg),
            )
            self._x(
                "UPDATE persons SET thumbnail_score = %s WHERE person_id = %s", (score, person_id)
            )
            path = _image_path(self.thumbnails_dir, person_id)
            if path is not None:
                _write_atomically(path, jpeg)
        return True

    def thumbnail_path(self, person_id: str) -> Path | None:
        return self._cached(self.thumbnails_dir, person_id, "thumbnails", "person_id")

    def save_snapshot(self, visit_id: str, jpeg: bytes) -> Path:
        path = _image_path(self.snapshots_dir, visit_id)
        if path is None:
            raise ValueError(f"visit id {visit_id[:64]!r} cannot name a snapshot file")
        self._write(
            "INSERT INTO snapshots (visit_id, jpeg) VALUES (%s, %s)"
            " ON CONFLICT (visit_id) DO UPDATE SET jpeg = excluded.jpeg",
            (visit_id, jpeg),
        )
        _write_atomically(path, jpeg)
        return path

    def snapshot_path(self, visit_id: str) -> Path | None:
        return self._cached(self.snapshots_dir, visit_id, "snapshots", "visit_id")

    def _cached(self, folder: Path, item_id: str, table: str, column: str) -> Path | None:
        """The local copy of a stored picture, fetched from PostgreSQL when not cached."""
        path = _image_path(folder, item_id)
        if path is None:
            return None
        if path.is_file():
            return path
        row = self._one(f"SELECT jpeg FROM {table} WHERE {column} = %s", (item_id,))
        if row is None:
            return None
        try:
            _write_atomically(path, bytes(row[0]))
        except OSError as err:
            _LOGGER.warning(
                "cannot cache a picture under %s (%s); set data_dir to a writable folder",
                folder,
                err.strerror or err,
            )
            return None
        return path


class _Outage:
    """The connection is lost: since when (wall clock), the last error, the next try."""

    def __init__(self, since: float, reason: str, now: float) -> None:
        self.since = since
        self.reason = reason
        self.delay = RECONNECT_FIRST_S
        self.next_try = now + self.delay

    def failed(self, reason: str, now: float) -> None:
        self.reason = reason
        self.delay = min(self.delay * 2.0, RECONNECT_MAX_S)
        self.next_try = now + self.delay


def server_address(url: str) -> str:
    """``host:port`` of a PostgreSQL URL, for messages (never the password)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(unparsable URL)"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    return f"{host}:{params.get('port') or 5432}"


def _md5(path: Path) -> str | None:
    try:
        return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    except OSError:
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
