"""Benchmark of the inference core (detect + crop + embed) on vtest.avi.

    python bench/bench_inference.py [--frames 200] [--detector yolox_nano_416]
                                    [--reid person-reidentification-retail-0277] [--threads 0]

Each figure is measured against a naive baseline in the same process, on the same frames and
the same model files: Pillow for decoding and resizing, a Python loop for box decoding and
NMS, one crop per inference on the model as shipped (fixed batch 1, default runtime settings).
The product target is >= 15 frames/s sustained on a 2-core machine with the default models.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon" / "inference_server"))

from smart_reid_server import config  # noqa: E402
from smart_reid_server.models import ModelManager, get_spec  # noqa: E402
from smart_reid_server.models.openvino import import_openvino  # noqa: E402
from smart_reid_server.types import Frame  # noqa: E402
from smart_reid_server.vision.crops import extract_crops  # noqa: E402
from smart_reid_server.vision.detect import Detector  # noqa: E402
from smart_reid_server.vision.embed import Embedder  # noqa: E402

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


# -- the naive baseline ---------------------------------------------------------------------


class NaiveDetector:
    """YOLOX-style detection written the obvious way."""

    def __init__(self, path: Path, size: int) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name
        self.size = size

    def detect(self, image: PILImage.Image, threshold: float = 0.6) -> list[list[float]]:
        w, h = image.size
        r = min(self.size / h, self.size / w)
        resized = image.resize((int(w * r), int(h * r)), PILImage.Resampling.BILINEAR)
        canvas = PILImage.new("RGB", (self.size, self.size), (114, 114, 114))
        canvas.paste(resized, (0, 0))
        bgr = np.asarray(canvas)[:, :, ::-1].astype(np.float32)
        blob = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])
        out = self.session.run(None, {self.name: blob})[0][0]
        boxes = []
        index = 0
        for stride in (8, 16, 32):
            cells = self.size // stride
            for gy in range(cells):
                for gx in range(cells):
                    row = out[index]
                    index += 1
                    score = float(row[4] * row[5])
                    if score < threshold:
                        continue
                    cx, cy = (row[0] + gx) * stride, (row[1] + gy) * stride
                    bw, bh = math.exp(row[2]) * stride, math.exp(row[3]) * stride
                    boxes.append(
                        [
                            (cx - bw / 2) / r,
                            (cy - bh / 2) / r,
                            (cx + bw / 2) / r,
                            (cy + bh / 2) / r,
                            score,
                        ]
                    )
        boxes.sort(key=lambda b: -b[4])
        kept: list[list[float]] = []
        for box in boxes:
            if all(_iou(box, k) < 0.45 for k in kept):
                kept.append([max(0.0, box[0]), max(0.0, box[1]), min(w, box[2]), min(h, box[3])])
        return kept


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class NaiveEmbedder:
    """One crop per call, the IR as shipped (fixed batch 1), Pillow resize."""

    def __init__(self, xml: Path) -> None:
        core = import_openvino().Core()
        self.request = core.compile_model(str(xml), "CPU").create_infer_request()

    def embed_one(self, crop: PILImage.Image) -> F32:
        resized = crop.resize((128, 256), PILImage.Resampling.BILINEAR)
        bgr = np.asarray(resized)[:, :, ::-1].astype(np.float32)
        blob = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])
        vector = np.array(self.request.infer({0: blob})[0][0], dtype=np.float32)
        norm: F32 = vector / np.linalg.norm(vector)
        return norm


class DynamicBatchEmbedder:
    """The alternative the product measured and rejected: the IR reshaped to a dynamic batch,
    all crops in one request (same preprocessing as the product)."""

    def __init__(self, xml: Path) -> None:
        ov = import_openvino()
        core = ov.Core()
        model = core.read_model(str(xml))
        port = model.inputs[0]
        model.reshape({port.get_any_name(): ov.PartialShape([ov.Dimension(1, 32), 3, 256, 128])})
        compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        self.request = compiled.create_infer_request()

    def embed(self, crops: list[U8]) -> None:
        pixels = np.empty((len(crops), 256, 128, 3), np.uint8)
        for i, crop in enumerate(crops):
            cv2.resize(crop, (128, 256), dst=pixels[i])
        tensor = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
        self.request.infer({0: tensor})


# -- helpers --------------------------------------------------------------------------------


def frames_cv2(video: Path, count: int) -> Iterator[U8]:
    capture = cv2.VideoCapture(str(video))
    try:
        for _ in range(count):
            ok, image = capture.read()
            if not ok:
                return
            yield np.asarray(image, dtype=np.uint8)
    finally:
        capture.release()


def frames_pillow(video: Path, count: int) -> Iterator[PILImage.Image]:
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= count:
                return
            yield frame.to_image()


def interleaved(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Median milliseconds per call of each function, calls taking turns (one warm-up each)."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, samples, strict=True):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000.0)
    return [statistics.median(times) for times in samples]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--detector", default="yolox_nano_416")
    parser.add_argument("--reid", default="person-reidentification-retail-0277")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args(argv)

    models_dir = args.shared / "models"
    video = args.shared / "data" / "video" / "vtest.avi"
    if not video.is_file() or not models_dir.is_dir():
        print(f"needs {video} and {models_dir}", file=sys.stderr)
        return 2
    settings = config.validate({"models": {"threads": args.threads}})
    models_cfg = settings.section("models")
    quality_cfg = settings.section("quality")
    manager = ModelManager(models_dir, ROOT / ".cache" / "bench-models", download=False)
    det_spec, reid_spec = get_spec(args.detector, "detector"), get_spec(args.reid, "reid")
    detector = Detector(det_spec, manager.resolve(det_spec), settings.section("detect"), models_cfg)
    embedder = Embedder(reid_spec, manager.resolve(reid_spec), models_cfg)
    naive_det = NaiveDetector(models_dir / det_spec.main_file.path, det_spec.input.height)
    naive_emb = NaiveEmbedder(models_dir / reid_spec.main_file.path)
    if det_spec.decoder != "yolox" or reid_spec.runtime != "openvino":
        print("the naive baseline covers YOLOX-style detectors and OpenVINO IR embedders only")
        return 2

    sample = list(frames_cv2(video, 200))[::20]
    sample_pil = [PILImage.fromarray(f[:, :, ::-1]) for f in sample]
    people = [
        c.image
        for f in sample
        for c in extract_crops(Frame("b", f, 0.0), detector.detect(f), quality_cfg)
    ]
    crops16 = people[:16]
    crops16_pil = [PILImage.fromarray(c[:, :, ::-1]) for c in crops16]

    # (a) detector
    det_ms, naive_det_ms = (
        ms / len(sample)
        for ms in interleaved(
            [
                lambda: [detector.detect(f) for f in sample],
                lambda: [naive_det.detect(f) for f in sample_pil],
            ],
            3,
        )
    )
    # (b) embedder
    dynamic = DynamicBatchEmbedder(models_dir / reid_spec.main_file.path)
    one_ms, batch_ms, dynamic_ms, naive_emb_ms = (
        ms / len(crops16)
        for ms in interleaved(
            [
                lambda: [embedder.embed([c]) for c in crops16],
                lambda: embedder.embed(crops16),
                lambda: dynamic.embed(crops16),
                lambda: [naive_emb.embed_one(c) for c in crops16_pil],
            ],
            5,
        )
    )

    # (c) end to end: decode + detect + crop + embed. The two paths take turns frame by frame,
    # so load from other processes on the machine affects both alike.
    product_s = naive_s = product_cpu = naive_cpu = 0.0
    count = persons = 0
    ours_frames, naive_frames = frames_cv2(video, args.frames), frames_pillow(video, args.frames)
    stages = dict.fromkeys(("decode", "detect", "crop", "embed"), 0.0)
    while True:
        t0, c0 = time.perf_counter(), time.process_time()
        image = next(ours_frames, None)
        if image is None:
            break
        t1 = time.perf_counter()
        found = detector.detect(image)
        t2 = time.perf_counter()
        crops = extract_crops(Frame("b", image, 0.0), found, quality_cfg)
        t3 = time.perf_counter()
        if crops:
            embedder.embed([c.image for c in crops])
        t4 = time.perf_counter()
        for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[stage] += seconds
        product_s += t4 - t0
        product_cpu += time.process_time() - c0
        start, c0 = time.perf_counter(), time.process_time()
        pil = next(naive_frames)
        for box in naive_det.detect(pil):
            naive_emb.embed_one(pil.crop((int(box[0]), int(box[1]), int(box[2]), int(box[3]))))
        naive_s += time.perf_counter() - start
        naive_cpu += time.process_time() - c0
        count += 1
        persons += len(crops)
    product_fps, naive_fps = count / product_s, count / naive_s

    load = os.getloadavg()[0]
    print(
        f"load average {load:.1f} on {os.cpu_count()} CPUs (other processes slow both paths alike)"
    )
    print(
        f"vtest.avi, {count} frames, {persons / max(count, 1):.1f} people/frame; "
        f"{detector.name} ({detector.runtime}/{detector.device}), "
        f"{embedder.name} ({embedder.runtime}/{embedder.device}), threads={args.threads or 'default'}"
    )
    rows = [
        ("detect, ms/frame", det_ms, naive_det_ms, naive_det_ms / det_ms),
        ("embed 1 per call, ms/crop", one_ms, naive_emb_ms, naive_emb_ms / one_ms),
        ("embed 16 per call, ms/crop", batch_ms, naive_emb_ms, naive_emb_ms / batch_ms),
        ("  vs one dynamic batch", batch_ms, dynamic_ms, dynamic_ms / batch_ms),
        ("end to end, frames/s", product_fps, naive_fps, product_fps / naive_fps),
        (
            "end to end, CPU ms/frame",
            product_cpu * 1000 / count,
            naive_cpu * 1000 / count,
            naive_cpu / product_cpu,
        ),
    ]
    print(f"{'':28}{'product':>10}{'baseline':>10}{'ratio':>8}")
    for label, ours, naive, ratio in rows:
        print(f"{label:28}{ours:10.2f}{naive:10.2f}{ratio:7.2f}x")
    print(
        "product ms/frame: "
        + ", ".join(f"{k} {v * 1000 / max(count, 1):.1f}" for k, v in stages.items())
    )
    target = "meets" if product_fps >= 15 else "misses"
    print(f"end to end {product_fps:.1f} frames/s {target} the 15 frames/s target")
    cores = os.cpu_count() or 1
    print(
        f"CPU time bound: {cores} idle cores give at most {cores * count / product_cpu:.0f} "
        "frames/s (CPU time hardly depends on other load; wall time does)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
