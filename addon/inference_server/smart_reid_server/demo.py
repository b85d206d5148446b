"""The product's main job on real video: many camera views, one alert per person per visit.

No multi-camera recording of the same people is available, so the demo makes cameras out of one
video: ``--cameras N`` cuts every frame into N side-by-side vertical strips (``left``/``right``
for 2), each a camera of its own. Pedestrians crossing the scene leave one camera and enter the
next, which is exactly the case Smart ReID exists for: a per-camera system alerts again on every
camera, Smart ReID recognises the person and stays quiet.

Everything runs through the real server classes (``SmartReidApp``: Pipeline, Identities, Publisher,
the same as ``serve``), with the video's own clock as frame time. The summary compares the alerts
sent with two per-camera baselines computed from the same sightings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .app import SmartReidApp, StartupError
from .config import Settings, validate
from .logging_setup import setup_logging
from .models.errors import ModelError
from .pipeline import FrameDroppedError, FrameResult
from .snapshots import Marker, render_jpeg
from .types import Decision, Frame, Image, MatchStatus

STRIP_NAMES = {1: ["cam"], 2: ["left", "right"], 3: ["left", "middle", "right"]}
SEEN_REPEAT_S = 5.0


def default_video() -> Path:
    shared = os.environ.get("SMART_REID_SHARED")
    root = Path(shared) if shared else Path(__file__).resolve().parents[3].parent / "shared"
    return root / "data" / "video" / "vtest.avi"


def camera_names(count: int) -> list[str]:
    return STRIP_NAMES.get(count) or [f"cam{i + 1}" for i in range(count)]


def split(image: Image, count: int) -> list[Image]:
    """``count`` side-by-side vertical strips of ``image``."""
    width = image.shape[1]
    edges = [round(i * width / count) for i in range(count + 1)]
    return [image[:, edges[i] : edges[i + 1]].copy() for i in range(count)]


def video_frames(path: Path, step: int, limit: int) -> Iterator[tuple[int, float, Image]]:
    """(index, seconds into the video, BGR image) for every ``step``-th frame."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise StartupError(f"cannot open video {path}; pass --video with a readable file")
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    index = 0
    try:
        while limit <= 0 or index < limit:
            ok, image = capture.read()
            if not ok:
                break
            if index % step == 0:
                yield index, index / fps, np.asarray(image, dtype=np.uint8)
            index += 1
    finally:
        capture.release()


def broker_reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@dataclass(slots=True)
class Tally:
    """Alerts Smart ReID sends vs what per-camera alerting would send for the same sightings."""

    window_s: float
    frames: int = 0
    sightings: int = 0
    alerts: int = 0
    uncertain: int = 0
    identities: set[str] = field(default_factory=set)
    new_identities: int = 0
    per_person_camera: int = 0
    camera_cooldown: int = 0
    _pair_last: dict[tuple[str, str], float] = field(default_factory=dict)
    _camera_alert: dict[str, float] = field(default_factory=dict)
    cameras_of_visit: dict[str, set[str]] = field(default_factory=dict)

    def add(self, decision: Decision) -> None:
        self.sightings += 1
        self.identities.add(decision.person_id)
        t = decision.timestamp
        if decision.new_person:
            self.alerts += 1
        if decision.is_new_identity and decision.new_person:
            self.new_identities += 1
        if decision.match is MatchStatus.UNCERTAIN:
            self.uncertain += 1
        self.cameras_of_visit.setdefault(decision.visit_id, set()).add(decision.camera)
        # Baseline 1: each camera recognises people on its own (one alert per person per camera
        # per visit window): what per-camera ReID or per-camera object events give you.
        pair = (decision.camera, decision.person_id)
        last = self._pair_last.get(pair)
        if last is None or t - last >= self.window_s:
            self.per_person_camera += 1
        self._pair_last[pair] = t
        # Baseline 2: a camera alerts on any person, then stays quiet for the window.
        quiet_until = self._camera_alert.get(decision.camera)
        if quiet_until is None or t >= quiet_until:
            self.camera_cooldown += 1
            self._camera_alert[decision.camera] = t + self.window_s


