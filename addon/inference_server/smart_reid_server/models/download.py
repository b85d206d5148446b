"""Find model files locally or in the cache, download missing ones, verify sha256.

Resolution order per file: the local models dir (``models.dir``: tests and offline installs),
then the cache (``<data_dir>/models``), then a download into the cache. Downloads go to a temp
file in the cache dir and are moved into place only after the digest checks out, so a crash or a
cut connection never leaves a half file where the next start would trust it.

Everything here is blocking I/O: call ``resolve`` from an executor (or ``aresolve``) when an
event loop is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ModelError
from .registry import ModelFile, ModelSpec

_LOGGER = logging.getLogger(__name__)

_CHUNK = 1 << 16
_VERIFIED_FILE = ".verified.json"
_USER_AGENT = "smart-reid-model-fetch/1"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ModelManager:
    """Locates, fetches and verifies the files of model specs."""

    def __init__(
        self,
        models_dir: Path | None,
        cache_dir: Path,
        *,
        download: bool = True,
        verify: bool = True,
        timeout_s: float = 30.0,
        attempts: int = 3,
        mirror: str | None = None,
    ) -> None:
        self.models_dir = models_dir
        self.cache_dir = cache_dir
        self.download = download
        self.verify = verify
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.mirror = mirror.rstrip("/") if mirror else None
        self._lock = threading.Lock()
        self._verified: dict[str, str] | None = None

    @classmethod
    def from_config(cls, models_cfg: Mapping[str, Any], data_dir: Path) -> ModelManager:
        """From config section ``models`` and ``data_dir`` (the cache is ``data_dir/models``)."""
        local = models_cfg.get("dir")
        return cls(
            Path(local).expanduser() if local else None,
            data_dir / "models",
            download=bool(models_cfg.get("download", True)),
            verify=bool(models_cfg.get("verify", True)),
            mirror=models_cfg.get("mirror"),
        )

    def resolve(self, spec: ModelSpec) -> dict[str, Path]:
        """Every file of ``spec`` as a local path (keyed by ``ModelFile.path``)."""
        with self._lock:
            return {file.path: self._resolve_file(spec, file) for file in spec.files}

    async def aresolve(self, spec: ModelSpec) -> dict[str, Path]:
        return await asyncio.to_thread(self.resolve, spec)

    def _resolve_file(self, spec: ModelSpec, file: ModelFile) -> Path:
        rel = Path(file.path).expanduser()
        if rel.is_absolute():
            if not rel.is_file():
                raise ModelError(
                    f"model file {rel} for {spec.name} does not exist: check the path in the "
                    "configuration"
                )
            self._check(file, rel, where="local")
            return rel
        if self.models_dir is not None:
            local = self.models_dir / rel
            if local.is_file():
                self._check(file, local, where="local")
                return local
        cached = self.cache_dir / rel
        if cached.is_file():
            try:
                self._check(file, cached, where="cache")
                return cached
            except ModelError:
                if not (self.download and file.url):
                    raise
                _LOGGER.warning(
                    "cached model file %s does not match its sha256; downloading it again", cached
                )
                cached.unlink(missing_ok=True)
        return self._download(spec, file, cached)

    def _missing_message(self, spec: ModelSpec, file: ModelFile, cached: Path) -> str:
        places = [str(cached)]
        if self.models_dir is not None:
            places.insert(0, str(self.models_dir / file.path))
        where = " or ".join(places)
        if file.url is None:
            return (
                f"model file {file.path} for {spec.name} is not at {where} and cannot be "
                "downloaded: copy it there (set models.dir to the folder holding it), or pick "
                "another model"
            )
        return (
            f"model file {file.path} for {spec.name} is not at {where} and models.download is "
            f"false: set models.download: true, or fetch {file.url} and put it there"
        )

    def _download(self, spec: ModelSpec, file: ModelFile, target: Path) -> Path:
        if not self.download or file.url is None:
            raise ModelError(self._missing_message(spec, file, target))
        url = f"{self.mirror}/{file.path}" if self.mirror else file.url
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp, digest = self._fetch_with_retries(spec, file, url, target)
        try:
            if not file.accepts(digest):
                if self.verify:
                    raise ModelError(
                        f"downloaded model file {file.path} from {url} has sha256 {digest}, "
                        f"expected {file.sha256}: the upstream file changed or the transfer was "
                        "corrupted. Retry, put a trusted copy in models.dir, or set "
                        "models.verify: false"
                    )
                _LOGGER.warning(
                    "model file %s has sha256 %s, expected %s; using it because models.verify "
                    "is false",
                    file.path,
                    digest,
                    file.sha256,
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        self._remember(target, digest)
        _LOGGER.info("downloaded %s to %s", url, target)
        return target

    def _fetch_with_retries(
        self, spec: ModelSpec, file: ModelFile, url: str, target: Path
    ) -> tuple[Path, str]:
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                return self._fetch(url, target, file.size)
            except urllib.error.HTTPError as err:
                last = err
                if 400 <= err.code < 500:
                    break  # the URL is wrong or gone: asking again will not help
            except (OSError, http.client.HTTPException, _ShortDownload) as err:
                last = err
            _LOGGER.warning(
                "download of %s failed (attempt %d of %d): %s", url, attempt, self.attempts, last
            )
            if attempt < self.attempts:
                time.sleep(min(2.0 ** (attempt - 1), 5.0))
        raise ModelError(
            f"could not download model file {file.path} for {spec.name} from {url}: {last}. "
            f"Check the network, or fetch it by hand into {target} (or into models.dir)"
        ) from last

    def _fetch(self, url: str, target: Path, expected_size: int | None) -> tuple[Path, str]:
        """Stream ``url`` into a temp file next to ``target``; return it and its sha256."""
        digest = hashlib.sha256()
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        received = 0
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
        tmp = Path(tmp_name)
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(request, timeout=self.timeout_s) as response,
            ):
                header = response.headers.get("Content-Length")
                announced = int(header) if header and header.isdigit() else None
                total = announced or expected_size
                _LOGGER.info(
                    "downloading %s (%s)", url, f"{total / 1e6:.1f} MB" if total else "size unknown"
                )
                next_report = 10
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    percent = received * 100 // total if total else 0
                    if next_report <= percent < 100:
                        _LOGGER.info("downloading %s: %d%%", target.name, percent)
                        next_report = percent - percent % 10 + 10
            if announced is not None and received != announced:
                raise _ShortDownload(f"connection closed after {received} of {announced} bytes")
            if received == 0:
                raise _ShortDownload("the server sent an empty file")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest.hexdigest()

    def _check(self, file: ModelFile, path: Path, *, where: str) -> None:
        if not self.verify or file.sha256 is None:
            return
        digest = self._digest(path)
        if not file.accepts(digest):
            hint = (
                "delete it, or set models.verify: false"
                if where == "local"
                else "delete it so it is downloaded again, or set models.verify: false"
            )
            raise ModelError(
                f"model file {path} has sha256 {digest}, expected {file.sha256}: {hint}"
            )

    def _digest(self, path: Path) -> str:
        """sha256 of ``path``, remembered by (path, size, mtime) so restarts stay fast."""
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        known = self._load_verified()
        digest = known.get(key)
        if digest is None:
            digest = sha256_file(path)
            known[key] = digest
            self._save_verified()
        return digest

    def _remember(self, path: Path, digest: str) -> None:
        stat = path.stat()
        self._load_verified()[f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"] = digest
        self._save_verified()

    def _load_verified(self) -> dict[str, str]:
        if self._verified is None:
            self._verified = {}
            with contextlib.suppress(OSError, ValueError):
                data = json.loads((self.cache_dir / _VERIFIED_FILE).read_text("utf-8"))
                if isinstance(data, dict):
                    self._verified = {str(k): str(v) for k, v in data.items()}
        return self._verified

    def _save_verified(self) -> None:
        """Best effort: a read-only cache dir only costs re-hashing at the next start."""
        if self._verified is None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".verified.", dir=self.cache_dir)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._verified, out, indent=0, sort_keys=True)
            os.replace(tmp, self.cache_dir / _VERIFIED_FILE)
        except OSError as err:
            _LOGGER.debug("cannot save verification cache in %s: %s", self.cache_dir, err)


class _ShortDownload(Exception):
    """The transfer ended early; worth another attempt."""
