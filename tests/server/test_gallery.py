"""The global gallery with real ReID embeddings of real CUHK03 crops."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from _embeddings import DIM, Sample, clear_plans, require_assets, samples
from smart_reid_server.gallery import Gallery, GalleryError


@pytest.fixture(scope="module")
def people() -> dict[int, list[Sample]]:
    require_assets()
    return samples()


def brute_force(
    vectors: npt.NDArray[np.float32], owners: list[str], query: npt.NDArray[np.float32], top_k: int
) -> list[tuple[str, float]]:
    """Per-person maximum similarity, computed the slow obvious way."""
    best: dict[str, float] = {}
    for owner, vector in zip(owners, vectors, strict=True):
        similarity = float(np.dot(vector, query))
        best[owner] = max(best.get(owner, -2.0), similarity)
    return sorted(best.items(), key=lambda item: -item[1])[:top_k]


def loaded(people: dict[int, list[Sample]], **kwargs: int | float) -> tuple[Gallery, list[str]]:
    owners = [f"p{identity:04d}" for identity, crops in people.items() for _ in crops]
    vectors = np.stack([s.vector for crops in people.values() for s in crops])
    gallery = Gallery(DIM, max_exemplars=10, **kwargs)  # type: ignore[arg-type]
    gallery.load(owners, vectors)
    return gallery, owners


def test_search_ranks_people_by_their_best_exemplar(people: dict[int, list[Sample]]) -> None:
    gallery, owners = loaded(people)
    vectors = np.stack([s.vector for crops in people.values() for s in crops])
    assert len(gallery) == len(owners) and gallery.person_count == len(people)
    for query in vectors[::7]:
        got = gallery.search(query, top_k=5)
        want = brute_force(vectors, owners, query, 5)
        assert [pid for pid, _ in got] == [pid for pid, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
        assert len({pid for pid, _ in got}) == len(got), "a person listed twice"


def test_the_other_camera_view_finds_the_right_person(people: dict[int, list[Sample]]) -> None:
    plans = clear_plans()
    assert len(plans) >= 3, "need at least three clearly separable identities in the data"
    gallery = Gallery(DIM)
    for plan in plans:
        for sample in plan.view_a:
            gallery.add_exemplar(f"id{plan.identity}", sample.vector)
    for plan in plans:
        (best_id, similarity), *_ = gallery.search(plan.view_b.vector, top_k=3)
        assert best_id == f"id{plan.identity}"
        assert similarity == pytest.approx(plan.cross_view_similarity, abs=1e-5)


def test_batch_search_equals_single_searches(people: dict[int, list[Sample]]) -> None:
    gallery, _ = loaded(people)
    queries = np.stack([crops[-1].vector for crops in people.values()][:6])
    batch = gallery.search_many(queries, top_k=4)
    for query, result in zip(queries, batch, strict=True):
        single = gallery.search(query, top_k=4)
        assert [p for p, _ in result] == [p for p, _ in single]
        assert [s for _, s in result] == pytest.approx([s for _, s in single], abs=1e-5)


def test_near_duplicate_crops_are_not_stored_twice(people: dict[int, list[Sample]]) -> None:
    crop = people[0][0]
    gallery = Gallery(DIM, exemplar_min_distance=0.08)
    assert gallery.add_exemplar("a", crop.vector)
    jitter = crop.vector + np.random.default_rng(1).normal(0, 0.002, DIM).astype(np.float32)
    change = gallery.add_exemplar("a", jitter)
    assert not change and "near-duplicate" in change.reason
    assert gallery.exemplar_count("a") == 1


def test_a_full_set_still_learns_the_other_camera_view(people: dict[int, list[Sample]]) -> None:
    plan = clear_plans()[0]
    crops = people[plan.identity]
    view_a = [s for s in crops if s.view == "A"]
    gallery = Gallery(DIM, max_exemplars=3, exemplar_min_distance=0.08)
    for sample in view_a:
        gallery.add_exemplar("a", sample.vector)
    assert gallery.exemplar_count("a") == 3
    before = gallery.search(plan.view_b.vector, top_k=1)[0][1]
    change = gallery.add_exemplar("a", plan.view_b.vector)
    assert change and change.replaced_key is not None, "a new view must replace a redundant one"
    assert gallery.exemplar_count("a") == 3
    assert change.replaced_key not in gallery.exemplar_keys("a")
    stored = gallery.exemplars("a")
    gram = stored @ stored.T
    np.fill_diagonal(gram, -1.0)
    assert gram.max() < 0.92, "stored exemplars must stay diverse"
    after = gallery.search(plan.view_b.vector, top_k=1)[0][1]
    assert after > before


def test_remove_forgets_one_person_and_keeps_the_rest_exact(
    people: dict[int, list[Sample]],
) -> None:
    gallery, owners = loaded(people)
    vectors = np.stack([s.vector for crops in people.values() for s in crops])
    removed_keys = gallery.remove("p0003")
    assert len(removed_keys) == len(people[3])
    assert "p0003" not in gallery and gallery.exemplar_count("p0003") == 0
    keep = [i for i, o in enumerate(owners) if o != "p0003"]
    for query in vectors[::5]:
        got = gallery.search(query, top_k=4)
        want = brute_force(vectors[keep], [owners[i] for i in keep], query, 4)
        assert [p for p, _ in got] == [p for p, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    assert gallery.remove("p0003") == []


def test_merge_moves_exemplars_and_respects_the_limit(people: dict[int, list[Sample]]) -> None:
    gallery = Gallery(DIM, max_exemplars=6)
    for sample in people[1]:
        if sample.view == "A":
            gallery.add_exemplar("front_copy", sample.vector)
        else:
            gallery.add_exemplar("back_copy", sample.vector)
    keys_before = set(gallery.exemplar_keys("front_copy")) | set(gallery.exemplar_keys("back_copy"))
    discarded = gallery.merge("front_copy", "back_copy")
    assert "back_copy" not in gallery
    assert gallery.exemplar_count("front_copy") <= 6
    assert set(gallery.exemplar_keys("front_copy")) == keys_before - set(discarded)
    back = next(s for s in people[1] if s.view == "B")
    assert gallery.search(back.vector, top_k=1)[0][0] == "front_copy"
    with pytest.raises(GalleryError):
        gallery.merge("front_copy", "front_copy")


def test_load_replaces_content_and_keeps_keys(people: dict[int, list[Sample]]) -> None:
    crops = people[2][:3]
    gallery = Gallery(DIM)
    gallery.add_exemplar("old", people[5][0].vector)
    gallery.load(["x", "x", "y"], np.stack([c.vector * 3.0 for c in crops]), keys=[10, 11, 40])
    assert "old" not in gallery
    assert gallery.exemplar_keys("x") == [10, 11] and gallery.exemplar_keys("y") == [40]
    assert np.allclose(np.linalg.norm(gallery.exemplars("x"), axis=1), 1.0, atol=1e-5)
    change = gallery.add_exemplar("z", people[7][0].vector)
    assert change.key is not None and change.key > 40
    with pytest.raises(GalleryError, match="same length"):
        gallery.load(["x"], np.stack([c.vector for c in crops]))


def test_matrix_grows_geometrically(people: dict[int, list[Sample]]) -> None:
    gallery = Gallery(DIM, max_exemplars=64, exemplar_min_distance=0.0, initial_capacity=64)
    rng = np.random.default_rng(3)
    capacities = set()
    for i in range(2000):
        gallery.add_exemplar(f"r{i % 50}", rng.normal(size=DIM))
        capacities.add(gallery.capacity)
    assert len(gallery) == 2000
    assert sorted(capacities) == [64 * 2**k for k in range(len(capacities))]
    assert max(capacities) < 4096


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.full(DIM, np.nan, dtype=np.float32), "NaN"),
        (np.zeros(DIM, dtype=np.float32), "all zeros"),
        (np.ones(128, dtype=np.float32), "256-d"),
    ],
)
def test_bad_embeddings_are_refused_with_a_reason(
    vector: npt.NDArray[np.float32], message: str
) -> None:
    gallery = Gallery(DIM)
    with pytest.raises(GalleryError, match=message):
        gallery.add_exemplar("a", vector)
    with pytest.raises(GalleryError, match=message):
        gallery.search(vector)
    assert len(gallery) == 0 and gallery.search(np.ones(DIM)) == []
