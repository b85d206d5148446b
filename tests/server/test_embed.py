"""Appearance embeddings from the real ReID models on real CUHK03 person crops.

CUHK03 shows every identity from two camera views (cells 00-04 view A, 05-09 view B), so
"same person on another camera" is checked with real cross-camera pairs.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from smart_reid_server import config
from smart_reid_server.models import ModelError, ModelManager, custom_reid_spec, get_spec
from smart_reid_server.types import Image
from smart_reid_server.vision.embed import Embedder

IDENTITIES = 20
OSNET_CUSTOM = {
    "path": "reid/osnet_x0_25_msmt17.onnx",
    "color_order": "rgb",
    "scale": 1 / 255,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def _u8(image: object) -> Image:
    """OpenCV's stubs type results loosely; every image here is 8-bit."""
    return np.asarray(image, dtype=np.uint8)


@pytest.fixture(scope="module")
def pairs(cuhk03_dir: Path) -> tuple[list[Image], list[Image]]:
    """One view-A and one view-B crop for each of the first 20 validation identities."""
    views: dict[str, dict[str, list[Path]]] = defaultdict(lambda: {"A": [], "B": []})
    for path in sorted((cuhk03_dir / "val").glob("*.jpg")):
        person, cell = path.stem.split("_")
        views[person]["A" if int(cell) < 5 else "B"].append(path)
    people = [p for p in sorted(views) if views[p]["A"] and views[p]["B"]][:IDENTITIES]
    assert len(people) == IDENTITIES
    a = [_u8(cv2.imread(str(views[p]["A"][0]))) for p in people]
    b = [_u8(cv2.imread(str(views[p]["B"][0]))) for p in people]
    return a, b


