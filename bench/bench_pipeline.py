"""Whole-pipeline benchmark on vtest.avi: throughput, stage latency, frame-to-MQTT latency, memory.

    .venv/bin/python bench/bench_pipeline.py [--frames 300] [--seconds 20] [--json FILE]

Two things are measured, each for the product and for a naive baseline run in the same process
on the same frames and the same model files:

1. Sustained throughput: JPEG frames of one camera, decoded, detected, embedded, matched, as
   fast as the pipeline takes them (product: ``SmartReidApp`` with its pipeline; frames are
   offered with at most ``queue.per_camera`` waiting so nothing is dropped).
2. Frame-to-MQTT latency at 4 cameras x 1 frame/s: every second each camera publishes a JPEG
   to ``<base>/ingest/<camera>`` on a real local Mosquitto; a subscriber notes when the first
   ``sighting`` of that frame arrives. p50/p95 over all frames.

The naive baseline does what a first version would: Pillow decoding, the same detector, one
crop per embedding call, and a Python loop over every stored exemplar to match; everything in
one thread (for MQTT: inside the paho callback). It gets the same number of inference threads
per model as the product, so the ratios measure the pipeline, not thread tuning (``--threads``
shows that effect on the product alone). Peak RSS (``ru_maxrss``) is read after the
product runs, before the baseline loads its own copy of the models.

Targets: >= 15 frames/s, p95 < 150 ms at 4 cameras x 1 frame/s, < 1 GiB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image as PILImage
from smart_reid_server.config import Settings, load
from smart_reid_server.models.download import ModelManager
from smart_reid_server.pipeline import FrameResult
from smart_reid_server.serve.app import SmartReidApp, inference_threads
from smart_reid_server.serve.stats import LatencyStats
from smart_reid_server.types import Frame, Image, Vector
from smart_reid_server.vision.crops import extract_crops
from smart_reid_server.vision.decode import decode_image
from smart_reid_server.vision.detect import Detector
from smart_reid_server.vision.embed import Embedder

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMART_REID_SHARED") or REPO.parent / "shared")
CAMERAS = ("cam1", "cam2", "cam3", "cam4")
BASE = "bench"
MAX_BYTES = 20 * 1048576


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def video_jpegs(path: Path, count: int, start: int = 0) -> list[bytes]:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    out: list[bytes] = []
    while len(out) < count:
        ok, image = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        out.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    capture.release()
    return out


TUNING: dict[str, int] = {"threads": 0, "workers": 2}


def settings(data_dir: Path, models_dir: Path, **extra: Any) -> Settings:
    tree: dict[str, Any] = {
        "data_dir": str(data_dir),
        "log_level": "warning",
        "models": {"dir": str(models_dir), "download": False, "threads": TUNING["threads"]},
        "queue": {"per_camera": 4, "workers": TUNING["workers"]},
        "cameras": ["cam", *CAMERAS],
        "mqtt": {"enabled": False},
        "http": {"enabled": False},
    }
    tree.update(extra)
    return load(None, environ={}, overrides=tree)


# -- the product -------------------------------------------------------------------------------


def _decode(data: bytes) -> Image:
    return decode_image(data, max_bytes=MAX_BYTES)


async def product_throughput(app: SmartReidApp, jpegs: list[bytes]) -> float:
    """Frames/s: decode (executor) + pipeline, one camera, never more than the queue holds."""
    assert app.pipeline is not None
    loop = asyncio.get_running_loop()
    limit = int(app.settings.section("queue")["per_camera"])
    waiting: list[asyncio.Future[FrameResult]] = []
    start = time.perf_counter()
    base_ts = time.time()
    for i, data in enumerate(jpegs):
        t0 = time.monotonic()
        image = await loop.run_in_executor(None, _decode, data)
        app.latency.record("decode", (time.monotonic() - t0) * 1000)
        frame = Frame("cam", image, base_ts + i / 10, frame_id=f"t{i}", received_monotonic=t0)
        waiting.append(app.pipeline.submit(frame))
        if len(waiting) >= limit:
            await waiting.pop(0)
    await asyncio.gather(*waiting)
    return len(jpegs) / (time.perf_counter() - start)


class Watcher:
    """Subscriber on the events topic: arrival time of the first sighting of each frame."""

    def __init__(self, port: int) -> None:
        self.first: dict[str, float] = {}
        self.ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{BASE}/events/sighting", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.ready.wait(10)

    def _message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        frame_id = json.loads(message.payload).get("frame_id", "")
        self.first.setdefault(frame_id, time.monotonic())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Sender:
    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, camera: str, jpeg: bytes, frame_id: str) -> None:
        payload = json.dumps(
            {
                "image": base64.b64encode(jpeg).decode(),
                "frame_id": frame_id,
                "timestamp": time.time(),
            }
        )
        self.client.publish(f"{BASE}/ingest/{camera}", payload, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def four_cameras(port: int, streams: dict[str, list[bytes]], seconds: int) -> list[float]:
    """Latency (ms) from publishing each frame to the first sighting of it at a subscriber."""
    watcher, sender = Watcher(port), Sender(port)
    sent: dict[str, float] = {}
    try:
        tick = time.monotonic()
        for second in range(seconds):
            for camera in CAMERAS:
                frame_id = f"{camera}-{second}"
                sent[frame_id] = time.monotonic()
                sender.send(camera, streams[camera][second % len(streams[camera])], frame_id)
            tick += 1.0
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
        await asyncio.sleep(2.0)
    finally:
        watcher.close()
        sender.close()
    return [(watcher.first[f] - t) * 1000 for f, t in sent.items() if f in watcher.first]


# -- the naive baseline ------------------------------------------------------------------------


class Naive:
    """Pillow decode, per-crop embedding, Python-loop matching, one thread."""

    def __init__(self, cfg: Settings, threshold: float) -> None:
        manager = ModelManager.from_config(cfg.section("models"), cfg.data_dir)
        self.detector = Detector.from_config(cfg.section("models"), cfg.section("detect"), manager)
        self.embedder = Embedder.from_config(cfg.section("models"), manager)
        self.quality = cfg.section("quality")
        self.threshold = threshold
        self.exemplars: list[tuple[int, Vector]] = []

    def process(self, camera: str, data: bytes) -> list[tuple[int, float]]:
        with PILImage.open(io.BytesIO(data)) as img:
            image: Image = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])
        frame = Frame(camera, image, time.time())
        detections = self.detector.detect(image)
        out = []
        for crop in extract_crops(frame, detections, self.quality):
            vector = self.embedder.embed([crop.image])[0]
            best, best_id = -1.0, -1
            for person, exemplar in self.exemplars:
                similarity = float(np.dot(vector, exemplar))
                if similarity > best:
                    best, best_id = similarity, person
            if best < self.threshold:
                best_id = len({p for p, _ in self.exemplars})
                self.exemplars.append((best_id, vector))
            out.append((best_id, best))
        return out

    def throughput(self, jpegs: list[bytes]) -> float:
        start = time.perf_counter()
        for data in jpegs:
            self.process("cam", data)
        return len(jpegs) / (time.perf_counter() - start)

    async def four_cameras(
        self, port: int, streams: dict[str, list[bytes]], seconds: int
    ) -> list[float]:
        server = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        ready = threading.Event()

        def on_message(client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            envelope = json.loads(message.payload)
            camera = message.topic.rsplit("/", 1)[1]
            for person, similarity in self.process(camera, base64.b64decode(envelope["image"])):
                client.publish(
                    f"{BASE}/events/sighting",
                    json.dumps(
                        {"frame_id": envelope["frame_id"], "person": person, "s": similarity}
                    ),
                    qos=1,
                )

        server.on_connect = lambda c, *_: c.subscribe(f"{BASE}/ingest/+", qos=1)
        server.on_subscribe = lambda *_: ready.set()
        server.on_message = on_message
        server.connect("127.0.0.1", port)
        server.loop_start()
        ready.wait(10)
        try:
            return await four_cameras(port, streams, seconds)
        finally:
            server.loop_stop()
            server.disconnect()


# -- plumbing ----------------------------------------------------------------------------------


@contextmanager
def mosquitto() -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            for _ in range(100):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(10)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    models_dir = SHARED / "models"
    video = SHARED / "data" / "video" / "vtest.avi"
    if not video.is_file() or not models_dir.is_dir():
        sys.exit(f"needs {video} and {models_dir} (set SMART_REID_SHARED)")
    jpegs = video_jpegs(video, args.frames)
    streams = {
        cam: video_jpegs(video, args.seconds, start=150 * i) for i, cam in enumerate(CAMERAS)
    }
    results: dict[str, Any] = {"frames": len(jpegs), "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp, mosquitto() as port:
        cfg = settings(Path(tmp) / "a", models_dir)
        app = SmartReidApp(cfg)
        await app.start()
        try:
            await product_throughput(app, jpegs[:8])  # warm up
            fresh = LatencyStats()
            app.latency = fresh
            assert app.pipeline is not None
            app.pipeline.latency = fresh
            cpu = cpu_seconds()
            results["fps"] = await product_throughput(app, jpegs)
            results["cpu_ms"] = (cpu_seconds() - cpu) * 1000 / len(jpegs)
            results["stages"] = app.latency.summary()
            threshold = app.threshold
            threads = (
                inference_threads(TUNING["workers"]) if not TUNING["threads"] else TUNING["threads"]
            )
        finally:
            await app.stop()
        mqtt_cfg = {"enabled": True, "host": "127.0.0.1", "port": port, "base_topic": BASE}
        app = SmartReidApp(settings(Path(tmp) / "b", models_dir, mqtt=mqtt_cfg))
        await app.start()
        try:
            for _ in range(200):
                if app.publisher.connected:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            results["latency_ms"] = await four_cameras(port, streams, args.seconds)
        finally:
            await app.stop()
        results["rss_mib"] = peak_rss_mib()

        # Same inference threads as the product, so the ratio is about the pipeline's design.
        TUNING["threads"] = threads
        naive = Naive(settings(Path(tmp) / "c", models_dir), threshold)
        naive.throughput(jpegs[:8])
        naive.exemplars.clear()
        cpu = cpu_seconds()
        results["naive_fps"] = naive.throughput(jpegs)
        results["naive_cpu_ms"] = (cpu_seconds() - cpu) * 1000 / len(jpegs)
        naive.exemplars.clear()
        results["naive_latency_ms"] = await naive.four_cameras(port, streams, args.seconds)
    return results


def report(results: dict[str, Any]) -> None:
    lat, naive_lat = results["latency_ms"], results["naive_latency_ms"]
    p95, naive_p95 = percentile(lat, 95), percentile(naive_lat, 95)
    rows = [
        (
            "throughput, 1 camera (frames/s)",
            f"{results['fps']:.1f}",
            f"{results['naive_fps']:.1f}",
            f"{results['fps'] / results['naive_fps']:.2f}x",
            ">= 15",
        ),
        (
            "CPU time per frame, 1 camera (ms)",
            f"{results['cpu_ms']:.1f}",
            f"{results['naive_cpu_ms']:.1f}",
            f"{results['naive_cpu_ms'] / results['cpu_ms']:.2f}x",
            "",
        ),
        (
            "frame->MQTT p50 @ 4 cams x 1 fps (ms)",
            f"{percentile(lat, 50):.0f}",
            f"{percentile(naive_lat, 50):.0f}",
            f"{percentile(naive_lat, 50) / percentile(lat, 50):.2f}x",
            "",
        ),
        (
            "frame->MQTT p95 @ 4 cams x 1 fps (ms)",
            f"{p95:.0f}",
            f"{naive_p95:.0f}",
            f"{naive_p95 / p95:.2f}x",
            "< 150",
        ),
        (
            "frames answered @ 4 cams x 1 fps",
            f"{len(lat)}/{4 * results['seconds']}",
            f"{len(naive_lat)}/{4 * results['seconds']}",
            "",
            "",
        ),
        ("peak RSS, product (MiB)", f"{results['rss_mib']:.0f}", "", "", "< 1024"),
    ]
    print(
        f"\nSmart ReID pipeline benchmark: vtest.avi, {results['frames']} frames; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'metric':40s} {'product':>10s} {'naive':>10s} {'ratio':>8s} {'target':>8s}")
    for row in rows:
        print(f"{row[0]:40s} {row[1]:>10s} {row[2]:>10s} {row[3]:>8s} {row[4]:>8s}")
    print("\nper-stage latency in the product, 1-camera run (ms):")
    print(f"{'stage':10s} {'p50':>8s} {'p95':>8s} {'mean':>8s}")
    for stage, s in results["stages"].items():
        print(f"{stage:10s} {s['p50_ms']:8.1f} {s['p95_ms']:8.1f} {s['mean_ms']:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames for the throughput runs")
    parser.add_argument("--seconds", type=int, default=20, help="length of the 4-camera runs")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures as JSON")
    parser.add_argument(
        "--threads", type=int, default=0, help="models.threads (0: runtime decides)"
    )
    parser.add_argument("--workers", type=int, default=2, help="queue.workers")
    args = parser.parse_args()
    TUNING.update(threads=args.threads, workers=args.workers)
    results = asyncio.run(run(args))
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
