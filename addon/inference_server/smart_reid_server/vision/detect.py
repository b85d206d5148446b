"""Person detection: one BGR frame in, person boxes in frame pixels out.

Pre- and post-processing follow each model's export exactly (letterbox placement, padding value,
normalisation, output decoding), because a detector fed slightly wrong input still produces
boxes, just worse ones, and nobody notices. ``detect`` is synchronous and CPU-bound: run it in an
executor, never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ..models.download import ModelManager
from ..models.errors import ModelError
from ..models.registry import InputSpec, ModelSpec, detector_spec
from ..models.runtimes import LoadedModel, load_model
from ..types import Box, Detection, Image

_LOGGER = logging.getLogger(__name__)

type F32 = npt.NDArray[np.float32]

_NANODET_BINS = 8  # NanoDet-m regresses each side as a distribution over 0..7 strides
_MAX_CANDIDATES = 2000  # before NMS; a frame never holds more people than this


@dataclass(frozen=True, slots=True)
class _Letterbox:
    """How the network input maps back to the frame: frame = (net - offset) / scale."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float


def as_bgr(image: Any) -> Image:
    """The image as a (H, W, 3) uint8 array; greyscale and BGRA are converted.

    Raises ValueError naming what was wrong, for anything that is not a decodable picture.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (8-bit pixels), got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (height, width, 3), got {image.shape}")
    bgr: Image = image
    return bgr


class Detector:
    """Finds people in frames with one of the registered detector models."""

    def __init__(
        self,
        spec: ModelSpec,
        files: Mapping[str, Path],
        detect_cfg: Mapping[str, Any] | None = None,
        models_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        if spec.kind != "detector" or spec.decoder is None:
            raise ModelError(f"model {spec.name} is not a person detector")
        detect_cfg = detect_cfg or {}
        models_cfg = models_cfg or {}
        self.spec = spec
        self.name = spec.name
        self.score_threshold = float(detect_cfg.get("score_threshold", 0.6))
        self.nms_iou = float(detect_cfg.get("nms_iou", 0.45))
        self.max_persons = int(detect_cfg.get("max_persons", 32))
        self._model: LoadedModel = load_model(
            [files[f.path] for f in spec.files],
            name=spec.name,
            preferred_runtime=spec.runtime,
            runtime=str(models_cfg.get("runtime", "auto")),
            device=str(models_cfg.get("device", "auto")),
            threads=int(models_cfg.get("threads", 0)),
            cache_dir=models_cfg.get("engine_cache_dir"),  # set by the app (TensorRT engines)
        )
        self.runtime = self._model.runtime
        self.device = self._model.device
        inp = spec.input
        self._input: InputSpec = inp
        if self._model.input_shape[2:] != (inp.height, inp.width):
            raise ModelError(
                f"model {spec.name} expects input {self._model.input_shape[2:]}, the registry "
                f"says {(inp.height, inp.width)}"
            )
        self._norm_a = (np.float32(inp.scale) / np.asarray(inp.std, np.float32)).reshape(3, 1, 1)
        self._norm_b = (
            -np.asarray(inp.mean, np.float32) / np.asarray(inp.std, np.float32)
        ).reshape(3, 1, 1)
        self._grid, self._grid_stride = _anchor_grid(inp.height, inp.width, spec.strides)
        self._check_outputs()

    @classmethod
    def from_config(
        cls,
        models_cfg: Mapping[str, Any],
        detect_cfg: Mapping[str, Any],
        manager: ModelManager,
    ) -> Detector:
        """The configured detector (``models.detector``), its files resolved by ``manager``."""
        spec = detector_spec(models_cfg)
        return cls(spec, manager.resolve(spec), detect_cfg, models_cfg)

    def detect(self, image: Image) -> list[Detection]:
        """People in ``image`` (BGR), best first, boxes clipped to the image."""
        image = as_bgr(image)
        blob, letterbox = self._prepare(image)
        outputs = self._model.run(blob)
        if self.spec.decoder == "nanodet":
            boxes, scores = self._decode_nanodet(outputs)
        else:
            boxes, scores = self._decode_yolox(outputs[0])
        return self._finish(boxes, scores, letterbox, image.shape[1], image.shape[0])

    def _prepare(self, image: Image) -> tuple[F32, _Letterbox]:
        inp = self._input
        h, w = image.shape[:2]
        if inp.letterbox == "stretch":
            canvas = cv2.resize(image, (inp.width, inp.height), interpolation=cv2.INTER_LINEAR)
            box = _Letterbox(inp.width / w, inp.height / h, 0.0, 0.0)
        else:
            ratio = min(inp.height / h, inp.width / w)
            new_w, new_h = max(1, int(w * ratio)), max(1, int(h * ratio))
            canvas = np.full((inp.height, inp.width, 3), inp.pad_value, dtype=np.uint8)
            x0 = (inp.width - new_w) // 2 if inp.letterbox == "centre" else 0
            y0 = (inp.height - new_h) // 2 if inp.letterbox == "centre" else 0
            cv2.resize(
                image,
                (new_w, new_h),
                dst=canvas[y0 : y0 + new_h, x0 : x0 + new_w],
                interpolation=cv2.INTER_LINEAR,
            )
            box = _Letterbox(ratio, ratio, float(x0), float(y0))
        if inp.color_order == "rgb":
            canvas = canvas[..., ::-1]
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)
        if not inp.is_identity:
            blob *= self._norm_a
            blob += self._norm_b
        return blob[np.newaxis], box

    def _decode_yolox(self, output: npt.NDArray[Any]) -> tuple[F32, F32]:
        """YOLOX head: per anchor (dx, dy, log w, log h, objectness, classes...)."""
        rows = output.reshape(-1, output.shape[-1])
        scores = rows[:, 4] * rows[:, 5 + self.spec.person_class]
        keep = np.flatnonzero(scores >= self.score_threshold)
        cand = rows[keep]
        grid = self._grid[keep]
        stride = self._grid_stride[keep]
        cx = (cand[:, 0] + grid[:, 0]) * stride
        cy = (cand[:, 1] + grid[:, 1]) * stride
        half_w = np.exp(cand[:, 2]) * stride / 2
        half_h = np.exp(cand[:, 3]) * stride / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        return boxes.astype(np.float32), scores[keep].astype(np.float32)

    def _decode_nanodet(self, outputs: list[npt.NDArray[Any]]) -> tuple[F32, F32]:
        """NanoDet-m head: per stride, class scores and a distribution per box side."""
        cls_by_rows: dict[int, npt.NDArray[Any]] = {}
        dist_by_rows: dict[int, npt.NDArray[Any]] = {}
        for out in outputs:
            flat = out.reshape(-1, out.shape[-1])
            target = dist_by_rows if flat.shape[1] == 4 * _NANODET_BINS else cls_by_rows
            target[flat.shape[0]] = flat
        all_boxes: list[F32] = []
        all_scores: list[F32] = []
        inp = self._input
        bins = np.arange(_NANODET_BINS, dtype=np.float32)
        for stride in self.spec.strides:
            fw = -(-inp.width // stride)
            fh = -(-inp.height // stride)
            cls = cls_by_rows[fw * fh]
            dist = dist_by_rows[fw * fh]
            scores = cls[:, self.spec.person_class]
            keep = np.flatnonzero(scores >= self.score_threshold)
            if keep.size == 0:
                continue
            logits = dist[keep].reshape(-1, 4, _NANODET_BINS).astype(np.float32)
            logits -= logits.max(axis=2, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=2, keepdims=True)
            sides = (prob @ bins) * stride  # left, top, right, bottom
            cx = (keep % fw).astype(np.float32) * stride + (stride - 1) / 2
            cy = (keep // fw).astype(np.float32) * stride + (stride - 1) / 2
            all_boxes.append(
                np.stack(
                    [cx - sides[:, 0], cy - sides[:, 1], cx + sides[:, 2], cy + sides[:, 3]],
                    axis=1,
                ).astype(np.float32)
            )
            all_scores.append(scores[keep].astype(np.float32))
        if not all_boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        return np.concatenate(all_boxes), np.concatenate(all_scores)

    def _finish(
        self, boxes: F32, scores: F32, letterbox: _Letterbox, width: int, height: int
    ) -> list[Detection]:
        if scores.size == 0:
            return []
        if scores.size > _MAX_CANDIDATES:
            top = np.argpartition(-scores, _MAX_CANDIDATES)[:_MAX_CANDIDATES]
            boxes, scores = boxes[top], scores[top]
        boxes = boxes.copy()
        boxes[:, (0, 2)] = (boxes[:, (0, 2)] - letterbox.offset_x) / letterbox.scale_x
        boxes[:, (1, 3)] = (boxes[:, (1, 3)] - letterbox.offset_y) / letterbox.scale_y
        boxes[:, (0, 2)] = np.clip(boxes[:, (0, 2)], 0, width)
        boxes[:, (1, 3)] = np.clip(boxes[:, (1, 3)], 0, height)
        sizes = boxes[:, 2:] - boxes[:, :2]
        valid = np.flatnonzero((sizes[:, 0] >= 1) & (sizes[:, 1] >= 1))
        if valid.size == 0:
            return []
        boxes, scores, sizes = boxes[valid], scores[valid], sizes[valid]
        xywh = np.concatenate([boxes[:, :2], sizes], axis=1)
        kept = cv2.dnn.NMSBoxes(
            xywh,
            scores,  # type: ignore[arg-type]  # numpy arrays are accepted
            self.score_threshold,
            self.nms_iou,
            top_k=self.max_persons,
        )
        order = np.asarray(kept, dtype=np.int64).reshape(-1)[: self.max_persons]
        return [
            Detection(Box(float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(scores[i]))
            for i, b in zip(order, boxes[order], strict=True)
        ]

    def _check_outputs(self) -> None:
        """Fail at start-up, not on the first frame, when the file is not what the spec says."""
        inp = self._input
        outputs = self._model.run(np.zeros((1, 3, inp.height, inp.width), np.float32))
        if self.spec.decoder == "yolox":
            rows = outputs[0].reshape(-1, outputs[0].shape[-1])
            if rows.shape[0] != self._grid.shape[0] or rows.shape[1] < 6:
                raise ModelError(
                    f"model {self.name} outputs {outputs[0].shape}, expected "
                    f"[1, {self._grid.shape[0]}, 5 + classes] for a YOLOX-style detector"
                )
        else:
            counts = sorted(o.reshape(-1, o.shape[-1]).shape[0] for o in outputs)
            expected = sorted(
                (-(-inp.width // s)) * (-(-inp.height // s)) for s in self.spec.strides
            )
            if counts != sorted(expected * 2):
                raise ModelError(
                    f"model {self.name} outputs {[o.shape for o in outputs]}, expected class "
                    f"and distance maps for strides {self.spec.strides}"
                )


def _anchor_grid(height: int, width: int, strides: tuple[int, ...]) -> tuple[F32, F32]:
    """Cell (x, y) and stride for every anchor, row-major per stride, strides in order."""
    grids: list[F32] = []
    stride_cols: list[F32] = []
    for stride in strides:
        ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        grids.append(cells)
        stride_cols.append(np.full(cells.shape[0], stride, np.float32))
    if not grids:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
    return np.concatenate(grids), np.concatenate(stride_cols)
