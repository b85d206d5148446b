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


async def test_labels_agree_with_the_published_thresholds_on_real_video(
    tmp_path: Path, models_dir: Path, video_dir: Path
) -> None:
    """What docs/contract.md says a label means, checked on every decision of real video:
    ``matched`` at or above ``info.settings.match_threshold``; ``uncertain`` in the band above
    ``uncertain_threshold``, or below it only for a sighting the active tier gave to someone
    already on a visit (never a new visit; ``candidate_id`` names them); ``new`` starts an
    identity, and says how close the nearest person in the gallery came."""
    frames = read_frames(video_dir / "vtest.avi", 200)
    settings = settings_for(
        tmp_path, models_dir, http={"enabled": False}, queue={"workers": 2, "per_camera": 8}
    )
    decisions = []
    async with running_app(settings) as app:
        assert app.pipeline is not None
        threshold, uncertain = app.threshold, app.uncertain_threshold
        for index, image in enumerate(frames):
            frame = Frame(camera="front", image=image, timestamp=T0 + index / 10.0, source="demo")
            decisions += (await app.pipeline.submit(frame)).decisions
    labels = {d.match.value for d in decisions}
    assert {"matched", "new"} <= labels, labels
    news = [d for d in decisions if d.match.value == "new"]
    assert any(d.similarity != 0.0 for d in news[1:]), "a new person beside others is compared"
    for d in decisions:
        if d.match.value == "matched":
            assert d.similarity >= threshold - 1e-6, d
        elif d.match.value == "uncertain" and d.similarity < uncertain - 1e-6:
            assert not d.new_person and d.candidate_id == d.person_id, d
