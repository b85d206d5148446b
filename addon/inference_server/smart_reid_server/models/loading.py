"""Loading both models on the chosen device, warmed up (the single server and cluster workers)."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..config import Settings
from ..vision.detect import Detector
from ..vision.embed import Embedder
from .devices import DeviceChoice, log_choice, select_device
from .download import ModelManager

_LOGGER = logging.getLogger(__name__)


def inference_threads(workers: int) -> int:
    """Threads per model run when ``models.threads`` is 0: the cores shared by the workers.

    Each worker runs its own inference at the same time; letting every runtime start one thread
    per core oversubscribes the CPU (measured on 2 cores: 13 frames/s with the runtimes'
    defaults, 32 with one thread each; bench/bench_pipeline.py --threads).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def load_models(
    settings: Settings, manager: ModelManager
) -> tuple[Detector, Embedder, DeviceChoice]:
    """Both models on the chosen device, warmed up (server and cluster workers)."""
    models_cfg = dict(settings.section("models"))
    # One decision and one log line for both models (a warning when falling back).
    choice = select_device(str(models_cfg["device"]))
    log_choice(choice)
    models_cfg["device"] = choice.device
    models_cfg["engine_cache_dir"] = manager.cache_dir / "engines"
    if not models_cfg.get("threads"):
        models_cfg["threads"] = inference_threads(int(settings.section("queue")["workers"]))
    detector = Detector.from_config(models_cfg, settings.section("detect"), manager)
    embedder = Embedder.from_config(models_cfg, manager)
    detector.detect(np.zeros((480, 640, 3), np.uint8))
    embedder.embed([np.zeros((256, 128, 3), np.uint8)])
    _LOGGER.info(
        "models loaded: detector %s (%s on %s), reid %s (%s on %s, %d-d), "
        "%d inference threads each",
        detector.name,
        detector.runtime,
        detector.device,
        embedder.name,
        embedder.runtime,
        embedder.device,
        embedder.dim,
        models_cfg["threads"],
    )
    return detector, embedder, choice