class DemoPrinter:
    """One line per decision worth reading: new visits, uncertain matches, camera changes."""

    def __init__(self, start: float, verbose: bool) -> None:
        self.start = start
        self.verbose = verbose
        self._last_line: dict[tuple[str, str], float] = {}
        self._visit_cameras: dict[str, int] = {}

    def decision(self, d: Decision) -> str | None:
        key = (d.camera, d.person_id)
        grew = len(d.visit_cameras) > self._visit_cameras.get(d.visit_id, 0)
        self._visit_cameras[d.visit_id] = len(d.visit_cameras)
        if d.new_person:
            what = "NEW VISIT" + (" (first time)" if d.is_new_identity else " (returning)")
        elif grew:
            what = "seen on another camera: no alert"
        else:
            what = f"uncertain (probably {d.label})" if d.match is MatchStatus.UNCERTAIN else "seen"
            last = self._last_line.get(key)
            if not self.verbose and last is not None and d.timestamp - last < SEEN_REPEAT_S:
                return None
        self._last_line[key] = d.timestamp
        similarity = "  - " if d.match is MatchStatus.NEW else f"{d.similarity:4.2f}"
        return (
            f"{d.timestamp - self.start:7.1f}s  {d.camera:7s} {d.label:11s} {what:34s} "
            f"sim {similarity}  visit cameras [{', '.join(d.visit_cameras)}]"
        )


def _demo_settings(base: Settings, args: argparse.Namespace, cameras: list[str]) -> Settings:
    raw = dict(base.raw)
    raw["cameras"] = cameras
    raw["http"] = {**base.section("http"), "enabled": False}
    mqtt = dict(base.section("mqtt"))
    if args.no_mqtt:
        mqtt["enabled"] = False
    else:
        mqtt.update(host=args.mqtt_host, port=args.mqtt_port)
        mqtt["enabled"] = broker_reachable(args.mqtt_host, args.mqtt_port)
    raw["mqtt"] = mqtt
    if base.raw.get("log_level") == "info":
        raw["log_level"] = "warning"
    return validate(raw)


async def _run(
    app: SmartReidApp, args: argparse.Namespace, video: Path, out: Path, clock: list[float]
) -> Tally:
    cameras = app.cameras.names
    pipeline = app.pipeline
    assert pipeline is not None
    window = float(app.settings.section("visits")["window_s"])
    tally = Tally(window)
    start = clock[0]
    printer = DemoPrinter(start, args.verbose)
    in_flight: deque[asyncio.Future[FrameResult]] = deque()
    limit = max(1, int(app.settings.section("queue")["per_camera"])) * len(cameras)
    loop = asyncio.get_running_loop()
    snapshots: list[asyncio.Future[None]] = []

    async def settle(result_future: asyncio.Future[FrameResult]) -> None:
        try:
            result = await result_future
        except FrameDroppedError:
            return
        tally.frames += 1
        for decision in result.decisions:
            tally.add(decision)
            line = printer.decision(decision)
            if line:
                print(line, flush=True)
        if any(d.new_person for d in result.decisions):
            markers = [Marker.from_decision(d) for d in result.decisions]
            name = f"{result.frame.frame_id}.jpg"
            snapshots.append(
                loop.run_in_executor(None, _write_jpeg, out / name, result.frame.image, markers)
            )

    for index, offset, image in video_frames(video, max(1, args.step), args.frames):
        timestamp = start + offset
        clock[0] = timestamp
        for camera, strip in zip(cameras, split(image, len(cameras)), strict=True):
            frame = Frame(
                camera=camera,
                image=strip,
                timestamp=timestamp,
                source="demo",
                frame_id=f"{index:05d}_{camera}",
            )
            in_flight.append(pipeline.submit(frame))
            while len(in_flight) >= limit:
                await settle(in_flight.popleft())
    while in_flight:
        await settle(in_flight.popleft())
    await pipeline.expire_now()
    await asyncio.gather(*snapshots)
    return tally


