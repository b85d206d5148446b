"""Annotated snapshots: what a user sees attached to a notification."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from smart_reid_server.types import Box, Image, MatchStatus
from smart_reid_server.vision.snapshots import Marker, annotate, person_colour


@pytest.fixture(name="frame")
def _frame(video_dir: Path) -> Image:
    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    ok, image = capture.read()
    capture.release()
    assert ok, "vtest.avi did not decode"
    return np.ascontiguousarray(image)


def _caption_pixels(image: Image, colour: tuple[int, int, int]) -> int:
    return int(np.count_nonzero(np.all(image == np.array(colour, dtype=np.uint8), axis=2)))


def test_caption_of_a_person_at_the_right_edge_stays_in_the_picture(frame: Image) -> None:
    """A long caption next to the frame's right edge is moved left, not cut off."""
    width = frame.shape[1]
    label = "Visitor 11 (new) NEW VISIT"
    at_edge = Marker(
        Box(width - 30, 200, width - 2, 300),
        "a1b2c3d4e5f6",
        "Visitor 11",
        0.0,
        MatchStatus.NEW,
        new_person=True,
    )
    in_middle = Marker(
        Box(300, 200, 328, 300), "a1b2c3d4e5f6", "Visitor 11", 0.0, MatchStatus.NEW, new_person=True
    )
    colour = person_colour("a1b2c3d4e5f6")
    edge_pixels = _caption_pixels(annotate(frame, [at_edge]), colour)
    middle_pixels = _caption_pixels(annotate(frame, [in_middle]), colour)
    (text_width, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
    # Same caption, same box size: the whole caption is drawn in both places.
    assert text_width > 30
    assert abs(edge_pixels - middle_pixels) <= 0.02 * middle_pixels
