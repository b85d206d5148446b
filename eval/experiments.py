"""The experiments behind ``docs/quality.md``: which options are measured and how.

Three questions, each on CUHK03 labeled val (100 identities) and train (743 identities):

1. Gallery search (closed set): rank-1/5/10 and mAP of every option, with its cost.
2. Open-set calibration: same-person vs different-person similarities and the per-model match
   threshold for 1% and 0.1% false matches, chosen on train and checked on val.
3. Active-visit matching: the right person among 3 on site, at 1% false matches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from smart_reid_server.identity.identities import SEARCH_CANDIDATES, SEARCH_RERANK_MIN_EXEMPLARS
from smart_reid_server.identity.rerank import (
    GalleryReranker,
    k_reciprocal_distance,
    normalize,
    rerank,
    rerank_candidates,
    s_norm,
)

from eval import active, metrics
from eval.data import Split
from eval.embeddings import time_embedding
from eval.pipeline import Option, distance, features, postprocess_ms

_LOGGER = logging.getLogger(__name__)

type Floats = npt.NDArray[np.float32]

M0277 = "person-reidentification-retail-0277"
M0286 = "person-reidentification-retail-0286"
ALL_MODELS = (
    M0277,
    M0286,
    "person-reidentification-retail-0287",
    "person-reidentification-retail-0288",
    "person-reidentification-retail-0267",
    "osnet_x0_25_msmt17",
)
RERANK_PAPER = (20, 6, 0.3)  # the defaults of Zhong et al.
RERANK_TUNED = (10, 6, 0.1)  # chosen on val: CUHK03 has ~10 crops a person, galleries ~8
# One crop at a time against a gallery (GalleryReranker): smaller sets work better, chosen on val.
RERANK_ONLINE = (5, 3, 0.3)
QE = (2, 3.0)
FALSE_MATCH_RATES = (1e-2, 1e-3, 1e-4)
# The product's match threshold: at most this share of crop-vs-stranger comparisons may match.
PRODUCT_FALSE_MATCH_RATE = 1e-3
# The server's default (match.camera_centering auto): streaming per-camera means from the prior.
PRODUCT = "0277 product centering"
TIMING_CROPS = 96
TIMING_BATCH = 8  # a frame with 8 people in it


def retrieval_options() -> list[Option]:
    plain = [Option(m.rsplit("-", 1)[-1], (m,)) for m in ALL_MODELS]
    f277 = Option("0277 flip", (M0277,), flip=True)
    fused = Option("0277+0286 flip", (M0277, M0286), flip=True)
    cam = replace(f277, name="0277 flip camcenter", center="camera")
    return [
        *plain,
        f277,
        Option("0286 flip", (M0286,), flip=True),
        fused,
        replace(f277, name="0277 flip center", center="global"),
        cam,
        replace(f277, name="0277 flip camcenter-heldout", center="camera-heldout"),
        Option("0277 camcenter", (M0277,), center="camera"),
        Option(PRODUCT, (M0277,), center="product"),
        Option(f"{PRODUCT} rerank", (M0277,), center="product", rerank=RERANK_TUNED),
        replace(fused, name="0277+0286 flip camcenter", center="camera"),
        replace(f277, name="0277 flip QE", qe=QE),
        replace(cam, name="0277 flip camcenter QE", qe=QE),
        replace(f277, name="0277 flip rerank-paper", rerank=RERANK_PAPER),
        replace(f277, name="0277 flip rerank", rerank=RERANK_TUNED),
        replace(cam, name="0277 flip camcenter rerank", rerank=RERANK_TUNED),
        Option("0277 camcenter rerank", (M0277,), center="camera", rerank=RERANK_TUNED),
        replace(
            cam, name="0277+0286 flip camcenter rerank", models=(M0277, M0286), rerank=RERANK_TUNED
        ),
    ]


@dataclass(slots=True)
class Context:
    """What every experiment shares: the splits and a cache of embedding timings."""

    splits: dict[str, Split]
    timing: bool = True
    embed_ms: dict[str, float] = field(default_factory=dict)

    def embedding_ms(self, model: str, flip: bool) -> float | None:
        if not self.timing:
            return None
        key = f"{model}|{'flip' if flip else 'plain'}"
        if key not in self.embed_ms:
            paths = next(iter(self.splits.values())).paths[:TIMING_CROPS]
            self.embed_ms[key] = time_embedding(model, paths, flip, TIMING_BATCH)
        return self.embed_ms[key]

    def option_embedding_ms(self, option: Option) -> float | None:
        costs = [self.embedding_ms(m, option.flip) for m in option.models]
        return None if any(c is None for c in costs) else float(sum(c or 0.0 for c in costs))


def _retrieval_row(ctx: Context, option: Option, split: Split) -> dict[str, Any]:
    vectors = features(option, split)
    started = time.perf_counter()
    result = metrics.retrieval(distance(option, vectors), split.pids, split.cams)
    elapsed = time.perf_counter() - started
    gallery = min(938, len(vectors) - 5)
    return {
        "option": option.name,
        "description": option.describe(),
        "rank1": result.rank1,
        "rank5": result.rank5,
        "rank10": float(result.cmc[9]),
        "mAP": result.mean_ap,
        "queries": result.queries,
        "cmc": [round(float(v), 5) for v in result.cmc[:20]],
        "embed_ms_per_crop": ctx.option_embedding_ms(option),
        "post_ms_per_query": postprocess_ms(option, vectors, gallery),
        "post_gallery_size": gallery,
        "all_vs_all_seconds": elapsed,
    }


def run_retrieval(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, split in ctx.splits.items():
        rows = []
        for option in retrieval_options():
            row = _retrieval_row(ctx, option, split)
            _LOGGER.info(
                "%s %-34s rank-1 %.1f mAP %.1f",
                name,
                option.name,
                100 * row["rank1"],
                100 * row["mAP"],
            )
            rows.append(row)
        out[name] = rows
    return out


# ---------------------------------------------------------------- online re-ranking


def online_options() -> list[Option]:
    return [
        Option(PRODUCT, (M0277,), center="product"),
        Option("0277 camcenter", (M0277,), center="camera"),
        Option("0277 flip camcenter", (M0277,), flip=True, center="camera"),
    ]


SEARCH_VARIANT = f"server search: top {SEARCH_CANDIDATES} re-ranked (8, 3, 0.2)"


def search_distances(
    queries: Floats, gallery: Floats, cosine: Floats, owners: npt.NDArray[np.int64]
) -> Floats:
    """What ``POST /api/search`` does per query (``Identities.search``): the nearest
    ``SEARCH_CANDIDATES`` gallery vectors re-ranked with ``rerank.rerank_candidates`` when the
    people among them have a median of ``SEARCH_RERANK_MIN_EXEMPLARS`` gallery vectors (the
    server knows whose exemplar is whose; ``owners``), else in cosine order; the rest keep their
    cosine order behind them."""
    out = (2.0 + cosine).astype(np.float32)
    ids, counts = np.unique(owners, return_counts=True)
    per_person = {int(i): int(c) for i, c in zip(ids, counts, strict=True)}
    for row, query in enumerate(queries):
        nearest = np.argsort(cosine[row], kind="stable")[:SEARCH_CANDIDATES]
        found = {int(o) for o in owners[nearest]}
        if np.median([per_person[o] for o in found]) >= SEARCH_RERANK_MIN_EXEMPLARS:
            out[row, nearest] = rerank_candidates(query, gallery[nearest])
        else:
            out[row, nearest] = cosine[row, nearest]
    return out


def run_online(ctx: Context, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Queries one at a time against a gallery: half the crops (at random) are the gallery,
    the other half queries; cosine vs online re-ranking vs re-ranking all queries together."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, split in ctx.splits.items():
        is_query = np.random.default_rng(seed).random(len(split)) < 0.5
        q, g = np.flatnonzero(is_query), np.flatnonzero(~is_query)
        rows = []
        for option in online_options():
            vectors = features(option, split)
            started = time.perf_counter()
            reranker = GalleryReranker(vectors[g], *RERANK_ONLINE)
            build_s = time.perf_counter() - started
            started = time.perf_counter()
            online = np.stack([reranker.distances(vectors[i]) for i in q])
            per_query_ms = (time.perf_counter() - started) * 1000.0 / len(q)
            cosine = (1.0 - vectors[q] @ vectors[g].T).astype(np.float32)
            variants = {
                "cosine": cosine,
                f"online re-ranking {RERANK_ONLINE}": online,
                f"all queries at once {RERANK_ONLINE}": rerank(
                    vectors[q], vectors[g], *RERANK_ONLINE
                ),
                f"all queries at once {RERANK_TUNED}": rerank(
                    vectors[q], vectors[g], *RERANK_TUNED
                ),
            }
            if option.center == "product":
                started = time.perf_counter()
                variants[SEARCH_VARIANT] = search_distances(
                    vectors[q], vectors[g], cosine, split.pids[g]
                )
                search_ms = (time.perf_counter() - started) * 1000.0 / len(q)
            for variant, dist in variants.items():
                result = metrics.retrieval(
                    dist, split.pids[q], split.cams[q], split.pids[g], split.cams[g]
                )
                rows.append(
                    {
                        "option": option.name,
                        "variant": variant,
                        "rank1": result.rank1,
                        "mAP": result.mean_ap,
                        "queries": result.queries,
                        "gallery_size": len(g),
                        "ms_per_query": (
                            search_ms
                            if variant == SEARCH_VARIANT
                            else per_query_ms
                            if variant.startswith("online")
                            else None
                        ),
                        "build_s": build_s if variant.startswith("online") else None,
                    }
                )
                _LOGGER.info(
                    "%s online %s %s rank-1 %.1f mAP %.1f",
                    name,
                    option.name,
                    variant,
                    100 * result.rank1,
                    100 * result.mean_ap,
                )
        out[name] = rows
    return out


# ---------------------------------------------------------------- calibration


def identity_scores(vectors: Floats, split: Split) -> metrics.PairScores:
    """Crop-vs-identity scores as the product computes them (max over the identity's exemplars):
    each view-B crop against every identity's view-A crops; genuine = its own identity."""
    exemplars = active.exemplar_index(split.pids, split.cams)
    queries = np.flatnonzero(split.cams == 1)
    table, columns = active.score_table(vectors[queries] @ vectors.T, exemplars)
    own = np.array([columns.get(int(p), -1) for p in split.pids[queries]])
    has_own = own >= 0
    genuine_mask = np.zeros(table.shape, dtype=np.bool_)
    genuine_mask[np.flatnonzero(has_own), own[has_own]] = True
    impostor_mask = ~genuine_mask & has_own[:, None]
    return metrics.PairScores(table[genuine_mask], table[impostor_mask])


def _histogram(scores: Floats, bins: npt.NDArray[Any]) -> list[float]:
    counts, _ = np.histogram(scores, bins=bins)
    return [round(float(c), 6) for c in counts / max(1, scores.size)]


def _curve(scores: metrics.PairScores) -> list[list[float]]:
    """(false-match rate, match rate) points from 1e-5 to 1e-1 for the TAR/FAR plot."""
    impostor = np.sort(scores.impostor)[::-1]
    genuine = np.sort(scores.genuine)
    points = []
    for far in np.logspace(-5, -1, 25):
        allowed = int(np.floor(far * impostor.size))
        if allowed < 1:
            continue
        threshold = np.nextafter(impostor[allowed], np.float32(np.inf))
        accepted = genuine.size - np.searchsorted(genuine, threshold, side="left")
        points.append([float(far), float(accepted / max(1, genuine.size))])
    return points


def calibration_options() -> list[Option]:
    out = []
    for model in ALL_MODELS:
        short = model.rsplit("-", 1)[-1]
        out.append(Option(short, (model,)))
        out.append(Option(f"{short} flip", (model,), flip=True))
    out.append(Option("0277+0286 flip", (M0277, M0286), flip=True))
    out.append(Option("0277 camcenter", (M0277,), center="camera"))
    out.append(Option("0277 flip camcenter", (M0277,), flip=True, center="camera"))
    out.append(Option(PRODUCT, (M0277,), center="product"))
    return out


def run_calibration(ctx: Context) -> dict[str, Any]:
    """Thresholds from the calibration split (train when present), checked on the other."""
    names = list(ctx.splits)
    calib = "train" if "train" in ctx.splits else names[0]
    check = [n for n in names if n != calib]
    bins = np.linspace(-0.2, 1.0, 61)
    results: dict[str, Any] = {"calibrated_on": calib, "checked_on": check, "options": {}}
    for option in calibration_options():
        entry: dict[str, Any] = {"description": option.describe(), "models": list(option.models)}
        for level, scorer in (("pair", _pair_scores), ("identity", identity_scores)):
            per_split = {n: scorer(features(option, s), s) for n, s in ctx.splits.items()}
            cal = metrics.calibrate(per_split[calib], FALSE_MATCH_RATES)
            points = []
            for far, threshold, rate in zip(
                cal.false_match_rates, cal.thresholds, cal.match_rates, strict=True
            ):
                point: dict[str, Any] = {
                    "false_match_rate": far,
                    "threshold": round(threshold, 4),
                    f"{calib}_match_rate": rate,
                }
                for n in check:
                    point[f"{n}_false_match_rate"] = metrics.accept_rate(
                        per_split[n].impostor, threshold
                    )
                    point[f"{n}_match_rate"] = metrics.accept_rate(per_split[n].genuine, threshold)
                points.append(point)
            entry[level] = {
                "operating_points": points,
                "genuine_mean": float(per_split[calib].genuine.mean()),
                "impostor_mean": float(per_split[calib].impostor.mean()),
                "genuine_count": int(per_split[calib].genuine.size),
                "impostor_count": int(per_split[calib].impostor.size),
                "histograms": {
                    n: {
                        "bins": [round(float(b), 3) for b in bins],
                        "genuine": _histogram(sc.genuine, bins),
                        "impostor": _histogram(sc.impostor, bins),
                    }
                    for n, sc in per_split.items()
                },
                "curve": {n: _curve(sc) for n, sc in per_split.items()},
            }
        results["options"][option.name] = entry
        _LOGGER.info("calibrated %s", option.name)
    return results


def _pair_scores(vectors: Floats, split: Split) -> metrics.PairScores:
    return metrics.pair_scores(vectors @ vectors.T, split.pids, split.cams)


def thresholds_file(calibration: dict[str, Any]) -> dict[str, Any]:
    """``eval/thresholds.json``: the per-model match thresholds the product should default to."""
    models: dict[str, Any] = {}
    options = calibration["options"]
    for model in ALL_MODELS:
        short = model.rsplit("-", 1)[-1]
        entry: dict[str, Any] = {}
        for variant, name in (("plain", short), ("flip_tta", f"{short} flip")):
            identity = options[name]["identity"]["operating_points"]
            pair = options[name]["pair"]["operating_points"]
            entry[variant] = {
                f"identity_far_{p['false_match_rate']:g}": p["threshold"] for p in identity
            } | {f"pair_far_{p['false_match_rate']:g}": p["threshold"] for p in pair}
        chosen = {
            v: next(
                p["threshold"]
                for p in options[n]["identity"]["operating_points"]
                if p["false_match_rate"] == PRODUCT_FALSE_MATCH_RATE
            )
            for v, n in (("plain", short), ("flip_tta", f"{short} flip"))
        }
        models[model] = {
            "default_threshold": chosen["plain"],
            "flip_tta_threshold": chosen["flip_tta"],
            **entry,
        }
    return {
        "about": (
            "Cosine match thresholds per ReID model, chosen from data by `python -m eval`: "
            f"default_threshold lets {PRODUCT_FALSE_MATCH_RATE:g} of crop-vs-stranger "
            "comparisons through, a comparison being a crop against one identity's exemplars "
            "(max over them, as the gallery scores). identity_far_X / pair_far_X: the "
            "thresholds at false-match rate X per identity comparison / per crop pair. "
            "See docs/quality.md."
        ),
        "calibrated_on": f"CUHK03 labeled {calibration['calibrated_on']}",
        "models": models,
    }


# ---------------------------------------------------------------- active visits


@dataclass(frozen=True, slots=True)
class ActiveExperiment:
    name: str
    option: Option
    aggregate: active.Aggregate = "max"
    exemplars: int | None = None  # None: all view-A crops (up to 5)
    extra: str = ""  # "snorm", "batch-rerank", "online-rerank", "set-rerank"
    track: int = 1  # crops of the arriving person averaged into the query (a tracker's track)


def active_experiments() -> list[ActiveExperiment]:
    o277 = Option("0277", (M0277,))
    f277 = Option("0277 flip", (M0277,), flip=True)
    cam = Option("0277 flip camcenter", (M0277,), flip=True, center="camera")
    fused = Option("0277+0286 flip", (M0277, M0286), flip=True)
    fused_cam = replace(fused, name="0277+0286 flip camcenter", center="camera")
    cam0 = Option("0277 camcenter", (M0277,), center="camera")
    prod = Option(PRODUCT, (M0277,), center="product")
    return [
        ActiveExperiment("0277 (product today)", o277),
        ActiveExperiment("0277 flip", f277),
        ActiveExperiment("0277 flip, mean of exemplars", f277, "mean"),
        ActiveExperiment("0277 flip, centroid of exemplars", f277, "centroid"),
        ActiveExperiment("0277 flip, 1 exemplar", f277, exemplars=1),
        ActiveExperiment("0277 flip, 2 exemplars", f277, exemplars=2),
        ActiveExperiment("0286 flip", Option("0286 flip", (M0286,), flip=True)),
        ActiveExperiment("0277+0286 flip", fused),
        ActiveExperiment("0277+0286 flip, centroid", fused, "centroid"),
        ActiveExperiment("0277 flip, global centering", replace(f277, center="global")),
        ActiveExperiment("0277 camcenter", Option("0277 camcenter", (M0277,), center="camera")),
        ActiveExperiment(PRODUCT, prod),
        ActiveExperiment(f"{PRODUCT} + online gallery re-ranking", prod, extra="online-rerank"),
        ActiveExperiment(f"{PRODUCT}, track of 3 crops", prod, track=3),
        ActiveExperiment("0277 flip camcenter", cam),
        ActiveExperiment("0277 flip camcenter, centroid", cam, "centroid"),
        ActiveExperiment(
            "0277 flip camcenter, means from other identities",
            replace(cam, center="camera-heldout"),
        ),
        ActiveExperiment("0277+0286 flip camcenter, centroid", fused_cam, "centroid"),
        ActiveExperiment("0277 flip camcenter + S-norm", cam, extra="snorm"),
        ActiveExperiment(
            "0277 flip camcenter + online gallery re-ranking", cam, extra="online-rerank"
        ),
        ActiveExperiment(
            "0277 camcenter + online gallery re-ranking",
            Option("0277 camcenter", (M0277,), center="camera"),
            extra="online-rerank",
        ),
        ActiveExperiment(
            "0277+0286 flip camcenter + online gallery re-ranking",
            fused_cam,
            extra="online-rerank",
        ),
        ActiveExperiment("0277 camcenter, track of 3 crops", cam0, track=3),
        ActiveExperiment(
            "0277 camcenter + online re-ranking, track of 2", cam0, "max", None, "online-rerank", 2
        ),
        ActiveExperiment(
            "0277 camcenter + online re-ranking, track of 3", cam0, "max", None, "online-rerank", 3
        ),
        ActiveExperiment(
            "0277 flip camcenter + online re-ranking, track of 3",
            cam,
            "max",
            None,
            "online-rerank",
            3,
        ),
        ActiveExperiment(
            "0277 flip camcenter + re-ranking all crops at once", cam, extra="batch-rerank"
        ),
        ActiveExperiment(
            "0277 camcenter + re-ranking all crops at once",
            Option("0277 camcenter", (M0277,), center="camera"),
            extra="batch-rerank",
        ),
        ActiveExperiment("0277 flip camcenter + re-ranking within the 3", cam, extra="set-rerank"),
    ]


def _set_rerank(query: Floats, blocks: list[Floats]) -> Floats:
    """Re-ranking inside one trial: the query and the exemplars of the people on site."""
    stacked = np.vstack([query[None, :], *blocks]).astype(np.float32)
    row = k_reciprocal_distance(stacked @ stacked.T, k1=5, k2=1, lambda_value=0.5)[0]
    scores, start = [], 1
    for block in blocks:
        scores.append(-float(row[start : start + len(block)].min()))
        start += len(block)
    return np.asarray(scores, dtype=np.float32)


def _table(
    experiment: ActiveExperiment,
    vectors: Floats,
    split: Split,
    exemplars: dict[int, npt.NDArray[np.int64]],
    cohort: Callable[[], Floats] | None,
) -> tuple[Floats, dict[int, int]] | None:
    if experiment.aggregate == "centroid":
        return active.centroid_table(vectors, exemplars)
    queries = track_vectors(vectors, split, experiment.track)
    similarity = queries @ vectors.T
    if experiment.extra == "snorm":
        if cohort is None:
            return None
        others = cohort()
        with_cohort = vectors @ others.T
        similarity = s_norm(similarity, with_cohort, with_cohort, top_k=100)
    elif experiment.extra == "batch-rerank":
        similarity = 1.0 - k_reciprocal_distance(similarity, *RERANK_TUNED)
    elif experiment.extra == "online-rerank":
        similarity = _online_similarity(vectors, queries, split)
    return active.score_table(similarity, exemplars, experiment.aggregate)


def _online_similarity(vectors: Floats, queries: Floats, split: Split) -> Floats:
    """Each view-B query re-ranked on its own against a gallery of all view-A crops (what a live
    matcher can do: the gallery is known, other queries are not). Other entries are -inf."""
    gallery = np.flatnonzero(split.cams == 0)
    reranker = GalleryReranker(vectors[gallery], *RERANK_ONLINE)
    similarity = np.full((len(vectors), len(vectors)), -np.inf, dtype=np.float32)
    for query in np.flatnonzero(split.cams == 1):
        similarity[query, gallery] = 1.0 - reranker.distances(queries[query])
    return similarity


def track_vectors(vectors: Floats, split: Split, crops: int, seed: int = 0) -> Floats:
    """Each view-B vector averaged with up to ``crops - 1`` other view-B crops of the same
    person, standing in for the several frames a tracker collects of someone at one camera
    (CUHK03 has up to 5 crops a person per camera). Other rows are unchanged."""
    if crops <= 1:
        return vectors
    rng = np.random.default_rng(seed)
    out = vectors.copy()
    for i in np.flatnonzero(split.cams == 1):
        mates = np.flatnonzero((split.pids == split.pids[i]) & (split.cams == 1))
        others = rng.permutation(mates[mates != i])[: crops - 1]
        out[i] = vectors[np.r_[i, others]].mean(axis=0)
    return normalize(out)


def run_active(ctx: Context, repeats: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, split in ctx.splits.items():
        other = next((s for n, s in ctx.splits.items() if n != name), None)
        episodes = active.sample_episodes(split.pids, split.cams, repeats=repeats.get(name, 5))
        rows = []
        for experiment in active_experiments():
            exemplars = active.exemplar_index(split.pids, split.cams, experiment.exemplars)
            vectors = features(experiment.option, split)
            cohort = None
            if other is not None:
                cohort = _cohort(experiment.option, other)
            if experiment.extra == "set-rerank":
                subset = _every(episodes, 10)
                result = active.evaluate_per_trial(vectors, subset, exemplars, _set_rerank)
            else:
                table = _table(experiment, vectors, split, exemplars, cohort)
                if table is None:
                    continue
                result = active.evaluate(episodes, *table)
            rows.append(
                {
                    "experiment": experiment.name,
                    "description": experiment.option.describe(),
                    "aggregate": experiment.aggregate,
                    "match_rate": result.match_rate,
                    "misidentified": result.misidentified,
                    "threshold": result.threshold,
                    "false_match_rate": result.false_match_rate,
                    "trials": result.trials,
                    "embed_ms_per_crop": ctx.option_embedding_ms(experiment.option),
                }
            )
            _LOGGER.info("%s active %-50s %.1f", name, experiment.name, 100 * result.match_rate)
        out[name] = rows
    return out


def _cohort(option: Option, other: Split) -> Callable[[], Floats]:
    def load() -> Floats:
        return features(option, other)

    return load


def _every(episodes: active.Episodes, step: int) -> active.Episodes:
    return active.Episodes(
        episodes.queries[::step], episodes.genuine_sets[::step], episodes.impostor_sets[::step]
    )
