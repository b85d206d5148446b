"""Real video through the real server, offline: the same input gives the same decisions.

Two workers analyse frames in parallel, as the server runs by default; the frames of one camera
are still tracked, embedded and matched in the order they arrived, so two runs over the same
frames decide the same (identity ids are random: they are compared by order of appearance).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
from server_support import running_app, settings_for
from smart_reid_server.pipeline import FrameResult
from smart_reid_server.types import Frame

T0 = 1_767_000_000.0
FRAMES = 40  # 4 s of vtest.avi at 10 frames a second


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(image))
    capture.release()
    return frames


async def decide(
    data_dir: Path, models_dir: Path, frames: list[np.ndarray]
) -> list[tuple[str, str, int, bool]]:
    settings = settings_for(
        data_dir, models_dir, http={"enabled": False}, queue={"workers": 2, "per_camera": 8}
    )
    results: list[FrameResult] = []
    async with running_app(settings) as app:
        assert app.pipeline is not None
        pending: list[asyncio.Future[FrameResult]] = []
        for index, image in enumerate(frames):
            half = image.shape[1] // 2
            for camera, part in (("front", image[:, :half]), ("back", image[:, half:])):
                frame = Frame(
                    camera=camera,
                    image=np.ascontiguousarray(part),
                    timestamp=T0 + index / 10.0,
                    source="demo",
                    frame_id=f"{index}",
                )
                pending.append(app.pipeline.submit(frame))
            if len(pending) >= 8:  # never more than the queues hold: nothing is dropped
                results.extend(await asyncio.gather(*pending))
                pending = []
        results.extend(await asyncio.gather(*pending))
    order: dict[str, int] = {}
    return [
        (d.camera, d.frame_id, order.setdefault(d.person_id, len(order)), d.new_person)
        for result in results
        for d in result.decisions
    ]


async def test_offline_video_is_decided_the_same_twice(
    tmp_path: Path, models_dir: Path, video_dir: Path
) -> None:
    frames = read_frames(video_dir / "vtest.avi", FRAMES)
    assert len(frames) == FRAMES
    first = await decide(tmp_path / "one", models_dir, frames)
    second = await decide(tmp_path / "two", models_dir, frames)
    assert first, "people were decided"
    assert sum(new for *_, new in first) >= 2
    assert first == second
