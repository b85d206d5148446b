"""The identity-quality evaluation: metric code on cases whose answer is known by construction,
the re-ranking/expansion/centering the product can switch on, and one real run of the pipeline
(product Embedder, real model, real CUHK03 crops) on a small subset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from smart_reid_server.identity.rerank import (
    GalleryReranker,
    center,
    k_reciprocal_distance,
    normalize,
    query_expansion,
    rerank,
)

from eval import active, metrics
from eval.data import REPO, Split, load_split, shared_dir
from eval.embeddings import embed_images
from eval.experiments import M0277, identity_scores
from eval.pipeline import Option, distance, features

type Floats = npt.NDArray[np.float32]
type Ints = npt.NDArray[np.int64]


def _clusters(
    ids: int, per_id: int, dim: int = 32, noise: float = 0.05, seed: int = 0
) -> tuple[Floats, Ints, Ints]:
    """Unit vectors in tight, well separated clusters; half of each cluster on camera 0."""
    rng = np.random.default_rng(seed)
    centres = normalize(rng.normal(size=(ids, dim)).astype(np.float32))
    pids = np.repeat(np.arange(ids), per_id).astype(np.int64)
    cams = np.tile(np.arange(per_id) % 2, ids).astype(np.int64)
    vectors = centres[pids] + rng.normal(scale=noise, size=(len(pids), dim)).astype(np.float32)
    return normalize(vectors.astype(np.float32)), pids, cams


def test_perfect_ranking_scores_full_marks() -> None:
    vectors, pids, cams = _clusters(ids=10, per_id=4)
    result = metrics.retrieval((1.0 - vectors @ vectors.T).astype(np.float32), pids, cams)
    assert result.queries == 40
    assert result.rank1 == 1.0
    assert result.mean_ap == pytest.approx(1.0)
    assert np.all(result.cmc == 1.0)


def test_reversed_ranking_puts_true_matches_last() -> None:
    # 5 identities x 2 cameras x 2 shots. Distance 0 to everyone else, 1 to one's own identity:
    # the valid gallery of each query is 16 strangers then 2 true matches (other camera).
    pids = np.repeat(np.arange(5), 4).astype(np.int64)
    cams = np.tile([0, 0, 1, 1], 5).astype(np.int64)
    distance = (pids[:, None] == pids[None, :]).astype(np.float32)
    result = metrics.retrieval(distance, pids, cams)
    assert result.rank1 == 0.0
    assert result.cmc[15] == 0.0 and result.cmc[16] == 1.0  # first hit at rank 17
    assert result.mean_ap == pytest.approx((1 / 17 + 2 / 18) / 2)


def test_same_camera_shots_of_the_same_person_do_not_count() -> None:
    # Each query's nearest neighbour is its own identity on the same camera (distance 0): it is
    # ignored. Cross-camera matches sit at 0.3, strangers at 0.5, except one stranger at 0.2
    # that beats query 0's true match.
    pids = np.array([0, 0, 0, 1, 1, 1], dtype=np.int64)
    cams = np.array([0, 0, 1, 0, 0, 1], dtype=np.int64)
    same = pids[:, None] == pids[None, :]
    distance = np.where(same, 0.3, 0.5).astype(np.float32)
    distance[same & (cams[:, None] == cams[None, :])] = 0.0
    distance[0, 3] = 0.2
    result = metrics.retrieval(distance, pids, cams, max_rank=5)
    assert result.queries == 6
    assert result.cmc[0] == pytest.approx(5 / 6)
    assert result.cmc[1] == 1.0
    assert result.mean_ap == pytest.approx((5 + 1 / 2) / 6)


def test_queries_without_a_cross_camera_match_are_skipped() -> None:
    pids = np.array([0, 0, 1, 1, 2], dtype=np.int64)
    cams = np.array([0, 1, 0, 1, 0], dtype=np.int64)
    distance = np.ones((5, 5), dtype=np.float32)
    assert metrics.retrieval(distance, pids, cams).queries == 4
    with pytest.raises(ValueError, match="distance is"):
        metrics.retrieval(distance[:4], pids, cams)


def test_threshold_lets_through_the_requested_share_of_impostors() -> None:
    impostor = (np.arange(10_000, dtype=np.float32) / 10_000).astype(np.float32)
    genuine = np.linspace(0.985, 1.0, 100, dtype=np.float32)
    cal = metrics.calibrate(metrics.PairScores(genuine, impostor), (1e-2, 1e-3))
    assert cal.measured_false_match_rates == (0.01, 0.001)
    # 100 impostors (0.9900 ... 0.9999) may pass at 1%, 10 at 0.1%
    assert 0.9899 < cal.thresholds[0] <= 0.99
    assert 0.9989 < cal.thresholds[1] <= 0.999
    assert cal.match_rates[0] < 1.0  # genuine pairs below 0.99 are refused
    assert cal.match_rates[0] > cal.match_rates[1]


def test_pair_scores_separate_cross_camera_pairs_from_strangers() -> None:
    vectors, pids, cams = _clusters(ids=6, per_id=4)
    scores = metrics.pair_scores(vectors @ vectors.T, pids, cams)
    assert scores.genuine.size == 6 * 4  # per identity 2 x 2 cross-camera pairs
    assert scores.impostor.size == (24 * 23) // 2 - 6 * 6
    assert scores.genuine.min() > scores.impostor.max()


def test_rerank_keeps_a_perfect_ranking_perfect() -> None:
    vectors, pids, cams = _clusters(ids=12, per_id=6)
    distance = k_reciprocal_distance(vectors @ vectors.T, k1=6, k2=3, lambda_value=0.3)
    assert np.allclose(np.diag(distance), 0.0, atol=1e-6)
    result = metrics.retrieval(distance, pids, cams)
    assert result.rank1 == 1.0
    assert result.mean_ap == pytest.approx(1.0)


def test_rerank_query_gallery_form_and_tiny_sets() -> None:
    vectors, _, _ = _clusters(ids=3, per_id=2)
    block = rerank(vectors[[0, 2]], vectors[[1, 3, 4, 5]], k1=2, k2=1)
    assert block.shape == (2, 4)
    # each query's own cluster-mate is its closest gallery entry
    assert np.array_equal(np.argmin(block, axis=1), [0, 1])
    assert k_reciprocal_distance(np.ones((1, 1), np.float32)).shape == (1, 1)


def test_rerank_prefers_the_match_that_shares_the_query_s_neighbours() -> None:
    # Shots 0-3 are one person (0 = query, 3 = the same person seen by another camera, only 0.5
    # alike to the query); 4 is a stranger who looks closer (0.6) but whose own neighbours are
    # his shots 5-7. Cosine ranks the stranger first; re-ranking must rank the true match first.
    similarity = np.full((8, 8), 0.1, dtype=np.float32)
    similarity[:4, :4] = 0.8
    similarity[4:, 4:] = 0.8
    similarity[0, 3] = similarity[3, 0] = 0.5
    similarity[0, 4] = similarity[4, 0] = 0.6
    np.fill_diagonal(similarity, 1.0)
    assert similarity[0, 4] > similarity[0, 3]
    reranked = k_reciprocal_distance(similarity, k1=3, k2=1, lambda_value=0.3)
    assert reranked[0, 3] < reranked[0, 4]


def _lookalike_scene() -> Floats:
    """Shots 0-3 are one person: 0 the query, 1-2 close to it, 3 the same person seen by another
    camera (less like the query than the stranger 4). The stranger's own neighbours are his
    shots 5-7, none of the query's."""
    axes = np.eye(10, dtype=np.float32)
    rows = [
        axes[0] + 0.5 * axes[1] + 0.3 * axes[2],
        axes[0] + 0.3 * axes[3],
        axes[0] + 0.3 * axes[4],
        axes[0] + 0.9 * axes[5],
        axes[1] + 0.5 * axes[0] + 0.2 * axes[6],
        axes[1] + 0.3 * axes[7],
        axes[1] + 0.3 * axes[8],
        axes[1] + 0.3 * axes[9],
    ]
    return normalize(np.stack(rows).astype(np.float32))


