"""Cut detected people out of a frame and judge whether each crop is good enough to learn from.

Every crop that has pixels is returned, good or not: the matcher still matches poor crops (a
blurry person is still someone), it just does not store them as exemplars. So the quality gates
only flag; they never drop a person from the pipeline.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

import cv2
import numpy as np

from .types import Box, Crop, Detection, Frame, Image, QualityReport

_LOGGER = logging.getLogger(__name__)

# Reasons in QualityReport.reasons.
TOO_SHORT: Final = "too_short"  # height below quality.min_height_px
TOO_NARROW: Final = "too_narrow"  # width below quality.min_width_px
ASPECT: Final = "aspect"  # height / width outside [min_aspect, max_aspect]
LOW_SCORE: Final = "low_score"  # detector score below quality.min_score
BLURRY: Final = "blurry"  # sharpness below quality.min_sharpness
OUTSIDE_FRAME: Final = "outside_frame"  # a good part of the box lies outside the frame

SHARPNESS_HEIGHT = 128  # crops are measured at this height so sizes compare fairly
_MAX_OUTSIDE_FRACTION = 0.1

_DEFAULTS: Mapping[str, float] = {
    "min_height_px": 64,
    "min_width_px": 24,
    "min_aspect": 1.0,
    "max_aspect": 5.0,
    "min_score": 0.5,
    "min_sharpness": 20.0,
}


def sharpness(image: Image) -> float:
    """Variance of the Laplacian of the crop in grey, rescaled to a fixed height.

    Cheap (a 128-pixel-high grey image) and monotonic in blur; the fixed height keeps numbers
    comparable between a distant and a close person.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = grey.shape[:2]
    if h < 2 or w < 2:
        return 0.0
    new_w = max(2, round(w * SHARPNESS_HEIGHT / h))
    interpolation = cv2.INTER_AREA if h > SHARPNESS_HEIGHT else cv2.INTER_LINEAR
    grey = cv2.resize(grey, (new_w, SHARPNESS_HEIGHT), interpolation=interpolation)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def assess(
    box: Box,
    score: float,
    crop_sharpness: float,
    quality_cfg: Mapping[str, Any],
    *,
    outside_fraction: float = 0.0,
) -> QualityReport:
    """The quality gates for one crop (``box`` already clipped to the frame)."""
    cfg = {**_DEFAULTS, **quality_cfg}
    reasons: list[str] = []
    height, width = box.height, box.width
    if height < cfg["min_height_px"]:
        reasons.append(TOO_SHORT)
    if width < cfg["min_width_px"]:
        reasons.append(TOO_NARROW)
    aspect = height / width if width > 0 else float("inf")
    if not cfg["min_aspect"] <= aspect <= cfg["max_aspect"]:
        reasons.append(ASPECT)
    if score < cfg["min_score"]:
        reasons.append(LOW_SCORE)
    if crop_sharpness < cfg["min_sharpness"]:
        reasons.append(BLURRY)
    if outside_fraction > _MAX_OUTSIDE_FRACTION:
        reasons.append(OUTSIDE_FRAME)
    return QualityReport(ok=not reasons, sharpness=crop_sharpness, reasons=tuple(reasons))


def extract_crops(
    frame: Frame,
    detections: Iterable[Detection],
    quality_cfg: Mapping[str, Any],
    *,
    margin: float = 0.0,
) -> list[Crop]:
    """One Crop per detection that overlaps the frame, in detection order.

    Boxes are clipped to the frame (the crop's detection carries the clipped box); a box with no
    pixels inside the frame is skipped with a debug log line. ``margin`` widens each box by that
    fraction of its size on every side, for models that like some context.
    """
    image = frame.image
    fh, fw = image.shape[:2]
    crops: list[Crop] = []
    for det in detections:
        box = det.box
        inside = box.clipped(fw, fh) if all(map(np.isfinite, box.as_list())) else None
        if inside is None or inside.width < 1 or inside.height < 1:
            _LOGGER.debug(
                "camera %s: box %s lies outside the %dx%d frame; skipped",
                frame.camera,
                box.as_list(),
                fw,
                fh,
            )
            continue
        cut = inside
        if margin > 0:
            dx, dy = box.width * margin, box.height * margin
            cut = Box(box.x1 - dx, box.y1 - dy, box.x2 + dx, box.y2 + dy).clipped(fw, fh)
        x1, y1 = int(np.floor(cut.x1)), int(np.floor(cut.y1))
        x2, y2 = int(np.ceil(cut.x2)), int(np.ceil(cut.y2))
        pixels = np.ascontiguousarray(image[y1:y2, x1:x2])
        outside = 1.0 - inside.area / box.area
        quality = assess(
            inside, det.score, sharpness(pixels), quality_cfg, outside_fraction=outside
        )
        crops.append(Crop(dataclasses.replace(det, box=inside), pixels, quality))
    return crops
