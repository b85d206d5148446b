"""Watched folder: real JPEGs (street frames with real people) written the way FTP cameras do."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from smart_reid_server.config import Settings
from smart_reid_server.ingest.folder import FolderSource
from smart_reid_server.ingest.start import start_sources
from smart_reid_server.pipeline import FrameResult
from smart_reid_server.types import Frame, Image

from tests.server.server_support import running_app, settings_for
from tests.server.sources_support import (
    RecordingSink,
    jpeg,
    mean_abs_diff,
    paste,
    person_crop,
    video_frame,
    wait_until,
)


@pytest.fixture(scope="module")
def snapshots(video_dir: Path, cuhk03_dir: Path) -> list[tuple[Image, bytes]]:
    """Three different camera snapshots as (pixels, JPEG bytes)."""
    street = video_frame(video_dir / "vtest.avi", 10)
    out = []
    for identity in range(3):
        image = paste(street, person_crop(cuhk03_dir, identity, 0), [300, 150, 370, 400])
        out.append((image, jpeg(image)))
    return out


def _folder(root: Path, data_dir: Path, sink: RecordingSink, **options: Any) -> FolderSource:
    config: dict[str, Any] = {"root": str(root), "settle_s": 0.3, "poll_interval_s": 0.05}
    config.update(options)
    return FolderSource(config, sink, data_dir=data_dir)


async def _poll_until(
    source: FolderSource, condition: Callable[[], bool], within_s: float = 10
) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached while polling")
        await source.poll_once()
        await asyncio.sleep(0.05)


async def test_a_slowly_uploaded_picture_is_taken_once_complete(
    tmp_path: Path, snapshots: list[tuple[Image, bytes]]
) -> None:
    root, data = tmp_path / "ftp", tmp_path / "data"
    (root / "front_door" / "2026" / "11" / "21").mkdir(parents=True)
    sink = RecordingSink()
    source = _folder(root, data, sink)
    await source.start()
    try:
        image, payload = snapshots[0]
        target = root / "front_door" / "2026" / "11" / "21" / "snap_0001.jpg"
        chunks = [
            payload[i : i + len(payload) // 4 + 1]
            for i in range(0, len(payload), len(payload) // 4 + 1)
        ]
        with target.open("wb") as handle:
            for chunk in chunks:  # an FTP upload: pieces with pauses in between
                handle.write(chunk)
                handle.flush()
                for _ in range(4):
                    await source.poll_once()
                    await asyncio.sleep(0.05)
                assert sink.frames == [], "a half-written file must not be taken"
        await _poll_until(source, lambda: len(sink.frames) == 1)
        for _ in range(10):  # and never again
            await source.poll_once()
        assert len(sink.frames) == 1
    finally:
        await source.stop()

    frame = sink.frames[0]
    assert frame.camera == "front_door"  # the first folder level names the camera
    assert frame.source == "folder"
    assert frame.extra == {"file": "front_door/2026/11/21/snap_0001.jpg"}
    assert frame.timestamp == pytest.approx(target.stat().st_mtime)
    assert frame.detections is None  # our detector will look for people
    assert frame.image.shape == image.shape
    assert mean_abs_diff(frame.image, image) < 3


async def test_corrupt_pictures_are_reported_once_and_others_still_flow(
    tmp_path: Path, snapshots: list[tuple[Image, bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    root, data = tmp_path / "ftp", tmp_path / "data"
    (root / "garage").mkdir(parents=True)
    (root / "garage" / "broken.jpg").write_bytes(snapshots[0][1][: len(snapshots[0][1]) // 3])
    (root / "garage" / "noise.jpg").write_bytes(os.urandom(5000))
    (root / "garage" / "good.jpg").write_bytes(snapshots[1][1])
    (root / "garage" / "notes.txt").write_text("not a picture, wrong extension: ignored")
    (root / "loose.jpg").write_bytes(snapshots[2][1])  # not inside a camera folder
    (root / "Back Yard").mkdir()
    (root / "Back Yard" / "x.jpg").write_bytes(snapshots[2][1])  # not a valid camera name
    sink = RecordingSink()
    source = _folder(root, data, sink, settle_s=0)
    await source.start()
    try:
        for _ in range(5):
            await source.poll_once()
    finally:
        await source.stop()

    assert [f.extra["file"] for f in sink.frames] == ["garage/good.jpg"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    broken = [m for m in warnings if "broken.jpg" in m]
    noise = [m for m in warnings if "noise.jpg" in m]
    assert len(broken) == 1 and "garage" in broken[0] and "truncated or corrupt" in broken[0]
    assert len(noise) == 1 and "not an image" in noise[0]
    assert len([m for m in warnings if "loose.jpg" in m and "camera folder" in m]) == 1
    assert len([m for m in warnings if "'Back Yard'" in m and "camera name" in m]) == 1
    assert source.stats.rejected == 2


async def test_a_restart_does_not_process_a_picture_twice(
    tmp_path: Path, snapshots: list[tuple[Image, bytes]]
) -> None:
    root, data = tmp_path / "ftp", tmp_path / "data"
    (root / "porch").mkdir(parents=True)
    (root / "porch" / "a.jpg").write_bytes(snapshots[0][1])
    (root / "porch" / "bad.jpg").write_bytes(b"garbage")
    first = RecordingSink()
    source = _folder(root, data, first, settle_s=0)
    await source.start()
    await source.poll_once()
    await source.stop()
    assert [f.extra["file"] for f in first.frames] == ["porch/a.jpg"]

    (root / "porch" / "b.jpg").write_bytes(snapshots[1][1])  # arrived while we were down
    second = RecordingSink()
    source = _folder(root, data, second, settle_s=0)
    await source.start()
    for _ in range(3):
        await source.poll_once()
    await source.stop()
    assert [f.extra["file"] for f in second.frames] == ["porch/b.jpg"]
    assert source.stats.rejected == 0  # the corrupt file was reported last time, not again

    # A camera that overwrites its snapshot file makes a new picture: taken again.
    await asyncio.sleep(0.01)
    (root / "porch" / "a.jpg").write_bytes(snapshots[2][1])
    third = RecordingSink()
    source = _folder(root, data, third, settle_s=0)
    await source.start()
    await source.poll_once()
    await source.stop()
    assert [f.extra["file"] for f in third.frames] == ["porch/a.jpg"]
    assert mean_abs_diff(third.frames[0].image, snapshots[2][0]) < 3


class PipelineLikeSink(RecordingSink):
    """Like the real pipeline: ``submit`` resolves once the frame has been processed."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0

    async def submit(self, frame: Frame) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.05)  # detection and embedding take a while
        self.frames.append(frame)
        self.in_flight -= 1