def test_online_rerank_prefers_the_match_that_shares_the_query_s_neighbours() -> None:
    scene = _lookalike_scene()
    similarity = scene @ scene.T
    assert similarity[0, 4] > similarity[0, 3] + 0.05  # cosine: the stranger wins
    joint = k_reciprocal_distance(similarity, k1=3, k2=1, lambda_value=0.3)[0]
    assert joint[3] < joint[4]
    online = GalleryReranker(scene[1:], k1=3, k2=1, lambda_value=0.3).distances(scene[0])
    assert online.shape == (7,)
    assert online[2] < online[3]  # gallery index = shot - 1
    assert np.allclose(online, joint[1:], atol=0.15)


def test_online_rerank_keeps_a_perfect_ranking_perfect() -> None:
    vectors, pids, cams = _clusters(ids=10, per_id=6)
    queries = np.arange(0, 60, 6)
    gallery = np.setdiff1d(np.arange(60), queries)
    reranker = GalleryReranker(vectors[gallery], k1=5, k2=3, lambda_value=0.3)
    assert len(reranker) == 50
    distance = np.stack([reranker.distances(vectors[q]) for q in queries])
    result = metrics.retrieval(distance, pids[queries], cams[queries], pids[gallery], cams[gallery])
    assert result.rank1 == 1.0
    assert result.mean_ap == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        GalleryReranker(vectors[:1])


