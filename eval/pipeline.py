"""Pipeline options under evaluation and how each turns crops into a distance matrix.

An option is a combination of: the model(s) whose embeddings are used (more than one = fusion by
concatenating the per-model unit vectors, which averages their cosine similarities), flip TTA,
per-model centering, alpha query expansion and k-reciprocal re-ranking. The post-processing steps
come from ``smart_reid_server.identity.rerank`` so the product can switch on exactly what was measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from smart_reid_server.identity.match import CameraCentering
from smart_reid_server.identity.rerank import (
    center,
    center_groups,
    k_reciprocal_distance,
    normalize,
    query_expansion,
)
from smart_reid_server.models.priors import prior_mean

from eval.data import Split
from eval.embeddings import embed_images

type Floats = npt.NDArray[np.float32]
# none; global: minus the mean of all vectors; camera: minus each camera's own mean;
# camera-heldout: as camera, but each identity's vectors are centred with means computed from the
# other half of the identities only (what a gallery learns from people seen before).
type Centering = Literal["none", "global", "camera", "camera-heldout", "product"]


@dataclass(frozen=True, slots=True)
class Option:
    """One way of producing distances; ``name`` is what reports and JSON call it."""

    name: str
    models: tuple[str, ...]
    flip: bool = False
    center: Centering = "none"
    qe: tuple[int, float] | None = None  # (k neighbours, alpha)
    rerank: tuple[int, int, float] | None = None  # (k1, k2, lambda)

    def describe(self) -> str:
        parts = ["+".join(short(m) for m in self.models)]
        if self.flip:
            parts.append("flip")
        if self.center != "none":
            parts.append(f"{self.center} centering")
        if self.qe:
            parts.append(f"alpha-QE(k={self.qe[0]}, a={self.qe[1]:g})")
        if self.rerank:
            k1, k2, lam = self.rerank
            parts.append(f"re-rank(k1={k1}, k2={k2}, l={lam:g})")
        return " + ".join(parts)


def short(model: str) -> str:
    """``person-reidentification-retail-0277`` -> ``0277`` for tables and plot legends."""
    return model.rsplit("-", 1)[-1] if model.startswith("person-reidentification") else model


def streamed(vectors: Floats, split: Split, model: str, seed: int = 0) -> Floats:
    """What the server does (``match.CameraCentering`` from the shipped prior): the crops arrive
    one at a time in a random order, and each is centred with its camera's mean *at that moment*
    (the first ones mostly with the prior). No crop sees the means of crops after it."""
    centering = CameraCentering(prior=prior_mean(model, vectors.shape[1]))
    out = np.empty_like(vectors)
    for i in np.random.default_rng(seed).permutation(len(vectors)):
        out[i] = centering.apply(f"view{split.cams[i]}", vectors[i : i + 1])[0]
    return out


def centered(vectors: Floats, split: Split, mode: Centering, model: str = "") -> Floats:
    """One model's vectors after the centering ``mode`` (labels are only used to split the
    identities in two halves for ``camera-heldout``, never to pick vectors by person)."""
    if mode == "none":
        return vectors
    if mode == "product":
        return streamed(vectors, split, model)
    if mode == "global":
        return center(vectors)
    if mode == "camera":
        return center_groups(vectors, split.cams)
    half = np.isin(split.pids, np.unique(split.pids)[::2])
    out = np.empty_like(vectors)
    for target in (half, ~half):
        for cam in np.unique(split.cams):
            rows = target & (split.cams == cam)
            source = ~target & (split.cams == cam)
            out[rows] = vectors[rows] - vectors[source].mean(axis=0)
    return normalize(out)


def features(option: Option, split: Split, cache: Path | None = None) -> Floats:
    """Embeddings of every crop of ``split`` for this option (before QE and re-ranking)."""
    blocks = [
        centered(embed_images(model, split.paths, option.flip, cache), split, option.center, model)
        for model in option.models
    ]
    if len(blocks) == 1:
        return blocks[0]
    return normalize(np.concatenate(blocks, axis=1))


def distance(option: Option, vectors: Floats) -> Floats:
    """All-vs-all distance matrix after the option's post-processing (smaller = more alike)."""
    if option.qe is not None:
        k, alpha = option.qe
        vectors = query_expansion(
            vectors, vectors, k, alpha, exclude=np.eye(len(vectors), dtype=bool)
        )
    similarity = vectors @ vectors.T
    if option.rerank is not None:
        k1, k2, lam = option.rerank
        return k_reciprocal_distance(similarity, k1, k2, lam)
    return (1.0 - similarity).astype(np.float32)


def postprocess_ms(
    option: Option, vectors: Floats, gallery_size: int, queries: int = 5, rounds: int = 3
) -> float:
    """Cost of the option's post-processing for one query against a gallery of ``gallery_size``.

    Measured the naive way (everything recomputed per query), so for re-ranking it is an upper
    bound (``GalleryReranker`` is the fast form); embedding time is measured separately. Best
    of ``rounds``, as other processes only ever add time.
    """
    gallery = vectors[:gallery_size]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for q in range(queries):
            query = vectors[gallery_size + q : gallery_size + q + 1]
            if option.center != "none":
                center(np.concatenate([gallery, query]))
            if option.qe is not None:
                query = query_expansion(query, gallery, option.qe[0], option.qe[1])
            if option.rerank is not None:
                everything = np.concatenate([query, gallery])
                k_reciprocal_distance(everything @ everything.T, *option.rerank)
            else:
                _ = query @ gallery.T
        best = min(best, time.perf_counter() - started)
    return best * 1000.0 / queries