async def test_a_backlog_is_handed_over_one_picture_at_a_time(
    tmp_path: Path, snapshots: list[tuple[Image, bytes]]
) -> None:
    root, data = tmp_path / "ftp", tmp_path / "data"
    (root / "drive").mkdir(parents=True)
    old = root / "drive" / "old.jpg"
    old.write_bytes(snapshots[0][1])
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    now = time.time()
    for index in range(8):  # a burst from a motion event, oldest first
        path = root / "drive" / f"burst{index}.jpg"
        path.write_bytes(snapshots[index % 3][1])
        os.utime(path, (now - 10 + index, now - 10 + index))
    sink = PipelineLikeSink()
    source = _folder(root, data, sink, settle_s=0, delete_after=True, max_age_s=3600)
    await source.start()
    try:
        await source.poll_once()
    finally:
        await source.stop()
    assert [f.extra["file"] for f in sink.frames] == [f"drive/burst{i}.jpg" for i in range(8)]
    assert [f.timestamp for f in sink.frames] == sorted(f.timestamp for f in sink.frames)
    assert sink.most_in_flight == 1  # never more than the pipeline is working on
    assert not any((root / "drive" / f"burst{i}.jpg").exists() for i in range(8))  # delete_after
    assert old.exists(), "a backlog older than max_age_s is left alone"
    assert source.stats.extra["too_old"] == 1


