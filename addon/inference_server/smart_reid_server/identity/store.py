"""Persistence of identities in ``<data_dir>/identities.sqlite3`` plus JPEG files beside it.

SQLite in WAL mode with ``synchronous=NORMAL``: every write is a transaction, a killed process
loses nothing it committed, and writers never block readers. Images are files
(``thumbnails/<person_id>.jpg``, ``snapshots/<visit_id>.jpg``) written to a temporary name and
moved into place with ``os.replace``, so a reader never sees half a JPEG.

What is stored: persons (label, "Visitor N" number, known flag, first/last seen, visit count,
cameras), their exemplar embeddings tagged with the model that produced them (exemplars of
another model are kept on disk but not loaded: they are not comparable), and visit history.
Visits are written when they start (so ``visit_count`` includes a visit in progress) and updated
when they end; a visit left open by a crash is closed at its ``last_seen`` on the next start.

"Visitor N" numbers come from a counter that only grows, so N is never reused, even after the
person is forgotten or the store is reset.

Forgetting erases (docs/security.md): the connection runs with ``secure_delete``, so SQLite
overwrites deleted rows with zeros instead of leaving them in free space, and after every
forget, merge, reset or retention purge the write-ahead log is checkpointed and truncated, so no
older copy of a forgotten person's pages (their embeddings, their id) stays in
``identities.sqlite3-wal`` either. Their JPEG files are deleted.

Threading: one Store is used from ONE worker thread (the identities executor). The connection is
opened with ``check_same_thread=False`` only so that thread may be created after the store.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import math
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

_LOGGER = logging.getLogger(__name__)

DB_NAME = "identities.sqlite3"
THUMBNAILS = "thumbnails"
SNAPSHOTS = "snapshots"
SCHEMA_VERSION = 4
MAX_LABEL_LENGTH = 64
# What may become an image file name: ids are 12 hex characters; tests use short words.
_FILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class StoreError(RuntimeError):
    """The identity store cannot be used; the message says why and what to do."""


class StoreUnavailableError(StoreError):
    """The store's database went away mid-use (PostgreSQL restarted or unreachable): nothing
    after the last committed change was stored, and this store object cannot be used again."""


class NotLeaderError(StoreUnavailableError):
    """A cluster matcher's write was refused: another matcher took the lead (a newer
    leadership epoch is stored). Nothing of the refused transaction was stored; this matcher
    must stop deciding and step down."""


class UnknownPersonError(KeyError):
    """No identity with this id (it may have been forgotten or merged away)."""

    def __init__(self, person_id: str) -> None:
        super().__init__(person_id)
        self.person_id = person_id

    def __str__(self) -> str:
        return f"unknown person {self.person_id!r}: list identities with GET /api/persons"


@dataclass(slots=True)
class CameraSeen:
    first_seen: float
    last_seen: float
    sightings: int


@dataclass(slots=True)
class PersonRecord:
    """A stored identity. ``auto_label``: the label is still the generated "Visitor N"."""

    person_id: str
    label: str
    number: int
    auto_label: bool
    known: bool
    first_seen: float
    last_seen: float
    visit_count: int
    thumbnail_score: float | None
    cameras: dict[str, CameraSeen] = field(default_factory=dict)

    @property
    def camera_names(self) -> list[str]:
        return sorted(self.cameras)


@dataclass(frozen=True, slots=True)
class VisitRecord:
    visit_id: str
    person_id: str
    started_at: float
    last_seen: float
    ended_at: float | None
    cameras: list[str]
    last_camera: str
    sightings: int
    is_new_identity: bool


@dataclass(frozen=True, slots=True)
class StoredExemplars:
    """Exemplars usable with the current model, row i owned by ``person_ids[i]``."""

    person_ids: list[str]
    keys: list[int]
    vectors: npt.NDArray[np.float32]
    skipped_other_model: int = 0
    skipped_corrupt: int = 0
    cameras: list[str | None] = field(default_factory=list)  # None: stored before schema 2


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: ``executescript`` would commit the migration transaction early."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _create_v1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta (key, value) VALUES ('visitor_counter', 0);
        CREATE TABLE persons (
            person_id TEXT PRIMARY KEY,
            label TEXT NOT NULL,
            number INTEGER NOT NULL,
            auto_label INTEGER NOT NULL DEFAULT 1,
            known INTEGER NOT NULL DEFAULT 0,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            visit_count INTEGER NOT NULL DEFAULT 0,
            thumbnail_score REAL
        );
        CREATE TABLE person_cameras (
            person_id TEXT NOT NULL REFERENCES persons(person_id) ON DELETE CASCADE,
            camera TEXT NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            sightings INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (person_id, camera)
        ) WITHOUT ROWID;
        CREATE TABLE exemplars (
            id INTEGER PRIMARY KEY,
            person_id TEXT NOT NULL REFERENCES persons(person_id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            vector BLOB NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX exemplars_person ON exemplars(person_id);
        CREATE TABLE visits (
            visit_id TEXT PRIMARY KEY,
            person_id TEXT NOT NULL REFERENCES persons(person_id) ON DELETE CASCADE,
            started_at REAL NOT NULL,
            last_seen REAL NOT NULL,
            ended_at REAL,
            cameras TEXT NOT NULL DEFAULT '[]',
            last_camera TEXT NOT NULL DEFAULT '',
            sightings INTEGER NOT NULL DEFAULT 0,
            is_new_identity INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX visits_person ON visits(person_id);
        CREATE INDEX visits_started ON visits(started_at);
        """,
    )


