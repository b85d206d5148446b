"""Cut detected people out of a frame and judge whether each crop is good enough to learn from.

Every crop that has pixels is returned, good or not: the matcher still matches poor crops (a
blurry person is still someone), it just does not store them as exemplars. So the quality gates
only flag; they never drop a person from the pipeline.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import cv2
import numpy as np

from ..types import Box, Crop, Detection, Frame, Image, QualityReport
from .decode import BoxBudget, dedupe_detections
from .tracklets import at_edge

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


# Thumbnail ranking (``thumbnail_score``). A person's picture should show the person: a whole,
# upright, confidently detected and large enough figure. Sharpness alone (the old measure)
# preferred whatever had the most edges in the box, such as a signpost beside a small person.
THUMBNAIL_FULL_HEIGHT_PX = 192.0  # taller crops are not better pictures in a 1-2 inch card
THUMBNAIL_ASPECT = (1.8, 3.6)  # height / width of a standing or walking person
THUMBNAIL_CUT_FACTOR = 0.35  # touches the picture's border: probably cut off
THUMBNAIL_OVERLAP_FACTOR = 0.35  # another box covers part of it: maybe two people in one
THUMBNAIL_SHARP_AT = 100.0  # Laplacian variance at which a crop counts as fully sharp


def thumbnail_score(
    crop: Crop, frame_width: int, frame_height: int, *, overlapped: bool = False
) -> float:
    """How well ``crop`` would show its person as a thumbnail, from 0 (not at all) to 1.

    The product of: the detector's confidence; height up to ``THUMBNAIL_FULL_HEIGHT_PX``; how
    close height / width is to a person's (``THUMBNAIL_ASPECT``, falling off with the square of
    the ratio outside it); sharpness (half weight: blur already has its own gate); and penalties
    for touching the border of the frame or being overlapped by another person's box. A crop
    that failed the quality gates scores 0: it is never a thumbnail.
    """
    if not crop.quality.ok or crop.image.size == 0:
        return 0.0
    box = crop.detection.box
    if box.width <= 0 or box.height <= 0:
        return 0.0
    confidence = min(1.0, max(0.0, float(crop.detection.score)))
    size = min(1.0, box.height / THUMBNAIL_FULL_HEIGHT_PX)
    aspect = box.height / box.width
    low, high = THUMBNAIL_ASPECT
    shape = (aspect / low) ** 2 if aspect < low else (high / aspect) ** 2 if aspect > high else 1.0
    sharp = 0.5 + 0.5 * min(1.0, max(0.0, crop.quality.sharpness) / THUMBNAIL_SHARP_AT)
    score = confidence * size * shape * sharp
    if at_edge(box, frame_width, frame_height):
        score *= THUMBNAIL_CUT_FACTOR
    if overlapped:
        score *= THUMBNAIL_OVERLAP_FACTOR
    return float(score)


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


def bounded_crops(crops: Callable[[Frame, list[Detection]], list[Any]], boxes: BoxBudget) -> Any:
    """The pipeline's crop step with the per-frame work budget applied to any detections.

    Every ingest path already refuses frames with too many boxes (with a 400 or a log line);
    this is the last line for any path that forgets to: near-identical boxes become one and at
    most ``max_persons`` of the best scored are cropped (and so embedded).
    """

    def run(frame: Frame, detections: list[Detection]) -> list[Any]:
        if len(detections) > 1:
            detections = dedupe_detections(detections[: boxes.max_persons * 8])
            if len(detections) > boxes.max_persons:
                best = sorted(detections, key=lambda d: -d.score)[: boxes.max_persons]
                detections = [d for d in detections if d in best]
        return crops(frame, detections)

    return run
