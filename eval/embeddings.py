"""Embeddings of crop files through the product's own Embedder, cached on disk.

The evaluation must measure what users run, so this module never preprocesses or runs a model
itself: it reads the crops and hands them to ``smart_reid_server.embed.Embedder``. Results are
cached under ``eval/results/cache/`` keyed by model, flip option, the file list and the source
of the product's embedding code, so a change to that code recomputes instead of reusing stale
vectors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from smart_reid_server.embed import Embedder
from smart_reid_server.models.download import ModelManager

from eval.data import REPO, models_dir

_LOGGER = logging.getLogger(__name__)
CACHE = REPO / "eval" / "results" / "cache"
BATCH = 32
_PRODUCT_SOURCES = (
    "addon/inference_server/smart_reid_server/embed.py",
    "addon/inference_server/smart_reid_server/models/registry.py",
    "addon/inference_server/smart_reid_server/models/runtimes.py",
)

type Floats = npt.NDArray[np.float32]


def _product_fingerprint() -> str:
    digest = hashlib.sha256()
    for relative in _PRODUCT_SOURCES:
        path = REPO / relative
        digest.update(path.read_bytes() if path.exists() else b"missing")
    return digest.hexdigest()[:16]


def cache_key(model_name: str, paths: Sequence[Path], flip: bool) -> str:
    digest = hashlib.sha256()
    digest.update(f"{model_name}|flip={flip}|{_product_fingerprint()}".encode())
    for path in paths:
        digest.update(f"{path.parent.name}/{path.name}\n".encode())
    return f"{model_name}__{'flip' if flip else 'plain'}__{digest.hexdigest()[:16]}"


def _read(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image; delete or replace the file")
    return np.asarray(image, dtype=np.uint8)


def make_embedder(model_name: str, flip: bool, cache: Path | None = None) -> Embedder:
    """The product's Embedder for a registry model, loaded from the shared model folder."""
    models_cfg = {"reid": model_name, "flip_tta": flip, "runtime": "auto", "device": "cpu"}
    manager = ModelManager(models_dir(), (cache or CACHE) / "models", download=False)
    return Embedder.from_config(models_cfg, manager)


def embed_images(
    model_name: str, paths: Sequence[Path], flip: bool, cache: Path | None = None
) -> Floats:
    """(len(paths), dim) float32 L2-normalised embeddings, from the cache when possible."""
    folder = CACHE if cache is None else cache
    file = folder / f"{cache_key(model_name, paths, flip)}.npy"
    if file.exists():
        cached: Floats = np.load(file)
        return cached
    embedder = make_embedder(model_name, flip, cache)
    chunks: list[Floats] = []
    started = time.perf_counter()
    for start in range(0, len(paths), BATCH):
        crops = [_read(p) for p in paths[start : start + BATCH]]
        chunks.append(np.asarray(embedder.embed(crops), dtype=np.float32))
    elapsed = time.perf_counter() - started
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(file, vectors)
    meta = {"model": model_name, "flip": flip, "crops": len(paths), "seconds": elapsed}
    file.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
    _LOGGER.info(
        "embedded %d crops with %s flip=%s in %.1f s", len(paths), model_name, flip, elapsed
    )
    return vectors


def time_embedding(model_name: str, paths: Sequence[Path], flip: bool, batch: int) -> float:
    """Milliseconds per crop through the product's Embedder at ``batch`` crops a call.

    Decoding is done before timing; one warm-up call is excluded.
    """
    embedder = make_embedder(model_name, flip)
    crops = [_read(p) for p in paths]
    embedder.embed(crops[:batch])
    started = time.perf_counter()
    for start in range(0, len(crops), batch):
        embedder.embed(crops[start : start + batch])
    return (time.perf_counter() - started) * 1000.0 / max(1, len(crops))
