"""Person detection on real vtest.avi frames with the real detector models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from smart_reid_server.models import ModelManager, get_spec
from smart_reid_server.types import Box, Detection, Image
from smart_reid_server.vision.detect import Detector

# Frame 199 of vtest.avi, checked by eye: the centre of each of the 7 people in it.
HAND_CHECKED_FRAME = 199
PEOPLE_IN_FRAME_199 = [
    (99, 184),
    (238, 228),
    (506, 180),
    (627, 313),
    (718, 300),
    (688, 127),
    (712, 127),
]
SAMPLE_FRAMES = [0, 80, 160, HAND_CHECKED_FRAME, 240, 320, 400, 480, 560, 640, 720]


def _u8(image: object) -> Image:
    """OpenCV's stubs type results loosely; every image here is 8-bit."""
    return np.asarray(image, dtype=np.uint8)


@pytest.fixture(scope="module")
def frames(video_dir: Path) -> dict[int, Image]:
    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    wanted = set(SAMPLE_FRAMES)
    found: dict[int, Image] = {}
    index = 0
    while len(found) < len(wanted):
        ok, image = capture.read()
        assert ok, f"vtest.avi ended at frame {index}"
        if index in wanted:
            found[index] = _u8(image)
        index += 1
    capture.release()
    return found


