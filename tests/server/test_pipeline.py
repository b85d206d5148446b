"""The frame pipeline in a real app: overload handling, fairness, ordering, skipping detection,
and identities that survive a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from smart_reid_server.pipeline import FrameDroppedError, FrameResult
from smart_reid_server.types import Box, Detection, Frame, Image, MatchStatus

from tests.server.server_support import CuhkPicker, cuhk, jpeg_image, running_app, settings_for

pytestmark = pytest.mark.timeout(120)


def _image(jpeg: bytes) -> Image:
    return jpeg_image(jpeg)


def _crop_frame(camera: str, image: Image, frame_id: str, timestamp: float) -> Frame:
    h, w = image.shape[:2]
    return Frame(
        camera=camera,
        image=image,
        timestamp=timestamp,
        frame_id=frame_id,
        detections=[Detection(Box(0, 0, w, h), 0.95)],
    )


@pytest.fixture(scope="module")
def street(video_dir: Path) -> Image:
    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return np.asarray(frame, dtype=np.uint8)


async def test_overload_drops_the_oldest_frames_of_that_camera_and_counts_them(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    settings = settings_for(tmp_path, models_dir, queue={"per_camera": 2, "workers": 1})
    image = _image(cuhk(cuhk03_dir, "0005_00"))
    async with running_app(settings) as app:
        assert app.pipeline is not None
        now = time.time()
        # Submitted back to back, before any worker runs: only the newest 2 can be kept.
        futures = [
            app.pipeline.submit(_crop_frame("front", image, f"f{i}", now + i)) for i in range(6)
        ]
        other = app.pipeline.submit(_crop_frame("back", image, "b0", now))
        outcomes = await asyncio.gather(*futures, other, return_exceptions=True)
        dropped = [o for o in outcomes if isinstance(o, FrameDroppedError)]
        done = [o for o in outcomes if isinstance(o, FrameResult)]
        assert len(dropped) == 4
        assert all("dropped: overloaded" in str(err) for err in dropped)
        assert [r.frame.frame_id for r in done] == ["f4", "f5", "b0"]
        front = app.camera_state("front")
        assert front["frames_dropped"] == 4 and front["frames_processed"] == 2
        assert app.camera_state("back")["frames_dropped"] == 0
        status, reasons = app.health()
        assert status == "degraded"
        assert any("4 frames dropped in the last minute" in r for r in reasons)


async def test_cameras_take_turns_so_a_busy_camera_cannot_starve_another(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    settings = settings_for(tmp_path, models_dir, queue={"per_camera": 4, "workers": 1})
    image = _image(cuhk(cuhk03_dir, "0005_00"))
    async with running_app(settings) as app:
        assert app.pipeline is not None
        order: list[str] = []
        original = app.pipeline.on_result
        assert original is not None

        async def record(result: FrameResult) -> None:
            order.append(result.frame.frame_id)
            await original(result)

        app.pipeline.on_result = record
        now = time.time()
        futures = [
            app.pipeline.submit(_crop_frame("front", image, f"front-{i}", now + i))
            for i in range(4)
        ]
        futures.append(app.pipeline.submit(_crop_frame("back", image, "back-0", now)))
        futures.append(app.pipeline.submit(_crop_frame("back", image, "back-1", now + 1)))
        await asyncio.gather(*futures)
        # front queued all of its frames first, yet back's frames are served in between.
        assert order[:4] == ["front-0", "back-0", "front-1", "back-1"]
        assert order[4:] == ["front-2", "front-3"]


async def test_frames_of_one_camera_are_matched_in_arrival_order(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path, street: Image
) -> None:
    settings = settings_for(tmp_path, models_dir, queue={"per_camera": 4, "workers": 2})
    crop = _image(cuhk(cuhk03_dir, "0005_00"))
    async with running_app(settings) as app:
        assert app.pipeline is not None
        order: list[str] = []
        original = app.pipeline.on_result
        assert original is not None

        async def record(result: FrameResult) -> None:
            order.append(result.frame.frame_id)
            await original(result)

        app.pipeline.on_result = record
        now = time.time()
        # A full street frame (detector + several embeddings) then a quick pre-boxed crop:
        # the crop finishes analysis first but must not overtake the street frame.
        slow = Frame(camera="front", image=street, timestamp=now, frame_id="street")
        results = await asyncio.gather(
            app.pipeline.submit(slow),
            app.pipeline.submit(_crop_frame("front", crop, "crop", now + 0.1)),
        )
        assert order == ["street", "crop"]
        assert len(results[0].detections) >= 3
        assert results[0].latency_ms["detect"] > 0


async def test_supplied_detections_skip_the_detector(
    tmp_path: Path, models_dir: Path, street: Image
) -> None:
    settings = settings_for(tmp_path, models_dir)
    async with running_app(settings) as app:
        assert app.pipeline is not None
        now = time.time()
        detected = await app.pipeline.process(Frame("front", street, now, frame_id="a"))
        assert len(detected.decisions) >= 3
        nobody = await app.pipeline.process(
            Frame("front", street, now + 1, frame_id="b", detections=[])
        )
        assert nobody.decisions == [] and nobody.latency_ms["detect"] == 0.0
        first = detected.decisions[0].box
        one = await app.pipeline.process(
            Frame(
                "front",
                street,
                now + 2,
                frame_id="c",
                detections=[Detection(first, 0.9, track_id="edge-7")],
            )
        )
        assert len(one.decisions) == 1 and one.latency_ms["detect"] == 0.0
        assert one.decisions[0].box == first
        # Same person as the detector's first box, one frame later: recognised, no new alert.
        assert one.decisions[0].person_id == detected.decisions[0].person_id
        assert one.decisions[0].new_person is False


async def test_unknown_cameras_are_refused_unless_auto_added(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    image = _image(cuhk(cuhk03_dir, "0005_00"))
    async with running_app(settings_for(tmp_path / "a", models_dir)) as app:
        assert app.pipeline is not None
        with pytest.raises(FrameDroppedError, match="unknown camera 'garage'"):
            await app.pipeline.process(_crop_frame("garage", image, "g", time.time()))
        assert app.pipeline.offer(_crop_frame("garage", image, "g", time.time())) is False
    async with running_app(settings_for(tmp_path / "b", models_dir, auto_add_cameras=True)) as app:
        assert app.pipeline is not None
        result = await app.pipeline.process(_crop_frame("garage", image, "g", time.time()))
        assert len(result.decisions) == 1
        assert "garage" in app.info()["cameras"]


async def test_identities_survive_a_restart_with_the_same_data_dir(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    settings = settings_for(tmp_path, models_dir)
    async with running_app(settings) as app:
        assert app.pipeline is not None
        picker = CuhkPicker(cuhk03_dir, app.embedder)
        view_a, view_b = picker.same_person(app.threshold + 0.02)
        first = await app.pipeline.process(
            _crop_frame("front", _image(cuhk(cuhk03_dir, view_a)), "1", time.time())
        )
        person_id = first.decisions[0].person_id
        label = first.decisions[0].label
        await app.update_person(person_id, "Alice", True)
    async with running_app(settings) as app:
        assert app.pipeline is not None
        again = await app.pipeline.process(
            _crop_frame("back", _image(cuhk(cuhk03_dir, view_b)), "2", time.time())
        )
        (decision,) = again.decisions
        assert decision.person_id == person_id and decision.label == "Alice" and decision.known
        assert decision.is_new_identity is False
        assert decision.new_person is True  # a restart ends the visit; this is a new one
        person = await app.person(person_id)
        assert person["visit_count"] == 2 and person["cameras"] == ["back", "front"]
        assert label != "Alice"


async def test_today_counters_reset_after_local_midnight(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    async with running_app(settings_for(tmp_path, models_dir)) as app:
        assert app.pipeline is not None
        image = _image(cuhk(cuhk03_dir, "0005_00"))
        await app.pipeline.process(_crop_frame("front", image, "1", time.time()))
        await app.pipeline.process(_crop_frame("front", image, "2", time.time() + 1))
        (front, _back) = await app.camera_states()
        assert front["sightings_today"] == 2 and front["distinct_people_today"] == 1
        tomorrow = dt.date.today() + dt.timedelta(days=1)
        app.cameras._today = lambda: tomorrow  # the clock passes local midnight
        (front, _back) = await app.camera_states()
        assert front["sightings_today"] == 0 and front["distinct_people_today"] == 0
        assert front["frames_processed"] == 2  # counted since start, not per day


async def test_people_tracked_across_video_frames_are_not_embedded_every_frame(
    tmp_path: Path, models_dir: Path, video_dir: Path, cuhk03_dir: Path
) -> None:
    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    frames = [np.asarray(capture.read()[1], dtype=np.uint8) for _ in range(12)]
    capture.release()
    async with running_app(settings_for(tmp_path, models_dir)) as app:
        assert app.pipeline is not None
        start = time.time()
        results = [
            await app.pipeline.process(Frame("front", image, start + i / 10, frame_id=str(i)))
            for i, image in enumerate(frames)
        ]
        counters = app.pipeline.counters
        crops = sum(len(r.detections) for r in results)
        assert counters.embedded + counters.reused == crops
        assert counters.reused > crops / 3  # most sightings reuse their track's vector
        # ...without changing who is who: each person's id is stable across the frames.
        alerts = [d for r in results for d in r.decisions if d.new_person]
        assert len(alerts) <= len(results[0].decisions) + 2

        # Uploaded stills with boxes but no track ids are never linked to each other.
        before = counters.reused
        for i, name in enumerate(["0005_00", "0007_00", "0008_00", "0009_00", "0010_00"]):
            image = _image(cuhk(cuhk03_dir, name))
            await app.pipeline.process(_crop_frame("back", image, name, start + 2 + i / 10))
        assert counters.reused == before


async def test_a_reused_track_vector_reports_the_similarity_of_the_look_that_made_it(
    tmp_path: Path, models_dir: Path, video_dir: Path
) -> None:
    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    frames = [np.asarray(capture.read()[1], dtype=np.uint8) for _ in range(12)]
    capture.release()
    async with running_app(settings_for(tmp_path, models_dir)) as app:
        assert app.pipeline is not None
        counters = app.pipeline.counters
        start = time.time()
        previous: dict[str, float] = {}
        echoed = 0
        for i, image in enumerate(frames):
            embedded = counters.embedded
            result = await app.pipeline.process(Frame("front", image, start + i / 10))
            seen = [d for d in result.decisions if d.match is not MatchStatus.NEW]
            # Comparing a reused vector with itself would say 1.00 for everyone tracked.
            assert all(d.similarity < 0.999 for d in seen), [d.similarity for d in seen]
            now = {d.person_id: d.similarity for d in seen}
            if counters.embedded == embedded and len(now) == len(seen):
                # Nobody was looked at afresh: each person shows their last measured match.
                for person_id, similarity in now.items():
                    if person_id in previous:
                        assert similarity == previous[person_id]
                        echoed += 1
            previous.update(now)
        assert counters.reused > counters.embedded  # the tracker did reuse vectors
        assert echoed >= 5


async def test_match_settings_reach_the_active_tier(tmp_path: Path, models_dir: Path) -> None:
    settings = settings_for(
        tmp_path, models_dir, match={"active_threshold": 0.4, "adjacency": {"front": ["back"]}}
    )
    async with running_app(settings) as app:
        assert app.identity_thread is not None
        tier = app.identity_thread.identities.active_tier
        assert tier is not None and tier.threshold == pytest.approx(0.4)
    off = settings_for(tmp_path / "off", models_dir, match={"active_tier": False})
    async with running_app(off) as app:
        assert app.identity_thread is not None
        assert app.identity_thread.identities.active_tier is None
