"""PostgreSQL for the tests: throw-away databases on the shared server, and private instances.

The shared server (127.0.0.1:5432, trust auth, user postgres; override with
``TEST_POSTGRES_URL``) holds one uniquely named database per test module, dropped afterwards.
Tests that restart PostgreSQL start their own instance (``LocalPostgres``: initdb + pg_ctl on a
free port in a temporary folder; as root, the binaries run as the ``postgres`` user, since
PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (the cluster extra)")

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(f"{url}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.skip(f"no PostgreSQL at {url} ({err}); start it or set TEST_POSTGRES_URL")


@contextlib.contextmanager
def temp_database(server: str = SERVER_URL) -> Iterator[str]:
    """A new empty database on ``server``; its URL. Dropped (with its connections) after."""
    name = f"smart_reid_test_{uuid.uuid4().hex[:12]}"
    with _admin(server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"{server}/{name}"
    finally:
        with _admin(server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def wipe(url: str) -> None:
    """Empty the database: every table, sequence and type in the public schema goes."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(b"DROP SCHEMA public CASCADE")
        db.execute(b"CREATE SCHEMA public")


def execute(url: str, sql: str, *args: object) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(sql.encode(), args)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll ``condition()`` until true; fail after ``timeout`` seconds naming ``what``."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class LocalPostgres:
    """A private PostgreSQL instance that a test may stop, kill and start again."""

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not on PATH (install PostgreSQL's server binaries)")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="smart_reid_pg_"))
        self.data = self.folder / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as, *command], check=True, capture_output=True, timeout=120, text=True
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.folder} -c fsync=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def local_postgres() -> Iterator[LocalPostgres]:
    instance = LocalPostgres()
    try:
        instance.start()
        yield instance
    finally:
        instance.cleanup()
