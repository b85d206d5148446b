"""Per-camera centring (``match.CameraCentering``) on real embeddings of real people."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from _embeddings import DIM, MODEL_NAME, Sample, make_frame, require_assets, samples
from smart_reid_server.config import load
from smart_reid_server.identity.identities import Identities
from smart_reid_server.identity.match import (
    CENTERED_THRESHOLDS,
    ActiveTierConfig,
    CameraCentering,
    camera_centering_for,
    centering_enabled,
    gallery_threshold,
)
from smart_reid_server.identity.store import DB_NAME, MIGRATIONS, Store
from smart_reid_server.models import priors
from smart_reid_server.models.priors import _table, prior_mean
from smart_reid_server.models.registry import names

T0 = 1_763_740_000.0
DAY = 86400.0


@pytest.fixture(scope="module")
def people() -> dict[int, list[Sample]]:
    require_assets()
    return samples()


def _views(people: dict[int, list[Sample]]) -> tuple[list[int], list[Sample], list[Sample]]:
    ids = [i for i, crops in people.items() if {s.view for s in crops} == {"A", "B"}]
    a = [next(s for s in people[i] if s.view == "A") for i in ids]
    b = [next(s for s in people[i] if s.view == "B") for i in ids]
    return ids, a, b


def _rank1(queries: npt.NDArray[np.float32], gallery: npt.NDArray[np.float32]) -> float:
    return float(np.mean((queries @ gallery.T).argmax(axis=1) == np.arange(len(queries))))


def test_warm_up_passes_vectors_unchanged_then_centres_per_camera(
    people: dict[int, list[Sample]],
) -> None:
    vectors = np.stack([s.vector for crops in people.values() for s in crops])
    centering = CameraCentering(warmup=10)
    first = centering.apply("front", vectors[:5])
    assert np.array_equal(first, vectors[:5])  # 5 seen < warm-up 10
    later = centering.apply("front", vectors[5:20])
    assert centering.seen("front") == 20 and centering.seen("back") == 0
    mean = centering.mean("front")
    assert mean is not None
    np.testing.assert_allclose(mean, vectors[:20].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(later, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(later, vectors[5:20])
    # Another camera has its own (still warming up) mean.
    assert np.array_equal(centering.apply("back", vectors[:3]), vectors[:3])


def test_centring_each_camera_helps_cross_camera_matching_on_real_crops(
    people: dict[int, list[Sample]],
) -> None:
    _, view_a, view_b = _views(people)
    a = np.stack([s.vector for s in view_a])
    b = np.stack([s.vector for s in view_b])
    centering = CameraCentering(warmup=len(a))
    centred_a = centering.apply("front", a)
    centred_b = centering.apply("back", b)
    assert _rank1(centred_b, centred_a) >= _rank1(b, a)
    same_raw = float(np.mean(np.sum(a * b, axis=1)))
    same_centred = float(np.mean(np.sum(centred_a * centred_b, axis=1)))
    strangers_raw = float(np.mean((b @ a.T)[~np.eye(len(a), dtype=bool)]))
    strangers_centred = float(np.mean((centred_b @ centred_a.T)[~np.eye(len(a), dtype=bool)]))
    # Centred scores sit lower (hence the lower thresholds) and strangers drop the most.
    assert strangers_centred < strangers_raw
    assert same_centred - strangers_centred > same_raw - strangers_raw


def test_centred_thresholds_apply_only_when_centring_is_on() -> None:
    gallery, active = CENTERED_THRESHOLDS[MODEL_NAME]
    assert gallery_threshold(None, MODEL_NAME, 0.62, centered=True) == gallery
    assert gallery_threshold(None, MODEL_NAME, 0.62) == 0.62
    assert gallery_threshold(0.7, MODEL_NAME, 0.62, centered=True) == 0.7
    tier = ActiveTierConfig()
    assert tier.threshold_for(0.62, MODEL_NAME, centered=True) == active
    assert tier.threshold_for(0.62, MODEL_NAME) != active
    assert gallery_threshold(None, "custom:mine", 0.6, centered=True) == 0.6


def test_centering_is_on_by_default_only_for_models_with_centred_thresholds() -> None:
    assert load(None, environ={}).section("match")["camera_centering"] is None
    assert centering_enabled(None, MODEL_NAME)
    assert not centering_enabled(None, "custom:mine")
    assert not centering_enabled(None, "osnet_x0_25_msmt17")
    assert not centering_enabled(False, MODEL_NAME)
    assert centering_enabled(True, "custom:mine")


def test_every_registry_model_ships_a_prior_of_its_own_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in names("reid"):
        assert name in _table(), f"no centering prior for {name}: run python -m eval.priors"
    prior = prior_mean(MODEL_NAME, DIM)
    assert prior is not None and prior.shape == (DIM,)
    # The street-video mean is a strong shared direction, not noise: about 0.38 long.
    assert 0.2 < float(np.linalg.norm(prior)) < 0.6
    assert prior_mean("custom:mine", DIM) is None
    with caplog.at_level("WARNING"):
        assert prior_mean(MODEL_NAME, DIM * 2) is None
    assert "not used" in caplog.text


def test_with_a_prior_every_camera_is_centred_from_its_first_crop(
    people: dict[int, list[Sample]],
) -> None:
    vectors = np.stack([s.vector for crops in people.values() for s in crops])
    prior = prior_mean(MODEL_NAME, DIM)
    assert prior is not None
    centering = CameraCentering(prior=prior, prior_weight=50)
    first = centering.apply("front", vectors[:1])
    expected = vectors[:1] - (prior * 50 + vectors[0]) / 51
    np.testing.assert_allclose(first, expected / np.linalg.norm(expected), atol=1e-5)
    centering.apply("front", vectors[1:100])
    # The camera's own people take over: after 100 crops the mean is 2/3 theirs.
    mean = centering.mean("front")
    assert mean is not None
    np.testing.assert_allclose(mean, (prior * 50 + vectors[:100].sum(axis=0)) / 150, atol=1e-4)
    # A camera that saw nobody yet is centred with the prior alone.
    np.testing.assert_allclose(centering.mean("back"), prior, atol=1e-6)


def test_camera_means_and_raw_exemplars_survive_a_restart_and_switching_centering_off(
    tmp_path: Path, people: dict[int, list[Sample]]
) -> None:
    _, view_a, _ = _views(people)
    settings = load(None, environ={})
    threshold = gallery_threshold(None, MODEL_NAME, 0.62, centered=True)

    def open_ids(centred: bool | None) -> Identities:
        cfg = load(None, environ={}, overrides={"match": {"camera_centering": centred}})
        identities = Identities.from_settings(
            Store(tmp_path), cfg, model_name=MODEL_NAME, dim=DIM, threshold=threshold
        )
        identities.load()
        return identities

    first = open_ids(None)
    assert first.centering is not None and settings.section("match")["camera_centering"] is None
    for t, sample in enumerate(view_a[:8]):
        frame, crops, vectors = make_frame("front", T0 + 100 * t, [sample])
        first.observe("front", T0 + 100 * t, crops, vectors, frame)
    seen, mean = first.centering.seen("front"), first.centering.mean("front")
    stored = first.store.load_exemplars(MODEL_NAME, DIM)
    first.close()
    # The store keeps the model's raw vectors with their camera, never the centred ones.
    assert set(stored.cameras) == {"front"}
    raw = {s.identity: s.vector for s in view_a[:8]}
    for pid, vector in zip(stored.person_ids, stored.vectors, strict=True):
        assert any(np.allclose(vector, v, atol=1e-6) for v in raw.values()), pid

    second = open_ids(None)
    assert second.centering is not None and second.centering.seen("front") == seen == 8
    np.testing.assert_allclose(second.centering.mean("front"), mean, atol=1e-6)
    persons = len(second.persons())
    second.close()

    # Switched off, the same store still holds every identity and matches raw vectors.
    third = open_ids(False)
    assert third.centering is None and len(third.persons()) == persons
    frame, crops, vectors = make_frame("front", T0 + 5000, [view_a[0]])
    (decision,) = third.observe("front", T0 + 5000, crops, vectors, frame).decisions
    assert not decision.is_new_identity
    third.close()


def test_exemplars_from_before_schema_2_are_centred_with_the_prior(
    tmp_path: Path, people: dict[int, list[Sample]]
) -> None:
    _, view_a, _ = _views(people)
    sample = view_a[0]
    db = sqlite3.connect(tmp_path / DB_NAME)
    MIGRATIONS[0](db)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version (version) VALUES (1)")
    db.execute(
        "INSERT INTO persons (person_id, label, number, first_seen, last_seen)"
        " VALUES ('old', 'Visitor 1', 1, ?, ?)",
        (T0, T0),
    )
    db.execute(
        "INSERT INTO exemplars (id, person_id, model, vector, created_at) VALUES (1, 'old', ?, ?, ?)",
        (MODEL_NAME, sample.vector.astype("<f4").tobytes(), T0),
    )
    db.commit()
    db.close()
    cfg = load(None, environ={})
    identities = Identities.from_settings(
        Store(tmp_path), cfg, model_name=MODEL_NAME, dim=DIM, threshold=0.55
    )
    identities.load()
    assert identities.store.load_exemplars(MODEL_NAME, DIM).cameras == [None]
    frame, crops, vectors = make_frame("front", T0 + DAY, [sample])
    (decision,) = identities.observe("front", T0 + DAY, crops, vectors, frame).decisions
    assert decision.person_id == "old" and not decision.is_new_identity
    identities.close()


def test_a_missing_or_damaged_priors_file_means_no_prior_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "priors.json"
    broken.write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(priors, "PRIORS_FILE", broken)
    _table.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert prior_mean(MODEL_NAME, DIM) is None
        assert "cameras start uncentred" in caplog.text
        # Without a prior a camera waits for its own 50 crops.
        assert camera_centering_for(MODEL_NAME, DIM).prior is None
    finally:
        monkeypatch.undo()
        _table.cache_clear()
    assert prior_mean(MODEL_NAME, DIM) is not None


def test_a_damaged_stored_mean_is_refused_and_a_camera_can_start_over(
    people: dict[int, list[Sample]],
) -> None:
    vectors = np.stack([s.vector for crops in people.values() for s in crops])
    centering = CameraCentering(prior=prior_mean(MODEL_NAME, DIM))
    with pytest.raises(ValueError, match="unusable"):
        centering.restore("front", 10, np.full(DIM, np.nan))
    with pytest.raises(ValueError, match="unusable"):
        centering.restore("front", 0, vectors[0])
    with pytest.raises(ValueError, match="embeddings 128"):
        centering.apply("front", vectors[:1, :128])
    centering.apply("front", vectors[:20])
    assert set(centering.take_changed()) == {"front"} and centering.take_changed() == {}
    centering.forget("front")
    assert centering.seen("front") == 0
    np.testing.assert_allclose(centering.mean("front"), centering.prior, atol=1e-6)
    with pytest.raises(ValueError, match="prior_weight"):
        CameraCentering(prior_weight=0)
