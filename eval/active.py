"""Active-visit matching: pick the right person among a few people currently on site.

While a visit is active the product only has to tell apart the handful of people seen in the
last minutes. An episode here is one view-B crop (the person arriving at a second camera) and an
active set of three identities, each known by its view-A crops (its exemplars, as the product's
gallery would hold them from the first camera):

- genuine trial: the crop's own identity plus 2 other random identities; it counts as matched
  when the best-scoring identity is the right one and its score clears the threshold;
- impostor trial: 3 identities none of which is the crop's; any score over the threshold is a
  false match.

The threshold is the one giving 1% false matches over the impostor trials, and the figure
reported is the share of genuine trials matched at that threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from eval.metrics import accept_rate, threshold_at

type Floats = npt.NDArray[np.float32]
type Ints = npt.NDArray[np.int64]
type Aggregate = Literal["max", "mean", "centroid"]
# Scores one query against each identity's exemplars: (query vector, list of exemplar blocks)
# -> one score per identity. Lets re-ranking-style scorers see the whole small set at once.
type SetScorer = Callable[[Floats, list[Floats]], Floats]


@dataclass(frozen=True, slots=True)
class Episodes:
    """Sampled trials: for each, the query index and the identities on site (true one first)."""

    queries: Ints  # (T,) index of the view-B query crop
    genuine_sets: Ints  # (T, size) identity labels, column 0 is the query's own identity
    impostor_sets: Ints  # (T, size) identity labels, none is the query's identity


@dataclass(frozen=True, slots=True)
class ActiveResult:
    match_rate: float  # genuine trials matched to the right person at the threshold
    misidentified: float  # genuine trials given to a wrong person at the threshold
    threshold: float
    false_match_rate: float  # measured on the impostor trials
    trials: int


def sample_episodes(
    pids: Ints,
    cams: Ints,
    *,
    others: int = 2,
    repeats: int = 20,
    seed: int = 0,
) -> Episodes:
    """Every view-B crop whose identity has view-A crops, ``repeats`` times with new company."""
    rng = np.random.default_rng(seed)
    known = np.unique(pids[cams == 0])
    queries = np.flatnonzero((cams == 1) & np.isin(pids, known))
    if len(known) < others + 2:
        raise ValueError(f"need at least {others + 2} identities seen by view A, have {len(known)}")
    queries = np.repeat(queries, repeats)
    own = pids[queries]
    genuine = np.empty((len(queries), others + 1), dtype=np.int64)
    impostor = np.empty((len(queries), others + 1), dtype=np.int64)
    genuine[:, 0] = own
    for t, pid in enumerate(own):
        strangers = known[known != pid]
        picks = rng.choice(strangers, size=2 * others + 1, replace=False)
        genuine[t, 1:] = picks[:others]
        impostor[t] = picks[others:]
    return Episodes(queries, genuine, impostor)


def exemplar_index(
    pids: Ints, cams: Ints, per_identity: int | None = None, seed: int = 0
) -> dict[int, Ints]:
    """Each identity's exemplars: its view-A crops, at most ``per_identity`` chosen at random."""
    rng = np.random.default_rng(seed)
    index: dict[int, Ints] = {}
    for pid in np.unique(pids[cams == 0]):
        crops = np.flatnonzero((pids == pid) & (cams == 0))
        if per_identity is not None and len(crops) > per_identity:
            crops = np.sort(rng.choice(crops, size=per_identity, replace=False))
        index[int(pid)] = crops
    return index


def score_table(
    similarity: Floats, exemplars: dict[int, Ints], aggregate: Aggregate = "max"
) -> tuple[Floats, dict[int, int]]:
    """Score of every crop (row of ``similarity``) against every identity: the max or mean
    similarity to its exemplars. Returns the table and the column of each identity."""
    if aggregate == "centroid":
        raise ValueError("centroid scores need the vectors: use centroid_table")
    columns = {pid: c for c, pid in enumerate(exemplars)}
    table = np.empty((similarity.shape[0], len(columns)), dtype=np.float32)
    for pid, c in columns.items():
        block = similarity[:, exemplars[pid]]
        table[:, c] = block.max(axis=1) if aggregate == "max" else block.mean(axis=1)
    return table, columns


def centroid_table(features: Floats, exemplars: dict[int, Ints]) -> tuple[Floats, dict[int, int]]:
    """Cosine of every crop to each identity's centroid (normalised mean of its exemplars)."""
    columns = {pid: c for c, pid in enumerate(exemplars)}
    centroids = np.stack([features[exemplars[pid]].mean(axis=0) for pid in columns])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return (features @ centroids.T).astype(np.float32), columns


def _result(
    genuine: Floats, impostor: Floats, false_match_rate: float, trials: int
) -> ActiveResult:
    best_impostor = impostor.max(axis=1)
    threshold = threshold_at(best_impostor, false_match_rate)
    right = genuine.argmax(axis=1) == 0
    accepted = genuine.max(axis=1) >= threshold
    return ActiveResult(
        match_rate=float(np.mean(right & accepted)),
        misidentified=float(np.mean(~right & accepted)),
        threshold=threshold,
        false_match_rate=accept_rate(best_impostor, threshold),
        trials=trials,
    )


def evaluate(
    episodes: Episodes,
    table: Floats,
    columns: dict[int, int],
    false_match_rate: float = 0.01,
) -> ActiveResult:
    """Match rate at the threshold that lets through ``false_match_rate`` of impostor trials,
    with identity scores looked up in a crop x identity ``table``."""
    column = np.vectorize(columns.__getitem__, otypes=[np.int64])
    rows = episodes.queries[:, None]
    genuine = table[rows, column(episodes.genuine_sets)]
    impostor = table[rows, column(episodes.impostor_sets)]
    return _result(genuine, impostor, false_match_rate, len(episodes.queries))


def evaluate_per_trial(
    features: Floats,
    episodes: Episodes,
    exemplars: dict[int, Ints],
    scorer: SetScorer,
    false_match_rate: float = 0.01,
) -> ActiveResult:
    """As ``evaluate``, but each trial is scored on its own by ``scorer`` (for set-wise methods
    such as re-ranking within the active set)."""
    genuine = np.empty(episodes.genuine_sets.shape, dtype=np.float32)
    impostor = np.empty(episodes.impostor_sets.shape, dtype=np.float32)
    for t, q in enumerate(episodes.queries):
        query = features[q]
        genuine[t] = scorer(query, [features[exemplars[int(p)]] for p in episodes.genuine_sets[t]])
        impostor[t] = scorer(
            query, [features[exemplars[int(p)]] for p in episodes.impostor_sets[t]]
        )
    return _result(genuine, impostor, false_match_rate, len(episodes.queries))
