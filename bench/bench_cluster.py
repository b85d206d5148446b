"""Scale-out benchmark: the single process against 1 and 2 cluster workers, in the same run.

    .venv/bin/python bench/bench_cluster.py [--cameras 4] [--frames 40] [--json FILE]

Every configuration decides the same JPEG frames of vtest.avi (``--cameras`` cameras cut from
different parts of the video, ``--frames`` each), all queued at once, nothing shed:

- ``single``: ``SmartReidApp`` as ``serve`` runs it, ``queue.workers`` 1 and 2.
- ``cluster``: a matcher (``SmartReidApp``, ``cluster.role: matcher``, in this process) and 1 or
  2 worker processes (``smart-reid serve`` with ``cluster.role: worker``), on a private
  redis-server started here. Every process runs one inference thread per model.

Throughput is frames decided per second from the first frame queued to the last decided.
Latency is measured one frame at a time (one camera, the next frame sent when the previous one
is decided): queue-to-decided per frame for the single process and for 1 worker; the difference
is what the hop through Redis adds. The matcher's own view of the hop (observation sent by the
worker -> read by the matcher) is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from smart_reid_server.cluster.matcher import ClusterMatcher, FrameGateway
from smart_reid_server.cluster.messages import FrameMsg, encode_jpeg
from smart_reid_server.config import Settings, load
from smart_reid_server.serve.app import SmartReidApp
from smart_reid_server.types import Frame
from smart_reid_server.vision.decode import decode_image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMART_REID_SHARED", REPO.parent / "shared"))
START = 1_767_000_000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis(folder: str) -> Iterator[str]:
    """A redis-server of this run only (free port, nothing saved to disk); yields its URL."""
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    redis = subprocess.Popen(
        [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        redis.terminate()
        redis.wait(timeout=10)


def serve_process(config: dict[str, Any], path: Path, log: Path) -> subprocess.Popen[bytes]:
    """``smart-reid serve`` on ``config`` (written to ``path``) as its own process, with this
    checkout's code; its log goes to the end of ``log``."""
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'addon' / 'inference_server'}:{REPO}"}
    return subprocess.Popen(
        [sys.executable, "-m", "smart_reid_server", "serve", "--config", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def read_clip(cameras: int, frames: int) -> list[tuple[str, str, float, bytes]]:
    """(camera, frame id, timestamp, JPEG), cameras interleaved."""
    capture = cv2.VideoCapture(str(SHARED / "data" / "video" / "vtest.avi"))
    images = []
    while len(images) < 790:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    capture.release()
    span = len(images) // cameras
    out = []
    for i in range(frames):
        for c in range(cameras):
            n = c * span + (2 * i) % span
            out.append((f"cam{c}", f"cam{c}-{n}", START + i * 0.2, encode_jpeg(images[n])))
    return out


def settings(
    data: Path, role: str, cameras: list[str], redis_url: str, prefix: str, workers: int
) -> Settings:
    data.mkdir(parents=True, exist_ok=True)
    return load(
        None,
        environ={},
        overrides={
            "data_dir": str(data),
            "log_level": "warning",
            "models": {"dir": str(SHARED / "models"), "download": False, "threads": 1},
            "cameras": cameras,
            "mqtt": {"enabled": False},
            "http": {"enabled": False},
            "queue": {"per_camera": 1000, "workers": workers},
            "cluster": {
                "role": role,
                "redis_url": redis_url,
                "prefix": prefix,
                "lease_s": 2.0,
                "backlog": 100000,
            },
        },
    )


def start_workers(
    tmp: Path, base: Settings, count: int, prefix: str
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        raw = json.loads(json.dumps(base.raw, default=str))
        raw["data_dir"] = str(tmp / f"{prefix}-w{i}")
        raw["cluster"]["role"] = "worker"
        raw["cluster"]["worker_id"] = f"{prefix}-w{i}"
        procs.append(serve_process(raw, tmp / f"{prefix}-w{i}.yaml", tmp / f"{prefix}-w{i}.log"))
    return procs


async def wait_owned(app: SmartReidApp, cameras: list[str], workers: int) -> None:
    cluster = app.cluster
    assert isinstance(cluster, ClusterMatcher)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        owners = [await cluster.client.get(cluster.keys.owner(c)) for c in cameras]
        if all(owners) and len(set(owners)) == workers:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the workers did not take the cameras; see their logs")


async def run_single(tmp: Path, clip: list[Any], workers: int, lockstep: bool) -> dict[str, Any]:
    cameras = sorted({c for c, *_ in clip})
    app = SmartReidApp(
        settings(tmp / f"single{workers}{lockstep}", "all", cameras, "redis://x", "s", workers)
    )
    await app.start()
    try:
        assert app.pipeline is not None
        frames = [
            Frame(c, decode_image(j, max_bytes=1 << 24), ts, frame_id=f) for c, f, ts, j in clip
        ]
        return await measure(lambda fr: app.pipeline.submit(fr), frames, lockstep)  # type: ignore[union-attr]
    finally:
        await app.stop()


async def run_cluster(
    tmp: Path, clip: list[Any], redis_url: str, workers: int, lockstep: bool
) -> dict[str, Any]:
    cameras = sorted({c for c, *_ in clip})
    prefix = f"b{workers}{'l' if lockstep else 't'}"
    base = settings(tmp / f"{prefix}-m", "matcher", cameras, redis_url, prefix, 1)
    procs = start_workers(tmp, base, workers, prefix)
    app = SmartReidApp(base)
    try:
        await app.start()
        await wait_owned(app, cameras, workers)
        gateway = app.intake
        assert isinstance(gateway, FrameGateway)
        msgs = [FrameMsg(c, ts, j, f) for c, f, ts, j in clip]
        out = await measure(lambda m: gateway.submit_encoded(m), msgs, lockstep)
        cluster = app.cluster
        assert isinstance(cluster, ClusterMatcher)
        hop = cluster.hop.summary().get("worker_to_matcher", {})
        out["matcher_hop_p50_ms"] = hop.get("p50_ms")
        out["matcher_hop_p95_ms"] = hop.get("p95_ms")
        topology = await cluster.topology()
        out["worker_round_trip_p50_ms"] = [w.get("hop_ms_p50") for w in topology]
        return out
    finally:
        await app.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


async def measure(submit: Any, items: list[Any], lockstep: bool) -> dict[str, Any]:
    latencies: list[float] = []
    t0 = time.monotonic()
    if lockstep:
        for item in items:
            started = time.monotonic()
            await submit(item)
            latencies.append((time.monotonic() - started) * 1000.0)
    else:
        await asyncio.gather(*[submit(item) for item in items])
    seconds = time.monotonic() - t0
    out: dict[str, Any] = {"frames": len(items), "seconds": round(seconds, 2)}
    out["frames_per_s"] = round(len(items) / seconds, 2)
    if latencies:
        out["latency_p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
        out["latency_p95_ms"] = round(float(np.percentile(latencies, 95)), 1)
    return out


async def run_all(tmp: Path, url: str, clip: list[Any], one_camera: list[Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["single_1"] = await run_single(tmp, clip, 1, False)
    results["single_2"] = await run_single(tmp, clip, 2, False)
    results["cluster_1"] = await run_cluster(tmp, clip, url, 1, False)
    results["cluster_2"] = await run_cluster(tmp, clip, url, 2, False)
    results["latency_single"] = await run_single(tmp, one_camera, 1, True)
    results["latency_cluster"] = await run_cluster(tmp, one_camera, url, 1, True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40, help="frames per camera")
    parser.add_argument("--latency-frames", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    clip = read_clip(args.cameras, args.frames)
    one_camera = read_clip(1, args.latency_frames)
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "frames": len(clip),
        "cameras": args.cameras,
    }
    with tempfile.TemporaryDirectory() as tmp_name, private_redis(tmp_name) as url:
        results.update(asyncio.run(run_all(Path(tmp_name), url, clip, one_camera)))
    base = results["single_1"]["frames_per_s"]
    ls, lc = results["latency_single"], results["latency_cluster"]
    results["ratios"] = {
        "single_2 / single_1": round(results["single_2"]["frames_per_s"] / base, 2),
        "cluster_1 / single_1": round(results["cluster_1"]["frames_per_s"] / base, 2),
        "cluster_2 / single_1": round(results["cluster_2"]["frames_per_s"] / base, 2),
        "cluster_2 / single_2": round(
            results["cluster_2"]["frames_per_s"] / results["single_2"]["frames_per_s"], 2
        ),
        "hop_added_p50_ms": round(lc["latency_p50_ms"] - ls["latency_p50_ms"], 1),
        "hop_added_p95_ms": round(lc["latency_p95_ms"] - ls["latency_p95_ms"], 1),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
