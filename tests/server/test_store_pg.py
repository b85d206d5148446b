"""What only the PostgreSQL store does: migrations under a lock, pictures shared between hosts,
losing PostgreSQL and coming back, and how ``store.url`` is chosen, checked and hidden."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pg_support import execute, local_postgres, psycopg, temp_database, wait_until, wipe
from smart_reid_server.config import ConfigError, load
from smart_reid_server.identity import store_pg
from smart_reid_server.identity.outages import before_identity_work, store_outage
from smart_reid_server.identity.store import Store, StoreError, StoreUnavailableError
from smart_reid_server.identity.store_pg import (
    MIGRATION_LOCK,
    PG_SCHEMA_VERSION,
    PgStore,
    redact_url,
)
from smart_reid_server.identity.stores import open_store

T0 = 1_763_740_000.0


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with temp_database() as url:
        yield url


@pytest.fixture
def url(database: str) -> str:
    wipe(database)
    return database


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(b"SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {str(r[0]) for r in rows}


def _version(url: str) -> int:
    with psycopg.connect(url) as db:
        rows = db.execute(b"SELECT version FROM schema_version").fetchall()
    assert len(rows) == 1, f"schema_version must hold one row, holds {rows}"
    return int(rows[0][0])


def test_an_empty_database_is_migrated_and_a_second_start_changes_nothing(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert _tables(url) == set()
    with caplog.at_level(logging.INFO):
        PgStore(url, tmp_path).close()
    assert _version(url) == PG_SCHEMA_VERSION
    assert {"persons", "exemplars", "visits", "thumbnails", "snapshots"} <= _tables(url)
    assert "at schema version" in caplog.text
    store = PgStore(url, tmp_path)
    store.create_person("a", T0)
    store.close()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = PgStore(url, tmp_path)
    assert "at schema version" not in caplog.text, "a migrated database is left alone"
    assert _version(url) == PG_SCHEMA_VERSION and again.require("a").label == "Visitor 1"
    again.close()


_OPEN = textwrap.dedent(
    """
    import sys
    from smart_reid_server.identity.store_pg import PgStore

    store = PgStore(sys.argv[1], sys.argv[2])
    print(store.create_person(sys.argv[3], 1.0).label, flush=True)
    store.close()
    """
)


def _lock_waiters(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute(
            b"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            b" AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return int(row[0]) if row else 0


def test_two_processes_starting_at_once_migrate_once(url: str, tmp_path: Path) -> None:
    """Both wait on the migration lock the test holds, then race for it once it is free."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute(b"SELECT pg_advisory_lock(hashtextextended(%s, 0))", (MIGRATION_LOCK,))
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN, url, str(tmp_path / name), name],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name in ("one", "two")
        ]
        try:
            wait_until(lambda: _lock_waiters(url) == 2, 60, "both processes at the lock")
        finally:
            holder.execute(b"SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (MIGRATION_LOCK,))
    labels = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        labels.append(out.strip())
    assert sorted(labels) == ["Visitor 1", "Visitor 2"], "one counter, numbers not reused"
    assert _version(url) == PG_SCHEMA_VERSION


def test_a_standby_host_has_every_picture(url: str, tmp_path: Path) -> None:
    """Pictures live in PostgreSQL; each host's data_dir only caches them."""
    leader = PgStore(url, tmp_path / "host_a")
    leader.create_person("a", T0)
    leader.create_person("b", T0)
    leader.start_visit("v1", "a", T0, True)
    assert leader.save_thumbnail("a", b"picture of a", 0.5)
    assert leader.save_thumbnail("b", b"picture of b", 0.5)
    leader.save_snapshot("v1", b"snapshot of v1")
    standby_dir = tmp_path / "host_b"
    stale = standby_dir / "pg_cache" / "thumbnails"
    stale.mkdir(parents=True)
    (stale / "a.jpg").write_bytes(b"an older picture of a")
    (stale / "gone.jpg").write_bytes(b"a person forgotten meanwhile")

    standby = PgStore(url, standby_dir)
    path = standby.thumbnail_path("a")
    assert path is not None and path.read_bytes() == b"picture of a", "stale copy replaced"
    assert not (stale / "gone.jpg").exists()
    snapshot = standby.snapshot_path("v1")
    assert snapshot is not None and snapshot.read_bytes() == b"snapshot of v1"
    assert standby.snapshot_path("v2") is None and standby.thumbnail_path("../a") is None

    standby.forget("a")
    assert standby.thumbnail_path("a") is None and standby.snapshot_path("v1") is None
    assert not path.exists() and not snapshot.exists()
    with psycopg.connect(url) as db:
        left = db.execute(b"SELECT count(*) FROM snapshots").fetchone()
    assert left is not None and left[0] == 0, "the snapshot row went with the visit"
    merged = standby.merge("b", standby.create_person("c", T0).person_id)
    assert merged.thumbnail_score == 0.5
    leader.close()
    standby.close()


def test_forget_rewrites_the_tables_so_no_dead_row_remains(url: str, tmp_path: Path) -> None:
    store = PgStore(url, tmp_path)
    store.create_person("secret", T0)
    store.save_thumbnail("secret", b"face", 0.5)
    with psycopg.connect(url) as db:
        before = db.execute(b"SELECT pg_relation_filenode('persons')").fetchone()
    store.forget("secret")
    with psycopg.connect(url) as db:
        after = db.execute(b"SELECT pg_relation_filenode('persons')").fetchone()
        dead = db.execute(
            b"SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'persons'"
        ).fetchone()
    assert before != after, "VACUUM FULL wrote a new file for the table"
    assert dead is not None and dead[0] == 0
    store.close()


def test_a_lost_postgresql_raises_store_error_and_a_new_store_works_after_restart(
    tmp_path: Path,
) -> None:
    with local_postgres() as server:
        execute(f"{server.url}/postgres", "CREATE DATABASE smart_reid")
        dsn = f"{server.url}/smart_reid"
        store = PgStore(dsn, tmp_path)
        store.create_person("a", T0)
        server.stop()
        # A subclass the cluster matcher tells apart: leave the frame to the next leader.
        with pytest.raises(StoreUnavailableError, match="lost the connection to PostgreSQL"):
            store.create_person("b", T0)
        with pytest.raises(StoreError, match="lost the connection"):
            store.person("a")
        with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
            PgStore(dsn, tmp_path)
        server.start()
        with pytest.raises(StoreError):
            store.person("a")  # the old connection stays broken: the caller reopens
        store.close()
        reopened = PgStore(dsn, tmp_path)
        assert reopened.all_person_ids() == ["a"]
        assert reopened.create_person("b", T0).label == "Visitor 2"
        reopened.close()


def test_open_store_picks_the_store_by_url(database: str, tmp_path: Path) -> None:
    wipe(database)
    sqlite = open_store(tmp_path / "one", None)
    assert isinstance(sqlite, Store)
    sqlite.close()
    for scheme_url in (database, database.replace("postgresql://", "postgres://", 1)):
        pg = open_store(tmp_path / "two", scheme_url)
        assert isinstance(pg, PgStore)
        pg.close()
    with pytest.raises(StoreError, match="postgresql:// URL"):
        open_store(tmp_path, "mysql://db/x")


def test_store_url_is_validated_and_its_password_never_shown(tmp_path: Path) -> None:
    settings = load(
        None,
        environ={"SMART_REID_STORE__URL": "postgresql://reid:s3cret@db.lan:5432/reid"},
        overrides={"data_dir": str(tmp_path)},
    )
    assert settings.section("store")["url"] == "postgresql://reid:s3cret@db.lan:5432/reid"
    assert "s3cret" not in str(settings.redacted())
    assert settings.redacted()["store"]["url"] == "postgresql://reid:**redacted**@db.lan:5432/reid"
    query = load(None, environ={}, overrides={"store": {"url": "postgres://db/x?password=pw"}})
    assert "pw" not in str(query.redacted()["store"])
    assert load(None, environ={}).section("store")["url"] is None
    with pytest.raises(ConfigError, match=r"store\.url") as caught:
        load(None, environ={}, overrides={"store": {"url": "mysql://u:hidden@db/x"}})
    assert "hidden" not in str(caught.value)
    assert "s3cret" not in redact_url("postgresql://reid:s3cret@db.lan/reid")
    assert redact_url("postgresql://db.lan/reid") == "postgresql://db.lan/reid"


def _identities(store: PgStore) -> Any:
    from _embeddings import DIM, MARGIN, MODEL_NAME, THRESHOLD
    from smart_reid_server.identity.identities import Identities

    identities = Identities(
        store,
        model_name=MODEL_NAME,
        dim=DIM,
        threshold=THRESHOLD,
        uncertain_margin=MARGIN,
        max_exemplars=8,
        exemplar_min_distance=0.08,
        window_s=60.0,
        retention_days=30,
    )
    identities.load()
    return identities


def test_a_standby_matcher_takes_over_every_identity(
    url: str, tmp_path: Path, plans: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Real embeddings through the Identities facade: what the leader learnt, a matcher on
    another host (its own data_dir) recognises after take-over, pictures included; a frame
    PostgreSQL refuses is rolled back and the next one works."""
    from test_identities import see, walk_past_front

    leader = _identities(PgStore(url, tmp_path / "host_a"))
    (first,) = walk_past_front(leader, plans[0], T0).decisions
    (second,) = walk_past_front(leader, plans[1], T0 + 30).decisions
    assert first.new_person and second.new_person
    execute(
        url,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'disk trouble'; END $$",
    )
    execute(
        url, "CREATE TRIGGER refuse BEFORE INSERT ON visits FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    with caplog.at_level(logging.WARNING), pytest.raises(psycopg.Error, match="disk trouble"):
        see(leader, "back", T0 + 100, [plans[2].view_b])
    assert "reloading identities" in caplog.text
    assert sorted(v.person_id for v in leader.persons()) == sorted(
        [first.person_id, second.person_id]
    )
    execute(url, "DROP TRIGGER refuse ON visits")
    leader.store.close()  # as after kill -9: nothing more is written

    standby = _identities(PgStore(url, tmp_path / "host_b"))
    assert standby.gallery.person_count == 2
    (again,) = see(standby, "back", T0 + 200, [plans[0].view_b]).decisions
    assert again.person_id == first.person_id and not again.is_new_identity
    view = standby.person(first.person_id)
    assert view.thumbnail_url is not None
    picture = standby.thumbnail_path(first.person_id)
    assert picture is not None and picture.is_relative_to(tmp_path / "host_b")
    (stranger,) = see(standby, "back", T0 + 210, [plans[2].view_b]).decisions
    assert stranger.is_new_identity and stranger.label == "Visitor 3"
    standby.close()


def _bytes_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_forget_and_purge_leave_no_vector_or_id_in_the_table_files(tmp_path: Path) -> None:
    """Scan a private instance's table files (not its WAL) for the forgotten people's ids and
    vectors after a checkpoint: VACUUM FULL left no dead copy behind."""
    rng = np.random.default_rng(5)
    with local_postgres() as server:
        execute(f"{server.url}/postgres", "CREATE DATABASE smart_reid")
        dsn = f"{server.url}/smart_reid"
        store = PgStore(dsn, tmp_path)
        vectors: dict[str, list[bytes]] = {}
        for index, person in enumerate(("forgotten000", "stalestale01", "knownknown02")):
            store.create_person(person, 1000.0 + index)
            store.save_thumbnail(person, person.encode() * 20, 0.5)
            vectors[person] = []
            for k in range(4):
                vector = rng.standard_normal(256).astype(np.float32)
                vectors[person].append(vector.astype("<f4").tobytes())
                store.add_exemplar(index * 10 + k + 1, person, vector, "m", camera="front")
            store.start_visit(f"{person}v", person, 1000.0 + index, True)
            store.record_sighting(person, "front", 1000.0 + index)
        store.set_known("knownknown02", True)
        store.forget("forgotten000")
        assert store.purge(older_than=5000.0) == ["stalestale01"]
        store.close()
        execute(dsn, "CHECKPOINT")
        on_disk = _bytes_under(server.data / "base")
        for person, gone in (
            ("forgotten000", True),
            ("stalestale01", True),
            ("knownknown02", False),
        ):
            found = [person.encode() in on_disk] + [v in on_disk for v in vectors[person]]
            assert found == [not gone] * 5, f"{person}: id/vectors on disk {found}"


async def test_the_server_runs_on_postgresql_and_hides_the_password(
    url: str, tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    """The real server with ``store.url`` (trust auth ignores the password in it): a frame's new
    person lands in PostgreSQL, and /api/settings never shows the password."""
    import aiohttp

    from tests.server.server_support import CuhkPicker, cuhk, running_app, settings_for, upload

    with_password = url.replace("postgresql://postgres@", "postgresql://postgres:pa55word@", 1)
    settings = settings_for(tmp_path, models_dir, store={"url": with_password})
    async with running_app(settings) as app, aiohttp.ClientSession() as session:
        assert app.embedder is not None
        view_a, _ = CuhkPicker(cuhk03_dir, app.embedder).same_person(app.threshold + 0.02)
        status, body = await upload(session, app.http_url(), "front", cuhk(cuhk03_dir, view_a))
        assert status == 200, body
        (decision,) = body["decisions"]
        async with session.get(f"{app.http_url()}/api/settings") as response:
            shown = await response.json()
    assert "pa55word" not in json.dumps(shown)
    assert shown["store"]["url"].startswith("postgresql://postgres:**redacted**@")
    with psycopg.connect(url) as db:
        row = db.execute(
            b"SELECT label FROM persons WHERE person_id = %s", (decision["person_id"],)
        ).fetchone()
    assert row is not None and row[0] == decision["label"]
    assert not (tmp_path / "identities.sqlite3").exists(), "SQLite is not used"


def _connected_again(store: PgStore) -> bool:
    """Whether ``store`` answers (a failed try only moves its next try further out)."""
    try:
        store.all_person_ids()
    except StoreUnavailableError:
        return False
    return True


def test_a_reconnecting_store_fails_fast_while_postgresql_is_down_and_comes_back_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``reconnect=True`` (a single server): one log line when lost, one when back; a
    transaction cut off by the restart left nothing behind; the counter goes on."""
    with local_postgres() as server, caplog.at_level(logging.INFO):
        execute(f"{server.url}/postgres", "CREATE DATABASE smart_reid")
        dsn = f"{server.url}/smart_reid"
        store = PgStore(dsn, tmp_path, reconnect=True)
        store.create_person("a", T0)
        assert store.outage is None and not store.reload_due
        with pytest.raises(StoreUnavailableError), store.transaction():
            store.create_person("cut_off", T0)
            server.stop()
            store.record_sighting("cut_off", "front", T0)
        assert store.reload_due, "the owner of memory built on the store must reload it"
        outage = store.outage
        assert outage is not None and f"127.0.0.1:{server.port} unreachable" in outage
        for _ in range(5):
            with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{server.port}"):
                store.create_person("b", T0)
        lost = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(lost) == 1 and lost[0].levelno == logging.ERROR, "one line when lost"
        assert f"PostgreSQL at 127.0.0.1:{server.port} unreachable" in lost[0].getMessage()
        assert "frames fail until it is back" in lost[0].getMessage()

        server.start()
        wait_until(lambda: _connected_again(store), 30, "the store to reconnect")
        assert store.outage is None
        assert store.all_person_ids() == ["a"], "the cut-off transaction was rolled back"
        assert store.create_person("b", T0).label == "Visitor 2"
        back = [r for r in caplog.records if "is back after" in r.getMessage()]
        assert len(back) == 1, "one line when back"
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
        store.close()


def test_identities_are_reloaded_after_a_frame_lost_its_connection(
    url: str, tmp_path: Path, plans: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL ends the session in the middle of a frame's transaction (a trigger makes the
    session terminate itself): the frame fails, and before the next identity work the store
    reconnects and the identities are reloaded, so the person of the lost frame never existed
    and people seen before are recognised."""
    from test_identities import see, walk_past_front

    monkeypatch.setattr(store_pg, "RECONNECT_FIRST_S", 1.0)
    identities = _identities(PgStore(url, tmp_path, reconnect=True))
    (first,) = walk_past_front(identities, plans[0], T0).decisions
    (second,) = walk_past_front(identities, plans[1], T0 + 30).decisions
    execute(
        url,
        "CREATE FUNCTION cut() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$",
    )
    execute(url, "CREATE TRIGGER cut BEFORE INSERT ON visits FOR EACH ROW EXECUTE FUNCTION cut()")
    with pytest.raises(StoreUnavailableError):
        see(identities, "back", T0 + 100, [plans[2].view_b])
    execute(url, "DROP TRIGGER cut ON visits")
    store = identities.store
    assert isinstance(store, PgStore) and store.reload_due

    def work_allowed() -> bool:
        try:
            before_identity_work(identities)
        except StoreUnavailableError:
            return False
        return True

    wait_until(work_allowed, 30, "the store to reconnect")
    assert not store.reload_due and store.outage is None
    assert identities.gallery.person_count == 2
    assert sorted(p.person_id for p in identities.persons()) == sorted(
        [first.person_id, second.person_id]
    )
    (again,) = see(identities, "back", T0 + 200, [plans[0].view_b]).decisions
    assert again.person_id == first.person_id and not again.is_new_identity
    (stranger,) = see(identities, "back", T0 + 210, [plans[2].view_b]).decisions
    assert stranger.is_new_identity and stranger.label == "Visitor 3"
    identities.close()


def test_a_matcher_store_stays_broken_and_health_is_left_alone(tmp_path: Path) -> None:
    """Without ``reconnect`` (a cluster matcher) nothing changes: no outage is reported (the
    matcher steps down instead) and the store never reconnects."""
    with local_postgres() as server:
        execute(f"{server.url}/postgres", "CREATE DATABASE smart_reid")
        store = PgStore(f"{server.url}/smart_reid", tmp_path)
        server.stop()
        with pytest.raises(StoreUnavailableError, match="works again once it is reopened"):
            store.person("a")
        assert store_outage(store) is None and not store.reload_due
        server.start()
        with pytest.raises(StoreUnavailableError):
            store.person("a")
        assert store_outage(Store(tmp_path / "sqlite")) is None
        before_identity_work(None)
        store.close()


async def test_a_single_server_rides_out_a_postgresql_restart(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real ``cluster.role: all`` server on a private PostgreSQL: frames while PostgreSQL is
    stopped fail with 503 and health is degraded, the server keeps running, and once PostgreSQL
    is back it reconnects by itself: a person seen before is recognised, and no frame of the
    outage left anything behind (the next stranger is Visitor 2)."""
    import aiohttp

    from tests.server.server_support import CuhkPicker, cuhk, running_app, settings_for, upload
    from tests.server.sources_support import wait_until as wait_until_async

    async def health(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
        async with session.get(f"{base}/api/health") as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    with local_postgres() as server, caplog.at_level(logging.INFO):
        execute(f"{server.url}/postgres", "CREATE DATABASE smart_reid")
        dsn = f"{server.url}/smart_reid"
        settings = settings_for(tmp_path, models_dir, store={"url": dsn})
        assert settings.section("cluster")["role"] == "all"
        async with running_app(settings) as app, aiohttp.ClientSession() as session:
            assert app.embedder is not None
            base = app.http_url()
            picker = CuhkPicker(cuhk03_dir, app.embedder)
            view_a, view_b = picker.same_person(app.threshold + 0.02)
            stranger = picker.stranger([view_a, view_b], app.threshold - 0.1)
            status, body = await upload(session, base, "front", cuhk(cuhk03_dir, view_a))
            assert status == 200, body
            (first,) = body["decisions"]
            assert first["new_person"]
            assert (await health(session, base))["status"] == "ready"

            await asyncio.to_thread(server.stop)
            for _ in range(3):
                status, body = await upload(session, base, "back", cuhk(cuhk03_dir, stranger))
                assert status == 503, body
                assert f"PostgreSQL at 127.0.0.1:{server.port}" in body["message"], body
            shown = await health(session, base)
            assert shown["status"] == "degraded"
            assert any(
                f"store: PostgreSQL at 127.0.0.1:{server.port} unreachable" in reason
                for reason in shown["reasons"]
            ), shown
            assert app.state == "running" and app.exit_code == 0
            async with session.get(f"{base}/api/persons") as response:
                assert response.status == 503, "identity calls say why instead of a 500"
                assert "unreachable" in (await response.json())["message"]
            lost = [r for r in caplog.records if "unreachable (" in r.getMessage()]
            assert len(lost) == 1, "one line when PostgreSQL is lost"

            await asyncio.to_thread(server.start)
            # The server tries again at most every 5 s, on the next frame or state refresh.
            await wait_until_async(lambda: app.health()[0] == "ready", 60, "ready again")
            assert (await health(session, base))["status"] == "ready"
            status, body = await upload(session, base, "back", cuhk(cuhk03_dir, view_b))
            assert status == 200, body
            (again,) = body["decisions"]
            assert again["person_id"] == first["person_id"] and not again["new_person"]
            status, body = await upload(session, base, "back", cuhk(cuhk03_dir, stranger))
            assert status == 200, body
            (newcomer,) = body["decisions"]
            assert newcomer["new_person"] and newcomer["label"] == "Visitor 2"
    back = [r for r in caplog.records if "is back after" in r.getMessage()]
    assert len(back) == 1, "one line when PostgreSQL is back"