def test_query_expansion_moves_a_query_towards_its_neighbours() -> None:
    vectors, pids, _ = _clusters(ids=4, per_id=5, noise=0.3, seed=1)
    centres = normalize(np.stack([vectors[pids == p].mean(axis=0) for p in range(4)]))
    expanded = query_expansion(vectors, vectors, k=4, alpha=1.0, exclude=np.eye(20, dtype=bool))
    before = np.einsum("nd,nd->n", vectors, centres[pids])
    after = np.einsum("nd,nd->n", expanded, centres[pids])
    assert np.all(np.linalg.norm(expanded, axis=1) == pytest.approx(1.0, abs=1e-5))
    assert after.mean() > before.mean()
    assert np.array_equal(query_expansion(vectors, vectors, k=0), vectors)


def test_centering_removes_the_direction_every_vector_shares() -> None:
    rng = np.random.default_rng(2)
    common = normalize(rng.normal(size=(1, 64)).astype(np.float32))
    distinct = normalize(rng.normal(size=(50, 64)).astype(np.float32))
    vectors = normalize(3.0 * common + 0.5 * distinct)
    off_diagonal = ~np.eye(50, dtype=bool)
    assert (vectors @ vectors.T)[off_diagonal].mean() > 0.9  # everything looks alike
    centred = center(vectors)
    assert abs((centred @ centred.T)[off_diagonal].mean()) < 0.1
    assert np.allclose(np.linalg.norm(centred, axis=1), 1.0, atol=1e-5)


def test_active_visit_match_rate_by_construction() -> None:
    vectors, pids, cams = _clusters(ids=20, per_id=6, noise=0.05)
    episodes = active.sample_episodes(pids, cams, repeats=5, seed=0)
    assert episodes.genuine_sets.shape == (20 * 3 * 5, 3)
    assert np.all(episodes.genuine_sets[:, 0] == pids[episodes.queries])
    assert not np.any(episodes.impostor_sets == pids[episodes.queries][:, None])
    exemplars = active.exemplar_index(pids, cams)
    assert all(np.all(cams[idx] == 0) for idx in exemplars.values())
    table, columns = active.score_table(vectors @ vectors.T, exemplars, "max")
    separable = active.evaluate(episodes, table, columns)
    assert separable.match_rate == 1.0
    assert separable.false_match_rate <= 0.01
    # Vectors that carry no identity: at 1% false matches almost nobody is matched.
    noise = normalize(np.random.default_rng(5).normal(size=vectors.shape).astype(np.float32))
    blind = active.evaluate(episodes, *active.centroid_table(noise, exemplars))
    assert blind.match_rate < 0.1


