"""Post-processing of ReID embeddings that sharpens who-is-who: re-ranking, expansion, centering.

A plain cosine comparison of two crops ignores everything else the system has seen. These
functions use the neighbourhood of each vector instead, which is what lifts rank-1 and mAP in
``docs/quality.md``:

- ``k_reciprocal_distance``: k-reciprocal re-ranking (Zhong et al., CVPR 2017). Two crops are
  close when their sets of mutual nearest neighbours overlap (Jaccard distance), not just when
  their vectors are close.
- ``query_expansion``: alpha-weighted query expansion (Radenovic et al., alpha-QE): a vector is
  replaced by a similarity-weighted average of itself and its nearest neighbours.
- ``center`` / ``center_groups``: subtract a reference mean (of everything, or of each camera's
  vectors) and re-normalise. That removes the direction every embedding shares ("a person",
  "this camera's light and angle"), so strangers seen by one camera stop looking alike and
  cosine similarities spread out.
- ``s_norm``: symmetric score normalisation against a cohort of other people, which puts the
  scores of easy and hard-to-tell-apart queries on one scale before a threshold is applied.

All inputs are float32 row vectors, L2-normalised; everything is plain numpy and CPU-bound, so
callers on an event loop should run these in an executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

type Matrix = npt.NDArray[np.float32]
type Mask = npt.NDArray[np.bool_]


def normalize(vectors: Matrix) -> Matrix:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    scaled: Matrix = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return scaled


def center(vectors: Matrix, mean: Matrix | None = None) -> Matrix:
    """``vectors`` minus ``mean`` (default: their own mean), re-normalised."""
    reference = vectors.mean(axis=0) if mean is None else mean.reshape(-1)
    return normalize(vectors - reference.astype(np.float32))


def center_groups(vectors: Matrix, groups: npt.NDArray[np.int64]) -> Matrix:
    """Each group's vectors (e.g. one camera's) minus that group's own mean, re-normalised."""
    out = np.empty_like(vectors)
    for group in np.unique(groups):
        rows = groups == group
        out[rows] = vectors[rows] - vectors[rows].mean(axis=0)
    return normalize(out)


def s_norm(
    similarity: Matrix, query_cohort: Matrix, gallery_cohort: Matrix, top_k: int = 100
) -> Matrix:
    """Symmetric normalisation of a query x gallery ``similarity`` matrix.

    ``query_cohort`` (query x cohort) and ``gallery_cohort`` (gallery x cohort) are similarities
    to a set of other people; each side's score is standardised by the mean and spread of its
    ``top_k`` closest cohort members, and the two standardised scores are averaged.
    """

    def stats(scores: Matrix) -> tuple[Matrix, Matrix]:
        k = max(1, min(top_k, scores.shape[1]))
        top = -np.partition(-scores, k - 1, axis=1)[:, :k]
        return top.mean(axis=1), np.maximum(top.std(axis=1), 1e-6)

    q_mean, q_std = stats(query_cohort)
    g_mean, g_std = stats(gallery_cohort)
    from_query = (similarity - q_mean[:, None]) / q_std[:, None]
    from_gallery = (similarity - g_mean[None, :]) / g_std[None, :]
    return (0.5 * (from_query + from_gallery)).astype(np.float32)


def query_expansion(
    query: Matrix,
    database: Matrix,
    k: int = 2,
    alpha: float = 3.0,
    exclude: Mask | None = None,
) -> Matrix:
    """alpha-QE: each query plus its ``k`` most similar database rows weighted by sim**alpha.

    ``exclude`` (query x database, True = never use as a neighbour) keeps a query from
    expanding with itself when it is also in ``database``. Negative similarities weigh 0.
    """
    if k <= 0 or len(database) == 0:
        return query.copy()
    sim = query @ database.T
    if exclude is not None:
        sim = np.where(exclude, -np.inf, sim)
    k = min(k, database.shape[0])
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    weights = np.clip(np.take_along_axis(sim, top, axis=1), 0.0, None) ** alpha
    expanded = query + np.einsum("qk,qkd->qd", weights, database[top])
    return normalize(expanded.astype(np.float32))


def _reciprocal_sets(ranks: npt.NDArray[np.intp], k: int) -> list[set[int]]:
    """For each row i, the j among i's k+1 nearest (itself included) that have i among theirs."""
    n = ranks.shape[0]
    top = np.zeros((n, n), dtype=np.bool_)
    rows = np.repeat(np.arange(n), k + 1)
    top[rows, ranks[:, : k + 1].reshape(-1)] = True
    mutual = top & top.T
    return [{int(j) for j in np.flatnonzero(row)} for row in mutual]


