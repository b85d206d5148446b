"""Embeddings of crop files through the product's own Embedder, cached on disk.

The evaluation must measure what users run, so this module never preprocesses or runs a model
itself: it reads the crops and hands them to ``smart_reid_server.vision.embed.Embedder``. Results are
cached under ``eval/results/cache/`` keyed by model, flip option, the file list and a
fingerprint of what the product's code does: the vectors it returns for a few fixed synthetic
images. A change that alters embeddings (preprocessing, runtime, model file) recomputes; an edit
that does not (a comment, another function) keeps the cache.
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
from smart_reid_server.models.download import ModelManager
from smart_reid_server.vision.embed import Embedder

from eval.data import REPO, models_dir

_LOGGER = logging.getLogger(__name__)
CACHE = REPO / "eval" / "results" / "cache"
BATCH = 32
_PROBES = 6

type Floats = npt.NDArray[np.float32]

_fingerprints: dict[tuple[str, bool], str] = {}


def _probe_images() -> list[npt.NDArray[np.uint8]]:
    """Deterministic person-sized images with different content per channel, so that a change
    of resize, colour order, normalisation or flip shows up in the vectors."""
    rng = np.random.default_rng(20240607)
    height, width = 300, 110
    ramp = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    images = []
    for _ in range(_PROBES):
        noise = rng.integers(0, 256, size=(height, width, 3)).astype(np.float32)
        image = noise * 0.5
        image[..., 0] += 0.5 * ramp
        image[..., 2] += 0.5 * ramp[::-1]
        image[: height // 3, : width // 2, 1] = 255.0
        images.append(image.clip(0, 255).astype(np.uint8))
    return images


def fingerprint(model_name: str, flip: bool, embedder: Embedder | None = None) -> str:
    """What the product's embedding of ``model_name`` currently returns, as a short hash."""
    key = (model_name, flip)
    if key not in _fingerprints:
        embedder = embedder or make_embedder(model_name, flip)
        vectors = np.round(embedder.embed(_probe_images()), 4) + 0.0  # -0.0 -> 0.0
        _fingerprints[key] = hashlib.sha256(vectors.astype(np.float32).tobytes()).hexdigest()[:16]
    return _fingerprints[key]


def cache_key(model_name: str, paths: Sequence[Path], flip: bool) -> str:
    digest = hashlib.sha256()
    digest.update(f"{model_name}|flip={flip}|{fingerprint(model_name, flip)}".encode())
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


def time_embedding(
    model_name: str, paths: Sequence[Path], flip: bool, batch: int, rounds: int = 3
) -> float:
    """Milliseconds per crop through the product's Embedder at ``batch`` crops a call.

    Decoding is done before timing and one warm-up call is excluded; the best of ``rounds``
    passes is kept, because other processes on a shared machine only ever add time.
    """
    embedder = make_embedder(model_name, flip)
    crops = [_read(p) for p in paths]
    embedder.embed(crops[:batch])
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for start in range(0, len(crops), batch):
            embedder.embed(crops[start : start + batch])
        best = min(best, time.perf_counter() - started)
    return best * 1000.0 / max(1, len(crops))
