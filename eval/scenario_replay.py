"""The simulated day through the product's identity code in this process, for quick tuning.

Each frame is rendered and JPEG-encoded as for the server, decoded with the server's decoder, cut
with its crop code and embedded with its Embedder; the vectors are cached on disk (keyed by the
day and a fingerprint of the embedding code), so trying another matching setting replays only
``Identities.observe``, which takes seconds. The reported figures come from the real server
(``eval.scenario_server``); this replay is what the options were tuned and compared with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from smart_reid_server.config import Settings, load
from smart_reid_server.identity.identities import Identities
from smart_reid_server.identity.store import Store
from smart_reid_server.types import Box, Crop, Detection, Frame, QualityReport
from smart_reid_server.vision.crops import extract_crops
from smart_reid_server.vision.decode import decode_image, parse_detections

from eval.embeddings import CACHE, fingerprint, make_embedder
from eval.scenario_metrics import Answers, Said
from eval.scenario_world import Day, SimFrame

_LOGGER = logging.getLogger(__name__)

type Floats = npt.NDArray[np.float32]
# Quality gates as the scenario's server runs them: CUHK03 crops are 145-419 px tall.
QUALITY = {"min_height_px": 50}
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Validated product settings for the scenario, with dotted-key ``overrides``."""
    tree: dict[str, Any] = {"quality": dict(QUALITY)}
    for dotted, value in (overrides or {}).items():
        node = tree
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return load(None, environ={}, overrides=tree)


def _day_key(day: Day, model: str, flip: bool) -> str:
    digest = hashlib.sha256()
    digest.update(f"{model}|{flip}|{fingerprint(model, flip)}|{day.split}|{day.seed}".encode())
    digest.update(repr(day.params).encode())
    digest.update(json.dumps(QUALITY, sort_keys=True).encode())
    return f"scenario__{model}__{'flip' if flip else 'plain'}__{digest.hexdigest()[:16]}"


def frame_inputs(day: Day, frame: SimFrame, quality: Mapping[str, Any]) -> tuple[Frame, list[Crop]]:
    """The frame and crops exactly as the server builds them from the upload."""
    image = decode_image(day.jpeg(frame), max_bytes=MAX_UPLOAD_BYTES)
    detections = parse_detections(frame.detections(), image.shape[1], image.shape[0])
    built = Frame(frame.camera, image, frame.timestamp, frame_id=frame.frame_id,
                  detections=detections)  # fmt: skip
    return built, extract_crops(built, detections, quality)


def embed_day(day: Day, model: str, flip: bool = False) -> list[Floats]:
    """Per frame, the embeddings of its people (cached under eval/results/cache/)."""
    file = CACHE / f"{_day_key(day, model, flip)}.npz"
    if file.exists():
        with np.load(file) as stored:
            return [stored[f"arr_{i}"] for i in range(len(day.frames))]
    embedder = make_embedder(model, flip)
    out: list[Floats] = []
    for frame in day.frames:
        _, crops = frame_inputs(day, frame, QUALITY)
        if len(crops) != len(frame.people):
            raise RuntimeError(
                f"frame {frame.frame_id}: {len(crops)} crops for {len(frame.people)}"
            )
        out.append(np.asarray(embedder.embed([c.image for c in crops]), np.float32))
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, *out)
    return out


def quality_of(day: Day) -> list[list[bool]]:
    """Whether each crop passes the server's quality gates (cheap: no model)."""
    return [[c.quality.ok for c in frame_inputs(day, f, QUALITY)[1]] for f in day.frames]


def replay(
    day: Day,
    vectors: list[Floats],
    config: Settings,
    *,
    model: str,
    threshold: float,
    crops_ok: list[list[bool]] | None = None,
    before_observe: Callable[[SimFrame, Identities, Floats], None] | None = None,
) -> Answers:
    """Every frame through a fresh ``Identities`` built from ``config`` as the app builds it.

    Decisions depend only on the vectors, boxes, quality verdicts and times, so the crops carry a
    1-pixel stand-in image (thumbnails and snapshots are not scored here).
    """
    answers: Answers = {}
    with tempfile.TemporaryDirectory(prefix="scenario-") as tmp:
        identities = build_identities(config, Path(tmp), model, int(vectors[0].shape[1]), threshold)
        try:
            for frame, rows in zip(day.frames, vectors, strict=True):
                if not frame.people:
                    continue
                oks = crops_ok[frame.index] if crops_ok is not None else [True] * len(rows)
                crops = [
                    Crop(
                        Detection(Box(*map(float, p.box)), 0.9),
                        np.zeros((1, 1, 3), np.uint8),
                        QualityReport(ok, 100.0 if ok else 0.0),
                    )
                    for p, ok in zip(frame.people, oks, strict=True)
                ]
                image = np.zeros((1, 1, 3), np.uint8)
                built = Frame(frame.camera, image, frame.timestamp, frame_id=frame.frame_id)
                if before_observe is not None:
                    before_observe(frame, identities, rows)
                result = identities.observe(frame.camera, frame.timestamp, crops, rows, built)
                for slot, d in enumerate(result.decisions):
                    answers[(frame.index, slot)] = Said(
                        d.person_id, d.new_person, d.visit_id, d.match.value, d.similarity
                    )
        finally:
            identities.close()
    return answers


def build_identities(
    config: Settings, data_dir: Path, model: str, dim: int, threshold: float
) -> Identities:
    """``Identities`` with every ``match`` and ``visits`` setting, as the server would run it."""
    identities = Identities.from_settings(
        Store(data_dir), config, model_name=model, dim=dim, threshold=threshold
    )
    identities.load()
    return identities