@dataclass(frozen=True, slots=True)
class _Neighbourhoods:
    """Everything k-reciprocal re-ranking derives from one square similarity matrix."""

    original: Matrix  # 2 - 2 cos, each row divided by its maximum
    ranks: npt.NDArray[np.intp]  # each row's nearest first (itself included), max(k1+1, k2) wide
    half: list[set[int]]  # k-reciprocal sets with k = k1 / 2
    weights: Matrix  # expanded k-reciprocal sets as row weights (before local expansion)
    smoothed: Matrix  # weights averaged over each row's k2 nearest (local query expansion)
    mass: Matrix  # each row's weight total before normalising to 1


def _neighbourhoods(similarity: Matrix, k1: int, k2: int) -> _Neighbourhoods:
    n = similarity.shape[0]
    original = np.clip(2.0 - 2.0 * similarity, 0.0, None).astype(np.float32)
    original /= np.maximum(original.max(axis=1, keepdims=True), 1e-12)
    width = max(k1 + 1, k2)
    nearest = np.argpartition(original, width - 1, axis=1)[:, :width]
    order = np.argsort(np.take_along_axis(original, nearest, axis=1), axis=1, kind="stable")
    ranks = np.take_along_axis(nearest, order, axis=1).astype(np.intp)

    reciprocal = _reciprocal_sets(ranks, k1)
    half = _reciprocal_sets(ranks, _half(k1))
    weights = np.zeros((n, n), dtype=np.float32)
    totals = np.empty(n, dtype=np.float32)
    for i in range(n):
        members = np.fromiter(_expand(reciprocal[i], half.__getitem__), dtype=np.intp)
        mass = np.exp(-original[i, members])
        totals[i] = mass.sum()
        weights[i, members] = mass / totals[i]
    smoothed = weights
    if k2 > 1:
        smoothed = np.empty_like(weights)
        for start in range(0, n, 256):
            block = ranks[start : start + 256, :k2]
            smoothed[start : start + 256] = weights[block].mean(axis=1)
    return _Neighbourhoods(original, ranks, half, weights, smoothed, totals)


def _half(k1: int) -> int:
    return max(1, round(k1 / 2))


def _expand(reciprocal: set[int], half_of: Callable[[int], set[int]]) -> set[int]:
    """A k-reciprocal set plus the half-size sets of its members that mostly lie inside it."""
    expanded = set(reciprocal)
    for candidate in reciprocal:
        theirs = half_of(candidate)
        if len(theirs & reciprocal) > 2.0 / 3.0 * len(theirs):
            expanded |= theirs
    return expanded


