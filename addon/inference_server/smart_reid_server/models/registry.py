"""Every model the server knows how to run, described as data.

Detect and embed code reads pre/post-processing facts from these specs instead of branching on
model names, so adding a model is one entry here. File paths are relative to a model directory
laid out like ``../shared/models``; the same layout is used for the download cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ModelError

type ModelKind = Literal["detector", "reid"]
type RuntimeName = Literal["openvino", "onnxruntime"]
type DecoderName = Literal["yolox", "nanodet"]
type ColorOrder = Literal["bgr", "rgb"]
type Letterbox = Literal["top_left", "centre", "stretch"]

# Gallery (tier-2) threshold per ReID model on raw (uncentred) embeddings: the cosine at which
# 0.01% of crop-vs-stranger identity comparisons match on CUHK03 train (eval/thresholds.json
# "identity_far_0.0001"), so a gallery of 100 people takes about 1% of strangers for someone.
# retail-0277 is stricter on purpose (0.62, not 0.593): the dedup scenario keeps its identity
# purity there (docs/quality.md). With match.camera_centering the centred thresholds in
# match.CENTERED_THRESHOLDS apply instead. Re-run ``python -m eval`` and update these together.
DEFAULT_MATCH_THRESHOLDS: dict[str, float] = {
    "person-reidentification-retail-0277": 0.62,
    "person-reidentification-retail-0286": 0.550,
    "person-reidentification-retail-0287": 0.526,
    "person-reidentification-retail-0288": 0.569,
    "person-reidentification-retail-0267": 0.534,
    "osnet_x0_25_msmt17": 0.785,
}
CUSTOM_MATCH_THRESHOLD = 0.6
CUSTOM_PREFIX = "custom:"

DEFAULT_DETECTOR = "yolox_nano_416"
DEFAULT_REID = "person-reidentification-retail-0277"

_OMZ = "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2023.0/models_bin/1"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a model: where it lives locally, where to fetch it, how to check it."""

    path: str  # relative to a models dir (or absolute, for user-supplied models)
    url: str | None  # None: cannot be downloaded, the user must provide it
    sha256: str | None  # None: not verified (user-supplied models)
    size: int | None = None
    # Digests of other trusted copies, e.g. the upstream export when the reference copy is
    # another export of the same weights.
    alt_sha256: tuple[str, ...] = ()

    def accepts(self, digest: str) -> bool:
        return self.sha256 is None or digest in (self.sha256, *self.alt_sha256)


@dataclass(frozen=True, slots=True)
class InputSpec:
    """How an image becomes the model's input tensor (always NCHW float32).

    value = (pixel * scale - mean[c]) / std[c], pixels in ``color_order``, mean/std given in that
    same channel order.
    """

    height: int
    width: int
    color_order: ColorOrder = "bgr"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    letterbox: Letterbox = "stretch"
    pad_value: int = 0
    layout: Literal["NCHW"] = "NCHW"

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.mean == (0.0, 0.0, 0.0) and self.std == (1.0, 1.0, 1.0)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    kind: ModelKind
    files: tuple[ModelFile, ...]  # the first one is what the runtime opens
    runtime: RuntimeName  # preferred runtime
    input: InputSpec
    output_dim: int | None = None  # embedding size; None: read from the model at load time
    decoder: DecoderName | None = None
    strides: tuple[int, ...] = ()
    person_class: int = 0
    default_threshold: float | None = None  # cosine match threshold (ReID only)
    fixed_batch: bool = False  # batch dimension is 1 and cannot be reshaped
    is_reid: bool = True  # False: a generic image embedder, not trained for people
    licence: str = ""
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def main_file(self) -> ModelFile:
        return self.files[0]


def _omz(model: str, precision: str, xml: tuple[str, int], bin_: tuple[str, int]) -> ModelSpec:
    folder = f"reid/{model}/{precision}"
    return ModelSpec(
        name=model,
        kind="reid",
        files=(
            ModelFile(f"{folder}/{model}.xml", f"{_OMZ}/{model}/{precision}/{model}.xml", *xml),
            ModelFile(f"{folder}/{model}.bin", f"{_OMZ}/{model}/{precision}/{model}.bin", *bin_),
        ),
        runtime="openvino",
        input=InputSpec(256, 128, "bgr"),  # normalisation is inside the IR
        output_dim=256,
        default_threshold=DEFAULT_MATCH_THRESHOLDS[model],
        licence="Apache-2.0 (Intel Open Model Zoo)",
    )


