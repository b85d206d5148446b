"""The scripted scene through the real server, offline, as ``eval/realvideo/replay.py`` runs video.

``SmartReidApp`` runs as ``serve`` runs it (pipeline, tracker, identities, visits; HTTP and MQTT
off; every setting the default), with the scene's own clock as frame time. Its two models are the
memoised ones of the real-video replay (``EvalApp``): detector boxes and crop vectors computed
once per picture or crop, kept on disk in ``eval/results/cache/synthvideo/``. Each time step, one
frame of each camera of the layout is submitted, in a fixed order, and the presence of every
camera is read after it. Boxes and tracks are reported in side-by-side coordinates (``hall`` at x
0-639, ``yard`` at 640-1279) so ``eval.realvideo.metrics`` scores them unchanged.

Layouts: ``both`` (the two cameras, with hand-overs and overlaps), ``hall`` and ``yard`` (one
camera alone: its re-entries, crossings and returns, without the other camera's sightings).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from smart_reid_server.config import load
from smart_reid_server.models.download import ModelManager
from smart_reid_server.types import Frame
from smart_reid_server.vision.detect import Detector

from eval.data import REPO, models_dir
from eval.realvideo.replay import (
    START,
    EvalApp,
    Memo,
    MemoDetector,
    Run,
    _collect,
    _presence,
    finish_run,
    run_server,
    start_app,
)
from eval.synthvideo.scene import CAMERAS, Scene
from eval.synthvideo.truth import COLUMNS, SceneTruth

CACHE = REPO / "eval" / "results" / "cache" / "synthvideo"
LAYOUTS: dict[str, tuple[str, ...]] = {"both": CAMERAS, "hall": ("hall",), "yard": ("yard",)}


def memo_for(scene: Scene) -> Memo:
    return Memo(CACHE / f"seed{scene.seed}.pkl")


def label(scene: Scene, memo: Memo, limit: int = 0) -> SceneTruth:
    """Run the product's detector (default settings, memoised) on every frame of every camera
    and label its boxes against the truth."""
    cfg = load(None, environ={})
    manager = ModelManager(
        models_dir(), Path(tempfile.gettempdir()) / "synthvideo-models", download=False
    )
    detector = MemoDetector(
        Detector.from_config(cfg.section("models"), cfg.section("detect"), manager), memo
    )
    out = SceneTruth()
    frames = scene.frames if limit <= 0 else min(limit, scene.frames)
    try:
        for k in range(frames):
            for camera in CAMERAS:
                rendered = scene.render(camera, k)
                found = detector.detect(rendered.image)
                boxes = [(d.box.x1, d.box.y1, d.box.x2, d.box.y2) for d in found]
                out.add(camera, k, boxes, rendered, scene.walks)
    finally:
        memo.save()
    return out


def replay(
    scene: Scene,
    layout: str = "both",
    *,
    memo: Memo | None = None,
    limit: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> Run:
    """Run the server over the scene's cameras of ``layout``: every decision and presence."""
    cameras = LAYOUTS[layout]
    memo = memo if memo is not None else memo_for(scene)
    return run_server(
        list(cameras),
        memo,
        lambda app, clock: _drive(app, scene, layout, cameras, limit, clock),
        overrides=overrides,
        prefix="synthvideo-",
    )


async def _drive(
    app: EvalApp,
    scene: Scene,
    layout: str,
    cameras: Sequence[str],
    limit: int,
    clock: list[float],
) -> Run:
    pipeline, merges = await start_app(app)
    run = Run(layout, {c: COLUMNS[c] for c in cameras})
    frames = scene.frames if limit <= 0 else min(limit, scene.frames)
    try:
        for k in range(frames):
            # Exact frame times, computed once each (the run looks frames up by their time).
            timestamp = START + scene.time(k)
            clock[0] = timestamp
            run.frame_times[k] = timestamp
            run.index_of[timestamp] = k
            # One camera's frame at a time, in a fixed order: the run is deterministic.
            for camera in cameras:
                image = scene.render(camera, k).image
                frame = Frame(
                    camera=camera,
                    image=np.ascontiguousarray(image),
                    timestamp=timestamp,
                    source="eval",
                    frame_id=f"{k:05d}_{camera}",
                )
                _collect(run, camera, k, await pipeline.submit(frame))
            for camera in cameras:
                run.presence[(camera, k)] = await app._call(_presence, camera, timestamp)
        await pipeline.expire_now()
    finally:
        await app.stop()
    return finish_run(run, app, merges)
