"""Frame decoding and supplied boxes: what a camera or script sending bad input is told."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image as PILImage
from smart_reid_server.vision.decode import (
    BadFrameError,
    decode_image,
    parse_detections,
    parse_timestamp,
)

MB = 1048576


@pytest.fixture(scope="module")
def person_jpeg(cuhk03_dir: Path) -> bytes:
    return (cuhk03_dir / "val" / "0000_00.jpg").read_bytes()


def _png(image: npt.NDArray[np.uint8]) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def test_real_jpeg_decodes_to_bgr_pixels_matching_opencv(person_jpeg: bytes) -> None:
    image = decode_image(person_jpeg, max_bytes=20 * MB)
    reference = cv2.imdecode(np.frombuffer(person_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert reference is not None
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert np.array_equal(image, reference)


def test_png_with_alpha_and_greyscale_become_three_channel_bgr() -> None:
    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[..., 2] = 255  # red in BGRA
    rgba[..., 3] = 128
    grey = np.full((20, 10), 77, np.uint8)
    red = decode_image(_png(rgba), max_bytes=MB)
    assert red.shape == (40, 30, 3) and tuple(red[0, 0]) == (0, 0, 255)
    assert decode_image(_png(grey), max_bytes=MB).shape == (20, 10, 3)


def test_gif_is_decoded_through_the_pillow_fallback() -> None:
    buf = io.BytesIO()
    PILImage.new("RGB", (16, 12), (0, 255, 0)).save(buf, format="GIF")
    image = decode_image(buf.getvalue(), max_bytes=MB)
    assert image.shape == (12, 16, 3) and tuple(image[5, 5]) == (0, 255, 0)


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        (b"", 400, "empty"),
        (b"hello, this is text", 415, "not an image"),
        (b"\x00" * 300, 415, "not an image"),
    ],
)
def test_unusable_payloads_are_rejected_with_the_contract_status(
    payload: bytes, code: int, words: str
) -> None:
    with pytest.raises(BadFrameError) as err:
        decode_image(payload, max_bytes=MB)
    assert err.value.code == code
    assert words in err.value.message


def test_truncated_jpeg_is_a_400_that_asks_for_the_complete_file(person_jpeg: bytes) -> None:
    with pytest.raises(BadFrameError) as err:
        decode_image(person_jpeg[: len(person_jpeg) // 2], max_bytes=MB)
    assert err.value.code == 400
    assert "truncated or corrupt" in err.value.message


def test_too_many_bytes_is_413_naming_the_setting(person_jpeg: bytes) -> None:
    with pytest.raises(BadFrameError) as err:
        decode_image(person_jpeg, max_bytes=len(person_jpeg) - 1)
    assert err.value.code == 413 and err.value.error == "too_large"
    assert "http.max_upload_mb" in err.value.message


def test_too_many_pixels_is_413_before_decoding() -> None:
    # A PNG header claiming 9000 px width: refused from the header, no 9000-px buffer decoded.
    wide = _png(np.zeros((2, 9000, 3), np.uint8))
    with pytest.raises(BadFrameError) as err:
        decode_image(wide, max_bytes=20 * MB)
    assert err.value.code == 413
    assert "9000x2" in err.value.message and "8192" in err.value.message


def test_supplied_boxes_are_clipped_to_the_frame_and_keep_score_and_track() -> None:
    detections = parse_detections(
        [{"box": [-10, 5, 50, 300], "score": 0.8, "track_id": 7}, {"box": [1, 2, 3, 4]}],
        width=100,
        height=200,
    )
    first, second = detections
    assert first.box.as_list() == [0.0, 5.0, 50.0, 200.0]
    assert first.score == 0.8 and first.track_id == "7"
    assert second.score == 1.0 and second.track_id is None


def test_a_box_half_inside_the_frame_is_clipped_and_kept() -> None:
    (half,) = parse_detections([{"box": [-50, 0, 50, 50]}], width=100, height=50)
    assert half.box.as_list() == [0.0, 0.0, 50.0, 50.0]


def test_boxes_arrive_as_json_text_from_form_fields() -> None:
    detections = parse_detections('[{"box": [0, 0, 10, 20]}]', width=30, height=30)
    assert [d.box.as_list() for d in detections] == [[0.0, 0.0, 10.0, 20.0]]
    assert parse_detections("[]", width=30, height=30) == []


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([{"box": [0, 0, 10]}], "detections[0].box must be 4 numbers"),
        ([{"box": [0, 0, 10, 10]}, {"box": [5, 5, 2, 9]}], "detections[1].box"),
        ([{"box": [0, 0, "a", 10]}], "must be a number"),
        ([{"box": [200, 0, 300, 10]}], "outside the 100x50 frame"),
        ([{"box": [-90, 0, 10, 50]}], "lies mostly outside the 100x50 frame (10% of it inside"),
        ([{"box": [0, 0, 10, 10], "score": 3}], "score must be between 0 and 1"),
        ([{"box": [0, 0, float("nan"), 10]}], "finite"),
        ({"box": [0, 0, 1, 1]}, "must be a JSON list"),
        ("not json", "not valid JSON"),
        (["x"], "detections[0] must be an object"),
    ],
)
def test_bad_boxes_are_a_400_naming_the_box(raw: object, words: str) -> None:
    with pytest.raises(BadFrameError) as err:
        parse_detections(raw, width=100, height=50)
    assert err.value.code == 400
    assert words in err.value.message


def test_timestamps_accept_numbers_and_text_and_refuse_milliseconds() -> None:
    assert parse_timestamp(None, 5.0) == 5.0
    assert parse_timestamp("1763740099.5", 0.0) == 1763740099.5
    assert parse_timestamp(1763740099, 0.0) == 1763740099.0
    for bad, words in [("soon", "Unix seconds"), (-1, "positive"), (1763740099000, "milliseconds")]:
        with pytest.raises(BadFrameError) as err:
            parse_timestamp(bad, 0.0)
        assert err.value.code == 400 and words in err.value.message
