"""The product's per-camera tracker against library trackers, on the hand-labelled street video.

Every tracker gets the same input: the product detector's boxes with their scores on every 3rd
frame of ``walk_bike_sample.mp4`` (10 fps), cached by ``python -m eval.realvideo.label propose``
in ``$GT_WORK/detections.json``. Trackers that take appearance get the product's own ReID
vectors of those boxes (``crops.extract_crops`` + ``embed.Embedder``, default model, no flip),
computed once and cached in ``$TRK_WORK/embeddings.npz`` (default ``/tmp/trk``).

Each tracker's output is read back per input detection: the track id it gave that detection on
that frame, or none (a library tracker's unconfirmed track). The boxes scored are therefore the
detector's own boxes, so the figures compare association only, not box smoothing. Scoring is
against ``labels/walk_bike_sample.json`` separately on frames 0-899 (tuning) and 900-1798
(held out): a hypothesis on a box labelled ``null`` (ignore) is dropped, as in
``metrics.tracker_metrics``; IDF1, ID switches, MOTA, fragmentations and transfers (one track
moving from one person to another) come from ``motmetrics``, HOTA / DetA / AssA from
``trackeval`` (its ``HOTA`` metric on the same per-frame ids and IoUs).

Trackers:

- ``product``: ``smart_reid_server.vision.tracker.CameraTracker`` with its defaults, frame time =
  index / 29.97 s; ``product+...``: a few settings tried on the tuning half (``--sweep``);
- ``proposer``: the conservative tracklet proposer that made the labels (``label.propose``);
- ``rf-sort``, ``rf-bytetrack``, ``rf-ocsort``, ``rf-botsort``, ``rf-cbiou``: roboflow
  ``trackers`` (clean-room, numpy/scipy; BoT-SORT's camera-motion compensation gets the frame);
- ``sv-bytetrack``: ``supervision.ByteTrack``;
- ``norfair-iou`` and ``norfair-reid`` (IoU, plus re-identification of lost tracks by the
  product's vectors);
- ``deepsort``: ``deep-sort-realtime`` fed the product's vectors (its own embedders need torch
  and are not used; roboflow ``trackers`` dropped DeepSORT after 2.0, where it needs torch).

Every library tracker runs twice: ``...:lib`` with the library's defaults, only the frame rate
set to 10 fps; ``...:1st`` with the product's track life (no confirmation delay, a lost track
kept 3 s), so that mostly the association differs from the product. Roboflow ``trackers`` still
give a new track's first box no id (``no id`` column); the product gives every box one.

The library trackers are not dependencies of the product or of ``.[eval]``; install them into the
environment first (``--no-deps`` keeps OpenCV headless and NumPy 2; all run without torch)::

    .venv/bin/python -m pip install --no-deps trackers==2.6.1 supervision==0.29.1 norfair==2.3.0 \
        filterpy==1.4.5 deep-sort-realtime==1.3.2 trackeval==1.3.0 rich pydeprecate
    python -m eval.realvideo.trackers             # table -> $TRK_WORK/trackers.{md,json}
    python -m eval.realvideo.trackers --sweep     # also the product settings sweep (tuning half)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from eval.realvideo import label
from eval.realvideo.metrics import IGNORED, Labels, iou, who

FPS = label.FPS
SAMPLE_FPS = FPS / label.STEP  # 9.99 frames a second reach the tracker
HALVES: dict[str, tuple[int, int]] = {"tuning": (0, label.HALF), "held-out": (label.HALF, 1799)}
WORK = Path(os.environ.get("TRK_WORK", "/tmp/trk"))
REID_MODEL = "person-reidentification-retail-0277"  # config.py's default models.reid
# The product's same-person cosine similarity for that model (registry DEFAULT_MATCH_THRESHOLDS),
# as a cosine distance: the appearance gate for the trackers that take vectors. The libraries'
# own defaults (DeepSORT 0.2) belong to their own embedders.
REID_DISTANCE = 1.0 - 0.62
PRODUCT_MAX_AGE_S = 3.0  # CameraTracker's max_age_s default

Box4 = tuple[float, float, float, float]
Floats = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]
Ids = list[str | None]  # per detection of a frame: its track id, or None (no id given)


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    boxes: list[Box4]
    scores: list[float]


class Tracker(Protocol):
    """One tracker, stepped frame by frame; returns a track id (or None) per detection."""

    def step(self, frame: Frame, image: Image | None, vectors: Floats | None) -> Ids: ...


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    make: Callable[[], Tracker]
    needs_image: bool = False
    needs_vectors: bool = False
    note: str = ""


# ------------------------------------------------------------------------------------- inputs


def load_frames() -> list[Frame]:
    detections = label.load_detections()
    return [
        Frame(
            int(index),
            [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in rows],
            [float(b[4]) for b in rows],
        )
        for index, rows in sorted(detections["frames"].items(), key=lambda kv: int(kv[0]))
    ]


def images() -> Iterator[tuple[int, Image]]:
    return label.sampled_frames(label.video_path())


def product_vectors(frames: Sequence[Frame]) -> dict[int, Floats]:
    """The product's ReID vector of every detector box (cached in ``WORK``)."""
    cache = WORK / "embeddings.npz"
    expected = {f.index: len(f.boxes) for f in frames}
    if cache.exists():
        with np.load(cache) as stored:
            found = {int(k): np.asarray(stored[k], np.float32) for k in stored.files}
        if {k: len(v) for k, v in found.items()} == expected:
            return found
    from smart_reid_server.config import load
    from smart_reid_server.types import Box, Detection
    from smart_reid_server.types import Frame as ServerFrame
    from smart_reid_server.vision.crops import extract_crops

    from eval.embeddings import make_embedder

    cfg = load(None, environ={})
    quality_cfg = cfg.section("quality")
    embedder = make_embedder(REID_MODEL, flip=False, cache=WORK)
    by_index = {f.index: f for f in frames}
    out: dict[int, Floats] = {}
    started = time.perf_counter()
    crops_done = 0
    for index, image in images():
        frame = by_index.get(index)
        if frame is None:
            continue
        detections = [Detection(Box(*b), s) for b, s in zip(frame.boxes, frame.scores, strict=True)]
        server_frame = ServerFrame(camera="street", image=image, timestamp=index / FPS)
        crops = extract_crops(server_frame, detections, quality_cfg)
        if len(crops) != len(detections):
            raise RuntimeError(f"frame {index}: {len(crops)} crops for {len(detections)} boxes")
        out[index] = (
            np.asarray(embedder.embed([c.image for c in crops]), np.float32)
            if crops
            else np.zeros((0, embedder.dim), np.float32)
        )
        crops_done += len(crops)
    took = time.perf_counter() - started
    print(
        f"embedded {crops_done} crops with {REID_MODEL} in {took:.1f} s "
        f"({1000 * took / max(crops_done, 1):.1f} ms a crop, decoding included)",
        file=sys.stderr,
    )
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **{str(k): v for k, v in out.items()})  # type: ignore[arg-type]
    return out


