"""Per-model starting mean for per-camera centering, from real street video (not from CUHK03).

``match.camera_centering`` subtracts each camera's running mean embedding. A camera that has seen
few people has no useful mean yet, so the product starts every camera from a per-model *prior*
mean and lets the camera's own crops take over (``match.CameraCentering``). The prior is the mean
unit embedding of the people the product's own detector finds in the two videos of
``../shared/data/video`` (vtest.avi: a fixed outdoor camera; walk_bike_sample.mp4: a moving street
camera), cut with the product's crop code and quality gates and embedded with its Embedder.

The videos are not the data the evaluation scores on (CUHK03), so the scenario and evaluation
runs measure the prior on people and cameras it has never seen. The result is written to
``smart_reid_server/models/priors.json`` (one vector per model, 4 decimals: a statistic of the
model's output, not of any person).

    python -m eval.priors [--models NAME ...] [--every N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from smart_reid_server.config import load
from smart_reid_server.models.download import ModelManager
from smart_reid_server.models.priors import PRIORS_FILE
from smart_reid_server.models.registry import names
from smart_reid_server.types import Frame
from smart_reid_server.vision.crops import extract_crops
from smart_reid_server.vision.detect import Detector

from eval.data import shared_dir
from eval.embeddings import CACHE, make_embedder

_LOGGER = logging.getLogger(__name__)
VIDEOS = ("vtest.avi", "walk_bike_sample.mp4")


def _frames(path: Path, every: int) -> Iterator[npt.NDArray[np.uint8]]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SystemExit(f"{path}: cannot be opened; check ../shared/data/video")
    index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            if index % every == 0:
                yield np.asarray(image, dtype=np.uint8)
            index += 1
    finally:
        capture.release()


def street_crops(every: int) -> list[npt.NDArray[np.uint8]]:
    """Person crops from the shared videos, as the server would cut them with default settings."""
    cfg = load(None, environ={})
    manager = ModelManager(shared_dir() / "models", CACHE / "models", download=False)
    detector = Detector.from_config(cfg.section("models"), cfg.section("detect"), manager)
    crops: list[npt.NDArray[np.uint8]] = []
    for name in VIDEOS:
        path = shared_dir() / "data" / "video" / name
        for index, image in enumerate(_frames(path, every)):
            frame = Frame(name, image, float(index))
            detections = detector.detect(image)
            crops.extend(c.image for c in extract_crops(frame, detections, cfg.section("quality")))
        _LOGGER.info("%s: %d crops so far", name, len(crops))
    return crops


def prior_mean(model: str, crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float64]:
    embedder = make_embedder(model, flip=False)
    vectors = np.concatenate([embedder.embed(crops[i : i + 32]) for i in range(0, len(crops), 32)])
    mean: npt.NDArray[np.float64] = vectors.astype(np.float64).mean(axis=0)
    return mean


def dump(data: dict[str, object]) -> str:
    """JSON with one line per model (a 256-512 value vector is one line, not hundreds)."""
    models = data["models"]
    assert isinstance(models, dict)
    lines = [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in models.items()]
    head = json.dumps({k: v for k, v in data.items() if k != "models"}, indent=1)[:-2]
    return head + ',\n "models": {\n  ' + ",\n  ".join(lines) + "\n }\n}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.priors", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", nargs="*", default=names("reid"), help="registry ReID models")
    parser.add_argument("--every", type=int, default=3, help="use every N-th video frame")
    parser.add_argument("--out", type=Path, default=PRIORS_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    crops = street_crops(args.every)
    out: dict[str, object] = {
        "about": (
            "Starting mean embedding per ReID model for match.camera_centering: the mean unit "
            f"vector of {len(crops)} person crops the product's detector finds in one frame "
            f"in {args.every} of {' and '.join(VIDEOS)} (../shared/data/video). "
            "Written by python -m eval.priors."
        ),
        "models": {},
    }
    models: dict[str, object] = {}
    for model in args.models:
        mean = prior_mean(model, crops)
        models[model] = {"crops": len(crops), "mean": [round(float(x), 4) for x in mean]}
        _LOGGER.info("%s: prior norm %.3f from %d crops", model, np.linalg.norm(mean), len(crops))
    out["models"] = models
    args.out.write_text(dump(out), encoding="utf-8")
    print(f"wrote {args.out} ({len(models)} models, {len(crops)} crops, "
          f"{time.perf_counter() - started:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
