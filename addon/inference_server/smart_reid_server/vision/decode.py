"""Turn uploaded bytes into a BGR image, and uploaded boxes into detections, or say why not.

Everything a camera, an HTTP client or an MQTT publisher sends passes through here, so every
rejection carries the HTTP status the contract promises (400 bad input, 413 too large, 415 not
an image) and a message that tells the sender what to change. The pixel limit is checked on the
header before decoding so a hostile or broken upload cannot make us allocate gigabytes.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from ..types import Box, Detection, Image

MAX_SIDE_PX = 8192
DEFAULT_MAX_PERSONS = 32
# Boxes overlapping this much (IoU) are one person sent twice: only the best scored is kept.
DUPLICATE_IOU = 0.9
# Lists longer than this many times max_persons are refused before any box is looked at.
_PARSE_FACTOR = 8
# A supplied box needs at least this share of its area inside the frame. Less is a box that
# mostly shows nothing of the picture: clipped, it would cut a sliver off the border and make
# an identity out of it (with no usable picture), so the frame is refused instead.
MIN_INSIDE_SHARE = 0.5
_ERROR_NAMES = {400: "bad_request", 413: "too_large", 415: "unsupported_media_type"}


class BadFrameError(ValueError):
    """A frame or its boxes cannot be used; ``code`` is the HTTP status to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def error(self) -> str:
        """Short machine-readable name for the JSON error body."""
        return _ERROR_NAMES.get(self.code, "bad_request")


def _image_size(data: bytes) -> tuple[int, int, str]:
    """Width, height and format from the header only (Pillow opens lazily)."""
    try:
        with PILImage.open(io.BytesIO(data)) as probe:
            return int(probe.width), int(probe.height), str(probe.format or "unknown")
    except UnidentifiedImageError:
        raise BadFrameError(415, "payload is not an image; send JPEG or PNG bytes") from None
    except PILImage.DecompressionBombError as err:
        raise BadFrameError(
            413, f"image has too many pixels ({err}); scale it down to at most {MAX_SIDE_PX} px"
        ) from None
    except Exception as err:  # Pillow's plugins raise many types on hostile headers
        raise BadFrameError(
            400, f"image header is corrupt ({type(err).__name__}); re-encode the frame"
        ) from None


def _pillow_decode(data: bytes) -> Image | None:
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Exception:  # any decoder failure on hostile bytes is "corrupt", never a crash
        return None
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])


