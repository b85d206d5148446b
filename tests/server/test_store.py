"""The identity store: durability, numbering, retention, merge/forget, damaged data.

Tests that take ``make`` run on both stores, SQLite (``Store``) and PostgreSQL (``PgStore``, one
throw-away database per module on the shared server, emptied before each test): the behaviour
is meant to be the same. File-level SQLite specifics stay SQLite-only.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from smart_reid_server.identity.store import (
    DB_NAME,
    SCHEMA_VERSION,
    IdentityStore,
    Store,
    StoreError,
    UnknownPersonError,
)

Make = Callable[[Path], IdentityStore]

MODEL = "person-reidentification-retail-0277"
DIM = 256
T0 = 1_763_740_000.0
DAY = 86400.0


def unit(seed: int) -> npt.NDArray[np.float32]:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def mean_shade(path: Path | None) -> float:
    assert path is not None
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable JPEG"
    return float(image.mean())


def jpeg(shade: int) -> bytes:
    image = np.full((64, 32, 3), shade, dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    from pg_support import temp_database

    with temp_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(backend: str, request: pytest.FixtureRequest) -> Make:
    """Opens the store under test on a data folder (PostgreSQL: the module's database)."""
    if backend == "sqlite":
        return Store
    from pg_support import wipe
    from smart_reid_server.identity.store_pg import PgStore

    url: str = request.getfixturevalue("pg_url")
    wipe(url)
    return lambda folder: PgStore(url, folder)


@pytest.fixture
def raw(backend: str, request: pytest.FixtureRequest) -> Callable[..., None]:
    """Runs SQL (``?`` placeholders) on the store's database behind its back."""

    def run(folder: Path, sql: str, *args: object) -> None:
        if backend == "sqlite":
            db = sqlite3.connect(folder / DB_NAME)
            db.execute(sql, args)
            db.commit()
            db.close()
        else:
            from pg_support import execute

            execute(request.getfixturevalue("pg_url"), sql.replace("?", "%s"), *args)

    return run


@pytest.fixture
def store(make: Make, tmp_path: Path) -> Iterator[IdentityStore]:
    opened = make(tmp_path / "data")
    yield opened
    opened.close()


def test_new_store_uses_wal_and_records_its_schema(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    assert (tmp_path / "thumbnails").is_dir() and (tmp_path / "snapshots").is_dir()


def test_visitor_numbers_are_never_reused(make: Make, tmp_path: Path) -> None:
    store = make(tmp_path)
    assert [store.create_person(f"p{i}", T0).label for i in range(3)] == [
        "Visitor 1",
        "Visitor 2",
        "Visitor 3",
    ]
    store.forget("p2")
    store.forget_many(["p0", "p1"])
    store.close()
    reopened = make(tmp_path)
    assert reopened.persons() == []
    assert reopened.create_person("p9", T0).label == "Visitor 4"
    reopened.close()


def test_exemplars_survive_a_restart_and_other_models_are_skipped(
    make: Make, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = make(tmp_path)
    store.create_person("a", T0)
    store.add_exemplar(1, "a", unit(1), MODEL, T0)
    store.add_exemplar(2, "a", unit(2), MODEL, T0)
    store.add_exemplar(3, "a", unit(3)[:128], "osnet_x0_25_msmt17", T0)
    store.close()
    with caplog.at_level(logging.WARNING):
        loaded = make(tmp_path).load_exemplars(MODEL, DIM)
    assert loaded.person_ids == ["a", "a"] and loaded.keys == [1, 2]
    assert np.allclose(loaded.vectors, np.stack([unit(1), unit(2)]))
    assert loaded.skipped_other_model == 1
    assert "skipped 1 stored exemplar(s) made by another ReID model" in caplog.text


def test_damaged_exemplar_rows_are_skipped_with_a_warning(
    make: Make, raw: Callable[..., None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = make(tmp_path)
    store.create_person("a", T0)
    store.add_exemplar(1, "a", unit(1), MODEL, T0)
    store.close()
    insert = (
        "INSERT INTO exemplars (id, person_id, model, vector, created_at) VALUES (?, ?, ?, ?, ?)"
    )
    raw(tmp_path, insert, 2, "a", MODEL, b"\x00\x01\x02", T0)
    raw(tmp_path, insert, 3, "a", MODEL, np.full(DIM, np.nan, dtype="<f4").tobytes(), T0)
    with caplog.at_level(logging.WARNING):
        loaded = make(tmp_path).load_exemplars(MODEL, DIM)
    assert loaded.keys == [1] and loaded.skipped_corrupt == 2
    assert "skipped 2 damaged exemplar row(s)" in caplog.text


def test_only_a_better_thumbnail_replaces_the_stored_one(store: IdentityStore) -> None:
    store.create_person("a", T0)
    assert store.thumbnail_path("a") is None
    assert store.save_thumbnail("a", jpeg(10), score=50.0)
    assert not store.save_thumbnail("a", jpeg(200), score=40.0)
    path = store.thumbnail_path("a")
    assert path is not None
    assert abs(mean_shade(path) - 10) <= 2
    assert store.save_thumbnail("a", jpeg(200), score=80.0)
    assert abs(mean_shade(path) - 200) <= 2
    assert not list(path.parent.glob("*.tmp")), "no temporary files left behind"
    with pytest.raises(UnknownPersonError):
        store.save_thumbnail("nobody", jpeg(1), 1.0)


def test_a_person_whose_picture_is_gone_no_longer_claims_one(
    backend: str, make: Make, raw: Callable[..., None], tmp_path: Path
) -> None:
    """A restored database or a hand-cleaned folder: no thumbnail URL that answers 404.
    PostgreSQL keeps the pictures itself: there, the row is what goes missing, and a deleted
    local copy is fetched again."""
    store = make(tmp_path)
    store.create_person("a", T0)
    store.create_person("b", T0)
    store.save_thumbnail("a", jpeg(10), 0.5)
    store.save_thumbnail("b", jpeg(20), 0.5)
    store.close()
    if backend == "sqlite":
        (tmp_path / "thumbnails" / "a.jpg").unlink()
    else:
        raw(tmp_path, "DELETE FROM thumbnails WHERE person_id = ?", "a")
        (store.thumbnails_dir / "b.jpg").unlink()
    reopened = make(tmp_path)
    assert reopened.require("a").thumbnail_score is None and reopened.thumbnail_path("a") is None
    assert reopened.require("b").thumbnail_score == 0.5
    assert abs(mean_shade(reopened.thumbnail_path("b")) - 20) <= 2
    assert reopened.save_thumbnail("a", jpeg(30), 0.1), "the next good crop is kept at once"
    reopened.close()


def test_pictures_ranked_by_sharpness_give_way_to_the_next_good_crop(tmp_path: Path) -> None:
    """Schema 3 ranks thumbnails on a 0-1 scale; an older sharpness score (hundreds) must not
    keep its picture forever: it is kept, ranked lowest. SQLite only: the PostgreSQL schema
    began with the 0-1 scale."""
    store = Store(tmp_path)
    store.create_person("a", T0)
    store.save_thumbnail("a", jpeg(10), 480.0)
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("UPDATE schema_version SET version = 2")
    db.execute("ALTER TABLE visits DROP COLUMN risk")  # what schema 4 added: not there at 2
    db.commit()
    db.close()
    upgraded = Store(tmp_path)
    assert upgraded.require("a").thumbnail_score == 0.0 and upgraded.thumbnail_path("a")
    assert upgraded.save_thumbnail("a", jpeg(200), 0.3)
    upgraded.close()


def test_forget_removes_every_trace(store: IdentityStore) -> None:
    store.create_person("a", T0)
    store.add_exemplar(1, "a", unit(1), MODEL, T0)
    store.start_visit("v1", "a", T0, True)
    store.save_thumbnail("a", jpeg(10), 5.0)
    store.save_snapshot("v1", jpeg(20))
    store.forget("a")
    assert store.person("a") is None and store.exemplar_count() == 0
    assert store.visit("v1") is None
    assert store.thumbnail_path("a") is None and store.snapshot_path("v1") is None
    with pytest.raises(UnknownPersonError, match="unknown person 'a'"):
        store.forget("a")


def test_purge_drops_stale_strangers_but_keeps_known_and_present(store: IdentityStore) -> None:
    for key, pid in enumerate(("stale", "known", "recent", "present"), start=1):
        store.create_person(pid, T0)
        store.add_exemplar(key, pid, unit(key), MODEL, T0)
        store.record_sighting(pid, "front", T0)
        store.start_visit(f"v_{pid}", pid, T0, True)
        store.update_visit(
            f"v_{pid}", person_id=pid, started_at=T0, last_seen=T0, cameras=["front"],
            last_camera="front", sightings=1, ended_at=T0 + 60,
        )  # fmt: skip
        store.save_thumbnail(pid, jpeg(50), 1.0)
    store.set_known("known", True)
    store.record_sighting("recent", "back", T0 + 89 * DAY)
    gone = store.purge(T0 + 30 * DAY, keep=["present"])
    assert gone == ["stale"]
    assert {p.person_id for p in store.persons()} == {"known", "recent", "present"}
    assert store.thumbnail_path("stale") is None and store.exemplar_count("stale") == 0
    assert store.visit("v_known") is None, "old visit history goes, the known person stays"
    assert store.thumbnail_path("known") is not None and store.exemplar_count("known") == 1


def test_merge_folds_one_identity_into_another(store: IdentityStore) -> None:
    store.create_person("a", T0)
    store.create_person("b", T0 - 100)
    store.record_sighting("a", "front", T0 + 10)
    store.record_sighting("b", "back", T0 - 100)
    store.record_sighting("b", "front", T0 + 50)
    store.add_exemplar(1, "a", unit(1), MODEL)
    store.add_exemplar(2, "b", unit(2), MODEL)
    store.add_exemplar(3, "b", unit(3), MODEL)
    store.start_visit("va", "a", T0, False)
    store.start_visit("vb", "b", T0 - 100, False)
    store.start_visit("vb2", "b", T0 + 50, False)
    store.rename("b", "Alice")
    store.save_thumbnail("a", jpeg(10), 1.0)
    store.save_thumbnail("b", jpeg(200), 9.0)
    merged = store.merge("a", "b", discarded_exemplars=[3], absorbed_visit_id="vb2")
    assert merged.label == "Alice" and not merged.auto_label, "the user's name wins over Visitor N"
    assert merged.visit_count == 2, "two visits, one of them absorbed"
    assert (merged.first_seen, merged.last_seen) == (T0 - 100, T0 + 50)
    assert merged.camera_names == ["back", "front"]
    assert merged.cameras["front"].sightings == 2
    assert store.person("b") is None and store.visit("vb2") is None
    moved = store.visit("vb")
    assert moved is not None and moved.person_id == "a"
    assert store.exemplar_count("a") == 2
    assert merged.thumbnail_score == 9.0
    thumb = store.thumbnail_path("a")
    assert mean_shade(thumb) > 150

    store.create_person("c", T0)
    store.rename("c", "Carol")
    assert store.merge("a", "c").label == "Alice", "a named person keeps their own name"


def test_reset_of_a_camera_targets_people_seen_only_there(store: IdentityStore) -> None:
    for pid, cameras in {"f": ["front"], "fb": ["front", "back"], "b": ["back"]}.items():
        store.create_person(pid, T0)
        for camera in cameras:
            store.record_sighting(pid, camera, T0)
    assert store.persons_only_on("front") == ["f"]
    assert sorted(store.persons_only_on("back")) == ["b"]
    assert store.persons_only_on("garage") == []


def test_labels_are_checked(store: IdentityStore) -> None:
    store.create_person("a", T0)
    with pytest.raises(ValueError, match="empty"):
        store.rename("a", "   ")
    with pytest.raises(ValueError, match="at most 64"):
        store.rename("a", "x" * 65)
    assert store.rename("a", "  Bob ").label == "Bob"


def test_visits_left_open_by_a_crash_are_closed_on_start(make: Make, tmp_path: Path) -> None:
    store = make(tmp_path)
    store.create_person("a", T0)
    store.start_visit("v", "a", T0, True)
    store.update_visit(
        "v", person_id="a", started_at=T0, last_seen=T0 + 30, cameras=["front"],
        last_camera="front", sightings=4,
    )  # fmt: skip
    store.close()
    record = make(tmp_path).visit("v")
    assert record is not None and record.ended_at == T0 + 30 and record.sightings == 4
    person = make(tmp_path).person("a")
    assert person is not None and person.visit_count == 1


def test_a_newer_schema_is_refused_not_damaged(
    make: Make, raw: Callable[..., None], tmp_path: Path
) -> None:
    make(tmp_path).close()
    raw(tmp_path, "UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="newer Smart ReID"):
        make(tmp_path)


def test_a_file_that_is_not_a_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="move it aside"):
        Store(tmp_path)
    assert (tmp_path / DB_NAME).read_bytes().startswith(b"this is not sqlite")


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from smart_reid_server.identity.stores import open_store

    store = open_store(sys.argv[1], sys.argv[2] or None)
    rng = np.random.default_rng(0)
    i = 0
    while True:
        with store.transaction():
            pid = f"p{i:06d}"
            store.create_person(pid, 1.0e9 + i)
            store.record_sighting(pid, "front", 1.0e9 + i)
            for k in range(3):
                store.add_exemplar(3 * i + k + 1, pid, rng.normal(size=256).astype("f4"), "m")
            store.start_visit(f"v{i:06d}", pid, 1.0e9 + i, True)
        print(i, flush=True)
        i += 1
    """
)


def test_a_killed_writer_loses_nothing_it_committed(
    backend: str, make: Make, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    url = request.getfixturevalue("pg_url") if backend == "postgres" else ""
    make(tmp_path).close()  # a clean store (PostgreSQL: the emptied database, migrated)
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    committed = -1
    for line in child.stdout:
        committed = int(line)
        if committed >= 200:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert committed >= 200, child.stderr.read() if child.stderr else "writer died"

    store = make(tmp_path)
    if backend == "sqlite":
        db = sqlite3.connect(tmp_path / DB_NAME)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    persons = {p.person_id: p for p in store.persons()}
    assert all(f"p{i:06d}" in persons for i in range(committed + 1))
    for pid, person in persons.items():
        assert store.exemplar_count(pid) == 3, f"{pid} was stored half-way"
        assert person.visit_count == 1 and person.camera_names == ["front"]
    numbers = sorted(p.number for p in persons.values())
    assert numbers == list(range(1, len(numbers) + 1))
    loaded = store.load_exemplars("m", 256)
    assert len(loaded.keys) == 3 * len(persons)
    store.close()
