"""How many camera streams one machine can watch: decode cost per idle and per busy stream.

    python bench/bench_sources.py [--repeats 3] [--idle-seconds 60] [--no-detector]

Each stream is run through the product's ``StreamSource`` (PyAV decoding in its own thread,
2 fps sampling, motion gate) as fast as it decodes, and its CPU time (user + system of the whole
process, from ``resource.getrusage``) is divided by the video's duration: the share of one CPU
core a live camera of that kind costs. The naive baseline, in the same process on the same
files, decodes every frame to BGR pixels and hands on every 2 fps sample (no gate).

Streams: an idle camera (a still street frame from vtest.avi with sensor-like noise, H.264,
768x576, 10 fps, generated here), vtest.avi (768x576, 10 fps, pedestrians all the time) and
walk_bike_sample.mp4 (640x360, 30 fps, a moving camera). With the detector (default, if the
models are in ../shared/models), the detection cost of the frames each stream hands on is
added, measured on vtest.avi frames with the product's detector.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon" / "inference_server"))

from smart_reid_server.ingest.stream import StreamSource  # noqa: E402
from smart_reid_server.types import Frame  # noqa: E402

SHARED = Path(os.environ.get("SMART_REID_SHARED", ROOT.parent / "shared"))
SAMPLE_FPS = 2.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(slots=True)
class Run:
    cpu_s: float
    wall_s: float
    decoded: int
    offered: int


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def offer(self, frame: Frame) -> bool:
        self.count += 1
        return True


async def product_run(video: Path, motion_gate: bool) -> Run:
    sink = CountingSink()
    source = StreamSource(
        {
            "camera": "bench",
            "url": str(video),
            "realtime": False,
            "motion_gate": motion_gate,
            "sample_fps": SAMPLE_FPS,
        },
        sink,
        asyncio.get_running_loop(),
    )
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    source.start()
    await source.finished.wait()
    await source.stop()
    await asyncio.sleep(0)  # let the last hand-overs run
    return Run(
        cpu_seconds() - cpu0, time.perf_counter() - wall0, source.stats.extra["decoded"], sink.count
    )


def run_product(video: Path, motion_gate: bool) -> Run:
    return asyncio.run(product_run(video, motion_gate))


def naive_run(video: Path) -> Run:
    """Every frame decoded to BGR pixels, every 2 fps sample handed on."""
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    decoded = offered = 0
    next_due = 0.0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            pixels = frame.to_ndarray(format="bgr24")
            decoded += 1
            if (frame.time or 0.0) >= next_due:
                next_due += 1.0 / SAMPLE_FPS
                offered += int(pixels.size > 0)
    return Run(cpu_seconds() - cpu0, time.perf_counter() - wall0, decoded, offered)


def make_idle_video(path: Path, seconds: int) -> Path:
    with av.open(str(SHARED / "data" / "video" / "vtest.avi")) as container:
        still = next(container.decode(video=0)).to_ndarray(format="bgr24")
    rng = np.random.default_rng(0)
    variants = [
        np.clip(still.astype(np.int16) + rng.integers(-3, 4, still.shape), 0, 255).astype(np.uint8)
        for _ in range(8)
    ]
    with av.open(str(path), "w") as container:
        if "libx264" in av.codecs_available:  # H.264, what cameras send
            stream = container.add_stream("h264", rate=10)
        else:
            stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = still.shape[1], still.shape[0], "yuv420p"
        for index in range(seconds * 10):
            frame = av.VideoFrame.from_ndarray(variants[index % len(variants)], format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def duration_s(video: Path) -> float:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate or 10)
    return frames / rate


def detector_ms() -> float | None:
    """Milliseconds per frame of the product detector on vtest.avi frames, or None."""
    try:
        from smart_reid_server.models.download import ModelManager
        from smart_reid_server.vision.detect import Detector
    except ImportError:
        return None
    models = SHARED / "models"
    if not (models / "detectors" / "yolox_nano_416.onnx").is_file():
        return None
    with tempfile.TemporaryDirectory() as cache:
        detector = Detector.from_config(
            {"detector": "yolox_nano_416"}, {}, ModelManager(models, Path(cache), download=False)
        )
        with av.open(str(SHARED / "data" / "video" / "vtest.avi")) as container:
            frames = [
                np.ascontiguousarray(f.to_ndarray(format="bgr24"), dtype=np.uint8)
                for i, f in zip(range(60), container.decode(video=0), strict=False)
                if i % 3 == 0
            ]
        detector.detect(frames[0])
        cpu0 = cpu_seconds()
        for image in frames:
            detector.detect(image)
        return (cpu_seconds() - cpu0) / len(frames) * 1000.0


def median_run(runs: list[Run]) -> Run:
    runs = sorted(runs, key=lambda r: r.cpu_s)
    return runs[len(runs) // 2]


def measure(repeats: int, fn: Callable[[], Run]) -> Run:
    return median_run([fn() for _ in range(repeats)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--idle-seconds", type=int, default=30)
    parser.add_argument("--no-detector", action="store_true")
    args = parser.parse_args()
    videos = SHARED / "data" / "video"
    if not (videos / "vtest.avi").is_file():
        sys.exit(f"test videos not found in {videos} (set SMART_REID_SHARED)")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        streams = {
            "idle (static street, 768x576 10 fps)": make_idle_video(
                Path(tmp) / "idle.mp4", args.idle_seconds
            ),
            "busy (vtest.avi, 768x576 10 fps)": videos / "vtest.avi",
            "busy (walk_bike, 640x360 30 fps)": videos / "walk_bike_sample.mp4",
        }
        det_ms = None if args.no_detector else detector_ms()
        rows = []
        for name, video in streams.items():
            seconds = duration_s(video)
            naive = measure(args.repeats, partial(naive_run, video))
            ungated = measure(args.repeats, partial(run_product, video, False))
            gated = measure(args.repeats, partial(run_product, video, True))
            rows.append((name, seconds, naive, ungated, gated))

    print(
        f"\nCamera stream cost at {SAMPLE_FPS:g} fps sampling, {os.cpu_count()} CPUs, "
        f"median of {args.repeats} runs (CPU share = CPU seconds / video seconds)\n"
    )
    head = (
        f"{'stream':38} {'mode':15} {'decoded/s':>10} {'CPU % core':>10} "
        f"{'handed on/s':>11} {'+detect %':>9} {'cams/core':>9}"
    )
    print(head)
    print("-" * len(head))
    for name, seconds, naive, ungated, gated in rows:
        totals = {}
        for mode, run in (("naive baseline", naive), ("sampled", ungated), ("sampled+gate", gated)):
            share = run.cpu_s / seconds
            handed = run.offered / seconds
            total = share + (handed * det_ms / 1000.0 if det_ms else 0.0)
            totals[mode] = total
            detect = f"{100 * total:8.1f}%" if det_ms else "       -"
            print(
                f"{name:38} {mode:15} {run.decoded / run.wall_s:10.0f} {100 * share:9.2f}% "
                f"{handed:11.2f} {detect} {1 / total if total else float('inf'):9.1f}"
            )
        decode_ratio = naive.cpu_s / gated.cpu_s if gated.cpu_s else float("inf")
        line = f"naive / product: decoding {decode_ratio:.2f}x"
        if det_ms:
            line += (
                f", decoding + detection {totals['naive baseline'] / totals['sampled+gate']:.2f}x"
            )
        print(f"{'':38} {line}")
    if det_ms:
        print(
            f"\ndetector: {det_ms:.1f} ms CPU per frame (yolox_nano_416); '+detect' adds it for "
            "every frame handed on; cams/core counts decode + detection"
        )
    print(f"total bench time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