# ------------------------------------------------------------------------------------ trackers


class ProductTracker:
    """``smart_reid_server.vision.tracker.CameraTracker``; frame time = frame index / 29.97."""

    def __init__(self, **settings: Any) -> None:
        from smart_reid_server.vision.tracker import CameraTracker

        self.inner = CameraTracker("street", **settings)

    def step(self, frame: Frame, image: Image | None, vectors: Floats | None) -> Ids:
        from smart_reid_server.types import Box, Detection

        detections = [Detection(Box(*b), s) for b, s in zip(frame.boxes, frame.scores, strict=True)]
        return [t.track_id for t in self.inner.update(detections, frame.index / FPS)]


def _sv_detections(frame: Frame) -> Any:
    import supervision as sv

    n = len(frame.boxes)
    return sv.Detections(
        xyxy=np.asarray(frame.boxes, np.float32).reshape(n, 4),
        confidence=np.asarray(frame.scores, np.float32),
        class_id=np.zeros(n, int),
        data={"index": np.arange(n)},
    )


def _ids_of(result: Any, n: int) -> Ids:
    """Track ids per input detection from a returned ``sv.Detections`` (-1: no id)."""
    ids: Ids = [None] * n
    if len(result) == 0:  # an empty result carries no data columns
        return ids
    for index, track in zip(result.data["index"], result.tracker_id, strict=True):
        if int(track) >= 0:
            ids[int(index)] = str(int(track))
    return ids


class RoboflowTracker:
    """A roboflow ``trackers`` tracker: detections in, the same detections with ids out."""

    def __init__(self, cls_name: str, pass_image: bool, **settings: Any) -> None:
        import trackers

        self.inner = getattr(trackers, cls_name)(**settings)
        self.pass_image = pass_image

    def step(self, frame: Frame, image: Image | None, vectors: Floats | None) -> Ids:
        detections = _sv_detections(frame)
        result = self.inner.update(detections, frame=image if self.pass_image else None)
        return _ids_of(result, len(frame.boxes))