_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="yolox_nano_416",
        kind="detector",
        files=(
            ModelFile(
                "detectors/yolox_nano_416.onnx",
                "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx",
                "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
                3_660_092,
                # The release asset itself: another export of the same weights.
                alt_sha256=("c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d",),
            ),
        ),
        runtime="onnxruntime",
        input=InputSpec(416, 416, "bgr", letterbox="top_left", pad_value=114),
        decoder="yolox",
        strides=(8, 16, 32),
        licence="Apache-2.0 (Megvii YOLOX)",
    ),
    ModelSpec(
        name="nanodet_m_416",
        kind="detector",
        files=(
            ModelFile(
                "detectors/nanodet_m_416.onnx",
                "https://github.com/Kazuhito00/NanoDet-ONNX-Sample/raw/main/model/nanodet_m_416.onnx",
                "08b62b9ee4a7878e7a64d6ef4faf3074322c033a0252c83a20f41b86c76e8146",
                3_802_805,
            ),
        ),
        runtime="onnxruntime",
        input=InputSpec(
            416,
            416,
            "bgr",
            mean=(103.53, 116.28, 123.675),
            std=(57.375, 57.12, 58.395),
            letterbox="centre",
            pad_value=0,
        ),
        decoder="nanodet",
        strides=(8, 16, 32),
        licence="Apache-2.0 (RangiLyu NanoDet)",
    ),
    ModelSpec(
        name="light_person_detector_192",
        kind="detector",
        files=(
            ModelFile(
                "detectors/light_person_detector_192.onnx",
                "https://github.com/Kazuhito00/Person-Detection-using-RaspberryPi-CPU/raw/main/model/model.onnx",
                "4bf5f704cd3bd900645a4303e0934ede13d9fb2135058b38005f4c2886c68576",
                3_616_703,
            ),
        ),
        runtime="onnxruntime",
        input=InputSpec(192, 192, "bgr", letterbox="top_left", pad_value=114),
        decoder="yolox",
        strides=(8, 16, 32),
        licence="Apache-2.0 (Kazuhito00)",
        notes="person-only, fast, misses distant people",
    ),
    _omz(
        "person-reidentification-retail-0277",
        "FP16",
        ("82039b1bb986231c50345550e59def94e63579998e9cddbd1a312f293eb87729", 616_140),
        ("6bb69e09d07733cc3896b29081d2627f92db7b9aacd50f1a8c3df491cb10f1b7", 4_178_806),
    ),
    _omz(
        "person-reidentification-retail-0286",
        "FP16",
        ("cc547e622d8aeabf97938213f68171bf59ac7d01c910ceadfea984aa96e5d1b5", 611_793),
        ("d06beb9e2b2661d42b233f64ef623f3518fc46dc11f6b7dd53cda8962d9d1bd9", 2_453_724),
    ),
    _omz(
        "person-reidentification-retail-0287",
        "FP32",
        ("09af746c1068a3e89355e1f0226d3d6982dc1cd77634b1f70a40f1f654a94be1", 451_147),
        ("7f53d18d11253455e0e11646b2176cf6509cc7c97cb5376f9b91b4c41e09a06c", 2_362_128),
    ),
    _omz(
        "person-reidentification-retail-0288",
        "FP32",
        ("30f452b2ed2763f7bf429eea23f8f243ad0e7f3cdd7226db6888f1660efb3424", 450_664),
        ("6496b8d51741703c9e9c7f6474cb96c60de1856d7b4fd77235e48cea146066a5", 728_052),
    ),
    ModelSpec(
        name="person-reidentification-retail-0267",
        kind="reid",
        files=(
            ModelFile(
                "reid/person-reidentification-retail-0267/person-reidentification-retail-0267-eps.onnx",
                # A local rewrite of the OMZ ONNX export (MeanVarianceNormalization with eps), so
                # onnxruntime does not produce NaN; nothing upstream publishes it.
                None,
                "1d12757630cd325deb3a895590362b3b1552cb14341c47cde6d763e94488dce1",
                2_504_546,
            ),
        ),
        runtime="onnxruntime",
        input=InputSpec(256, 128, "rgb"),  # measured: BGR input costs 17 rank-1 points
        output_dim=256,
        default_threshold=DEFAULT_MATCH_THRESHOLDS["person-reidentification-retail-0267"],
        fixed_batch=True,
        licence="Apache-2.0 (Intel Open Model Zoo)",
    ),
    ModelSpec(
        name="osnet_x0_25_msmt17",
        kind="reid",
        files=(
            ModelFile(
                "reid/osnet_x0_25_msmt17.onnx",
                "https://huggingface.co/anriha/osnet_x0_25_msmt17/resolve/main/osnet_x0_25_msmt17.onnx",
                "dddd73c80b78e24ef982f9c352c1947b42d67433887011e8eb33a00313edef5e",
                891_413,
            ),
        ),
        runtime="onnxruntime",
        input=InputSpec(
            256,
            128,
            "rgb",
            scale=1.0 / 255.0,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
        ),
        output_dim=512,
        default_threshold=DEFAULT_MATCH_THRESHOLDS["osnet_x0_25_msmt17"],
        licence="MIT (torchreid architecture); weights: no licence file upstream",
    ),
)

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def names(kind: ModelKind) -> list[str]:
    return [spec.name for spec in _SPECS if spec.kind == kind]


