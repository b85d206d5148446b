"""Per-camera centring (``match.CameraCentering``) on real embeddings of real people."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from _embeddings import MODEL_NAME, Sample, require_assets, samples
from smart_reid_server.config import load
from smart_reid_server.match import (
    CENTERED_THRESHOLDS,
    ActiveTierConfig,
    CameraCentering,
    gallery_threshold,
)


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
    assert load(None, environ={}).section("match")["camera_centering"] is False