def _to_v2(db: sqlite3.Connection) -> None:
    """Per-camera centering: each exemplar remembers its camera (NULL for older ones) and every
    camera's running mean is kept, so the matching space survives restarts and toggling."""
    _run_script(
        db,
        """
        ALTER TABLE exemplars ADD COLUMN camera TEXT;
        CREATE TABLE camera_means (
            model TEXT NOT NULL,
            camera TEXT NOT NULL,
            crops INTEGER NOT NULL,
            mean BLOB NOT NULL,
            PRIMARY KEY (model, camera)
        ) WITHOUT ROWID;
        """,
    )


def _to_v3(db: sqlite3.Connection) -> None:
    """Thumbnails are ranked by how well they show the person (``crops.thumbnail_score``, 0-1)
    instead of by sharpness alone: pictures kept by the old measure stay, ranked lowest, so
    the next good crop of the person replaces them."""
    db.execute("UPDATE persons SET thumbnail_score = 0.0 WHERE thumbnail_score IS NOT NULL")


def _to_v4(db: sqlite3.Connection) -> None:
    """Risk assessment: each visit keeps its latest assessment (JSON, NULL until assessed)."""
    db.execute("ALTER TABLE visits ADD COLUMN risk TEXT")


# Migration hook: MIGRATIONS[v] upgrades a database at version v to v + 1. All steps run in one
# transaction, so an interrupted upgrade leaves the old version intact.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _create_v1,
    1: _to_v2,
    2: _to_v3,
    3: _to_v4,
}


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def check_label(label: str) -> str:
    """A user-given name, trimmed; ValueError says what is wrong with it."""
    text = str(label).strip()
    if not text:
        raise ValueError("label must not be empty")
    if len(text) > MAX_LABEL_LENGTH:
        raise ValueError(f"label must be at most {MAX_LABEL_LENGTH} characters, got {len(text)}")
    return text


