"""Post-processing of ReID embeddings that sharpens who-is-who: re-ranking, expansion, centering.

A plain cosine comparison of two crops ignores everything else the system has seen. These
functions use the neighbourhood of each vector instead, which is what lifts rank-1 and mAP in
``docs/quality.md``:

- ``k_reciprocal_distance``: k-reciprocal re-ranking (Zhong et al., CVPR 2017). Two crops are
  close when their sets of mutual nearest neighbours overlap (Jaccard distance), not just when
  their vectors are close.
- ``query_expansion``: alpha-weighted query expansion (Radenovic et al., alpha-QE): a vector is
  replaced by a similarity-weighted average of itself and its nearest neighbours.
- ``center``: subtract a reference mean and re-normalise, which removes the direction every
  embedding of a model shares (camera-independent "this is a person" content) so cosine
  similarities spread out.

All inputs are float32 row vectors, L2-normalised; everything is plain numpy and CPU-bound, so
callers on an event loop should run these in an executor.
"""

from __future__ import annotations

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
    original = np.clip(2.0 - 2.0 * similarity, 0.0, None).astype(np.float32)
    original /= np.maximum(original.max(axis=1, keepdims=True), 1e-12)
    width = max(k1 + 1, k2)
    nearest = np.argpartition(original, width - 1, axis=1)[:, :width]
    order = np.argsort(np.take_along_axis(original, nearest, axis=1), axis=1, kind="stable")
    ranks = np.take_along_axis(nearest, order, axis=1).astype(np.intp)

    reciprocal = _reciprocal_sets(ranks, k1)
    half = _reciprocal_sets(ranks, max(1, round(k1 / 2)))
    weights = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        expanded = set(reciprocal[i])
        for candidate in reciprocal[i]:
            theirs = half[candidate]
            if len(theirs & reciprocal[i]) > 2.0 / 3.0 * len(theirs):
                expanded |= theirs
        members = np.fromiter(expanded, dtype=np.intp)
        mass = np.exp(-original[i, members])
        weights[i, members] = mass / mass.sum()

    if k2 > 1:
        smoothed = np.empty_like(weights)
        for start in range(0, n, 256):
            block = ranks[start : start + 256, :k2]
            smoothed[start : start + 256] = weights[block].mean(axis=1)
        weights = smoothed

    shared = np.zeros((n, n), dtype=np.float32)
    by_column = np.ascontiguousarray(weights.T)
    for column in range(n):
        rows = np.flatnonzero(by_column[column])
        if rows.size:
            values = by_column[column, rows]
            shared[np.ix_(rows, rows)] += np.minimum.outer(values, values)
    jaccard = 1.0 - shared / (2.0 - shared)
    return ((1.0 - lambda_value) * jaccard + lambda_value * original).astype(np.float32)


def rerank(
    query: Matrix, gallery: Matrix, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> Matrix:
    """Re-ranked distances from each query to each gallery vector (query x gallery)."""
    everything = np.concatenate([query, gallery]).astype(np.float32, copy=False)
    distance = k_reciprocal_distance(everything @ everything.T, k1, k2, lambda_value)
    return distance[: len(query), len(query) :]