@pytest.fixture(scope="module")
def manager(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    return ModelManager(models_dir, tmp_path_factory.mktemp("cache"), download=False)


def _embedder(manager: ModelManager, name: str, **models_cfg: object) -> Embedder:
    spec = get_spec(name, "reid")
    return Embedder(spec, manager.resolve(spec), models_cfg)


@pytest.fixture(scope="module")
def retail0277(manager: ModelManager) -> Embedder:
    return _embedder(manager, "person-reidentification-retail-0277")


@pytest.fixture(scope="module")
def osnet(manager: ModelManager) -> Embedder:
    return _embedder(manager, "osnet_x0_25_msmt17")


def _cross_camera(
    embedder: Embedder, pairs: tuple[list[Image], list[Image]]
) -> tuple[float, float, float]:
    """(mean same-person cosine, mean different-person cosine, rank-1) from view A to view B."""
    a, b = embedder.embed(pairs[0]), embedder.embed(pairs[1])
    sims = a @ b.T
    same = float(np.diag(sims).mean())
    different = float(sims[~np.eye(IDENTITIES, dtype=bool)].mean())
    rank1 = float((sims.argmax(axis=1) == np.arange(IDENTITIES)).mean())
    return same, different, rank1


def test_default_model_tells_people_apart_across_cameras(
    retail0277: Embedder, pairs: tuple[list[Image], list[Image]]
) -> None:
    assert (retail0277.name, retail0277.runtime, retail0277.device) == (
        "person-reidentification-retail-0277",
        "openvino",
        "cpu",
    )
    assert (retail0277.dim, retail0277.is_reid) == (256, True)
    assert 0.0 < retail0277.default_threshold < 1.0
    same, different, rank1 = _cross_camera(retail0277, pairs)
    assert same > different + 0.2, (same, different)
    assert rank1 >= 0.7


def test_fixed_batch_onnx_model_in_onnxruntime(
    manager: ModelManager, pairs: tuple[list[Image], list[Image]]
) -> None:
    embedder = _embedder(manager, "person-reidentification-retail-0267")
    assert (embedder.runtime, embedder.dim, embedder.batch_mode) == ("onnxruntime", 256, "loop")
    same, different, rank1 = _cross_camera(embedder, pairs)
    assert same > different + 0.15, (same, different)
    assert rank1 >= 0.6


def test_rgb_imagenet_model_in_onnxruntime(
    osnet: Embedder, pairs: tuple[list[Image], list[Image]]
) -> None:
    assert (osnet.runtime, osnet.dim) == ("onnxruntime", 512)
    same, different, rank1 = _cross_camera(osnet, pairs)
    assert same > different + 0.1, (same, different)
    assert rank1 >= 0.5


@pytest.mark.parametrize("which", ["retail0277", "osnet"])
def test_a_crop_gets_the_same_vector_alone_or_in_any_batch(
    which: str, request: pytest.FixtureRequest, pairs: tuple[list[Image], list[Image]]
) -> None:
    embedder: Embedder = request.getfixturevalue(which)
    crops = pairs[0] + pairs[1][:3]  # 23 crops: more than one chunk
    together = embedder.embed(crops)
    alone = np.stack([embedder.embed([crop])[0] for crop in crops])
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-6)
    np.testing.assert_allclose(embedder.embed(crops[5:8]), together[5:8], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert together.dtype == np.float32 and together.shape == (23, embedder.dim)


def test_flip_tta_makes_the_vector_independent_of_walking_direction(
    manager: ModelManager, retail0277: Embedder, pairs: tuple[list[Image], list[Image]]
) -> None:
    tta = _embedder(manager, "person-reidentification-retail-0277", flip_tta=True)
    crops = pairs[0][:6]
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    plain, with_tta = retail0277.embed(crops), tta.embed(crops)
    np.testing.assert_allclose(np.linalg.norm(with_tta, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(plain * with_tta, axis=1)
    assert np.all(cosines < 0.9999) and np.all(cosines > 0.8)
    # Without TTA a mirrored crop is a somewhat different vector; with TTA it is the same one.
    assert np.sum(plain * retail0277.embed(mirrored), axis=1).min() < 0.999
    np.testing.assert_allclose(tta.embed(mirrored), with_tta, atol=1e-5)
    same, different, _ = _cross_camera(tta, pairs)
    assert same > different + 0.2


def test_custom_onnx_model_from_configuration(
    manager: ModelManager, osnet: Embedder, pairs: tuple[list[Image], list[Image]]
) -> None:
    settings = config.validate({"models": {"custom_reid": OSNET_CUSTOM}})
    custom = Embedder.from_config(settings.section("models"), manager)
    assert custom.name == "custom:osnet_x0_25_msmt17"
    assert (custom.dim, custom.is_reid, custom.default_threshold) == (512, True, 0.6)
    crops = pairs[0][:5]
    np.testing.assert_allclose(custom.embed(crops), osnet.embed(crops), atol=1e-5)
    # The colour order setting is honoured: BGR input gives other vectors.
    bgr = Embedder.from_config({"custom_reid": {**OSNET_CUSTOM, "color_order": "bgr"}}, manager)
    assert np.sum(bgr.embed(crops) * osnet.embed(crops), axis=1).max() < 0.99


def test_custom_model_settings_that_do_not_fit_the_file_are_explained(
    manager: ModelManager, models_dir: Path
) -> None:
    with pytest.raises(ModelError, match="fix input_height/input_width"):
        Embedder.from_config({"custom_reid": {**OSNET_CUSTOM, "input_height": 128}}, manager)
    with pytest.raises(ModelError, match="outputs 512-d vectors, but 256 are expected"):
        Embedder.from_config({"custom_reid": {**OSNET_CUSTOM, "output_dim": 256}}, manager)
    with pytest.raises(ModelError, match=r"does not exist|is not at"):
        Embedder.from_config({"custom_reid": {**OSNET_CUSTOM, "path": "/nowhere/x.onnx"}}, manager)
    # The original 0267 export yields NaN in onnxruntime: refused at start-up, not mid-stream.
    spec = custom_reid_spec(
        {
            "path": str(
                models_dir
                / "reid/person-reidentification-retail-0267/person-reidentification-retail-0267.onnx"
            )
        }
    )
    with pytest.raises(ModelError, match="NaN"):
        Embedder(spec, manager.resolve(spec), {"runtime": "onnxruntime"})


def test_default_configuration_loads_the_default_embedder(manager: ModelManager) -> None:
    settings = config.validate({})
    embedder = Embedder.from_config(settings.section("models"), manager)
    assert embedder.name == "person-reidentification-retail-0277"


def test_empty_and_bad_crop_lists(retail0277: Embedder) -> None:
    assert retail0277.embed([]).shape == (0, 256)
    good = np.full((120, 50, 3), 90, np.uint8)
    with pytest.raises(ValueError, match="crop 1 must have shape"):
        retail0277.embed([good, np.zeros((0, 10, 3), np.uint8)])
    with pytest.raises(ValueError, match="crop 0 must be a uint8"):
        retail0277.embed([good.astype(np.float32)])