def get_spec(name: str, kind: ModelKind | None = None) -> ModelSpec:
    """The registered model called ``name``; a ModelError lists the valid names otherwise."""
    spec = REGISTRY.get(name)
    if spec is None or (kind is not None and spec.kind != kind):
        wanted = kind or "model"
        known = ", ".join(names(kind) if kind else list(REGISTRY))
        raise ModelError(f"unknown {wanted} {name!r}: choose one of {known}")
    return spec


def custom_reid_spec(cfg: Mapping[str, Any]) -> ModelSpec:
    """A spec for a user-supplied embedder (config ``models.custom_reid``).

    The file is neither downloaded nor verified. ``.xml`` files run in OpenVINO (the ``.bin`` is
    expected next to it), anything else in onnxruntime.
    """
    path = str(cfg["path"])
    mean = tuple(float(v) for v in cfg.get("mean", (0.0, 0.0, 0.0)))
    std = tuple(float(v) for v in cfg.get("std", (1.0, 1.0, 1.0)))
    if len(mean) != 3 or len(std) != 3:
        raise ModelError("models.custom_reid: mean and std need exactly 3 values (one per channel)")
    if any(s == 0.0 for s in std):
        raise ModelError("models.custom_reid: std values must not be 0")
    is_ir = path.lower().endswith(".xml")
    files = [ModelFile(path, None, None)]
    if is_ir:
        files.append(ModelFile(str(Path(path).with_suffix(".bin")), None, None))
    threshold = cfg.get("threshold")
    return ModelSpec(
        name=CUSTOM_PREFIX + Path(path).stem,
        kind="reid",
        files=tuple(files),
        runtime="openvino" if is_ir else "onnxruntime",
        input=InputSpec(
            int(cfg.get("input_height", 256)),
            int(cfg.get("input_width", 128)),
            "rgb" if cfg.get("color_order", "bgr") == "rgb" else "bgr",
            scale=float(cfg.get("scale", 1.0)),
            mean=(mean[0], mean[1], mean[2]),
            std=(std[0], std[1], std[2]),
        ),
        output_dim=cfg.get("output_dim"),
        default_threshold=CUSTOM_MATCH_THRESHOLD if threshold is None else float(threshold),
        is_reid=bool(cfg.get("is_reid", True)),
        notes="user-supplied",
    )


def detector_spec(models_cfg: Mapping[str, Any]) -> ModelSpec:
    return get_spec(str(models_cfg.get("detector", DEFAULT_DETECTOR)), "detector")


def reid_spec(models_cfg: Mapping[str, Any]) -> ModelSpec:
    """The configured embedder: ``models.custom_reid`` when given, else ``models.reid``."""
    custom = models_cfg.get("custom_reid")
    if custom:
        return custom_reid_spec(custom)
    return get_spec(str(models_cfg.get("reid", DEFAULT_REID)), "reid")