async def test_pictures_of_a_refused_camera_are_reported_once(
    tmp_path: Path, snapshots: list[tuple[Image, bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    root, data = tmp_path / "ftp", tmp_path / "data"
    (root / "unknown_cam").mkdir(parents=True)
    for index in range(3):
        (root / "unknown_cam" / f"{index}.jpg").write_bytes(snapshots[index][1])
    sink = RecordingSink()
    sink.accepting = False  # e.g. the camera is not in `cameras`
    source = _folder(root, data, sink, settle_s=0, delete_after=True)
    await source.start()
    try:
        for _ in range(4):
            await source.poll_once()
    finally:
        await source.stop()
    assert len(sink.refused) == 3, "each picture is tried once, not on every scan"
    refused = [r.getMessage() for r in caplog.records if "refused pictures" in r.getMessage()]
    assert len(refused) == 1 and "unknown_cam" in refused[0]
    assert all((root / "unknown_cam" / f"{i}.jpg").exists() for i in range(3))


async def test_start_sources_watches_the_configured_folder(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    snapshots: list[tuple[Image, bytes]],
) -> None:
    root = tmp_path / "uploads"
    (root / "side_gate").mkdir(parents=True)
    settings = make_settings(
        **{"sources.folders": {"root": str(root), "poll_interval_s": 0.1, "settle_s": 0.2}}
    )
    sink = RecordingSink()
    running = await start_sources(settings, sink)
    try:
        (root / "side_gate" / "pic.jpg").write_bytes(snapshots[0][1])
        await wait_until(lambda: len(sink.frames) == 1, what="the folder picture")
        status = running.status()
    finally:
        await running.stop()
    assert sink.frames[0].camera == "side_gate"
    assert status[0]["source"] == f"folder:{root}" and status[0]["offered"] == 1
    assert np.array_equal(sink.frames[0].image.shape, snapshots[0][0].shape)
    assert any(p.name.startswith("folder_source_") for p in settings.data_dir.iterdir())


async def test_pictures_become_decisions_of_the_real_server(
    tmp_path: Path,
    models_dir: Path,
    snapshots: list[tuple[Image, bytes]],
) -> None:
    """The whole server (real models): an FTP burst on one camera comes out as decisions that
    name the file, one frame at a time through the real pipeline's ``submit``."""
    root = tmp_path / "ftp"
    (root / "front" / "2026-11-21").mkdir(parents=True)
    settings = settings_for(
        tmp_path / "data",
        models_dir,
        http={"enabled": False},
        queue={"per_camera": 1, "workers": 1},  # a burst would overflow this queue at once
        sources={"folders": {"root": str(root), "poll_interval_s": 0.1, "settle_s": 0.2}},
    )
    now = time.time()
    async with running_app(settings) as app:
        results: list[FrameResult] = []

        async def keep(result: FrameResult) -> None:
            results.append(result)

        app.pipeline.on_result = keep  # type: ignore[union-attr]
        for index in range(3):
            path = root / "front" / "2026-11-21" / f"motion_{index}.jpg"
            path.write_bytes(snapshots[index][1])
            os.utime(path, (now - 5 + index, now - 5 + index))
        await wait_until(lambda: len(results) == 3, within_s=60, what="three processed pictures")
        assert app.pipeline is not None and app.pipeline.counters.dropped == 0
    files = [r.frame.extra["file"] for r in results]
    assert files == [f"front/2026-11-21/motion_{i}.jpg" for i in range(3)]
    for index, result in enumerate(results):
        assert result.frame.source == "folder" and result.frame.camera == "front"
        assert result.frame.timestamp == pytest.approx(now - 5 + index)
        # No boxes came with the picture: our detector found the street's pedestrians.
        assert result.frame.detections is None and result.detections
        assert result.decisions
        assert all(
            d.extra == {"file": files[index]} and d.source == "folder" for d in result.decisions
        )
