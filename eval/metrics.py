"""Retrieval and verification metrics on distance or similarity matrices.

Retrieval (closed set): CMC and mAP under the CUHK03 protocol, where every image is a query and
its gallery is every other image except those of the same identity seen by the same camera (those
are trivially similar and say nothing about cross-camera matching).

Verification (open set): the similarity of same-person cross-camera pairs against that of
different-person pairs, the threshold giving a chosen false-match rate, and the share of
same-person pairs accepted at that threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

type Floats = npt.NDArray[np.float32]
type Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Retrieval:
    """CMC curve (cmc[r] = share of queries whose first true match is within rank r+1) and mAP."""

    cmc: npt.NDArray[np.float64]
    mean_ap: float
    queries: int

    @property
    def rank1(self) -> float:
        return float(self.cmc[0])

    @property
    def rank5(self) -> float:
        return float(self.cmc[min(4, len(self.cmc) - 1)])


def retrieval(
    distance: Floats,
    q_pids: Ints,
    q_cams: Ints,
    g_pids: Ints | None = None,
    g_cams: Ints | None = None,
    max_rank: int = 50,
) -> Retrieval:
    """CMC and mAP; without gallery labels the gallery is the query set itself (all-vs-all).

    Gallery items of the query's identity and camera are ignored (that also drops the query
    itself in all-vs-all); queries with no true match left in the gallery are skipped.
    """
    g_pids = q_pids if g_pids is None else g_pids
    g_cams = q_cams if g_cams is None else g_cams
    if distance.shape != (len(q_pids), len(g_pids)):
        raise ValueError(f"distance is {distance.shape}, labels say {len(q_pids)}x{len(g_pids)}")
    max_rank = min(max_rank, len(g_pids))
    hits_at = np.zeros(max_rank, dtype=np.float64)
    ap_sum = 0.0
    counted = 0
    for start in range(0, len(q_pids), 512):
        stop = start + 512
        order = np.argsort(distance[start:stop], axis=1, kind="stable")
        same_id = g_pids[order] == q_pids[start:stop, None]
        junk = same_id & (g_cams[order] == q_cams[start:stop, None])
        valid = ~junk
        hit = same_id & valid
        positives = hit.sum(axis=1)
        keep = positives > 0
        if not keep.any():
            continue
        hit, valid, positives = hit[keep], valid[keep], positives[keep]
        rank = np.cumsum(valid, axis=1) - 1  # position among the gallery items that count
        first = np.where(hit.any(axis=1), np.argmax(hit, axis=1), 0)
        first_rank = rank[np.arange(len(first)), first]
        hits_at += (first_rank[:, None] <= np.arange(max_rank)[None, :]).sum(axis=0)
        found = np.cumsum(hit, axis=1)
        precision = np.where(hit, found / np.maximum(rank + 1.0, 1.0), 0.0)
        ap_sum += float((precision.sum(axis=1) / positives).sum())
        counted += int(keep.sum())
    if counted == 0:
        raise ValueError("no query has a true match from another camera in the gallery")
    return Retrieval(hits_at / counted, ap_sum / counted, counted)


@dataclass(frozen=True, slots=True)
class PairScores:
    """Similarities of same-person cross-camera pairs and of different-person pairs."""

    genuine: Floats
    impostor: Floats


def pair_scores(similarity: Floats, pids: Ints, cams: Ints) -> PairScores:
    """Every unordered pair once: genuine = same identity, other camera; impostor = other identity."""
    upper = np.triu(np.ones(similarity.shape, dtype=np.bool_), k=1)
    same = pids[:, None] == pids[None, :]
    cross = cams[:, None] != cams[None, :]
    genuine = similarity[upper & same & cross].astype(np.float32)
    impostor = similarity[upper & ~same].astype(np.float32)
    return PairScores(genuine, impostor)


def threshold_at(impostor: Floats, false_match_rate: float) -> float:
    """The smallest threshold at which at most ``false_match_rate`` of impostors score >= it.

    Accepting means similarity >= threshold; the returned value sits just above the impostor
    score that would push the rate over the target.
    """
    if not 0.0 < false_match_rate < 1.0:
        raise ValueError(f"false_match_rate must be in (0, 1), got {false_match_rate}")
    if impostor.size == 0:
        raise ValueError("no impostor scores to calibrate on")
    allowed = int(np.floor(false_match_rate * impostor.size))
    if allowed >= impostor.size:
        return float(impostor.min())
    cut = np.partition(impostor, impostor.size - 1 - allowed)[impostor.size - 1 - allowed]
    return float(np.nextafter(np.float32(cut), np.float32(np.inf)))


def accept_rate(scores: Floats, threshold: float) -> float:
    """Share of ``scores`` at or above ``threshold``."""
    return float(np.mean(scores >= threshold)) if scores.size else 0.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """Operating points: threshold and same-person accept rate at each false-match rate."""

    false_match_rates: tuple[float, ...]
    thresholds: tuple[float, ...]
    match_rates: tuple[float, ...]
    measured_false_match_rates: tuple[float, ...]


def calibrate(
    scores: PairScores, false_match_rates: tuple[float, ...] = (1e-2, 1e-3)
) -> Calibration:
    thresholds = tuple(threshold_at(scores.impostor, rate) for rate in false_match_rates)
    return Calibration(
        false_match_rates,
        thresholds,
        tuple(accept_rate(scores.genuine, t) for t in thresholds),
        tuple(accept_rate(scores.impostor, t) for t in thresholds),
    )
