"""CPU against GPU for the inference core (detect + crop + embed), side by side, one command.

    python bench/bench_gpu.py [--frames 300] [--video vtest.avi] [--devices cpu,cuda]

On a GPU host, from a checkout with onnxruntime-gpu installed, or in the NVIDIA image:

    docker compose --profile nvidia run --rm smart-reid-nvidia \
        python /opt/smart-reid/bench/bench_gpu.py --cache /data/bench-models

It measures the CPU and every accelerator this machine has (TensorRT, CUDA, OpenVINO GPU;
``--devices`` picks) on the same frames and the same crops, and prints per device:

- frames/s: detect + crop + embed of each frame's people, one frame at a time;
- p95 latency (ms) of that per-frame work;
- crops/s: embedding alone, in batches of ``--batch`` crops (how many people a GPU can follow);
- detect p50 (ms).

Models come from ``--models-dir`` (a folder laid out like ../shared/models) or are downloaded
and verified into ``--cache`` (default ``.cache/bench-models``); frames from ``--video``
(default the shared vtest.avi), or synthetic frames with fixed boxes when there is no video
(speed only). On a
machine without a GPU it says so and measures the CPU alone. The first TensorRT run builds
engines (minutes); they are cached in ``<cache>/engines`` and excluded from timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon" / "inference_server"))

from smart_reid_server import config  # noqa: E402
from smart_reid_server.models import ModelManager, get_spec  # noqa: E402
from smart_reid_server.models.devices import probe, select_device  # noqa: E402
from smart_reid_server.types import Box, Detection, Frame  # noqa: E402
from smart_reid_server.vision.crops import extract_crops  # noqa: E402
from smart_reid_server.vision.detect import Detector  # noqa: E402
from smart_reid_server.vision.embed import Embedder  # noqa: E402

U8 = npt.NDArray[np.uint8]


# Its own frame reader on purpose: the GPU image copies this file without bench_inference.py.
def video_frames(video: Path, count: int) -> Iterator[U8]:
    capture = cv2.VideoCapture(str(video))
    try:
        for _ in range(count):
            ok, image = capture.read()
            if not ok:
                return
            yield np.asarray(image, dtype=np.uint8)
    finally:
        capture.release()


def synthetic_frames(count: int) -> Iterator[U8]:
    rng = np.random.default_rng(7)
    for _ in range(count):
        yield rng.integers(0, 255, (576, 768, 3), dtype=np.uint8)


SYNTHETIC_BOXES = [(40 + 120 * i, 150, 110 + 120 * i, 330) for i in range(6)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def measure(
    device: str,
    frames: list[U8],
    boxes: list[list[Detection]] | None,
    args: argparse.Namespace,
    manager: ModelManager,
) -> dict[str, Any]:
    settings = config.validate({"models": {"device": device, "threads": args.threads}})
    models_cfg = dict(settings.section("models"))
    models_cfg["engine_cache_dir"] = manager.cache_dir / "engines"
    det_spec, reid_spec = get_spec(args.detector, "detector"), get_spec(args.reid, "reid")
    detector = Detector(det_spec, manager.resolve(det_spec), settings.section("detect"), models_cfg)
    embedder = Embedder(reid_spec, manager.resolve(reid_spec), models_cfg)
    quality = settings.section("quality")
    # Warm-up (TensorRT builds its engines here, per input shape).
    for image in frames[:3]:
        found = detector.detect(image)
        crops = extract_crops(Frame("bench", image, 0.0), found[:4] or [], quality)
        embedder.embed([c.image for c in crops] or [image[:256, :128]])
    per_frame: list[float] = []
    detect_ms: list[float] = []
    all_crops: list[U8] = []
    for index, image in enumerate(frames):
        start = time.perf_counter()
        found = boxes[index] if boxes is not None else detector.detect(image)
        if boxes is not None:
            detector.detect(image)  # same work as with a video: the detector runs every frame
        mid = time.perf_counter()
        crops = extract_crops(Frame("bench", image, 0.0), found, quality)
        if crops:
            embedder.embed([c.image for c in crops])
        per_frame.append((time.perf_counter() - start) * 1000.0)
        detect_ms.append((mid - start) * 1000.0)
        all_crops.extend(c.image for c in crops)
    # Embedding throughput in batches (the crops of several cameras at once).
    batch = max(1, args.batch)
    embedder.embed(all_crops[:batch] or [frames[0][:256, :128]])
    start = time.perf_counter()
    embedded = 0
    for offset in range(0, len(all_crops), batch):
        chunk = all_crops[offset : offset + batch]
        embedder.embed(chunk)
        embedded += len(chunk)
    embed_s = time.perf_counter() - start
    return {
        "device": device,
        "detector": f"{detector.runtime}/{detector.device}",
        "reid": f"{embedder.runtime}/{embedder.device}",
        "frames": len(frames),
        "crops": len(all_crops),
        "frames_per_s": len(frames) / (sum(per_frame) / 1000.0) if per_frame else 0.0,
        "p95_ms": percentile(per_frame, 95),
        "p50_ms": percentile(per_frame, 50),
        "detect_p50_ms": statistics.median(detect_ms) if detect_ms else float("nan"),
        "crops_per_s": embedded / embed_s if embed_s > 0 else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--video", type=Path, default=ROOT.parent / "shared/data/video/vtest.avi")
    parser.add_argument("--models-dir", type=Path, default=ROOT.parent / "shared/models")
    parser.add_argument("--detector", default="yolox_nano_416")
    parser.add_argument("--reid", default="person-reidentification-retail-0277")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per model (0: all)")
    parser.add_argument("--batch", type=int, default=16, help="crops per call for crops/s")
    parser.add_argument(
        "--devices", default="", help="comma-separated, e.g. cpu,cuda (default: cpu + every GPU)"
    )
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench-models")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    found = probe()
    available = found.available()
    devices = [d for d in args.devices.split(",") if d] or list(reversed(available))
    print(f"accelerators: {found.describe()}")
    if available == ("cpu",):
        print("no GPU is available to onnxruntime or OpenVINO here: measuring the CPU only")
    for device in devices:
        choice = select_device(device, found)
        if choice.fallback:
            print(f"skipping {device}: {choice.fallback}")
    devices = [d for d in devices if select_device(d, found).fallback is None]

    manager = ModelManager(
        args.models_dir if args.models_dir.is_dir() else None,
        args.cache,
        download=True,
    )
    if args.video.is_file():
        frames = list(video_frames(args.video, args.frames))
        boxes = None
        source = f"{args.video.name}, {len(frames)} frames"
    else:
        frames = list(synthetic_frames(args.frames))
        boxes = [
            [Detection(Box(*map(float, box)), score=0.9) for box in SYNTHETIC_BOXES] for _ in frames
        ]
        source = f"{len(frames)} synthetic frames with 6 boxes each (no video at {args.video})"
    print(f"frames: {source}; models {args.detector} + {args.reid}")

    results = [measure(device, frames, boxes, args, manager) for device in devices]
    base = results[0]
    rows = [
        ("runs on (detector)", "detector", None),
        ("runs on (reid)", "reid", None),
        ("frames/s (detect+embed, 1 frame at a time)", "frames_per_s", "higher"),
        ("p95 latency per frame (ms)", "p95_ms", "lower"),
        ("p50 latency per frame (ms)", "p50_ms", "lower"),
        ("detect p50 (ms)", "detect_p50_ms", "lower"),
        (f"crops/s (embed, batches of {args.batch})", "crops_per_s", "higher"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    header = "".join(f"{r['device']:>18}" for r in results)
    print(f"\n{'':{width}}{header}" + ("   ratio (best/cpu)" if len(results) > 1 else ""))
    for label, key, better in rows:
        cells = "".join(
            f"{r[key]:>18.1f}" if isinstance(r[key], float) else f"{r[key]:>18}" for r in results
        )
        ratio = ""
        if better and len(results) > 1 and base[key]:
            values = [r[key] for r in results[1:]]
            best = max(values) if better == "higher" else min(values)
            ratio = (
                f"   {best / base[key]:.2f}x"
                if better == "higher"
                else f"   {base[key] / best:.2f}x"
            )
        print(f"{label:{width}}{cells}{ratio}")
    print(
        f"\ncrops per run: {base['crops']} ({base['crops'] / max(base['frames'], 1):.1f} a frame)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
