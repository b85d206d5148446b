"""Real video through the real server, offline: the same input gives the same decisions.

Two workers analyse frames in parallel, as the server runs by default; the frames of one camera
are still tracked, embedded and matched in the order they arrived, so two runs over the same
frames decide the same (identity ids are random: they are compared by order of appearance).
Tracks and visits end by the frames' own time, after the same frames however fast the machine
runs them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest
from server_support import running_app, settings_for
from smart_reid_server import pipeline as pipeline_module
from smart_reid_server.identity.identities import Identities
from smart_reid_server.pipeline import FrameResult
from smart_reid_server.serve.app import SmartReidApp
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


def _book(identities: Identities) -> tuple[int, int]:
    """(active visits, tracks the matcher still holds)."""
    return len(identities.visits.active()), len(identities.tracks or ())


async def track_and_visit_ends(
    data_dir: Path, models_dir: Path, frames: list[np.ndarray]
) -> list[tuple[int, int]]:
    """After each frame: how many visits are active and how many tracks the matcher holds.
    Two seconds of people, then an empty street until their tracks (3 s) and visits (3 s)
    are over; the video's own clock is the app's clock, as in the demo and the eval."""
    settings = settings_for(data_dir, models_dir, http={"enabled": False}, visits={"window_s": 3.0})
    times = [T0 + i / 10.0 for i in range(len(frames))]
    empty = np.zeros_like(frames[0])
    pictures = [*frames, *([empty] * 12)]
    times += [times[-1] + 0.5 * (k + 1) for k in range(12)]
    clock = [T0]
    app = SmartReidApp(settings, clock=lambda: clock[0])
    await app.start()
    out: list[tuple[int, int]] = []
    try:
        assert app.pipeline is not None
        for index, (image, timestamp) in enumerate(zip(pictures, times, strict=True)):
            clock[0] = timestamp
            frame = Frame("front", image, timestamp, source="demo", frame_id=str(index))
            await app.pipeline.submit(frame)
            out.append(await app._call(_book))
    finally:
        await app.stop()
    return out


async def test_tracks_and_visits_end_after_the_same_frames_whatever_the_wall_clock(
    tmp_path: Path, models_dir: Path, video_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's wall-clock housekeeping once ended tracks and visits between whichever
    frames it happened to fall: two runs of one file differed (docs/quality.md). Now the frames
    end them: ticking every half millisecond or never, the same state after every frame."""
    frames = read_frames(video_dir / "vtest.avi", 20)
    monkeypatch.setattr(pipeline_module, "EXPIRE_EVERY_S", 0.0005)
    busy = await track_and_visit_ends(tmp_path / "busy", models_dir, frames)
    monkeypatch.setattr(pipeline_module, "EXPIRE_EVERY_S", 3600.0)
    never = await track_and_visit_ends(tmp_path / "never", models_dir, frames)
    assert busy[19][0] >= 2 and busy[19][1] >= 2, busy  # people on visits, tracks held
    assert never[-1] == (0, 0), never  # all over, with no wall-clock round at all
    assert busy == never


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
