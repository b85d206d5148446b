"""Appearance embeddings: person crops in, L2-normalised vectors out.

Crops are resized once each straight into one contiguous uint8 batch, converted to float32 in a
single numpy pass and run in chunks, so the per-crop Python cost stays small next to inference.
A crop's vector does not depend on which other crops share its call (see models.runtimes), so a
person's similarity scores do not change with how many people are in the frame.
``embed`` is synchronous and CPU-bound: run it in an executor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ..models.download import ModelManager
from ..models.errors import ModelError
from ..models.registry import ModelSpec, reid_spec
from ..models.runtimes import LoadedModel, load_model
from ..types import Image

_LOGGER = logging.getLogger(__name__)

type F32 = npt.NDArray[np.float32]

MAX_BATCH = 16


class Embedder:
    """Turns person crops into unit-length appearance vectors with one ReID model."""

    def __init__(
        self,
        spec: ModelSpec,
        files: Mapping[str, Path],
        models_cfg: Mapping[str, Any] | None = None,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if spec.kind != "reid":
            raise ModelError(f"model {spec.name} is a {spec.kind}, not an embedder")
        models_cfg = models_cfg or {}
        self.spec = spec
        self.name = spec.name
        self.is_reid = spec.is_reid
        self.flip_tta = bool(models_cfg.get("flip_tta", False))
        self._model: LoadedModel = load_model(
            [files[f.path] for f in spec.files],
            name=spec.name,
            preferred_runtime=spec.runtime,
            runtime=str(models_cfg.get("runtime", "auto")),
            device=str(models_cfg.get("device", "auto")),
            threads=int(models_cfg.get("threads", 0)),
            cache_dir=models_cfg.get("engine_cache_dir"),  # set by the app (TensorRT engines)
            many=True,
            max_batch=2 * max(1, max_batch),  # x2: flip TTA doubles a chunk
        )
        self.runtime = self._model.runtime
        self.device = self._model.device
        self.batch_mode = self._model.batch_mode
        self.max_batch = max(1, max_batch)
        inp = spec.input
        self._height, self._width = inp.height, inp.width
        if self._model.input_shape[1:] != (3, inp.height, inp.width):
            raise ModelError(
                f"model {spec.name} takes input {list(self._model.input_shape)}, but it is "
                f"configured for 3x{inp.height}x{inp.width} crops: fix input_height/input_width"
            )
        self._rgb = inp.color_order == "rgb"
        self._identity = inp.is_identity
        std = np.asarray(inp.std, np.float32)
        self._norm_a = (np.float32(inp.scale) / std).reshape(1, 3, 1, 1)
        self._norm_b = (-np.asarray(inp.mean, np.float32) / std).reshape(1, 3, 1, 1)
        probe = self._infer(np.full((1, 3, inp.height, inp.width), 0.5, np.float32))
        _normalise(probe, spec.name)  # a model that yields NaN is refused at start-up
        self.dim = int(probe.shape[1])
        if spec.output_dim is not None and spec.output_dim != self.dim:
            raise ModelError(
                f"model {spec.name} outputs {self.dim}-d vectors, but {spec.output_dim} are "
                "expected: check the file (or output_dim for a custom model)"
            )
        self.default_threshold = (
            spec.default_threshold if spec.default_threshold is not None else 0.6
        )

    @classmethod
    def from_config(cls, models_cfg: Mapping[str, Any], manager: ModelManager) -> Embedder:
        """The configured embedder (``models.custom_reid`` or ``models.reid``)."""
        spec = reid_spec(models_cfg)
        return cls(spec, manager.resolve(spec), models_cfg)

    def embed(self, crops: Sequence[Image]) -> F32:
        """One unit-length float32 row per crop (BGR images of any size), in input order."""
        count = len(crops)
        if count == 0:
            return np.zeros((0, self.dim), np.float32)
        out = np.empty((count, self.dim), np.float32)
        chunks = math.ceil(count / self.max_batch)
        size = math.ceil(count / chunks)  # even chunks: 17 crops run as 9 + 8, not 16 + 1
        for start in range(0, count, size):
            part = crops[start : start + size]
            out[start : start + len(part)] = self._embed_chunk(part, start)
        return out

    def _embed_chunk(self, crops: Sequence[Image], offset: int) -> F32:
        pixels: npt.NDArray[np.uint8] = np.empty(
            (len(crops), self._height, self._width, 3), np.uint8
        )
        for i, crop in enumerate(crops):
            _check_crop(crop, offset + i)
            cv2.resize(
                crop, (self._width, self._height), dst=pixels[i], interpolation=cv2.INTER_LINEAR
            )
        if self.flip_tta:
            pixels = np.concatenate([pixels, pixels[:, :, ::-1]])
        vectors = self._infer(self._to_tensor(pixels))
        if self.flip_tta:
            vectors = vectors[: len(crops)] + vectors[len(crops) :]
        return _normalise(vectors, self.name)

    def _to_tensor(self, pixels: npt.NDArray[np.uint8]) -> F32:
        if self._rgb:
            pixels = pixels[..., ::-1]
        tensor = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
        if not self._identity:
            tensor *= self._norm_a
            tensor += self._norm_b
        return tensor

    def _infer(self, tensor: F32) -> F32:
        """Raw model output, one row per input image (independent of the other images)."""
        result = self._model.run(tensor)[0]
        rows: F32 = result.reshape(result.shape[0], -1).astype(np.float32, copy=False)
        return rows


def _check_crop(crop: Any, index: int) -> None:
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8:
        raise ValueError(f"crop {index} must be a uint8 numpy image")
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] < 1 or crop.shape[1] < 1:
        raise ValueError(f"crop {index} must have shape (height, width, 3), got {crop.shape}")


def _normalise(vectors: F32, name: str) -> F32:
    if not np.isfinite(vectors).all():
        raise ModelError(
            f"model {name} produced NaN or infinite values; with onnxruntime use a file without "
            "epsilon-free MeanVarianceNormalization (e.g. the -eps export) or runtime: openvino"
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: F32 = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return unit
