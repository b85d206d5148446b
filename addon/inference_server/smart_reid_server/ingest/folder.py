"""A watched folder as a camera source, for cameras that upload snapshots by FTP or SMB.

Layout: ``<root>/<camera>/...`` (any depth below the camera folder). The first path component
names the camera, the file's modification time is when the picture was taken.

The folder is polled (inotify does not see writes through most container bind mounts and
network shares): every ``poll_interval_s`` a scan lists the image files. A file is taken only
once its size and mtime stayed the same for ``settle_s``, because FTP servers create the file
first and write it in pieces. Every file that was handled (or rejected as corrupt) is recorded
by (relative path, size, mtime_ns) in a small SQLite table in the data directory, so a restart
never processes a picture twice and a corrupt file is reported once, not on every scan; a file
rewritten later has a new size or mtime and is looked at again. Rows of files that are gone are
pruned.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..types import CAMERA_NAME, Frame, Image
from ..vision.decode import BadFrameError, decode_image
from .sources import FrameSink, SourceStats, offer

_LOGGER = logging.getLogger(__name__)

PRUNE_GRACE_S = 3600.0  # rows of vanished files are kept this long (a share may blink)


@dataclass(frozen=True, slots=True)
class FileKey:
    """Identifies one version of one file below the root."""

    relpath: str
    size: int
    mtime_ns: int


@dataclass(slots=True)
class _Pending:
    key: FileKey
    stable_since: float


class ProcessedStore:
    """The files already handled, in SQLite, so restarts do not handle them again.

    Used from worker threads only (``asyncio.to_thread``); a lock serialises them.
    """

    def __init__(self, path: Path, root: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._root = root
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS processed_files ("
            " root TEXT NOT NULL, relpath TEXT NOT NULL, size INTEGER NOT NULL,"
            " mtime_ns INTEGER NOT NULL, outcome TEXT NOT NULL, processed_at REAL NOT NULL,"
            " PRIMARY KEY (root, relpath, size, mtime_ns))"
        )

    def known(self) -> set[FileKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT relpath, size, mtime_ns FROM processed_files WHERE root = ?", (self._root,)
            ).fetchall()
        return {FileKey(r[0], int(r[1]), int(r[2])) for r in rows}

    def add(self, key: FileKey, outcome: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO processed_files VALUES (?, ?, ?, ?, ?, ?)",
                (self._root, key.relpath, key.size, key.mtime_ns, outcome, time.time()),
            )

    def prune(self, present: set[str], older_than: float) -> int:
        """Forget files that are no longer in the folder (recorded before ``older_than``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT relpath, size, mtime_ns FROM processed_files"
                " WHERE root = ? AND processed_at < ?",
                (self._root, older_than),
            ).fetchall()
            gone = [r for r in rows if r[0] not in present]
            self._db.executemany(
                "DELETE FROM processed_files"
                " WHERE root = ? AND relpath = ? AND size = ? AND mtime_ns = ?",
                [(self._root, *r) for r in gone],
            )
        return len(gone)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _scan(root: Path, extensions: frozenset[str]) -> Iterator[tuple[str, os.stat_result]]:
    """Every image file below ``root`` as (relative path with /, stat)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                if not entry.is_file() or entry.name.startswith("."):
                    continue
                if entry.name.rsplit(".", 1)[-1].lower() not in extensions:
                    continue
                stat = entry.stat()
            except FileNotFoundError:
                continue
            yield Path(entry.path).relative_to(root).as_posix(), stat


class FolderSource:
    """Polls one root folder and offers each complete new picture once (see the module doc)."""

    def __init__(self, config: Mapping[str, Any], sink: FrameSink, *, data_dir: Path) -> None:
        self.root = Path(str(config["root"])).expanduser()
        self.name = f"folder:{self.root}"
        self.poll_interval_s = float(config.get("poll_interval_s", 1.0))
        self.settle_s = float(config.get("settle_s", 2.0))
        self.extensions = frozenset(
            str(e).lower().lstrip(".") for e in config.get("extensions", ["jpg", "jpeg", "png"])
        )
        self.delete_after = bool(config.get("delete_after", False))
        max_age = config.get("max_age_s", 3600.0)
        self.max_age_s: float | None = None if max_age is None else float(max_age)
        self.max_bytes = int(config.get("max_image_mb", 20)) * 1024 * 1024
        self.stats = SourceStats(extra={"scans": 0, "too_old": 0})
        self._sink = sink
        digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:10]
        self._store_path = Path(data_dir) / f"folder_source_{digest}.sqlite3"
        self._store: ProcessedStore | None = None
        self._done: set[FileKey] = set()
        self._pending: dict[str, _Pending] = {}
        self._warned: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._scanning = asyncio.Lock()
        self._last_prune = 0.0
        self._root_missing = False
        self._frames = 0

    async def start(self) -> None:
        """Open the processed-files table and start polling. Raises OSError if unusable."""
        self._store = await asyncio.to_thread(ProcessedStore, self._store_path, str(self.root))
        self._done = await asyncio.to_thread(self._store.known)
        self._task = asyncio.get_running_loop().create_task(self._poll_forever())
        self.stats.state = "watching"

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None
        self.stats.state = "stopped"

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                _LOGGER.exception("scanning %s failed; trying again", self.root)
            await asyncio.sleep(self.poll_interval_s)

    async def poll_once(self) -> int:
        """One scan: offer every file that has settled; returns how many frames were offered."""
        async with self._scanning:
            return await self._poll()

    async def _poll(self) -> int:
        self.stats.extra["scans"] += 1
        try:
            listing = await asyncio.to_thread(self._list)
        except OSError as err:
            if not self._root_missing:
                self._root_missing = True
                _LOGGER.warning("watched folder %s is not readable (%s); waiting", self.root, err)
            self.stats.problem = f"folder not readable: {err}"
            return 0
        if self._root_missing:
            _LOGGER.info("watched folder %s is readable again", self.root)
            self._root_missing = False
            self.stats.problem = None
        now = time.monotonic()
        seen = {relpath for relpath, _ in listing}
        for relpath in list(self._pending):
            if relpath not in seen:
                del self._pending[relpath]
        ready: list[tuple[FileKey, float]] = []
        for relpath, stat in listing:
            key = FileKey(relpath, stat.st_size, stat.st_mtime_ns)
            if key in self._done:
                continue
            pending = self._pending.get(relpath)
            if pending is None or pending.key != key:
                self._pending[relpath] = _Pending(key, now)
                if self.settle_s > 0:
                    continue
                pending = self._pending[relpath]
            if now - pending.stable_since >= self.settle_s:
                ready.append((key, stat.st_mtime))
        offered = 0
        for key, mtime in sorted(ready, key=lambda item: item[1]):
            outcome = await self._handle(key, mtime)
            self._pending.pop(key.relpath, None)
            self._done.add(key)
            if self._store is not None:
                await asyncio.to_thread(self._store.add, key, outcome)
            if outcome == "offered":
                offered += 1
                if self.delete_after:
                    await asyncio.to_thread(self._delete, key)
        await self._maybe_prune(seen)
        return offered

    def _list(self) -> list[tuple[str, os.stat_result]]:
        if not self.root.is_dir():
            raise OSError(f"{self.root} is not a directory")
        return list(_scan(self.root, self.extensions))

    async def _handle(self, key: FileKey, mtime: float) -> str:
        """Offer one settled file: offered | dropped | rejected | skipped | too_old | vanished."""
        camera = key.relpath.split("/", 1)[0] if "/" in key.relpath else None
        if camera is None:
            self._warn_once(
                f"top:{key.relpath}",
                "watched folder %s: %s is not inside a camera folder; put pictures in "
                "<root>/<camera>/ (e.g. %s/front_door/)",
                self.root,
                key.relpath,
                self.root,
            )
            return "skipped"
        if not CAMERA_NAME.match(camera):
            self._warn_once(
                f"camera:{camera}",
                "watched folder %s: sub-folder %r is not a valid camera name (a-z, 0-9 and _, "
                "up to 64 characters); rename it to use its pictures",
                self.root,
                camera,
            )
            return "skipped"
        if self.max_age_s is not None and time.time() - mtime > self.max_age_s:
            self.stats.extra["too_old"] += 1
            return "too_old"
        self.stats.received += 1
        path = self.root / key.relpath
        try:
            image = await asyncio.to_thread(self._read, path)
        except FileNotFoundError:
            return "vanished"
        except (BadFrameError, OSError) as err:
            reason = err.message if isinstance(err, BadFrameError) else str(err)
            self.stats.rejected += 1
            _LOGGER.warning(
                "camera %s: skipped %s from the watched folder: %s", camera, key.relpath, reason
            )
            return "rejected"
        self._frames += 1
        frame = Frame(
            camera=camera,
            image=image,
            timestamp=mtime,
            source="folder",
            frame_id=f"{camera}-file-{self._frames:06d}",
            extra={"file": key.relpath},
        )
        if not await self._deliver(frame):
            self._warn_once(
                f"dropped:{camera}",
                "camera %s: the pipeline refused pictures from the watched folder (first: %s); "
                "is the camera listed in `cameras` (or auto_add_cameras: true)?",
                camera,
                key.relpath,
            )
            return "dropped"
        return "offered"

    async def _deliver(self, frame: Frame) -> bool:
        """Hand over and, when the sink can say so, wait until the frame was processed.

        Files are a backlog by nature (a camera uploads a burst, or we were down): waiting for
        each one keeps them on disk instead of overflowing the camera's queue.
        """
        submit = getattr(self._sink, "submit", None)
        if not callable(submit):
            return offer(self._sink, frame, self.stats)
        frame.received_monotonic = time.monotonic()
        try:
            await submit(frame)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            _LOGGER.debug("camera %s: %s was not processed: %s", frame.camera, frame.extra, err)
            self.stats.dropped += 1
            return False
        self.stats.offered += 1
        return True

    def _read(self, path: Path) -> Image:
        data = path.read_bytes()
        return decode_image(data, max_bytes=self.max_bytes)

    def _delete(self, key: FileKey) -> None:
        try:
            (self.root / key.relpath).unlink()
        except OSError as err:
            self._warn_once(
                f"delete:{key.relpath}",
                "watched folder %s: could not delete %s after processing (%s)",
                self.root,
                key.relpath,
                err,
            )

    async def _maybe_prune(self, present: set[str]) -> None:
        now = time.monotonic()
        if self._store is None or now - self._last_prune < 60.0:
            return
        self._last_prune = now
        removed = await asyncio.to_thread(self._store.prune, present, time.time() - PRUNE_GRACE_S)
        if removed:
            self._done = {k for k in self._done if k.relpath in present}

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _LOGGER.warning(message, *args)