def _write_jpeg(path: Path, image: Image, markers: list[Marker]) -> None:
    path.write_bytes(render_jpeg(image, markers))


def run_demo(base: Settings, args: argparse.Namespace) -> int:
    """``smart-reid demo``: returns the process exit code."""
    video = Path(args.video) if args.video else default_video()
    if not video.is_file():
        print(f"smart-reid demo: video {video} not found; pass --video or set SMART_REID_SHARED")
        return 2
    count = max(1, min(4, int(args.cameras)))
    cameras = camera_names(count)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="smart-reid-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    data_dir = None
    if not args.data_dir:
        data_dir = tempfile.mkdtemp(prefix="smart-reid-demo-data-")
        base = validate({**base.raw, "data_dir": data_dir})
    settings = _demo_settings(base, args, cameras)
    setup_logging(str(settings.raw["log_level"]))
    mqtt = settings.section("mqtt")
    print(
        f"Smart ReID demo: {video.name} cut into {count} side-by-side camera(s): {', '.join(cameras)}"
    )
    print(
        "  People walking across the scene move from one camera to the next; a per-camera system "
        "alerts again on each camera, Smart ReID should not."
    )
    if mqtt["enabled"]:
        print(f"  MQTT: publishing to {mqtt['host']}:{mqtt['port']} under {mqtt['base_topic']}/")
    else:
        reason = "--no-mqtt" if args.no_mqtt else f"no broker at {args.mqtt_host}:{args.mqtt_port}"
        print(f"  MQTT: off ({reason}); decisions are printed only")
    print(f"  annotated snapshots of every new visit: {out}")
    print()
    clock = [time.time()]
    app = SmartReidApp(settings, clock=lambda: clock[0])
    started = time.monotonic()

    async def main() -> Tally:
        await app.start()
        try:
            return await _run(app, args, video, out, clock)
        finally:
            await app.stop()

    try:
        tally = asyncio.run(main())
    except (ModelError, StartupError) as err:
        print(f"smart-reid demo: cannot start: {err}")
        return 2
    finally:
        if data_dir is not None:
            # The demo's identities live only as long as the demo (--data-dir keeps them).
            shutil.rmtree(data_dir, ignore_errors=True)
    elapsed = time.monotonic() - started
    _summary(tally, app, elapsed, len(cameras))
    return 0


def _summary(tally: Tally, app: SmartReidApp, elapsed: float, cameras: int) -> None:
    multi = sum(1 for c in tally.cameras_of_visit.values() if len(c) > 1)
    latency = app.latency.summary().get("total", {})
    print()
    print("Summary")
    print(
        f"  frames processed      {tally.frames} camera frames in {elapsed:.1f} s "
        f"({tally.frames / max(elapsed, 1e-9):.1f} frames/s, incl. model loading)"
    )
    if latency:
        print(
            f"  latency per frame     p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms"
        )
    print(f"  sightings             {tally.sightings} (persons x frames)")
    print(f"  identities            {len(tally.identities)} ({tally.uncertain} uncertain matches)")
    print(f"  visits                {tally.alerts}, of which {multi} seen on more than one camera")
    print(f"  alerts sent           {tally.alerts}  (one per person per visit, all cameras)")
    print(
        f"  per-camera baseline   {tally.per_person_camera}  (one per person per camera: "
        f"{tally.per_person_camera - tally.alerts} duplicate alerts avoided)"
    )
    print(
        f"  camera cooldown       {tally.camera_cooldown}  (any person, then {tally.window_s:.0f} s "
        f"quiet per camera: misses everyone who arrives during the quiet time)"
    )
    if cameras == 1:
        print("  (one camera: nothing to deduplicate across cameras; try --cameras 2)")


__all__ = ["run_demo"]
