"""The global gallery with real ReID embeddings of real CUHK03 crops."""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt
import pytest
from _embeddings import DIM, Sample, clear_plans, require_assets, samples
from smart_reid_server.identity.gallery import Gallery, GalleryError, _scan_session


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


# ----------------------------------------------------------------- int8 scan path
class Reference:
    """Per-person maximum over every row, vectorised (these galleries have thousands of rows)."""

    def __init__(self, vectors: npt.NDArray[np.float32], owners: list[str]) -> None:
        self.vectors = vectors
        self.names, self.index = np.unique(np.asarray(owners), return_inverse=True)

    def top(self, query: npt.NDArray[np.float32], top_k: int) -> list[tuple[str, float]]:
        best = np.full(len(self.names), -np.inf)
        np.maximum.at(best, self.index, self.vectors @ query)
        top = np.argsort(-best, kind="stable")[:top_k]
        return [(str(self.names[i]), float(best[i])) for i in top]


def assert_same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [p for p, _ in got] == [p for p, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def unit(rows: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    out = np.array(rows, dtype=np.float32)
    out /= np.linalg.norm(out, axis=-1, keepdims=True)
    return out


def real_and_distractors(
    people: dict[int, list[Sample]], look_alikes: int, strangers: int
) -> tuple[npt.NDArray[np.float32], list[str]]:
    """Persons mixed from two real crops (who resemble real people about as much as real people
    resemble each other) and random unit vectors, 8 exemplars each, then the real crops last."""
    rng = np.random.default_rng(7)
    real = np.stack([s.vector for crops in people.values() for s in crops])
    a = real[rng.integers(0, len(real), look_alikes)]
    b = real[rng.integers(0, len(real), look_alikes)]
    centres = unit(a + 0.6 * b + rng.normal(0, 0.03, a.shape))
    mixed = unit(np.repeat(centres, 8, axis=0) + rng.normal(0, 0.045, (8 * look_alikes, DIM)))
    noise = unit(rng.normal(size=(8 * strangers, DIM)))
    owners = [f"mix{i // 8}" for i in range(len(mixed))]
    owners += [f"rnd{i // 8}" for i in range(len(noise))]
    owners += [f"p{identity:04d}" for identity, crops in people.items() for _ in crops]
    return np.concatenate([mixed, noise, real]), owners


def test_int8_scan_answers_exactly_like_brute_force(people: dict[int, list[Sample]]) -> None:
    vectors, owners = real_and_distractors(people, look_alikes=2000, strangers=1000)
    gallery = Gallery(DIM, scan_min_rows=0)
    gallery.load(owners, vectors)
    reference = Reference(vectors, owners)
    real = [s.vector for crops in people.values() for s in crops]
    for query in real[::4]:
        for top_k in (1, 3, 5):
            assert_same(gallery.search(query, top_k), reference.top(query, top_k))
    batch = np.stack(real[1:40:6])
    for query, got in zip(batch, gallery.search_many(batch, top_k=4), strict=True):
        assert_same(got, reference.top(query, 4))
    assert gallery.scanning, "the int8 scan fell back to float32 (see the logged warning)"
    stats = gallery.scan_stats
    assert stats.full == 0, "real-ish data should never need the whole gallery re-scored"
    assert stats.rescored / stats.searches < 200


def test_int8_scan_stays_in_step_with_changes(people: dict[int, list[Sample]]) -> None:
    vectors, owners = real_and_distractors(people, look_alikes=300, strangers=300)
    gallery = Gallery(DIM, max_exemplars=4, scan_min_rows=0, initial_capacity=64)
    gallery.load(owners, vectors)
    for i in range(0, 80, 2):
        gallery.remove(f"mix{i}")  # the real crops at the end move into the holes
    gallery.remove("p0003")
    gallery.merge("p0000", "p0001")
    rng = np.random.default_rng(11)
    for i, sample in enumerate(s for crops in people.values() for s in crops[:2]):
        gallery.add_exemplar(f"new{i % 9}", sample.vector + rng.normal(0, 0.05, DIM))
    assert gallery.scanning and max(gallery.exemplar_count(f"new{i}") for i in range(9)) == 4
    current = gallery.person_ids()
    stored = np.concatenate([gallery.exemplars(pid) for pid in current])
    reference = Reference(stored, [pid for pid in current for _ in gallery.exemplar_keys(pid)])
    for crops in people.values():
        query = crops[-1].vector
        assert_same(gallery.search(query, 5), reference.top(query, 5))


def at_similarity(
    query: npt.NDArray[np.float32], targets: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """Unit rows whose cosine similarity to ``query`` is exactly ``targets`` (random directions)."""
    rng = np.random.default_rng(len(targets))
    side = rng.normal(size=(len(targets), DIM))
    side -= np.outer(side @ query, query)
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    rows = targets[:, None] * query + np.sqrt(1 - targets**2)[:, None] * side
    return rows.astype(np.float32)


def test_int8_scan_is_exact_when_many_people_score_alike() -> None:
    """Hundreds of persons closer to each other than the int8 error: the first re-scored rows
    cannot settle the order, so the scan widens (or scores everything) and stays exact."""
    rng = np.random.default_rng(5)
    query = unit(rng.normal(size=DIM))
    strangers = unit(rng.normal(size=(12_000, DIM)))
    for crowd, step, widened_only in ((300, 1e-4, True), (1_000, 1e-5, False)):
        # person p's best exemplar scores 0.8 + p * step, the other seven a little less
        best = 0.8 + step * np.arange(crowd)
        alike = at_similarity(query, (best[:, None] - step * 0.1 * np.arange(8)).ravel())
        vectors = np.concatenate([strangers, alike])
        owners = [f"s{i // 8}" for i in range(len(strangers))]
        owners += [f"a{i // 8}" for i in range(len(alike))]
        gallery = Gallery(DIM, scan_min_rows=0)
        gallery.load(owners, vectors)
        got = gallery.search(query, 5)
        assert [p for p, _ in got] == [f"a{crowd - 1 - i}" for i in range(5)]
        assert_same(got, Reference(vectors, owners).top(query, 5))
        stats = gallery.scan_stats
        assert stats.widened == 1 and stats.full == (0 if widened_only else 1)


def test_without_onnxruntime_the_gallery_searches_exactly_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(9)
    vectors = unit(rng.normal(size=(2_000, DIM)))
    owners = [f"r{i // 8}" for i in range(len(vectors))]
    gallery = Gallery(DIM, scan_min_rows=0)
    gallery.load(owners, vectors)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    _scan_session.cache_clear()
    reference = Reference(vectors, owners)
    try:
        for query in vectors[:30:10] + 0.1:
            assert_same(gallery.search(query, 3), reference.top(unit(query), 3))
    finally:
        _scan_session.cache_clear()
    assert not gallery.scanning
    warnings = [r for r in caplog.records if "int8 gallery scan unavailable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