def k_reciprocal_distance(
    similarity: Matrix, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> Matrix:
    """Re-ranked distances between every pair of a set (queries and gallery together).

    ``similarity`` is the square cosine-similarity matrix of all vectors; the answer is a
    square distance matrix (smaller = more alike) mixing the Jaccard distance of the expanded
    k-reciprocal neighbour sets with the original distance by ``lambda_value``.
    """
    n = similarity.shape[0]
    if n < 2:
        return np.zeros((n, n), dtype=np.float32)
    k1 = max(1, min(k1, n - 1))
    k2 = max(1, min(k2, n))
    hood = _neighbourhoods(similarity, k1, k2)
    weights = hood.smoothed
    shared = np.zeros((n, n), dtype=np.float32)
    by_column = np.ascontiguousarray(weights.T)
    for column in range(n):
        rows = np.flatnonzero(by_column[column])
        if rows.size:
            values = by_column[column, rows]
            shared[np.ix_(rows, rows)] += np.minimum.outer(values, values)
    jaccard = 1.0 - shared / (2.0 - shared)
    return ((1.0 - lambda_value) * jaccard + lambda_value * hood.original).astype(np.float32)


def rerank_candidates(
    query: Matrix, candidates: Matrix, k1: int = 8, k2: int = 3, lambda_value: float = 0.2
) -> Matrix:
    """Re-ranked distances from ``query`` to each of ``candidates`` (its nearest gallery vectors),
    by k-reciprocal re-ranking inside that set alone. Independent of the gallery's size, so a
    search over any gallery costs the same (about 10 ms for 100 candidates on one core).
    Measured one query at a time with the top 100 exemplars: docs/quality.md."""
    stacked = np.vstack([query.reshape(1, -1), candidates]).astype(np.float32)
    distances = k_reciprocal_distance(stacked @ stacked.T, k1, k2, lambda_value)
    row: Matrix = distances[0, 1:]
    return row


class GalleryReranker:
    """k-reciprocal re-ranking of one query at a time against a fixed gallery.

    The gallery's neighbourhoods are computed once (quadratic in its size: rebuild it when the
    gallery changes, off the event loop); each query then costs one similarity row plus a few
    set operations, so a live matcher can afford it per crop. The gallery's own neighbourhoods
    are not updated with the query, as if the query had not been seen yet; apart from that the
    distances follow ``k_reciprocal_distance`` on the query and gallery together.
    """

    def __init__(
        self, gallery: Matrix, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
    ) -> None:
        n = len(gallery)
        if n < 2:
            raise ValueError("re-ranking needs a gallery of at least 2 vectors")
        self.gallery = np.ascontiguousarray(gallery, dtype=np.float32)
        self.k1 = max(1, min(k1, n - 1))
        self.k2 = max(1, min(k2, n))
        self.lambda_value = lambda_value
        raw = np.clip(2.0 - 2.0 * (self.gallery @ self.gallery.T), 0.0, None)
        self._row_max = np.maximum(raw.max(axis=1), 1e-12).astype(np.float32)
        hood = _neighbourhoods(self.gallery @ self.gallery.T, self.k1, self.k2)
        rows = np.arange(n)
        # A newcomer enters a member's top-(k+1) list when it is closer than the last entry.
        self._entry = hood.original[rows, hood.ranks[:, self.k1]]
        self._entry_half = hood.original[rows, hood.ranks[:, _half(self.k1)]]
        self._half = hood.half
        self._weights = hood.weights
        self._smoothed = hood.smoothed
        self._mass = hood.mass
        self._ranks = hood.ranks

    def __len__(self) -> int:
        return len(self.gallery)

    def distances(self, query: Matrix) -> Matrix:
        """Re-ranked distance from one query vector to every gallery vector (smaller = closer)."""
        n = len(self.gallery)
        raw = np.clip(2.0 - 2.0 * (self.gallery @ query.reshape(-1)), 0.0, None)
        mine = raw / max(float(raw.max()), 1e-12)  # the query's own row, normalised
        theirs = raw / np.maximum(self._row_max, raw)  # as each gallery row would see it
        order = np.argsort(mine, kind="stable")
        me = n  # the query's index in the joint set
        reciprocal = {me} | {int(c) for c in order[: self.k1] if theirs[c] < self._entry[c]}
        entering = {int(c) for c in order[: _half(self.k1)] if theirs[c] < self._entry_half[c]}

        def half_of(candidate: int) -> set[int]:
            if candidate == me:
                return entering | {me}
            own = self._half[candidate]
            return own | {me} if candidate in entering else own

        members = np.fromiter(_expand(reciprocal, half_of) - {me}, dtype=np.intp)
        mass = np.exp(-mine[members])
        total = float(mass.sum()) + 1.0  # the query's own weight: exp(-0)
        weights = np.zeros(n, dtype=np.float32)
        weights[members] = mass / total
        own = 1.0 / total
        # The query's weight in each mutual neighbour's row (the gallery rows it would enter).
        mutual = np.fromiter(reciprocal - {me}, dtype=np.intp)
        in_theirs = np.zeros(n, dtype=np.float32)
        entered = np.exp(-theirs[mutual])
        in_theirs[mutual] = entered / (self._mass[mutual] + entered)
        if self.k2 > 1:
            neighbours = order[: self.k2 - 1]
            weights = (weights + self._weights[neighbours].sum(axis=0)) / self.k2
            own = (own + float(in_theirs[neighbours].sum())) / self.k2
            in_theirs = in_theirs[self._ranks[:, : self.k2]].mean(axis=1)
        columns = np.flatnonzero(weights)
        shared = np.minimum(self._smoothed[:, columns], weights[columns]).sum(axis=1)
        shared += np.minimum(in_theirs, own)
        jaccard = 1.0 - shared / (2.0 - shared)
        result: Matrix = ((1.0 - self.lambda_value) * jaccard + self.lambda_value * mine).astype(
            np.float32
        )
        return result


def rerank(
    query: Matrix, gallery: Matrix, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> Matrix:
    """Re-ranked distances from each query to each gallery vector (query x gallery)."""
    everything = np.concatenate([query, gallery]).astype(np.float32, copy=False)
    distance = k_reciprocal_distance(everything @ everything.T, k1, k2, lambda_value)
    return distance[: len(query), len(query) :]
