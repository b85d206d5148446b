"""Cutting people out of real frames and the quality gates that decide what the gallery learns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from smart_reid_server import config
from smart_reid_server.models import ModelManager, get_spec
from smart_reid_server.types import Box, Crop, Detection, Frame, Image
from smart_reid_server.vision.crops import (
    ASPECT,
    BLURRY,
    LOW_SCORE,
    OUTSIDE_FRAME,
    TOO_NARROW,
    TOO_SHORT,
    extract_crops,
    sharpness,
    thumbnail_score,
)
from smart_reid_server.vision.detect import Detector
from smart_reid_server.vision.tracklets import at_edge, overlapped

QUALITY = config.validate({}).section("quality")  # the shipped defaults


def _u8(image: object) -> Image:
    """OpenCV's stubs type results loosely; every image here is 8-bit."""
    return np.asarray(image, dtype=np.uint8)


@pytest.fixture(scope="module")
def frame(video_dir: Path) -> Image:
    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    for _ in range(200):
        ok, image = capture.read()
        assert ok
    capture.release()
    return _u8(image)


@pytest.fixture(scope="module")
def people(
    frame: Image, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[Detection]:
    """Real detections in frame 199, tallest first."""
    manager = ModelManager(models_dir, tmp_path_factory.mktemp("cache"), download=False)
    spec = get_spec("yolox_nano_416")
    found = Detector(spec, manager.resolve(spec), {}, {}).detect(frame)
    assert len(found) >= 6
    return sorted(found, key=lambda d: -d.box.height)


def test_clear_people_pass_every_gate_and_crops_are_the_box_pixels(
    frame: Image, people: list[Detection]
) -> None:
    crops = extract_crops(Frame("front", frame, 0.0), people, QUALITY)
    assert len(crops) == len(people)
    tallest = crops[0]
    assert tallest.quality.ok and tallest.quality.reasons == ()
    assert tallest.quality.score == tallest.quality.sharpness > QUALITY["min_sharpness"]
    b = tallest.detection.box
    x1, y1, x2, y2 = (
        int(np.floor(b.x1)),
        int(np.floor(b.y1)),
        int(np.ceil(b.x2)),
        int(np.ceil(b.y2)),
    )
    assert np.array_equal(tallest.image, frame[y1:y2, x1:x2])
    assert tallest.image.flags["C_CONTIGUOUS"]
    assert tallest.detection.score == people[0].score


def test_small_people_are_flagged_but_still_returned(frame: Image, people: list[Detection]) -> None:
    small = _u8(cv2.resize(frame, (384, 288), interpolation=cv2.INTER_AREA))
    halved = [
        Detection(Box(d.box.x1 / 2, d.box.y1 / 2, d.box.x2 / 2, d.box.y2 / 2), d.score)
        for d in people
    ]
    crops = extract_crops(Frame("front", small, 0.0), halved, QUALITY)
    assert len(crops) == len(halved)
    for crop in crops:
        assert not crop.quality.ok
        assert TOO_SHORT in crop.quality.reasons  # every vtest person is < 128 px tall
    assert any(TOO_NARROW in c.quality.reasons for c in crops)


def test_odd_aspect_low_score_and_blur_each_have_their_reason(
    frame: Image, people: list[Detection]
) -> None:
    person = people[0]
    b = person.box
    wide = Detection(Box(b.x1 - b.height, b.y1, b.x2 + b.height, b.y2), person.score)
    unsure = Detection(b, 0.3)
    blurred = frame.copy()
    x1, y1, x2, y2 = int(b.x1) - 4, int(b.y1) - 4, int(b.x2) + 5, int(b.y2) + 5
    blurred[y1:y2, x1:x2] = cv2.GaussianBlur(frame[y1:y2, x1:x2], (0, 0), 3)

    crops = extract_crops(Frame("front", frame, 0.0), [wide, unsure], QUALITY)
    assert crops[0].quality.reasons == (ASPECT,)
    assert crops[1].quality.reasons == (LOW_SCORE,)
    (blurry,) = extract_crops(Frame("front", blurred, 0.0), [person], QUALITY)
    assert blurry.quality.reasons == (BLURRY,)
    assert not blurry.quality.ok


def test_sharpness_falls_as_blur_grows_whatever_the_crop_size(
    frame: Image, people: list[Detection]
) -> None:
    b = people[0].box
    crop = np.ascontiguousarray(frame[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)])
    levels = [sharpness(crop)] + [
        sharpness(_u8(cv2.GaussianBlur(crop, (0, 0), s))) for s in (0.8, 1.5, 3.0)
    ]
    assert levels == sorted(levels, reverse=True) and levels[-1] < levels[0] / 4
    # Measured at a fixed height: the same person twice as large is about as sharp.
    big = _u8(
        cv2.resize(crop, (crop.shape[1] * 2, crop.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    )
    assert 0.5 < sharpness(big) / levels[0] < 2.0


def test_boxes_reaching_outside_the_frame_are_clipped_or_skipped(
    frame: Image, people: list[Detection]
) -> None:
    w = frame.shape[1]
    b = people[0].box
    half_out = Detection(Box(w - b.width / 2, b.y1, w + b.width / 2, b.y2), 0.9)
    sliver_out = Detection(Box(b.x1, b.y1, b.x2, b.y2 + 2), 0.9)
    nowhere = Detection(Box(w + 10, 10, w + 60, 120), 0.9)
    broken = Detection(Box(float("nan"), 10, 60, 120), 0.9)
    crops = extract_crops(
        Frame("front", frame, 0.0), [half_out, nowhere, sliver_out, broken], QUALITY
    )
    assert len(crops) == 2
    clipped, slight = crops
    assert clipped.detection.box.x2 == w and clipped.image.shape[1] == pytest.approx(
        b.width / 2, abs=1
    )
    assert OUTSIDE_FRAME in clipped.quality.reasons
    assert OUTSIDE_FRAME not in slight.quality.reasons


def test_margin_adds_context_but_keeps_the_person_box(
    frame: Image, people: list[Detection]
) -> None:
    person = people[0]
    (plain,) = extract_crops(Frame("front", frame, 0.0), [person], QUALITY)
    (wider,) = extract_crops(Frame("front", frame, 0.0), [person], QUALITY, margin=0.1)
    assert wider.detection.box == plain.detection.box
    assert (
        wider.image.shape[0] > plain.image.shape[0] and wider.image.shape[1] > plain.image.shape[1]
    )


def test_gates_follow_the_configuration(frame: Image, people: list[Detection]) -> None:
    strict = {**QUALITY, "min_height_px": 500, "min_sharpness": 1e9}
    (crop,) = extract_crops(Frame("front", frame, 0.0), people[:1], strict)
    assert crop.quality.reasons == (TOO_SHORT, BLURRY)
    lenient = {
        **QUALITY,
        "min_height_px": 0,
        "min_width_px": 0,
        "min_score": 0.0,
        "min_sharpness": 0.0,
    }
    assert all(c.quality.ok for c in extract_crops(Frame("front", frame, 0.0), people, lenient))


def test_thumbnail_score_prefers_a_whole_clear_person(
    frame: Image, people: list[Detection]
) -> None:
    """On real detections: the picture a person gets is the one that shows them best."""
    height, width = frame.shape[:2]
    crops = extract_crops(Frame("front", frame, 0.0), people, QUALITY)
    tallest = crops[0]
    assert tallest.quality.ok
    best = thumbnail_score(tallest, width, height)
    assert 0.0 < best <= 1.0
    box = tallest.detection.box
    # The same pixels, worse circumstances: each costs a good part of the score.
    cut = Crop(
        dataclasses.replace(tallest.detection, box=Box(0.0, box.y1, box.width, box.y2)),
        tallest.image,
        tallest.quality,
    )
    assert thumbnail_score(cut, width, height) < 0.5 * best, "touching the border: cut off"
    assert thumbnail_score(tallest, width, height, overlapped=True) < 0.5 * best
    unsure = Crop(dataclasses.replace(tallest.detection, score=0.5), tallest.image, tallest.quality)
    assert thumbnail_score(unsure, width, height) < best
    # A squat box: the person's upper half and as much again of what stands beside them.
    half = box.width / 2
    top = Box(box.x1 - half, box.y1, box.x2 + half, box.y1 + 2 * box.width)
    squat = extract_crops(Frame("front", frame, 0.0), [Detection(top, people[0].score)], QUALITY)
    assert squat[0].quality.ok, "it passes the gates: only the ranking keeps it out"
    assert thumbnail_score(squat[0], width, height) < 0.5 * best
    # A crop that failed the quality gates is never a picture.
    failed = [c for c in crops if not c.quality.ok]
    assert failed, "frame 199 has people too small for the gates"
    assert all(thumbnail_score(c, width, height) == 0.0 for c in failed)
    # Among the real people of the frame, the one kept is a whole person clear of the border.
    boxes = [c.detection.box for c in crops]
    over = overlapped(boxes)
    chosen = max(
        range(len(crops)),
        key=lambda i: thumbnail_score(crops[i], width, height, overlapped=over[i]),
    )
    assert crops[chosen].quality.ok and not over[chosen]
    assert not at_edge(boxes[chosen], width, height)