@pytest.fixture(scope="module")
def manager(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    return ModelManager(models_dir, tmp_path_factory.mktemp("cache"), download=False)


def _detector(manager: ModelManager, name: str, **detect_cfg: float) -> Detector:
    spec = get_spec(name)
    return Detector(spec, manager.resolve(spec), detect_cfg, {})


@pytest.fixture(scope="module")
def yolox(manager: ModelManager) -> Detector:
    return _detector(manager, "yolox_nano_416")


@pytest.fixture(scope="module")
def nanodet(manager: ModelManager) -> Detector:
    return _detector(manager, "nanodet_m_416")


def _contains(box: Box, point: tuple[int, int]) -> bool:
    return box.x1 <= point[0] <= box.x2 and box.y1 <= point[1] <= box.y2


def _score_against_hand_check(found: list[Detection]) -> tuple[int, int]:
    """(people found, detections on nobody) for frame 199."""
    hits = sum(any(_contains(d.box, p) for d in found) for p in PEOPLE_IN_FRAME_199)
    strays = sum(not any(_contains(d.box, p) for p in PEOPLE_IN_FRAME_199) for d in found)
    return hits, strays


def _iou(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    inter = max(0.0, w) * max(0.0, h)
    return inter / (a.area + b.area - inter) if inter else 0.0


def _person_shaped(d: Detection, width: int, height: int) -> bool:
    b = d.box
    return (
        0 <= b.x1 < b.x2 <= width and 0 <= b.y1 < b.y2 <= height and 1.2 < b.height / b.width < 4.5
    )


def test_yolox_finds_the_people_in_a_hand_checked_frame(
    yolox: Detector, manager: ModelManager, frames: dict[int, Image]
) -> None:
    image = frames[HAND_CHECKED_FRAME]
    found = yolox.detect(image)
    hits, strays = _score_against_hand_check(found)
    assert hits >= 6 and strays == 0, found
    assert all(_person_shaped(d, 768, 576) for d in found)
    assert found == sorted(found, key=lambda d: -d.score)
    assert (yolox.name, yolox.runtime, yolox.device) == ("yolox_nano_416", "onnxruntime", "cpu")


def test_nanodet_finds_the_people_in_a_hand_checked_frame(
    nanodet: Detector, frames: dict[int, Image]
) -> None:
    found = nanodet.detect(frames[HAND_CHECKED_FRAME])
    hits, strays = _score_against_hand_check(found)
    assert hits >= 6 and strays == 0, found
    assert all(_person_shaped(d, 768, 576) for d in found)


def test_lower_threshold_separates_the_two_people_walking_side_by_side(
    manager: ModelManager, frames: dict[int, Image]
) -> None:
    relaxed = _detector(manager, "nanodet_m_416", score_threshold=0.5)
    assert _score_against_hand_check(relaxed.detect(frames[HAND_CHECKED_FRAME])) == (7, 0)


def test_light_detector_finds_the_nearer_people(
    manager: ModelManager, frames: dict[int, Image]
) -> None:
    light = _detector(manager, "light_person_detector_192")
    found = light.detect(frames[HAND_CHECKED_FRAME])
    hits, strays = _score_against_hand_check(found)
    assert hits >= 4 and strays == 0, found
    assert all(_person_shaped(d, 768, 576) for d in found)


def test_two_independent_detectors_agree_across_the_video(
    yolox: Detector, manager: ModelManager, frames: dict[int, Image]
) -> None:
    """Different architectures and decoders: agreement means both decode boxes correctly."""
    nanodet = _detector(manager, "nanodet_m_416", score_threshold=0.4)
    total = 0
    for index in SAMPLE_FRAMES:
        image = frames[index]
        a, b = yolox.detect(image), nanodet.detect(image)
        assert 2 <= len(a) <= 10, (index, a)
        assert all(_person_shaped(d, 768, 576) for d in a + b), index
        for d in a:
            if d.score >= 0.7:
                assert max((_iou(d.box, e.box) for e in b), default=0.0) > 0.5, (index, d)
        total += len(a)
    assert 40 <= total <= 90  # vtest shows 5-10 people at a time, a few far away


@pytest.mark.parametrize("name", ["yolox_nano_416", "nanodet_m_416"])
def test_boxes_follow_the_people_when_the_frame_is_mirrored_scaled_or_padded(
    name: str, manager: ModelManager, frames: dict[int, Image]
) -> None:
    """Letterbox scaling and offsets are undone correctly for any frame size and shape."""
    detector = _detector(manager, name, score_threshold=0.5)
    image = frames[HAND_CHECKED_FRAME]
    base = detector.detect(image)
    assert len(base) >= 6

    def matched(expected: list[Box], found: list[Detection], tolerance: float) -> int:
        return sum(
            any(
                max(
                    abs(e.x1 - d.box.x1),
                    abs(e.y1 - d.box.y1),
                    abs(e.x2 - d.box.x2),
                    abs(e.y2 - d.box.y2),
                )
                <= tolerance
                for d in found
            )
            for e in expected
        )

    mirrored = detector.detect(np.ascontiguousarray(image[:, ::-1]))
    flipped = [Box(768 - d.box.x2, d.box.y1, 768 - d.box.x1, d.box.y2) for d in base]
    assert matched(flipped, mirrored, 6.0) >= len(base) - 1

    small = detector.detect(_u8(cv2.resize(image, (384, 288), interpolation=cv2.INTER_AREA)))
    halved = [Box(d.box.x1 / 2, d.box.y1 / 2, d.box.x2 / 2, d.box.y2 / 2) for d in base]
    assert matched(halved, small, 5.0) >= len(base) - 2
    assert all(d.box.x2 <= 384 and d.box.y2 <= 288 for d in small)

    # A tall frame (black band on top) letterboxes the other way round.
    tall = np.zeros((576 + 400, 768, 3), np.uint8)
    tall[400:] = image
    shifted = [Box(d.box.x1, d.box.y1 + 400, d.box.x2, d.box.y2 + 400) for d in base]
    assert matched(shifted, detector.detect(tall), 8.0) >= len(base) - 2


def test_blank_images_have_nobody_in_them(yolox: Detector, nanodet: Detector) -> None:
    for image in (
        np.zeros((576, 768, 3), np.uint8),
        np.full((480, 640, 3), 114, np.uint8),
        np.full((100, 100, 3), 255, np.uint8),
    ):
        assert yolox.detect(image) == []
        assert nanodet.detect(image) == []


def test_max_persons_keeps_the_most_confident(
    manager: ModelManager, frames: dict[int, Image], yolox: Detector
) -> None:
    capped = _detector(manager, "yolox_nano_416", max_persons=2).detect(frames[HAND_CHECKED_FRAME])
    full = yolox.detect(frames[HAND_CHECKED_FRAME])
    assert capped == full[:2]


def test_greyscale_and_bgra_frames_are_accepted(yolox: Detector, frames: dict[int, Image]) -> None:
    image = frames[HAND_CHECKED_FRAME]
    grey = _u8(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert _score_against_hand_check(yolox.detect(grey))[0] >= 5
    bgra = _u8(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    assert yolox.detect(bgra) == yolox.detect(image)


def test_bad_images_are_refused_with_a_clear_error(yolox: Detector) -> None:
    with pytest.raises(ValueError, match="uint8"):
        yolox.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        yolox.detect(np.zeros((0, 100, 3), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(height, width, 3\)"):
        yolox.detect(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match="numpy array"):
        yolox.detect(b"jpeg bytes")  # type: ignore[arg-type]


def test_openvino_and_onnxruntime_find_the_same_people(
    manager: ModelManager, frames: dict[int, Image], yolox: Detector
) -> None:
    spec = get_spec("yolox_nano_416")
    via_ov = Detector(
        spec, manager.resolve(spec), {"score_threshold": 0.6}, {"runtime": "openvino"}
    )
    assert via_ov.runtime == "openvino"
    image = frames[HAND_CHECKED_FRAME]
    ort_found, ov_found = yolox.detect(image), via_ov.detect(image)
    assert abs(len(ort_found) - len(ov_found)) <= 1
    for d in ov_found:
        assert max(_iou(d.box, e.box) for e in ort_found) > 0.9