class SupervisionByteTrack:
    def __init__(self, **settings: Any) -> None:
        import supervision as sv

        self.inner = sv.ByteTrack(**settings)

    def step(self, frame: Frame, image: Image | None, vectors: Floats | None) -> Ids:
        ids: Ids = [None] * len(frame.boxes)
        if not frame.boxes:
            self.inner.update_with_tensors(np.zeros((0, 5), np.float32))
            return ids
        result = self.inner.update_with_detections(_sv_detections(frame))
        return _ids_of(result, len(frame.boxes))


def _cosine(a: Floats, b: Floats) -> float:
    return float(1.0 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _norfair_reid_distance(new: Any, old: Any) -> float:
    """Appearance distance of a new (initialising) object to a lost one, norfair's ReID hook."""
    mine = new.last_detection.embedding
    theirs = [d.embedding for d in old.past_detections if d.embedding is not None]
    if mine is None or not theirs:
        return 1.0
    return min(_cosine(mine, t) for t in theirs)


class NorfairTracker:
    def __init__(self, reid: bool, **settings: Any) -> None:
        from norfair.tracker import Tracker as NorfairCore

        if reid:
            settings.update(
                reid_distance_function=_norfair_reid_distance,
                reid_distance_threshold=REID_DISTANCE,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.inner = NorfairCore(distance_function="iou", **settings)

    def step(self, frame: Frame, image: Image | None, vectors: Floats | None) -> Ids:
        from norfair.tracker import Detection as NorfairDetection

        detections = [
            NorfairDetection(
                points=np.array([[b[0], b[1]], [b[2], b[3]]], np.float64),
                scores=np.array([s, s], np.float64),
                embedding=None if vectors is None else vectors[i],
            )
            for i, (b, s) in enumerate(zip(frame.boxes, frame.scores, strict=True))
        ]
        position = {id(d): i for i, d in enumerate(detections)}
        ids: Ids = [None] * len(detections)
        for obj in self.inner.update(detections=detections):
            i = position.get(id(obj.last_detection))
            if i is not None and obj.id is not None:
                ids[i] = str(obj.id)
        return ids


class DeepSortTracker:
    """``deep-sort-realtime`` with the product's vectors as its appearance features."""

    def __init__(self, **settings: Any) -> None:
        from deep_sort_realtime.deepsort_tracker import DeepSort

        self.inner = DeepSort(embedder=None, **settings)

    def step(self, frame: Frame, image: Image | None, vectors: Floats | None) -> Ids:
        assert vectors is not None
        raw = [
            ([b[0], b[1], b[2] - b[0], b[3] - b[1]], s, "person")
            for b, s in zip(frame.boxes, frame.scores, strict=True)
        ]
        tracks = self.inner.update_tracks(raw, embeds=list(vectors), others=list(range(len(raw))))
        ids: Ids = [None] * len(raw)
        for track in tracks:
            index = track.get_det_supplementary()
            if track.is_confirmed() and track.time_since_update == 0 and index is not None:
                ids[int(index)] = str(track.track_id)
        return ids


def library_specs() -> list[Spec]:
    """Each library tracker with its defaults at 10 fps (``:lib``) and with the product's track
    life (``:1st``: an id on the first detection, lost tracks kept 3 s)."""
    keep_30fps = round(PRODUCT_MAX_AGE_S * 30)  # roboflow / supervision count 30-fps frames
    keep_frames = round(PRODUCT_MAX_AGE_S * SAMPLE_FPS)  # norfair / DeepSORT count calls
    rate = {"frame_rate": SAMPLE_FPS}
    first = {"minimum_consecutive_frames": 1, "lost_track_buffer": keep_30fps}
    specs: list[Spec] = []
    for name, cls_name, image in (
        ("rf-sort", "SORTTracker", False),
        ("rf-bytetrack", "ByteTrackTracker", False),
        ("rf-ocsort", "OCSORTTracker", False),
        ("rf-botsort", "BoTSORTTracker", True),
        ("rf-cbiou", "CBIoUTracker", False),
    ):
        specs.append(Spec(f"{name}:lib", _bind(RoboflowTracker, cls_name, image, **rate), image))
        specs.append(
            Spec(f"{name}:1st", _bind(RoboflowTracker, cls_name, image, **rate, **first), image)
        )
    specs.append(Spec("sv-bytetrack:lib", _bind(SupervisionByteTrack, **rate)))
    specs.append(Spec("sv-bytetrack:1st", _bind(SupervisionByteTrack, **rate, **first)))
    # norfair has no default gate: IoU >= 0.3 as SORT's (distance = 1 - IoU).
    specs.append(Spec("norfair-iou:lib", _bind(NorfairTracker, False, distance_threshold=0.7)))
    specs.append(
        Spec(
            "norfair-iou:1st",
            _bind(
                NorfairTracker,
                False,
                distance_threshold=0.7,
                hit_counter_max=keep_frames,
                initialization_delay=0,
            ),
        )
    )
    # ReID runs on objects still initialising, so the delay stays > 0 here.
    specs.append(
        Spec(
            "norfair-reid:lib",
            _bind(
                NorfairTracker,
                True,
                distance_threshold=0.7,
                reid_hit_counter_max=keep_frames * 2,
            ),
            needs_vectors=True,
        )
    )
    specs.append(
        Spec(
            "norfair-reid:1st",
            _bind(
                NorfairTracker,
                True,
                distance_threshold=0.7,
                hit_counter_max=keep_frames,
                initialization_delay=1,
                reid_hit_counter_max=keep_frames * 2,
            ),
            needs_vectors=True,
        )
    )
    specs.append(
        Spec(
            "deepsort:lib",
            _bind(DeepSortTracker, max_cosine_distance=REID_DISTANCE),
            needs_vectors=True,
        )
    )
    specs.append(
        Spec(
            "deepsort:1st",
            _bind(
                DeepSortTracker,
                max_cosine_distance=REID_DISTANCE,
                n_init=1,
                max_age=keep_frames,
            ),
            needs_vectors=True,
        )
    )
    return specs


def _bind(cls: Callable[..., Tracker], *args: Any, **kwargs: Any) -> Callable[[], Tracker]:
    return lambda: cls(*args, **kwargs)


def product_spec(name: str = "product", **settings: Any) -> Spec:
    return Spec(name, _bind(ProductTracker, **settings), note=_settings_note(settings))


def _settings_note(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"


# ---------------------------------------------------------------------------------------- runs


@dataclass(slots=True)
class Result:
    name: str
    ids: dict[int, Ids] = field(default_factory=dict)  # frame index -> id per detection
    seconds: float = 0.0  # time inside the tracker, all frames
    frames: int = 0
    note: str = ""
    error: str = ""


def run_all(
    specs: Sequence[Spec], frames: Sequence[Frame], vectors: Mapping[int, Floats] | None
) -> list[Result]:
    """Step every tracker over the frames in lockstep (one decoding pass when one needs pixels)."""
    trackers = [s.make() for s in specs]
    results = [Result(s.name, note=s.note) for s in specs]
    by_index = {f.index: f for f in frames}
    source: Iterator[tuple[int, Image | None]]
    if any(s.needs_image for s in specs):
        source = ((i, im) for i, im in images() if i in by_index)
    else:
        source = ((f.index, None) for f in frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, image in source:
            frame = by_index[index]
            vecs = None if vectors is None else vectors[index]
            for spec, tracker, result in zip(specs, trackers, results, strict=True):
                if result.error:
                    continue
                started = time.perf_counter()
                try:
                    ids = tracker.step(
                        frame,
                        image if spec.needs_image else None,
                        vecs if spec.needs_vectors else None,
                    )
                except Exception as error:  # a library failing is a finding, not a crash
                    result.error = f"{type(error).__name__}: {error}"
                    continue
                result.seconds += time.perf_counter() - started
                result.frames += 1
                if len(ids) != len(frame.boxes):
                    result.error = f"frame {index}: {len(ids)} ids for {len(frame.boxes)} boxes"
                result.ids[index] = ids
    return results


def run_proposer(frames: Sequence[Frame]) -> Result:
    boxes = {f.index: f.boxes for f in frames}
    started = time.perf_counter()
    tracklets = label.propose(boxes)
    result = Result("proposer", seconds=time.perf_counter() - started, frames=len(frames))
    result.note = f"label.propose: link IoU {label.LINK_IOU}, one-to-one, uncrowded"
    result.ids = {f.index: [None] * len(f.boxes) for f in frames}
    for n, track in enumerate(tracklets):
        for key in track:
            result.ids[key.frame][key.index] = f"t{n}"
    return result


# ------------------------------------------------------------------------------------- scoring


def score(result: Result, frames: Sequence[Frame], labels: Labels) -> dict[str, Any]:
    """Tracker figures of one run on the labelled frames of ``labels`` (already restricted)."""
    import motmetrics as mm

    number: dict[str, int] = {}  # motmetrics wants numeric ids
    acc = mm.MOTAccumulator(auto_id=True)
    hota_frames: list[tuple[list[str], list[str], npt.NDArray[np.float64]]] = []
    boxes_of = {f.index: f.boxes for f in frames}
    tracks: set[str] = set()
    no_id = 0
    for index in sorted(labels.boxes):
        truth = [(b, p) for b, p in labels.boxes[index] if p is not None]
        hyps: list[tuple[Box4, str]] = []
        for box, track in zip(boxes_of.get(index, []), result.ids.get(index, []), strict=True):
            owner = who(labels, index, box)
            if owner == IGNORED:
                continue
            if track is None:
                no_id += 1
                continue
            hyps.append((box, track))
            tracks.add(track)
        overlaps = np.zeros((len(truth), len(hyps)))
        for r, (tb, _) in enumerate(truth):
            for c, (hb, _) in enumerate(hyps):
                overlaps[r, c] = iou(tb, hb)
        # 1 - IoU, no pair below IoU 0.5 (motmetrics' iou_matrix needs NumPy < 2).
        distances = np.where(overlaps >= 0.5, 1.0 - overlaps, np.nan)
        acc.update(
            [number.setdefault(p, len(number)) for _, p in truth],
            [number.setdefault(f"track:{t}", len(number)) for _, t in hyps],
            distances,
        )
        hota_frames.append(([p for _, p in truth], [t for _, t in hyps], overlaps))
    host = mm.metrics.create()
    names = [
        "idf1",
        "num_switches",
        "mota",
        "num_fragmentations",
        "num_transfer",
        "num_misses",
        "num_false_positives",
        "num_unique_objects",
    ]
    row = host.compute(acc, metrics=names, name="run").loc["run"]
    frames_n = max(result.frames, 1)
    return {
        "idf1": float(row["idf1"]),
        "id_switches": int(row["num_switches"]),
        "mota": float(row["mota"]),
        "fragmentations": int(row["num_fragmentations"]),
        "transfers": int(row["num_transfer"]),
        "misses": int(row["num_misses"]),
        "false_positives": int(row["num_false_positives"]),
        "people": int(row["num_unique_objects"]),
        "tracks": len(tracks),
        "no_id": no_id,
        **hota(hota_frames),
        "ms_per_frame": 1000.0 * result.seconds / frames_n,
    }


def hota(frames: Sequence[tuple[list[str], list[str], npt.NDArray[np.float64]]]) -> dict[str, Any]:
    """HOTA, DetA, AssA (averaged over trackeval's IoU thresholds); ``{}`` without trackeval."""
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # it prints its optional imports
            from trackeval.metrics import HOTA
    except ImportError:
        return {}
    gt_number: dict[str, int] = {}
    tr_number: dict[str, int] = {}
    gt_ids, tr_ids, sims = [], [], []
    for truth, hyps, overlaps in frames:
        gt_ids.append(np.array([gt_number.setdefault(p, len(gt_number)) for p in truth], int))
        tr_ids.append(np.array([tr_number.setdefault(t, len(tr_number)) for t in hyps], int))
        sims.append(overlaps)
    data = {
        "num_timesteps": len(frames),
        "num_gt_dets": sum(len(g) for g in gt_ids),
        "num_tracker_dets": sum(len(t) for t in tr_ids),
        "num_gt_ids": len(gt_number),
        "num_tracker_ids": len(tr_number),
        "gt_ids": gt_ids,
        "tracker_ids": tr_ids,
        "similarity_scores": sims,
    }
    res = HOTA().eval_sequence(data)
    return {
        "hota": float(np.mean(res["HOTA"])),
        "deta": float(np.mean(res["DetA"])),
        "assa": float(np.mean(res["AssA"])),
    }


# ---------------------------------------------------------------------------------- the table

COLUMNS = (
    ("IDF1", "idf1", "{:.3f}"),
    ("HOTA", "hota", "{:.3f}"),
    ("AssA", "assa", "{:.3f}"),
    ("IDsw", "id_switches", "{}"),
    ("transfers", "transfers", "{}"),
    ("MOTA", "mota", "{:.3f}"),
    ("frag", "fragmentations", "{}"),
    ("tracks", "tracks", "{}"),
    ("no id", "no_id", "{}"),
    ("ms/frame", "ms_per_frame", "{:.2f}"),
)


def table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    half_names = list(HALVES)
    head = "| tracker | " + " | ".join(
        f"{c} {h[0]}" for c, _, _ in COLUMNS if c != "ms/frame" for h in half_names
    )
    head += " | ms/frame |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, row in rows.items():
        if row.get("error"):
            lines.append(f"| {name} | failed: {row['error']} |")
            continue
        cells = []
        for _column, key, fmt in COLUMNS:
            if key == "ms_per_frame":
                continue
            for half in half_names:
                value = row[half].get(key)
                cells.append("-" if value is None else fmt.format(value))
        cells.append(f"{row['tuning']['ms_per_frame']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(results: Sequence[Result], frames: Sequence[Frame]) -> dict[str, dict[str, Any]]:
    labels = Labels.load(label.VIDEO)
    rows: dict[str, dict[str, Any]] = {}
    for result in results:
        row: dict[str, Any] = {"note": result.note}
        if result.error:
            row["error"] = result.error
        else:
            for half, (a, b) in HALVES.items():
                row[half] = score(result, frames, labels.restricted(a, b))
        rows[result.name] = row
    return rows


SWEEP: dict[str, tuple[Any, ...]] = {
    "iou_threshold": (0.1, 0.3, 0.4),  # default 0.2
    "max_centre_shift": (0.3, 1.0),  # default 0.6
    "max_age_s": (1.5, 6.0),  # default 3.0
}


def sweep(frames: Sequence[Frame]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Product settings one knob at a time, chosen on the tuning half only (IDF1, then fewer
    switches); the chosen values together. Returns (chosen settings, every row)."""
    specs = [
        product_spec(f"product {k}={v}", **{k: v}) for k, values in SWEEP.items() for v in values
    ]
    specs.insert(0, product_spec("product"))
    rows = evaluate(run_all(specs, frames, None), frames)
    chosen: dict[str, Any] = {}
    for knob, values in SWEEP.items():
        names = ["product"] + [f"product {knob}={v}" for v in values]
        best = max(
            names,
            key=lambda n: (rows[n]["tuning"]["idf1"], -rows[n]["tuning"]["id_switches"]),
        )
        if best != "product":
            chosen[knob] = next(v for v in values if best == f"product {knob}={v}")
    return chosen, rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="tune product settings (tuning half)")
    parser.add_argument("--only", nargs="*", help="run only trackers whose name starts so")
    args = parser.parse_args(argv)
    frames = load_frames()
    specs = [product_spec()]
    sweep_rows: dict[str, dict[str, Any]] = {}
    if args.sweep:
        chosen, sweep_rows = sweep(frames)
        print(f"sweep on the tuning half chose: {chosen or 'the defaults'}", file=sys.stderr)
        if chosen:
            specs.append(product_spec("product tuned", **chosen))
    specs += library_specs()
    if args.only:
        specs = [s for s in specs if s.name == "product" or s.name.startswith(tuple(args.only))]
    vectors = product_vectors(frames) if any(s.needs_vectors for s in specs) else None
    results = [run_proposer(frames), *run_all(specs, frames, vectors)]
    rows = evaluate(results, frames)
    WORK.mkdir(parents=True, exist_ok=True)
    text = (
        f"Trackers on {label.VIDEO}, every {label.STEP}rd frame ({len(frames)} frames, "
        f"{sum(len(f.boxes) for f in frames)} detector boxes); t = frames 0-899 (tuning), "
        f"h = 900-1798 (held out). ms/frame: time inside the tracker per frame (whole video).\n\n"
        + table(rows)
    )
    if sweep_rows:
        text += "\n\nProduct sweep (chosen on the tuning half):\n\n" + table(sweep_rows)
    notes = "\n".join(f"- {n}: {r['note']}" for n, r in rows.items() if r.get("note"))
    text += "\n\n" + notes + "\n"
    (WORK / "trackers.md").write_text(text)
    (WORK / "trackers.json").write_text(
        json.dumps({"rows": rows, "sweep": sweep_rows}, indent=1, default=float)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