def decode_image(data: bytes, *, max_bytes: int, max_side: int = MAX_SIDE_PX) -> Image:
    """Decode JPEG/PNG (or anything Pillow knows) bytes into a BGR uint8 (H, W, 3) array.

    CPU-bound: call it from an executor, never on the event loop.
    """
    if not data:
        raise BadFrameError(400, "empty image: the request carried no bytes")
    if len(data) > max_bytes:
        raise BadFrameError(
            413,
            f"image is {len(data) / 1048576:.1f} MiB, over the {max_bytes / 1048576:.0f} MiB limit "
            "(http.max_upload_mb); send a smaller frame",
        )
    width, height, fmt = _image_size(data)
    if width <= 0 or height <= 0:
        raise BadFrameError(400, f"{fmt} image has no pixels ({width}x{height})")
    if width > max_side or height > max_side:
        raise BadFrameError(
            413,
            f"image is {width}x{height} px, over the {max_side} px per side limit; scale it down",
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        image = _pillow_decode(data)
    if image is None or image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise BadFrameError(400, f"{fmt} image is truncated or corrupt; send the complete file")
    if image.shape[0] > max_side or image.shape[1] > max_side:
        # The header lied about the size (the decoder is the authority).
        raise BadFrameError(413, f"image is over the {max_side} px per side limit; scale it down")
    return image.astype(np.uint8, copy=False)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadFrameError(400, f"{where} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise BadFrameError(400, f"{where} must be finite, got {value!r}")
    return number


def _one_detection(item: Any, index: int, width: int, height: int) -> Detection:
    where = f"detections[{index}]"
    if isinstance(item, list | tuple):
        item = {"box": item}
    if not isinstance(item, dict):
        raise BadFrameError(400, f'{where} must be an object like {{"box": [x1, y1, x2, y2]}}')
    raw_box = item.get("box")
    if not isinstance(raw_box, list | tuple) or len(raw_box) != 4:
        raise BadFrameError(400, f"{where}.box must be 4 numbers [x1, y1, x2, y2], got {raw_box!r}")
    x1, y1, x2, y2 = (_number(v, f"{where}.box") for v in raw_box)
    if x2 <= x1 or y2 <= y1:
        raise BadFrameError(
            400, f"{where}.box {list(raw_box)} must have x2 > x1 and y2 > y1 (pixel corners)"
        )
    check_inside(Box(x1, y1, x2, y2), width, height, f"{where}.box {list(raw_box)}")
    score = _number(item.get("score", 1.0), f"{where}.score")
    if not 0.0 <= score <= 1.0:
        raise BadFrameError(400, f"{where}.score must be between 0 and 1, got {score}")
    track = item.get("track_id")
    box = Box(x1, y1, x2, y2).clipped(width, height)
    return Detection(box=box, score=score, track_id=None if track is None else str(track))


def check_inside(box: Box, width: int, height: int, what: str) -> None:
    """BadFrameError (400) unless at least ``MIN_INSIDE_SHARE`` of ``box`` lies in the frame."""
    inside = box.clipped(width, height)
    share = inside.area / box.area if box.area > 0 else 0.0
    if inside.width <= 0 or inside.height <= 0:
        raise BadFrameError(400, f"{what} lies outside the {width}x{height} frame")
    if share < MIN_INSIDE_SHARE:
        raise BadFrameError(
            400,
            f"{what} lies mostly outside the {width}x{height} frame ({share:.0%} of it inside, "
            f"at least {MIN_INSIDE_SHARE:.0%} needed); send boxes in this frame's pixels",
        )


def parse_detections(
    raw: Any, width: int, height: int, budget: BoxBudget | None = None
) -> list[Detection]:
    """Validate boxes supplied with a frame (a JSON list or its text); clip them to the frame.

    Every box costs an embedding, so the list goes through ``budget`` (default: the detector's
    default ``max_persons``): near-identical boxes become one, and more people than the detector
    itself would report are refused (400) instead of stalling every camera.
    """
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise BadFrameError(400, f"detections is not valid JSON: {err}") from None
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise BadFrameError(400, 'detections must be a JSON list of {"box": [x1, y1, x2, y2]}')
    budget = budget if budget is not None else BoxBudget()
    budget.check_count(len(raw))
    return budget.apply([_one_detection(item, i, width, height) for i, item in enumerate(raw)])


def _iou(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def dedupe_detections(
    detections: Sequence[Detection], iou: float = DUPLICATE_IOU
) -> list[Detection]:
    """Drop boxes that overlap a better-scored one by ``iou`` or more; order is kept."""
    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)
    kept: list[int] = []
    for i in order:
        box = detections[i].box
        if all(_iou(box, detections[j].box) < iou for j in kept):
            kept.append(i)
    return [detections[i] for i in sorted(kept)]


@dataclass(slots=True)
class BoxBudget:
    """How many supplied boxes one frame may cost, and what was refused (``GET /api/stats``).

    Shared by every source that takes boxes with a frame (HTTP upload, MQTT ingest, edge
    envelopes); used from executor threads, hence the lock around the counters.
    """

    max_persons: int = DEFAULT_MAX_PERSONS
    merged: int = 0  # near-identical boxes folded into another one
    refused_frames: int = 0  # frames refused for carrying too many people
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _refuse(self, count: int, what: str) -> BadFrameError:
        with self._lock:
            self.refused_frames += 1
        return BadFrameError(
            400,
            f"{count} {what} supplied with one frame, over the limit of {self.max_persons} "
            "(detect.max_persons); send at most that many people per frame",
        )

    def check_count(self, count: int) -> None:
        """Refuse absurd lists before parsing them box by box."""
        if count > self.max_persons * _PARSE_FACTOR:
            raise self._refuse(count, "boxes")

    def apply(self, detections: Sequence[Detection]) -> list[Detection]:
        """Near-identical boxes merged; BadFrameError (400) when more people than allowed."""
        self.check_count(len(detections))
        unique = dedupe_detections(detections)
        if len(unique) < len(detections):
            with self._lock:
                self.merged += len(detections) - len(unique)
        if len(unique) > self.max_persons:
            raise self._refuse(len(unique), "distinct boxes")
        return unique

    def stats(self) -> dict[str, int]:
        return {
            "max_persons": self.max_persons,
            "merged": self.merged,
            "refused_frames": self.refused_frames,
        }


def parse_timestamp(value: Any, default: float) -> float:
    """A frame time in Unix seconds (number or numeric text); ``default`` when absent."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadFrameError(400, f"timestamp must be Unix seconds, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadFrameError(400, f"timestamp must be Unix seconds, got {value!r}")
    if value <= 0:
        raise BadFrameError(400, f"timestamp must be positive Unix seconds, got {value!r}")
    if value > 1e11:
        raise BadFrameError(400, f"timestamp {value!r} looks like milliseconds; send Unix seconds")
    return float(value)