class IdentityStore(abc.ABC):
    """What the identity thread needs from a store: ``Store`` (SQLite, one host) and
    ``store_pg.PgStore`` (PostgreSQL, shared by a matcher and its standby) both provide it.

    What both do the same way whatever the database lives here: reading identities,
    exemplars, centering means and visits back into records, the writes whose SQL both
    databases share, and the rules of merging. A subclass runs the SQL (``_all``, ``_run``),
    names its dialect's pieces, and keeps the writes that differ (pictures, deletion, upserts).
    """

    path: Path | str  # where the identities live, for messages
    _db: Any  # the connection
    _depth: int  # how deeply transactions are nested now
    thumbnails_dir: Path
    snapshots_dir: Path
    closed_at_start: list[str]
    # The dialect: the parameter marker, a condition "the visit's camera list holds the
    # parameter", an expression for the stored risk's level, and the visit id in byte order.
    _P: ClassVar[str]
    _HAS_CAMERA: ClassVar[str]
    _RISK_LEVEL: ClassVar[str]
    _VISIT_ID_ORDER: ClassVar[str]
    # Merging: fold the second person's camera rows (parameter 2) into the first's (1).
    _MERGE_CAMERAS: ClassVar[str]

    @abc.abstractmethod
    def _all(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one query; its rows."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def _one(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    # ------------------------------------------------------------- what each store writes its way
    @abc.abstractmethod
    def create_person(self, person_id: str, timestamp: float) -> PersonRecord: ...
    @abc.abstractmethod
    def record_sighting(self, person_id: str, camera: str, timestamp: float) -> None: ...
    @abc.abstractmethod
    def _delete_visit(self, visit_id: str) -> None:
        """Delete one visit (in the open transaction)."""

    @abc.abstractmethod
    def _take_thumbnail(self, a: PersonRecord, b: PersonRecord) -> Callable[[], None] | None:
        """Merging ``b`` into ``a``: when ``b``'s picture wins (``takes_thumbnail``), make it
        ``a``'s in the database and return what finishes the move once the rows are folded;
        None when ``a``'s picture stays."""

    @abc.abstractmethod
    def _delete_person(self, person_id: str) -> list[str]:
        """Delete the person's rows (in the open transaction); the ids of their visits."""

    @abc.abstractmethod
    def _delete_visits_ended_before(self, older_than: float) -> list[str]:
        """Delete visits that ended before ``older_than`` (in the open transaction); their ids."""

    @abc.abstractmethod
    def erase_deleted(self) -> None:
        """Leave no copy of deleted rows behind; no-op inside a transaction."""

    @abc.abstractmethod
    def delete_exemplars(self, keys: Iterable[int]) -> None: ...
    @abc.abstractmethod
    def save_camera_means(
        self, model: str, means: Mapping[str, tuple[int, npt.NDArray[np.float32]]]
    ) -> None: ...
    @abc.abstractmethod
    def save_risk(self, visit_id: str, assessment: Mapping[str, object]) -> None: ...
    @abc.abstractmethod
    def visit_risk(self, visit_id: str) -> dict[str, object] | None: ...
    @abc.abstractmethod
    def save_thumbnail(self, person_id: str, jpeg: bytes, score: float) -> bool: ...
    @abc.abstractmethod
    def thumbnail_path(self, person_id: str) -> Path | None: ...
    @abc.abstractmethod
    def save_snapshot(self, visit_id: str, jpeg: bytes) -> Path: ...
    @abc.abstractmethod
    def snapshot_path(self, visit_id: str) -> Path | None: ...

    # ------------------------------------------------------------- persons
    def person(self, person_id: str) -> PersonRecord | None:
        found = self._persons(f"WHERE person_id = {self._P}", (person_id,))
        return found[0] if found else None

    def require(self, person_id: str) -> PersonRecord:
        record = self.person(person_id)
        if record is None:
            raise UnknownPersonError(person_id)
        return record

    def persons(self) -> list[PersonRecord]:
        """Every identity, most recently seen first."""
        return self._persons("", ())

    def __contains__(self, person_id: object) -> bool:
        if not isinstance(person_id, str):
            return False
        return (
            self._one(f"SELECT 1 FROM persons WHERE person_id = {self._P}", (person_id,))
            is not None
        )

    def _persons(self, where: str, args: tuple[object, ...]) -> list[PersonRecord]:
        rows = self._all(
            "SELECT person_id, label, number, auto_label, known, first_seen, last_seen,"
            f" visit_count, thumbnail_score FROM persons {where} ORDER BY last_seen DESC",
            args,
        )
        records = {
            r[0]: PersonRecord(
                r[0], r[1], int(r[2]), bool(r[3]), bool(r[4]), r[5], r[6], int(r[7]), r[8]
            )
            for r in rows
        }
        if not records:
            return []
        one = len(records) == 1
        camera_rows = self._all(
            "SELECT person_id, camera, first_seen, last_seen, sightings FROM person_cameras"
            + (f" WHERE person_id = {self._P}" if one else ""),
            tuple(records) if one else (),
        )
        for pid, camera, first, last, sightings in camera_rows:
            if pid in records:
                records[pid].cameras[camera] = CameraSeen(first, last, int(sightings))
        return list(records.values())

    def forget(self, person_id: str) -> None:
        """Delete the identity and everything about it: exemplars, visits, images."""
        self.forget_many([person_id], strict=True)

    def merge(
        self,
        keep: str,
        drop: str,
        *,
        discarded_exemplars: Iterable[int] = (),
        absorbed_visit_id: str | None = None,
    ) -> PersonRecord:
        """Fold ``drop`` into ``keep`` and delete ``drop``.

        Exemplars, visit history and cameras move over; first/last seen widen; visit counts add
        up (minus one when ``absorbed_visit_id``, a visit of ``drop`` happening at the same time
        as one of ``keep``, is folded into it). ``keep``'s label stays unless it is still
        automatic and ``drop`` was named by the user. Known if either was known. The better
        thumbnail wins.
        """
        if keep == drop:
            raise ValueError("cannot merge a person into themselves; pick two different ids")
        p = self._P
        with self.transaction():
            a = self.require(keep)
            b = self.require(drop)
            into = merged(a, b, absorbed_visit=absorbed_visit_id is not None)
            if absorbed_visit_id is not None:
                self._delete_visit(absorbed_visit_id)
            self.delete_exemplars(discarded_exemplars)
            self._run(f"UPDATE exemplars SET person_id = {p} WHERE person_id = {p}", (keep, drop))
            self._run(f"UPDATE visits SET person_id = {p} WHERE person_id = {p}", (keep, drop))
            self._run(self._MERGE_CAMERAS, (keep, drop))
            move_picture = self._take_thumbnail(a, b)
            self._run(
                f"UPDATE persons SET label = {p}, auto_label = {p}, known = {p}, first_seen = {p},"
                f" last_seen = {p}, visit_count = {p}, thumbnail_score = {p} WHERE person_id = {p}",
                (
                    into.label,
                    into.auto_label,
                    into.known,
                    into.first_seen,
                    into.last_seen,
                    into.visit_count,
                    b.thumbnail_score if move_picture is not None else a.thumbnail_score,
                    keep,
                ),
            )
            self._delete_person(drop)
            if move_picture is not None:
                move_picture()
        _unlink(self.thumbnails_dir / f"{drop}.jpg")
        if absorbed_visit_id is not None:
            self._unlink_snapshot(absorbed_visit_id)
        self.erase_deleted()
        return self.require(keep)

    def forget_many(self, person_ids: Iterable[str], *, strict: bool = False) -> list[str]:
        """Forget several identities in one transaction; returns those that existed."""
        gone: list[str] = []
        visit_ids: list[str] = []
        with self.transaction():
            for pid in person_ids:
                if pid not in self:
                    if strict:
                        raise UnknownPersonError(pid)
                    continue
                visit_ids += self._delete_person(pid)
                gone.append(pid)
        for pid in gone:
            _unlink(self.thumbnails_dir / f"{pid}.jpg")
        for visit_id in visit_ids:
            self._unlink_snapshot(visit_id)
        if gone:
            self.erase_deleted()
        return gone

    def purge(self, older_than: float, *, keep: Iterable[str] = ()) -> list[str]:
        """Retention: forget identities last seen before ``older_than`` unless known (or in
        ``keep``, e.g. people present right now); also drop older visit history of the rest."""
        spared = set(keep)
        p = self._P
        stale = [
            str(r[0])
            for r in self._all(
                f"SELECT person_id FROM persons WHERE last_seen < {p} AND known = {p}",
                (older_than, False),
            )
            if r[0] not in spared
        ]
        with self.transaction():
            gone = self.forget_many(stale)
            old_visits = self._delete_visits_ended_before(older_than)
        for visit_id in old_visits:
            self._unlink_snapshot(visit_id)
        if gone or old_visits or self._erasure_due():
            self.erase_deleted()
        return gone

    def _erasure_due(self) -> bool:
        """Rows deleted inside an earlier caller's transaction still wait to be erased."""
        return False

    def _unlink_snapshot(self, visit_id: str) -> None:
        path = _image_path(self.snapshots_dir, visit_id)
        if path is not None:
            _unlink(path)

    def all_person_ids(self) -> list[str]:
        return [str(r[0]) for r in self._all("SELECT person_id FROM persons")]

    def persons_only_on(self, camera: str) -> list[str]:
        """Identities whose every sighting was on ``camera`` (what a camera reset forgets)."""
        rows = self._all(
            "SELECT person_id FROM person_cameras GROUP BY person_id"
            f" HAVING count(*) = 1 AND max(camera) = {self._P}",
            (camera,),
        )
        return [str(r[0]) for r in rows]

    # ------------------------------------------------------------- exemplars
    def max_exemplar_key(self) -> int:
        row = self._one("SELECT coalesce(max(id), 0) FROM exemplars")
        return int(row[0]) if row else 0

    def exemplar_count(self, person_id: str | None = None) -> int:
        if person_id is None:
            row = self._one("SELECT count(*) FROM exemplars")
        else:
            query = f"SELECT count(*) FROM exemplars WHERE person_id = {self._P}"
            row = self._one(query, (person_id,))
        return int(row[0]) if row else 0

    def load_exemplars(self, model: str, dim: int) -> StoredExemplars:
        """Exemplars of ``model`` with ``dim`` finite values; others are skipped and counted."""
        person_ids: list[str] = []
        keys: list[int] = []
        cameras: list[str | None] = []
        vectors: list[npt.NDArray[np.float32]] = []
        other_model = corrupt = 0
        expected = dim * 4
        rows = self._all("SELECT id, person_id, model, vector, camera FROM exemplars ORDER BY id")
        for key, pid, row_model, blob, camera in rows:
            if row_model != model:
                other_model += 1
                continue
            if not isinstance(blob, bytes | memoryview) or len(blob) != expected:
                corrupt += 1
                continue
            vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
            norm = float(np.linalg.norm(vector))
            if not math.isfinite(norm) or norm < 1e-12:
                corrupt += 1
                continue
            person_ids.append(str(pid))
            keys.append(int(key))
            cameras.append(camera)
            vectors.append(vector)
        if other_model:
            _LOGGER.warning(
                "skipped %d stored exemplar(s) made by another ReID model than %s; those people "
                "are recognised again once seen with the current model",
                other_model,
                model,
            )
        if corrupt:
            _LOGGER.warning(
                "skipped %d damaged exemplar row(s) (expected %d float32 values each) in %s",
                corrupt,
                dim,
                self.path,
            )
        matrix = np.vstack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        return StoredExemplars(person_ids, keys, matrix, other_model, corrupt, cameras)

    # ------------------------------------------------------------- camera means (centering)
    def load_camera_means(
        self, model: str, dim: int
    ) -> dict[str, tuple[int, npt.NDArray[np.float32]]]:
        """The stored means of ``model``; damaged rows are skipped with a warning."""
        out: dict[str, tuple[int, npt.NDArray[np.float32]]] = {}
        query = f"SELECT camera, crops, mean FROM camera_means WHERE model = {self._P}"
        for camera, crops, blob in self._all(query, (model,)):
            if not isinstance(blob, bytes | memoryview) or len(blob) != dim * 4 or int(crops) < 1:
                _LOGGER.warning("skipped a damaged centering mean for camera %s", camera)
                continue
            mean = np.frombuffer(blob, dtype="<f4").astype(np.float32)
            if not np.all(np.isfinite(mean)):
                _LOGGER.warning("skipped a damaged centering mean for camera %s", camera)
                continue
            out[str(camera)] = (int(crops), mean)
        return out

    # ------------------------------------------------------------- visits
    @abc.abstractmethod
    def _cameras_of(self, stored: object) -> list[str]:
        """A visit's camera list as the database gives it back."""

    def visit(self, visit_id: str) -> VisitRecord | None:
        row = self._one(
            "SELECT visit_id, person_id, started_at, last_seen, ended_at, cameras, last_camera,"
            f" sightings, is_new_identity FROM visits WHERE visit_id = {self._P}",
            (visit_id,),
        )
        if row is None:
            return None
        cameras = self._cameras_of(row[5])
        return VisitRecord(
            row[0], row[1], row[2], row[3], row[4], cameras, row[6], int(row[7]), bool(row[8])
        )

    def visit_counts(self, person_id: str, at: float, windows: Sequence[float]) -> list[int]:
        """Per window: the person's visits started in the ``window`` seconds up to ``at``."""
        query = (
            f"SELECT count(*) FROM visits WHERE person_id = {self._P}"
            f" AND started_at > {self._P} AND started_at <= {self._P}"
        )
        counts: list[int] = []
        for window in windows:
            row = self._one(query, (person_id, at - window, at))
            counts.append(int(row[0]) if row else 0)
        return counts

    def visits_between(
        self,
        start: float,
        end: float,
        *,
        person_id: str | None = None,
        camera: str | None = None,
        min_level: int | None = None,
        limit: int = 200,
    ) -> tuple[list[str], bool]:
        """Ids of the visits overlapping [start, end] (started before ``end``, ended or still
        going on after ``start``), newest first; ``min_level``: index in low, medium, high,
        critical of the stored latest risk level (visits without one are left out). Also
        whether more than ``limit`` matched."""
        p = self._P
        where = [f"started_at < {p}", f"(ended_at IS NULL OR ended_at >= {p})"]
        args: list[object] = [end, start]
        if person_id is not None:
            where.append(f"person_id = {p}")
            args.append(person_id)
        if camera is not None:
            where.append(self._HAS_CAMERA)
            args.append(camera)
        if min_level is not None:
            where.append(
                f"(CASE {self._RISK_LEVEL} WHEN 'low' THEN 0 WHEN 'medium' THEN 1"
                f" WHEN 'high' THEN 2 WHEN 'critical' THEN 3 ELSE -1 END) >= {p}"
            )
            args.append(min_level)
        rows = self._all(
            f"SELECT visit_id FROM visits WHERE {' AND '.join(where)}"
            f" ORDER BY started_at DESC, {self._VISIT_ID_ORDER} LIMIT {p}",
            (*args, limit + 1),
        )
        return [str(r[0]) for r in rows[:limit]], len(rows) > limit

    def _stored_risk(self, visit_id: str) -> dict[str, object] | None:
        """The visit's stored risk assessment as an object, None when it has none."""
        found = self._one(f"SELECT risk FROM visits WHERE visit_id = {self._P}", (visit_id,))
        return as_object(found[0]) if found else None

    def visit_stats(self, since: float) -> tuple[int, int]:
        """(visits started since ``since``, distinct persons among them)."""
        row = self._one(
            f"SELECT count(*), count(DISTINCT person_id) FROM visits WHERE started_at >= {self._P}",
            (since,),
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    # ------------------------------------------------------------- writes
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """One atomic unit of writes; nested uses join the outermost transaction. Yields the
        connection."""
        if self._depth:
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        try:
            yield self._db
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        self._commit()

    @abc.abstractmethod
    def _begin(self) -> None: ...
    @abc.abstractmethod
    def _rollback(self) -> None: ...
    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _run(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run one statement (in the transaction, if one is open); the rows it changed."""

    def _write(self, sql: str, args: Sequence[object]) -> None:
        """One statement that is a change of its own."""
        with self.transaction():
            self._run(sql, args)

    @abc.abstractmethod
    def _cameras_value(self, cameras: Sequence[str]) -> object:
        """A visit's camera list as the database takes it."""

    def _close_open_visits(self) -> None:
        with self.transaction():
            # Their final risk assessment is still due (app.py makes it once the server runs).
            self.closed_at_start = [
                str(r[0])
                for r in self._all(
                    "SELECT visit_id FROM visits WHERE ended_at IS NULL ORDER BY started_at"
                )
            ]
            closed = self._run("UPDATE visits SET ended_at = last_seen WHERE ended_at IS NULL")
        if closed:
            _LOGGER.info("closed %d visit(s) left open by the previous run", closed)

    def rename(self, person_id: str, label: str) -> PersonRecord:
        text = check_label(label)
        p = self._P
        with self.transaction():
            self.require(person_id)
            self._run(
                f"UPDATE persons SET label = {p}, auto_label = {p} WHERE person_id = {p}",
                (text, False, person_id),
            )
        return self.require(person_id)

    def set_known(self, person_id: str, known: bool) -> PersonRecord:
        p = self._P
        with self.transaction():
            self.require(person_id)
            self._run(
                f"UPDATE persons SET known = {p} WHERE person_id = {p}", (bool(known), person_id)
            )
        return self.require(person_id)

    def add_exemplar(
        self,
        key: int,
        person_id: str,
        vector: npt.NDArray[np.float32],
        model: str,
        created_at: float | None = None,
        camera: str | None = None,
    ) -> None:
        """Store one exemplar: the model's raw unit vector and the camera it came from."""
        blob = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        when = time.time() if created_at is None else created_at
        p = self._P
        self._write(
            "INSERT INTO exemplars (id, person_id, model, vector, created_at, camera)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
            (int(key), person_id, model, blob, when, camera),
        )

    def start_visit(
        self, visit_id: str, person_id: str, started_at: float, is_new_identity: bool
    ) -> None:
        p = self._P
        with self.transaction():
            self._run(
                "INSERT INTO visits (visit_id, person_id, started_at, last_seen, is_new_identity)"
                f" VALUES ({p}, {p}, {p}, {p}, {p})",
                (visit_id, person_id, started_at, started_at, bool(is_new_identity)),
            )
            self._run(
                f"UPDATE persons SET visit_count = visit_count + 1 WHERE person_id = {p}",
                (person_id,),
            )

    def update_visit(
        self,
        visit_id: str,
        *,
        person_id: str,
        started_at: float,
        last_seen: float,
        cameras: Sequence[str],
        last_camera: str,
        sightings: int,
        ended_at: float | None = None,
    ) -> None:
        p = self._P
        self._write(
            f"UPDATE visits SET person_id = {p}, started_at = {p}, last_seen = {p},"
            f" cameras = {p}, last_camera = {p}, sightings = {p}, ended_at = {p}"
            f" WHERE visit_id = {p}",
            (
                person_id,
                started_at,
                last_seen,
                self._cameras_value(cameras),
                last_camera,
                sightings,
                ended_at,
                visit_id,
            ),
        )


def camera_mean_rows(
    model: str, means: Mapping[str, tuple[int, npt.NDArray[np.float32]]]
) -> list[tuple[str, str, int, bytes]]:
    """``save_camera_means``'s rows (model, camera, crops, little-endian float32 mean)."""
    return [
        (model, camera, int(crops), np.ascontiguousarray(mean, dtype="<f4").tobytes())
        for camera, (crops, mean) in means.items()
    ]


@dataclass(frozen=True, slots=True)
class Merged:
    """What ``keep`` becomes when ``drop`` is folded into it (rules: ``Store.merge``)."""

    label: str
    auto_label: bool
    known: bool
    first_seen: float
    last_seen: float
    visit_count: int


def merged(a: PersonRecord, b: PersonRecord, *, absorbed_visit: bool) -> Merged:
    label, auto = a.label, a.auto_label
    if a.auto_label and not b.auto_label:
        label, auto = b.label, False
    return Merged(
        label,
        auto,
        a.known or b.known,
        min(a.first_seen, b.first_seen),
        max(a.last_seen, b.last_seen),
        a.visit_count + b.visit_count - (1 if absorbed_visit else 0),
    )


def takes_thumbnail(a: PersonRecord, b: PersonRecord, b_has_picture: bool) -> bool:
    """Merging ``b`` into ``a``: ``b``'s picture wins when it has one that scored higher."""
    return (
        b.thumbnail_score is not None
        and b_has_picture
        and (a.thumbnail_score is None or b.thumbnail_score > a.thumbnail_score)
    )


def risk_to_store(
    assessment: Mapping[str, object], earlier: Callable[[], dict[str, object] | None]
) -> str:
    """The JSON text ``save_risk`` stores: ``assessment``, carrying the LLM narrative of the
    ``earlier`` stored one (asked for only when needed) unless it is one itself."""
    value = dict(assessment)
    if value.get("source") != "llm" and "narrative" not in value:
        before = earlier()
        narrative = narrative_of(before) if before is not None else None
        if narrative is not None:
            value["narrative"] = narrative
    return json.dumps(value, separators=(",", ":"))


def as_object(value: object) -> dict[str, object] | None:
    """A stored JSON object (text or already decoded); None for anything else."""
    if isinstance(value, str):
        return _json_object(value)
    return value if isinstance(value, dict) else None


class Store(IdentityStore):
    """The identity database of one server (see the module docstring)."""

    _P = "?"
    _HAS_CAMERA = "EXISTS (SELECT 1 FROM json_each(visits.cameras) WHERE value = ?)"
    _RISK_LEVEL = "json_extract(risk, '$.level')"
    _VISIT_ID_ORDER = "visit_id"
    _MERGE_CAMERAS = (
        "INSERT INTO person_cameras (person_id, camera, first_seen, last_seen, sightings)"
        " SELECT ?, camera, first_seen, last_seen, sightings FROM person_cameras"
        " WHERE person_id = ? AND true ON CONFLICT (person_id, camera) DO UPDATE SET"
        " first_seen = min(first_seen, excluded.first_seen),"
        " last_seen = max(last_seen, excluded.last_seen),"
        " sightings = sightings + excluded.sightings"
    )

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.thumbnails_dir = self.data_dir / THUMBNAILS
        self.snapshots_dir = self.data_dir / SNAPSHOTS
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.thumbnails_dir.mkdir(exist_ok=True)
            self.snapshots_dir.mkdir(exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create the data directory {self.data_dir}: {err.strerror}; "
                "set data_dir to a writable folder"
            ) from err
        try:
            self._db: sqlite3.Connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA secure_delete=ON")
            self._depth = 0
            self.closed_at_start: list[str] = []
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"{self.path} cannot be opened as an identity database ({err}); if it is damaged, "
                "move it aside (identities then start empty) or restore a backup"
            ) from err
        self._close_open_visits()
        self._sweep_orphan_files()

    # ------------------------------------------------------------- plumbing
    def close(self) -> None:
        self._db.close()

    def _all(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, args).fetchall()

    def _run(self, sql: str, args: Sequence[object] = ()) -> int:
        return self._db.execute(sql, args).rowcount

    def _cameras_value(self, cameras: Sequence[str]) -> object:
        return json.dumps(list(cameras))

    def _cameras_of(self, stored: object) -> list[str]:
        return [str(c) for c in json.loads(str(stored))]

    def erase_deleted(self) -> None:
        """Move committed pages into the database file and truncate the WAL, so deleted rows
        (zeroed by ``secure_delete``) leave no older copy behind in the log. No-op inside a
        transaction: the outermost writer calls it after committing."""
        if self._depth:
            return
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.DatabaseError as err:
            _LOGGER.warning("could not checkpoint %s after deleting data: %s", self.path, err)
            return
        if busy:
            _LOGGER.warning(
                "could not truncate %s-wal after deleting data (busy); it is retried on the next "
                "forget and SQLite reuses the log",
                self.path,
            )

    def _begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def _rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def _commit(self) -> None:
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer Smart ReID (schema {version}, this one "
                f"understands {SCHEMA_VERSION}); upgrade the add-on or use another data_dir"
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction() as db:
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](db)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        _LOGGER.info("identity store %s at schema version %d", self.path, SCHEMA_VERSION)

    def _sweep_orphan_files(self) -> None:
        """Remove temp files and images of identities/visits that no longer exist, and forget
        the thumbnail of a person whose picture file is gone (a restored database, a folder
        cleaned by hand): a person advertises a thumbnail only while there is one."""
        persons = {r[0] for r in self._db.execute("SELECT person_id FROM persons")}
        visits = {r[0] for r in self._db.execute("SELECT visit_id FROM visits")}
        for folder, alive in ((self.thumbnails_dir, persons), (self.snapshots_dir, visits)):
            for entry in folder.iterdir():
                if entry.suffix == ".tmp" or (entry.suffix == ".jpg" and entry.stem not in alive):
                    _unlink(entry)
        pictured = [
            r[0]
            for r in self._db.execute(
                "SELECT person_id FROM persons WHERE thumbnail_score IS NOT NULL"
            )
        ]
        missing = [pid for pid in pictured if self.thumbnail_path(pid) is None]
        if missing:
            with self.transaction() as db:
                db.executemany(
                    "UPDATE persons SET thumbnail_score = NULL WHERE person_id = ?",
                    [(pid,) for pid in missing],
                )
            _LOGGER.warning(
                "%d person(s) had a thumbnail recorded but no picture under %s; they show none "
                "until a new good crop of them is seen",
                len(missing),
                self.thumbnails_dir,
            )

    # ------------------------------------------------------------- persons
    def create_person(self, person_id: str, timestamp: float) -> PersonRecord:
        """A new automatic identity "Visitor N" with the next never-used N."""
        with self.transaction() as db:
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'visitor_counter'")
            (number,) = db.execute(
                "SELECT value FROM meta WHERE key = 'visitor_counter'"
            ).fetchone()
            label = f"Visitor {number}"
            db.execute(
                "INSERT INTO persons (person_id, label, number, first_seen, last_seen)"
                " VALUES (?, ?, ?, ?, ?)",
                (person_id, label, number, timestamp, timestamp),
            )
        return PersonRecord(
            person_id, label, int(number), True, False, timestamp, timestamp, 0, None
        )

    def record_sighting(self, person_id: str, camera: str, timestamp: float) -> None:
        """The person was on ``camera`` at ``timestamp``: first/last seen and camera list."""
        with self.transaction() as db:
            db.execute(
                "UPDATE persons SET first_seen = min(first_seen, ?), last_seen = max(last_seen, ?)"
                " WHERE person_id = ?",
                (timestamp, timestamp, person_id),
            )
            db.execute(
                "INSERT INTO person_cameras (person_id, camera, first_seen, last_seen, sightings)"
                " VALUES (?, ?, ?, ?, 1) ON CONFLICT (person_id, camera) DO UPDATE SET"
                " first_seen = min(first_seen, excluded.first_seen),"
                " last_seen = max(last_seen, excluded.last_seen), sightings = sightings + 1",
                (person_id, camera, timestamp, timestamp),
            )

    def _delete_visit(self, visit_id: str) -> None:
        self._db.execute("DELETE FROM visits WHERE visit_id = ?", (visit_id,))

    def _take_thumbnail(self, a: PersonRecord, b: PersonRecord) -> Callable[[], None] | None:
        picture = self.thumbnails_dir / f"{b.person_id}.jpg"
        if not takes_thumbnail(a, b, picture.exists()):
            return None
        target = self.thumbnails_dir / f"{a.person_id}.jpg"
        return lambda: os.replace(picture, target)

    def _delete_person(self, person_id: str) -> list[str]:
        query = "SELECT visit_id FROM visits WHERE person_id = ?"
        visit_ids = [str(r[0]) for r in self._db.execute(query, (person_id,))]
        self._db.execute("DELETE FROM persons WHERE person_id = ?", (person_id,))
        return visit_ids

    def _delete_visits_ended_before(self, older_than: float) -> list[str]:
        ended = "FROM visits WHERE ended_at IS NOT NULL AND ended_at < ?"
        visit_ids = [str(r[0]) for r in self._db.execute(f"SELECT visit_id {ended}", (older_than,))]
        self._db.execute(f"DELETE {ended}", (older_than,))
        return visit_ids

    # ------------------------------------------------------------- exemplars
    def delete_exemplars(self, keys: Iterable[int]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM exemplars WHERE id = ?", [(int(k),) for k in keys])

    # ------------------------------------------------------------- camera means (centering)
    def save_camera_means(
        self, model: str, means: Mapping[str, tuple[int, npt.NDArray[np.float32]]]
    ) -> None:
        """Store each camera's running mean embedding (``match.CameraCentering``)."""
        if not means:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO camera_means (model, camera, crops, mean)"
                " VALUES (?, ?, ?, ?)",
                camera_mean_rows(model, means),
            )

    # ------------------------------------------------------------- visits
    def save_risk(self, visit_id: str, assessment: Mapping[str, object]) -> None:
        """Keep ``assessment`` as the visit's latest (a visit that was never stored: no-op).

        The latest LLM narrative survives later rule assessments: a rule assessment saved after
        one carries it as ``narrative`` (``narrative_of``), so the visit keeps its words.
        """
        with self.transaction() as db:
            text = risk_to_store(assessment, lambda: self._stored_risk(visit_id))
            db.execute("UPDATE visits SET risk = ? WHERE visit_id = ?", (text, visit_id))

    def visit_risk(self, visit_id: str) -> dict[str, object] | None:
        """The visit's latest risk assessment, None when it has none (or no such visit)."""
        row = self._db.execute("SELECT risk FROM visits WHERE visit_id = ?", (visit_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            _LOGGER.warning("visit %s: stored risk assessment is not JSON; ignored", visit_id)
            return None
        return value if isinstance(value, dict) else None

    # ------------------------------------------------------------- images
    def save_thumbnail(self, person_id: str, jpeg: bytes, score: float) -> bool:
        """Keep ``jpeg`` as the person's picture if ``score`` beats the stored one (how much
        better it must be, and how often it may change, is the caller's policy)."""
        with self.transaction() as db:
            current = self.require(person_id).thumbnail_score
            path = self.thumbnails_dir / f"{person_id}.jpg"
            if current is not None and score <= current and path.exists():
                return False
            _write_atomically(path, jpeg)
            db.execute(
                "UPDATE persons SET thumbnail_score = ? WHERE person_id = ?", (score, person_id)
            )
        return True

    def thumbnail_path(self, person_id: str) -> Path | None:
        path = _image_path(self.thumbnails_dir, person_id)
        return path if path is not None and path.is_file() else None

    def save_snapshot(self, visit_id: str, jpeg: bytes) -> Path:
        path = _image_path(self.snapshots_dir, visit_id)
        if path is None:
            raise ValueError(f"visit id {visit_id[:64]!r} cannot name a snapshot file")
        _write_atomically(path, jpeg)
        return path

    def snapshot_path(self, visit_id: str) -> Path | None:
        path = _image_path(self.snapshots_dir, visit_id)
        return path if path is not None and path.is_file() else None


def _json_object(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def narrative_of(risk: Mapping[str, object]) -> dict[str, object] | None:
    """The LLM narrative a stored assessment holds: itself when it is one, else ``narrative``."""
    if risk.get("source") == "llm":
        keys = ("level", "score", "title", "summary", "final", "timestamp", "rules")
        return {k: risk[k] for k in keys if k in risk}
    narrative = risk.get("narrative")
    return narrative if isinstance(narrative, dict) else None


def _image_path(folder: Path, item_id: str) -> Path | None:
    """``folder/<item_id>.jpg`` if the id is a plain name and the file stays inside ``folder``
    once links are resolved; None otherwise (an id from a URL must never climb out)."""
    if not isinstance(item_id, str) or not _FILE_ID.match(item_id):
        return None
    path = folder / f"{item_id}.jpg"
    try:
        resolved = path.resolve()
        inside = resolved.parent == folder.resolve()
    except (OSError, RuntimeError):
        return None
    return path if inside else None
