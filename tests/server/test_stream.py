"""Stream source: real videos decoded with PyAV as files, over HTTP, and as a live MJPEG camera.

The sink records what a pipeline would have been given: how many frames, when, and whether an
idle camera stays quiet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from aiohttp import web
from smart_reid_server.ingest.stream import MotionGate, StreamSource
from smart_reid_server.types import Image

from tests.server.sources_support import (
    LocalHttp,
    RecordingSink,
    jpeg,
    paste,
    person_crop,
    video_frame,
    wait_until,
)

VTEST_S = 79.5  # 795 frames at 10 fps
WALK_BIKE_S = 1799 / (30000 / 1001)


def _source(url: str | Path, sink: RecordingSink, **options: object) -> StreamSource:
    config = {"camera": "street", "url": str(url), "realtime": False, "motion_gate": False}
    config.update(options)
    return StreamSource(config, sink, asyncio.get_running_loop())


async def _play(source: StreamSource, within_s: float = 60.0) -> None:
    source.start()
    try:
        await asyncio.wait_for(source.finished.wait(), within_s)
    finally:
        await source.stop()


@pytest.mark.parametrize(
    ("name", "duration_s", "frames", "shape"),
    [
        ("vtest.avi", VTEST_S, 795, (576, 768, 3)),
        ("walk_bike_sample.mp4", WALK_BIKE_S, 1799, (360, 640, 3)),
    ],
)
async def test_files_are_sampled_at_two_frames_a_second(
    video_dir: Path, name: str, duration_s: float, frames: int, shape: tuple[int, int, int]
) -> None:
    sink = RecordingSink()
    source = _source(video_dir / name, sink)
    await _play(source)

    assert source.stats.state == "finished"
    # 2 of 10 fps: every frame decoded; 2 of 30 fps: B-frames are skipped, never looked at.
    assert (source.stats.extra["decoded"] == frames) == (name == "vtest.avi")
    assert source.stats.extra["decoded"] <= frames
    assert abs(len(sink.frames) - duration_s * 2) <= 2
    times = np.array([f.timestamp for f in sink.frames])
    assert np.diff(times).mean() == pytest.approx(0.5, abs=0.02)
    assert all(f.image.shape == shape and f.camera == "street" for f in sink.frames)
    assert all(f.source == "stream" for f in sink.frames)
    assert all(sink.on_loop_thread)
    # The first sampled frame is the video's first picture, in BGR as every stage expects.
    assert np.array_equal(sink.frames[0].image, video_frame(video_dir / name, 0))


async def test_a_video_file_served_over_http(video_dir: Path) -> None:
    async def video(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(video_dir / "vtest.avi")

    def routes(app: web.Application) -> None:
        app.router.add_get("/vtest.avi", video)

    http = await LocalHttp(routes).start()
    sink = RecordingSink()
    source = _source(f"{http.url}/vtest.avi", sink, live=False)
    try:
        await _play(source)
    finally:
        await http.stop()
    assert source.stats.state == "finished"
    assert abs(len(sink.frames) - VTEST_S * 2) <= 2


def _write_video(path: Path, pictures: Iterator[Image], fps: int = 10) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        first = next(pictures)
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = "yuv420p"
        for picture in [first, *pictures]:
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _noisy(still: Image, count: int, seed: int = 0) -> Iterator[Image]:
    """A still picture with sensor-like noise, so the encoder does not make it trivially static."""
    rng = np.random.default_rng(seed)
    variants = [
        np.clip(still.astype(np.int16) + rng.integers(-3, 4, still.shape), 0, 255).astype(np.uint8)
        for _ in range(4)
    ]
    for index in range(count):
        yield variants[index % len(variants)]


def _half(image: Image) -> Image:
    return np.ascontiguousarray(image[::2, ::2])


async def test_motion_gate_keeps_an_idle_camera_quiet(video_dir: Path, tmp_path: Path) -> None:
    still = _half(video_frame(video_dir / "vtest.avi", 0))
    idle = _write_video(tmp_path / "idle.mp4", _noisy(still, 100))  # 10 s of nothing
    sink = RecordingSink()
    source = _source(idle, sink, motion_gate=True)
    await _play(source)
    assert source.stats.extra["sampled"] == 20
    assert len(sink.frames) == 1  # only the first look, in case someone stands there already

    busy = RecordingSink()
    source = _source(video_dir / "vtest.avi", busy, motion_gate=True)
    await _play(source)
    sampled = source.stats.extra["sampled"]
    assert len(busy.frames) >= 0.9 * sampled  # people walk through the whole clip


async def test_someone_walking_into_an_idle_scene_opens_the_gate(
    video_dir: Path, cuhk03_dir: Path, tmp_path: Path
) -> None:
    still = _half(video_frame(video_dir / "vtest.avi", 0))
    person = person_crop(cuhk03_dir, 3, 0)

    def scene() -> Iterator[Image]:
        yield from _noisy(still, 50, seed=1)  # 5 s idle
        for step in range(30):  # 3 s: a person walks left to right
            x = 50 + step * 8
            yield paste(still, person, [x, 120, x + 30, 220])
        yield from _noisy(still, 70, seed=2)  # 7 s idle again

    video = _write_video(tmp_path / "visitor.mp4", scene())
    sink = RecordingSink()
    source = _source(video, sink, motion_gate=True)
    await _play(source)
    offsets = [round(f.timestamp - sink.frames[0].timestamp, 1) for f in sink.frames]
    assert offsets[0] == 0.0
    walking = [t for t in offsets[1:] if 5.0 <= t < 8.0]
    assert len(walking) == 6  # every sampled frame while the person moves
    # After the person left: the gate holds open 2 s, then the camera goes quiet again.
    assert all(t < 8.0 + 2.5 for t in offsets)
    assert source.stats.extra["motionless"] >= 12


def test_motion_gate_threshold_is_a_share_of_the_picture() -> None:
    gate = MotionGate(0.01, hold_s=0.0)
    background = np.full((72, 96), 100, np.uint8)
    assert gate.moving(background, 0.0)  # first look passes
    small = background.copy()
    small[10:14, 10:14] = 250  # 16 of 6912 pixels: 0.2 %
    assert not gate.moving(small, 1.0)
    big = background.copy()
    big[10:30, 10:30] = 250  # 400 pixels: 5.8 %
    assert gate.moving(big, 2.0)


class MjpegCamera:
    """An HTTP camera streaming multipart JPEG (what many cheap IP cameras do) at 10 fps."""

    def __init__(self, pictures: list[bytes]) -> None:
        self.pictures = pictures
        self.sent = 0
        self.on = True

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/video.mjpg", self.stream)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"}
        )
        await response.prepare(request)
        index = 0
        try:
            while self.on:
                data = self.pictures[index % len(self.pictures)]
                index += 1
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                await response.write(head.encode() + data + b"\r\n")
                self.sent += 1
                await asyncio.sleep(0.1)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response


async def test_live_camera_is_sampled_in_real_time_and_reconnects(
    video_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pictures = []
    with av.open(str(video_dir / "vtest.avi")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= 40:
                break
            pictures.append(jpeg(np.ascontiguousarray(frame.to_ndarray(format="bgr24"))))
    camera = MjpegCamera(pictures)
    http = await LocalHttp(camera.routes).start()
    port = http.port
    sink = RecordingSink()
    caplog.set_level(logging.DEBUG, logger="smart_reid_server.ingest.stream")
    loop = asyncio.get_running_loop()
    source = StreamSource(
        {
            "camera": "gate",
            "url": f"{http.url}/video.mjpg",
            "sample_fps": 2,
            "motion_gate": False,
            "timeout_s": 2,
        },
        sink,
        loop,
        backoff_min_s=0.2,
        backoff_max_s=0.8,
    )
    assert source.live
    source.start()
    try:
        await sink.wait_for(7)
        first_run = [f.timestamp for f in sink.frames]
        # 10 fps arriving, 2 fps kept: one frame every ~0.5 s of wall time.
        assert np.diff(first_run).mean() == pytest.approx(0.5, abs=0.12)
        assert source.stats.state == "streaming"

        camera.on = False
        await http.stop()  # the camera goes away
        await wait_until(lambda: source.stats.state == "reconnecting", what="reconnecting")
        before = len(sink.frames)
        await asyncio.sleep(2.5)  # several failed attempts, backing off 0.2, 0.4, 0.8, 0.8 s
        assert len(sink.frames) == before
        assert source.stats.problem is not None

        camera.on = True
        http = await LocalHttp(camera.routes, port=port).start()  # and comes back
        await wait_until(lambda: len(sink.frames) >= before + 3, what="frames after reconnect")
        assert source.stats.state == "streaming" and source.stats.problem is None
    finally:
        camera.on = False
        await source.stop()
        await http.stop()

    lost = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "unavailable" in r.getMessage()
    ]
    assert len(lost) == 1, "an outage is reported once, not on every attempt"
    waits = [
        float(r.getMessage().rsplit("next try in ", 1)[1].split(" ")[0])
        for r in caplog.records
        if "next try in" in r.getMessage()
    ]
    assert len(waits) >= 2 and waits == sorted(waits) and max(waits) <= 0.8
    assert any("is back" in r.getMessage() for r in caplog.records)
    assert source.stats.extra["connects"] == 2


async def test_a_missing_file_fails_once_with_a_clear_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingSink()
    source = _source(tmp_path / "nope.mp4", sink)
    await _play(source, within_s=10)
    assert source.stats.state == "failed"
    assert "no such file" in (source.stats.problem or "")
    assert sink.frames == []
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    source = _source(corrupt, sink)
    await _play(source, within_s=10)
    assert source.stats.state == "failed"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("nope.mp4" in m for m in errors) and any("corrupt.mp4" in m for m in errors)


async def test_files_loop_and_play_at_their_own_speed(video_dir: Path, tmp_path: Path) -> None:
    still = _half(video_frame(video_dir / "vtest.avi", 0))
    clip = _write_video(tmp_path / "clip.mp4", _noisy(still, 20))  # 2 s at 10 fps
    sink = RecordingSink()
    source = _source(clip, sink, loop=True, realtime=True)
    source.start()
    try:
        await sink.wait_for(6, within_s=20)  # more than one pass of 4 samples
    finally:
        await source.stop()
    assert source.stats.extra["connects"] >= 2  # started again at the end
    arrivals = [f.received_monotonic for f in sink.frames[:4]]
    # Paced like a camera: 4 samples of one pass span 1.5 s of video, not a burst.
    assert arrivals[-1] - arrivals[0] >= 1.2
    assert source.stats.state == "stopped"