def test_active_visit_set_scorer_is_used_per_trial() -> None:
    vectors, pids, cams = _clusters(ids=8, per_id=4)
    episodes = active.sample_episodes(pids, cams, repeats=1)
    exemplars = active.exemplar_index(pids, cams, per_identity=1)
    assert all(len(idx) == 1 for idx in exemplars.values())
    calls: list[int] = []

    def scorer(query: Floats, blocks: list[Floats]) -> Floats:
        calls.append(len(blocks))
        return np.array([float((b @ query).max()) for b in blocks], dtype=np.float32)

    result = active.evaluate_per_trial(vectors, episodes, exemplars, scorer)
    assert result.match_rate == 1.0
    assert calls == [3] * (2 * len(episodes.queries))


# ---------------------------------------------------------------- real pipeline, small subset

_SHARED = shared_dir()
_needs_assets = pytest.mark.skipif(
    not (_SHARED / "data" / "cuhk03" / "labeled" / "val").is_dir()
    or not (_SHARED / "models" / "reid").is_dir(),
    reason=f"CUHK03 crops or ReID models not found under {_SHARED} (set SMART_REID_SHARED)",
)


@pytest.fixture(scope="module")
def small_val(tmp_path_factory: pytest.TempPathFactory) -> tuple[Split, Path]:
    return load_split("val").subset(20, seed=1), tmp_path_factory.mktemp("eval-cache")


@_needs_assets
def test_real_embeddings_come_from_the_product_and_are_cached(
    small_val: tuple[Split, Path],
) -> None:
    split, cache = small_val
    vectors = embed_images(M0277, split.paths, False, cache)
    assert vectors.shape == (len(split), 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    files = list(cache.glob("*.npy"))
    assert len(files) == 1
    assert np.array_equal(embed_images(M0277, split.paths, False, cache), vectors)
    assert list(cache.glob("*.npy")) == files


@_needs_assets
def test_real_subset_accuracy_and_what_the_options_buy(small_val: tuple[Split, Path]) -> None:
    split, cache = small_val
    plain = Option("0277", (M0277,))
    best = Option("0277 camcenter rerank", (M0277,), center="camera", rerank=(10, 6, 0.1))
    base = metrics.retrieval(distance(plain, features(plain, split, cache)), split.pids, split.cams)
    tuned = metrics.retrieval(distance(best, features(best, split, cache)), split.pids, split.cams)
    # 20 identities is easier than the full 100 (63% rank-1 there): a sane band, not a number.
    assert 0.55 <= base.rank1 <= 1.0
    assert 0.5 <= base.mean_ap <= 1.0
    assert tuned.mean_ap > base.mean_ap
    episodes = active.sample_episodes(split.pids, split.cams, repeats=10)
    exemplars = active.exemplar_index(split.pids, split.cams)
    vectors = features(plain, split, cache)
    visit = active.evaluate(episodes, *active.score_table(vectors @ vectors.T, exemplars))
    assert 0.5 <= visit.match_rate <= 1.0


@_needs_assets
def test_shipped_threshold_keeps_strangers_unknown(small_val: tuple[Split, Path]) -> None:
    split, cache = small_val
    shipped = json.loads((REPO / "eval" / "thresholds.json").read_text(encoding="utf-8"))
    threshold = shipped["models"][M0277]["default_threshold"]
    assert 0.3 < threshold < 0.9
    vectors = embed_images(M0277, split.paths, False, cache)
    scores = identity_scores(vectors, split)
    assert scores.impostor.size > 1000
    # At the shipped threshold a crop is rarely taken for a stranger, yet most returns match.
    assert metrics.accept_rate(scores.impostor, threshold) < 0.01
    assert metrics.accept_rate(scores.genuine, threshold) > 0.4
