"""Per-camera tracker: real detections on vtest.avi, and known walks of real people.

The product's detector (``smart_reid_server.vision.detect``, YOLOX-Nano from ../shared/models) runs on
vtest.avi at the 2 fps a stream source delivers; the tracker should turn those detections into a
few long tracks and ask for far fewer embeddings than there are detections.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
from smart_reid_server.models.download import ModelManager
from smart_reid_server.types import Box, Detection
from smart_reid_server.vision.crops import sharpness
from smart_reid_server.vision.detect import Detector
from smart_reid_server.vision.tracker import CameraTracker, Tracks, iou

SAMPLE_EVERY = 5  # vtest.avi is 10 fps: every 5th frame is the 2 fps a stream source samples
SECONDS = 40


@pytest.fixture(scope="module")
def vtest_detections(
    models_dir: Path, video_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[float, list[Detection], list[float]]]:
    """(time, detections, crop sharpness) for the first 40 s of vtest.avi at 2 fps."""
    manager = ModelManager(models_dir, tmp_path_factory.mktemp("models"), download=False)
    detector = Detector.from_config({"detector": "yolox_nano_416"}, {}, manager)
    out = []
    with av.open(str(video_dir / "vtest.avi")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if frame.time is not None and frame.time >= SECONDS:
                break
            if index % SAMPLE_EVERY:
                continue
            image = np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
            detections = detector.detect(image)
            crops = [
                image[int(d.box.y1) : int(d.box.y2), int(d.box.x1) : int(d.box.x2)]
                for d in detections
            ]
            out.append((float(frame.time or 0.0), detections, [sharpness(c) for c in crops]))
    return out


def test_real_detections_form_long_tracks_and_few_embeddings(
    vtest_detections: list[tuple[float, list[Detection], list[float]]],
) -> None:
    tracker = CameraTracker("street")
    sightings: Counter[str] = Counter()
    embeds = 0
    detections = 0
    for timestamp, found, sharp in vtest_detections:
        tracked = tracker.update(found, timestamp, sharp)
        assert [t.detection.box for t in tracked] == [d.box for d in found]  # order kept
        assert len({t.track_id for t in tracked}) == len(tracked)  # one person, one track
        for item in tracked:
            sightings[item.track_id] += 1
            embeds += item.embed
            detections += 1
    lengths = np.array(list(sightings.values()))
    assert detections > 300  # about 5-10 people in view at any time
    # Pedestrians cross the view in 10-30 s: most sightings belong to long tracks.
    assert lengths[lengths >= 5].sum() / lengths.sum() > 0.9
    assert np.median(lengths) >= 6
    assert len(lengths) < detections / 8
    # Embeddings: the first looks of each track, then every 10th or a clearly better crop.
    assert embeds < 0.35 * detections
    assert embeds >= 3 * len(lengths[lengths >= 3])


def _walk(
    start: tuple[float, float], velocity: tuple[float, float], size: tuple[float, float], t: float
) -> Box:
    x = start[0] + velocity[0] * t
    y = start[1] + velocity[1] * t
    return Box(x, y, x + size[0], y + size[1])


def test_two_people_crossing_keep_their_tracks() -> None:
    """Two walkers pass each other (boxes overlap at the crossing) at 2 fps."""
    tracker = CameraTracker("street")
    owners: dict[str, set[str]] = defaultdict(set)
    for step in range(24):
        t = step * 0.5
        alice = _walk((50, 200), (60, 4), (60, 160), t)  # walking right, 60 px/s
        bob = _walk((700, 230), (-55, -2), (55, 150), t)  # walking left, 55 px/s
        found = [Detection(alice, 0.9), Detection(bob, 0.85)]
        if step % 2:
            found.reverse()  # detector output order carries no identity
        for item in tracker.update(found, 1000.0 + t):
            who = "alice" if item.detection.box == alice else "bob"
            owners[item.track_id].add(who)
    assert sorted(map(sorted, owners.values())) == [["alice"], ["bob"]]
    assert (
        iou(_walk((50, 200), (60, 4), (60, 160), 5.5), _walk((700, 230), (-55, -2), (55, 150), 5.5))
        > 0.3
    )


def test_someone_standing_at_the_door_is_embedded_a_few_times() -> None:
    tracker = CameraTracker("front")
    box = Box(300, 100, 380, 330)
    results = [tracker.update([Detection(box, 0.9)], 1000.0 + i * 0.5)[0] for i in range(120)]
    assert len({r.track_id for r in results}) == 1
    embedded = [i for i, r in enumerate(results) if r.embed]
    assert embedded[:3] == [0, 1, 2]  # the first looks
    assert 10 <= len(embedded) <= 16  # then every 10th: a minute costs ~15 embeddings, not 120
    assert results[0].best and not any(r.best for r in results[1:])


def test_a_clearly_better_crop_is_embedded_and_marked_best() -> None:
    tracker = CameraTracker("front")
    small = Box(300, 100, 340, 200)
    for i in range(5):
        tracker.update([Detection(small, 0.7)], 1000.0 + i * 0.5, [80.0])
    blurred_big = tracker.update([Detection(Box(300, 100, 350, 230), 0.7)], 1002.5, [5.0])[0]
    assert not blurred_big.embed and not blurred_big.best  # bigger, but far too blurred
    closer = tracker.update([Detection(Box(298, 100, 362, 260), 0.9)], 1003.0, [120.0])[0]
    assert closer.embed and closer.best
    assert closer.quality > 1.3 * blurred_big.quality


def test_device_track_ids_are_kept_and_lost_tracks_expire() -> None:
    tracks = Tracks(max_age_s=3.0)
    edge = Detection(Box(10, 10, 60, 150), 0.8, track_id="7")
    first = tracks.update("garage", [edge], 100.0)[0]
    again = tracks.update("garage", [Detection(Box(400, 10, 450, 150), 0.8, track_id="7")], 100.5)[
        0
    ]
    assert first.track_id == again.track_id == "7"  # the device said so, even though it jumped
    assert first.new_track and not again.new_track
    own = tracks.update("porch", [Detection(Box(10, 10, 60, 150), 0.8)], 100.5)[0]
    assert own.track_id.startswith("porch:")
    assert own.detection.track_id == own.track_id

    assert tracks.expire(102.0) == []
    assert tracks.expire(104.0) == [("porch", own.track_id)]  # ours: 3 s without a sighting
    assert tracks.active == 1  # the device's track waits longer: it may come back
    assert tracks.expire(200.0) == [("garage", "7")]
    later = tracks.update("porch", [Detection(Box(10, 10, 60, 150), 0.8)], 210.0)[0]
    assert later.new_track and later.track_id != own.track_id


def test_tracks_ended_inside_update_are_still_reported() -> None:
    tracker = CameraTracker("yard", max_age_s=1.0)
    gone = tracker.update([Detection(Box(0, 0, 50, 120), 0.9)], 10.0)[0].track_id
    tracker.update([Detection(Box(500, 0, 550, 120), 0.9)], 20.0)
    assert tracker.expire(20.0) == [gone]
    assert tracker.expire(20.5) == []


def test_sharpness_must_match_the_detections() -> None:
    with pytest.raises(ValueError, match="1 values for 2 detections"):
        CameraTracker("x").update(
            [Detection(Box(0, 0, 10, 30), 0.9), Detection(Box(50, 0, 60, 30), 0.9)], 1.0, [3.0]
        )


def test_a_track_lost_for_long_is_not_continued_by_whoever_walks_into_its_path() -> None:
    """At 10 frames a second, a walker hidden for 2 s: extrapolated that far, the track's box
    would land on a stranger stepping in there; the stranger gets a track of their own."""
    tracker = CameraTracker("street")
    walker = [
        tracker.update([Detection(_walk((100, 200), (50, 0), (50, 150), t), 0.9)], t)[0]
        for t in (0.0, 0.1, 0.2, 0.3)
    ]
    assert len({w.track_id for w in walker}) == 1
    # Nobody visible for 2 s (frames keep coming), then someone exactly where the walker's
    # box would be by now.
    for step in range(1, 20):
        tracker.update([], 0.3 + step * 0.1)
    there = _walk((100, 200), (50, 0), (50, 150), 2.3)
    stranger = tracker.update([Detection(there, 0.9)], 2.3)[0]
    assert stranger.new_track and stranger.track_id != walker[0].track_id

    # Hidden for less than relink_s (1 s): still the same track.
    tracker = CameraTracker("street")
    first = tracker.update([Detection(_walk((100, 200), (50, 0), (50, 150), 0.0), 0.9)], 0.0)[0]
    tracker.update([Detection(_walk((100, 200), (50, 0), (50, 150), 0.1), 0.9)], 0.1)
    for step in range(1, 10):
        tracker.update([], 0.1 + step * 0.1)
    back = tracker.update([Detection(_walk((100, 200), (50, 0), (50, 150), 1.1), 0.9)], 1.1)[0]
    assert back.track_id == first.track_id and not back.new_track


def test_a_camera_sending_a_frame_every_two_seconds_keeps_its_tracks() -> None:
    """Frames further apart than relink_s: a track seen in the previous frame goes on."""
    tracker = CameraTracker("gate")
    ids = {
        tracker.update([Detection(_walk((100, 200), (20, 0), (50, 150), t), 0.9)], t)[0].track_id
        for t in (0.0, 2.0, 4.0, 6.0)
    }
    assert len(ids) == 1


def test_a_box_of_two_people_is_flagged_and_the_track_that_waited_takes_its_person_back() -> None:
    """Two men walk close: for a moment the detector sees one box over both (real video,
    walk_bike_sample frames 477-486). The box is flagged as a group, and when it shrinks back to
    one man, the track of the man it covered, not the group's track, continues on him."""
    tracker = CameraTracker("street")
    right = Box(303, 140, 335, 226)  # standing
    a = b = ""
    for step, x in enumerate((237, 247, 257)):  # walking right, 100 px/s
        walker, stander = tracker.update(
            [Detection(Box(x, 112, x + 42, 200), 0.9), Detection(right, 0.9)], step * 0.1
        )
        a, b = walker.track_id, stander.track_id
        assert not walker.detection.group and not stander.detection.group
    assert a != b
    tracker.update([], 0.3)  # neither is detected
    merged = tracker.update([Detection(Box(276, 111, 336, 229), 0.9)], 0.4)[0]
    assert merged.detection.group and merged.track_id == a
    out = tracker.update([Detection(Box(292, 111, 339, 231), 0.9)], 0.5)[0]
    assert out.track_id == b, "the standing man's own track takes him back"
    assert not out.detection.group


def test_one_person_in_front_of_another_is_not_a_group() -> None:
    """A box that covers a man hidden behind it but is no wider than the man in front."""
    tracker = CameraTracker("street")
    front = Box(300, 100, 350, 230)
    behind = Box(310, 110, 345, 220)
    tracker.update([Detection(front, 0.9), Detection(behind, 0.9)], 0.0)
    tracked = tracker.update([Detection(Box(301, 100, 351, 230), 0.9)], 0.1)[0]
    assert not tracked.detection.group
    # A tall man in front of people far away (a third of his height) is no group either.
    tracker = CameraTracker("street")
    tall = Box(400, 100, 480, 330)
    tracker.update(
        [
            Detection(tall, 0.9),
            Detection(Box(405, 150, 430, 220), 0.9),
            Detection(Box(445, 150, 470, 220), 0.9),
        ],
        0.0,
    )
    assert not tracker.update([Detection(Box(398, 100, 482, 330), 0.9)], 0.1)[0].detection.group
