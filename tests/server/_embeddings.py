"""Real embeddings of real people for the identity tests: CUHK03 crops through retail-0277.

Computed once per test session (about 2 s on 2 cores) straight with OpenVINO, as the brief for
these tests asks; it can later switch to the product's embed module.

CUHK03 shows every identity from two camera views (cells 00-04 view A, 05-09 view B); the tests
treat view A as camera ``front`` and view B as camera ``back``. Cross-view similarity with this
model is modest (median about 0.5 on the val split), and these tests check the pipeline's logic,
not the model's accuracy (that is eval/'s job). So ``clear_plans`` picks, by rules stated below
and applied to the real vectors, identities whose views match clearly and who do not resemble
each other; ``uncertain_plan`` picks a real crop whose similarity falls in the uncertain band.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from smart_reid_server.types import Box, Crop, Detection, Frame, QualityReport

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SMART_REID_SHARED", str(ROOT.parent / "shared")))
MODEL_NAME = "person-reidentification-retail-0277"
MODEL_XML = SHARED / "models" / "reid" / MODEL_NAME / "FP16" / f"{MODEL_NAME}.xml"
CUHK_VAL = SHARED / "data" / "cuhk03" / "labeled" / "val"
DIM = 256
IDENTITIES = 30  # val identities 0000..0029 are embedded (about 280 crops)

# Match settings the tests run with: threshold 0.6, uncertain band [0.5, 0.6).
THRESHOLD = 0.6
MARGIN = 0.1
UNCERTAIN = THRESHOLD - MARGIN
MIN_SHARPNESS = 20.0  # config quality.min_sharpness default
NEAR_DUPLICATE = 0.92  # 1 - default exemplar_min_distance


@dataclass(frozen=True, slots=True)
class Sample:
    identity: int
    cell: int
    image: npt.NDArray[np.uint8]
    vector: npt.NDArray[np.float32]

    @property
    def view(self) -> str:
        return "A" if self.cell < 5 else "B"


@dataclass(frozen=True, slots=True)
class Plan:
    """One person's scenario: ``view_a`` shown in order on one camera, then ``view_b``."""

    identity: int
    view_a: list[Sample]
    view_b: Sample
    cross_view_similarity: float  # best similarity of view_b to the exemplars view_a leaves


def missing_reason() -> str | None:
    if not MODEL_XML.is_file():
        return f"ReID model not found at {MODEL_XML} (set SMART_REID_SHARED)"
    if not CUHK_VAL.is_dir():
        return f"CUHK03 crops not found at {CUHK_VAL} (set SMART_REID_SHARED)"
    return None


def require_assets() -> None:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)


@functools.cache
def samples() -> dict[int, list[Sample]]:
    """Every crop of the first IDENTITIES val identities with its L2-normalised embedding."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(MODEL_XML), "CPU", {"INFERENCE_NUM_THREADS": 2})
    request = compiled.create_infer_request()
    found: dict[int, list[Sample]] = {}
    for path in sorted(CUHK_VAL.glob("*.jpg")):
        identity, cell = int(path.stem[:4]), int(path.stem[5:7])
        if identity >= IDENTITIES:
            continue
        read = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert read is not None, f"cannot read {path}"
        image = np.asarray(read, dtype=np.uint8)
        blob = cv2.resize(image, (128, 256)).transpose(2, 0, 1)[None].astype(np.float32)
        vector = np.asarray(request.infer({0: blob})[0], dtype=np.float32).reshape(-1)
        vector /= np.linalg.norm(vector)
        found.setdefault(identity, []).append(Sample(identity, cell, image, vector))
    return found


def _sim(a: Sample, b: Sample) -> float:
    return float(a.vector @ b.vector)


def _view_a_sequence(crops: list[Sample]) -> list[Sample]:
    """View-A crops in order, keeping those that clearly match an earlier kept one."""
    view_a = [s for s in crops if s.view == "A"]
    if not view_a:
        return []
    sequence = [view_a[0]]
    for sample in view_a[1:]:
        if max(_sim(sample, s) for s in sequence) >= THRESHOLD + 0.03:
            sequence.append(sample)
    return sequence


def _exemplars_left(sequence: list[Sample]) -> list[Sample]:
    """The crops the gallery keeps from ``sequence`` (near-duplicates are not stored)."""
    kept = [sequence[0]]
    for sample in sequence[1:]:
        if max(_sim(sample, s) for s in kept) < NEAR_DUPLICATE:
            kept.append(sample)
    return kept


@functools.cache
def clear_plans() -> list[Plan]:
    """Identities with >= 2 consistent view-A crops, a view-B crop at >= THRESHOLD + 0.05 from
    what the gallery keeps of them, and every crop <= UNCERTAIN - 0.05 from other chosen ones."""
    chosen: list[Plan] = []
    for identity, crops in samples().items():
        sequence = _view_a_sequence(crops)
        if len(sequence) < 2:
            continue
        kept = _exemplars_left(sequence)
        scored = [(max(_sim(b, k) for k in kept), b) for b in crops if b.view == "B"]
        if not scored:
            continue
        best, view_b = max(scored, key=lambda item: item[0])
        if best < THRESHOLD + 0.05:
            continue
        plan = Plan(identity, sequence, view_b, best)
        used = [*sequence, view_b]
        if all(
            max(_sim(x, y) for x in used for y in [*other.view_a, other.view_b]) <= UNCERTAIN - 0.05
            for other in chosen
        ):
            chosen.append(plan)
    return chosen


@functools.cache
def uncertain_plan() -> tuple[Plan, float]:
    """An identity with consistent view-A crops and a view-B crop whose best similarity to the
    kept exemplars lies inside the uncertain band (with 0.02 to spare on both sides)."""
    for identity, crops in samples().items():
        sequence = _view_a_sequence(crops)
        if len(sequence) < 2:
            continue
        kept = _exemplars_left(sequence)
        for b in crops:
            if b.view != "B":
                continue
            best = max(_sim(b, k) for k in kept)
            if UNCERTAIN + 0.02 <= best <= THRESHOLD - 0.02:
                return Plan(identity, sequence, b, best), best
    pytest.skip("no CUHK03 crop in the uncertain band among the embedded identities")


def sharpness(image: npt.NDArray[np.uint8]) -> float:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def make_frame(
    camera: str,
    timestamp: float,
    people: list[Sample],
    *,
    quality_ok: bool | None = None,
    frame_id: str = "",
) -> tuple[Frame, list[Crop], npt.NDArray[np.float32]]:
    """A camera frame with the given crops pasted side by side, their Crops and embeddings.

    Quality is judged for real (Laplacian sharpness against the default gate) unless
    ``quality_ok`` forces it.
    """
    gap = 16
    height = max(s.image.shape[0] for s in people) + 2 * gap
    width = sum(s.image.shape[1] + gap for s in people) + gap
    canvas = np.full((height, width, 3), 96, dtype=np.uint8)
    crops: list[Crop] = []
    x = gap
    for sample in people:
        h, w = sample.image.shape[:2]
        canvas[gap : gap + h, x : x + w] = sample.image
        box = Box(float(x), float(gap), float(x + w), float(gap + h))
        sharp = sharpness(sample.image)
        ok = sharp >= MIN_SHARPNESS if quality_ok is None else quality_ok
        reasons = () if ok else ("blurry",)
        crops.append(Crop(Detection(box, 0.9), sample.image, QualityReport(ok, sharp, reasons)))
        x += w + gap
    frame = Frame(camera=camera, image=canvas, timestamp=timestamp, frame_id=frame_id)
    vectors = np.stack([s.vector for s in people]).astype(np.float32)
    return frame, crops, vectors
