"""Hand-checked "who is who" labels for real street video, and the tools that made them.

The labels say, for every box the product's own detector finds on every 3rd frame of
``../shared/data/video/walk_bike_sample.mp4``, which person it is (``p01``, ``p02``, ...) or that
it is not one identifiable person (``null``). They were made in four steps (see ``LABELS.md``):

    python -m eval.realvideo.label propose    # detect (cached) + conservative tracklets
    python -m eval.realvideo.label montage    # PNG montages of every tracklet -> /tmp/gt/
    python -m eval.realvideo.label montage --frames 300 330   # full frames, boxes by tracklet
    python -m eval.realvideo.label montage --crossings         # neighbourhood of every crossing
    python -m eval.realvideo.label build --assign FILE         # tracklet -> person decisions
    python -m eval.realvideo.label check      # validate the label file, print a summary

``build`` reads the people and the tracklet decisions from ``--assign`` (by default the label file
itself, whose ``tracklets`` section is that decision list), so the labels can be rebuilt from the
proposal. A tracklet that changes person is split by frame: pieces ``t012a``, ``t012b``, ...
each with its own frame range. Scratch output (detections, proposal, montages) goes to
``$GT_WORK`` (default ``/tmp/gt``); video, frames and crops never go into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from smart_reid_server.demo import video_frames

from eval.data import shared_dir

VIDEO = "walk_bike_sample.mp4"
FPS = 29.97
STEP = 3
SIZE = (640, 360)
FRAMES = 1799
HALF = 900  # frames [0, 900): tuning half; [900, 1799): held-out half
VISIT_GAP = 180  # frames (6 s) without a box of a person start a new visit (longer than any
# detector gap of a still-visible person here, 144 frames; shorter than a leave-and-return)
KINDS = ("pedestrian", "cyclist")
# Why a tracklet is ignored, and how many people its boxes show (for presence: the truth counts
# labelled people only, and these are people the cameras really see).
IGNORED_KINDS = {"object": 0, "group": 2, "small": 1, "partial": 1}

LINK_IOU = 0.5  # consecutive sampled boxes must overlap at least this much to be linked
AMBIGUOUS_IOU = 0.2  # a second candidate above this breaks the link
CROWDED = 0.2  # intersection / smaller box area with another box of the same frame: no link

HERE = Path(__file__).resolve().parent
LABELS = HERE / "labels" / "walk_bike_sample.json"
WORK = Path(os.environ.get("GT_WORK", "/tmp/gt"))

Box4 = tuple[float, float, float, float]
Image = npt.NDArray[np.uint8]
_PIECE = re.compile(r"^(t\d{3,})([a-z]?)$")
_PERSON = re.compile(r"^p\d{2,}$")


def video_path() -> Path:
    return shared_dir() / "data" / "video" / VIDEO


def sampled_frames(path: Path, step: int = STEP) -> Iterator[tuple[int, Image]]:
    """(frame index, BGR image) of every ``step``-th frame: the server's demo reader."""
    if not path.is_file():
        raise SystemExit(f"{path}: cannot be opened")
    for index, _seconds, image in video_frames(path, step, 0):
        yield index, image


# ----------------------------------------------------------------------------------- detection


def detect(step: int = STEP) -> dict[str, Any]:
    """Every box of the product's default detector on every ``step``-th frame."""
    from smart_reid_server.config import load
    from smart_reid_server.models.download import ModelManager
    from smart_reid_server.vision.detect import Detector

    cfg = load(None, environ={})
    manager = ModelManager(shared_dir() / "models", WORK / "models", download=False)
    detector = Detector.from_config(cfg.section("models"), cfg.section("detect"), manager)
    description = (
        f"{detector.name} via smart_reid_server.vision.detect.Detector, product defaults: "
        f"score_threshold {detector.score_threshold}, nms_iou {detector.nms_iou}, "
        f"max_persons {detector.max_persons}; {detector.runtime} on {detector.device}; "
        f"every {step}rd frame decoded with cv2.VideoCapture"
    )
    frames: dict[str, list[list[float]]] = {}
    for index, image in sampled_frames(video_path(), step):
        frames[str(index)] = [
            [
                round(d.box.x1, 1),
                round(d.box.y1, 1),
                round(d.box.x2, 1),
                round(d.box.y2, 1),
                round(d.score, 3),
            ]
            for d in detector.detect(image)
        ]
    return {"video": VIDEO, "frame_step": step, "detector": description, "frames": frames}


def load_detections(refresh: bool = False) -> dict[str, Any]:
    cache = WORK / "detections.json"
    if cache.exists() and not refresh:
        data: dict[str, Any] = json.loads(cache.read_text())
        return data
    WORK.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = detect()
    print(
        f"detected {sum(map(len, data['frames'].values()))} boxes on "
        f"{len(data['frames'])} frames in {time.perf_counter() - start:.1f} s"
    )
    cache.write_text(json.dumps(data))
    return data


# ------------------------------------------------------------------------------------ tracklets


def iou(a: Box4, b: Box4) -> float:
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _area(a: Box4) -> float:
    return max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])


def _intersection(a: Box4, b: Box4) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def overlap(a: Box4, b: Box4) -> float:
    """Intersection over the smaller box: 1 when one box holds the other."""
    small = min(_area(a), _area(b))
    return _intersection(a, b) / small if small > 0 else 0.0


def crowded(boxes: Sequence[Box4], threshold: float = CROWDED) -> list[bool]:
    """Per box: does another box of the same frame cover a share of it (or it of that box)?"""
    return [
        any(overlap(a, b) >= threshold for j, b in enumerate(boxes) if j != i)
        for i, a in enumerate(boxes)
    ]


@dataclass(frozen=True, slots=True)
class Key:
    """One detector box: its sampled frame and its rank in that frame's detections."""

    frame: int
    index: int


def propose(frames: dict[int, list[Box4]], step: int = STEP) -> list[list[Key]]:
    """Conservative tracklets: link consecutive sampled boxes only when surely the same person.

    A box at frame f continues the tracklet of a box at f - step when their IoU is at least
    ``LINK_IOU``, neither has any other candidate with IoU above ``AMBIGUOUS_IOU`` (one-to-one,
    no choice), and neither overlaps another box of its own frame (``CROWDED``). Anything else,
    including one missed detection, ends the tracklet. Tracklets are sorted by first frame and
    left edge.
    """
    tracks: list[list[Key]] = []
    open_: dict[int, int] = {}  # box index at the previous sampled frame -> track
    previous: list[Box4] = []
    previous_crowded: list[bool] = []
    last = -step
    for frame in sorted(frames):
        boxes = frames[frame]
        busy = crowded(boxes)
        links: dict[int, int] = {}
        if frame - last == step and previous and boxes:
            m = np.array([[iou(p, c) for c in boxes] for p in previous], dtype=np.float64)
            for i in range(len(previous)):
                j = int(np.argmax(m[i]))
                if m[i, j] < LINK_IOU or previous_crowded[i] or busy[j]:
                    continue
                if np.count_nonzero(m[i] > AMBIGUOUS_IOU) != 1:
                    continue
                if np.count_nonzero(m[:, j] > AMBIGUOUS_IOU) != 1:
                    continue
                links[j] = open_[i]
        now: dict[int, int] = {}
        for j in range(len(boxes)):
            if j in links:
                track = links[j]
            else:
                track = len(tracks)
                tracks.append([])
            tracks[track].append(Key(frame, j))
            now[j] = track
        open_, previous, previous_crowded, last = now, boxes, busy, frame
    tracks.sort(key=lambda t: (t[0].frame, frames[t[0].frame][t[0].index][0]))
    return tracks


def frames_of(detections: dict[str, Any]) -> dict[int, list[Box4]]:
    return {
        int(f): [(b[0], b[1], b[2], b[3]) for b in boxes]
        for f, boxes in detections["frames"].items()
    }


def proposal(refresh: bool = False) -> dict[str, Any]:
    """Detections (cached in ``$GT_WORK``) and their tracklets, written to proposal.json."""
    detections = load_detections(refresh)
    frames = frames_of(detections)
    start = time.perf_counter()
    tracks = propose(frames)
    took = time.perf_counter() - start
    scores = {int(f): [b[4] for b in boxes] for f, boxes in detections["frames"].items()}
    rows: list[list[Any]] = []
    tracklets: dict[str, list[int]] = {}
    for n, track in enumerate(tracks, 1):
        tid = f"t{n:03d}"
        tracklets[tid] = [track[0].frame, track[-1].frame, len(track)]
        rows.extend(
            [k.frame, *frames[k.frame][k.index], scores[k.frame][k.index], tid] for k in track
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    data = {
        "detector": detections["detector"],
        "boxes": rows,
        "tracklets": tracklets,
        "tracker": {"link_iou": LINK_IOU, "ambiguous_iou": AMBIGUOUS_IOU, "crowded": CROWDED},
    }
    (WORK / "proposal.json").write_text(json.dumps(data))
    lengths = np.array([t[2] for t in tracklets.values()])
    print(
        f"{len(rows)} boxes -> {len(tracklets)} tracklets in {took:.2f} s (tracker only); "
        f"length median {np.median(lengths):.0f}, >= 10 boxes: {int((lengths >= 10).sum())}, "
        f"single boxes: {int((lengths == 1).sum())}"
    )
    return data


def load_proposal() -> dict[str, Any]:
    path = WORK / "proposal.json"
    if not path.exists():
        raise SystemExit(f"{path} missing: run `python -m eval.realvideo.label propose` first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# -------------------------------------------------------------------------------------- montage

_CELL_W, _CELL_H, _TEXT_W, _THUMB_W = 88, 160, 118, 192
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _color(name: str) -> tuple[int, int, int]:
    h = sum(ord(c) * 31**i for i, c in enumerate(name)) % 360
    hsv = np.array([[[h // 2, 255, 255]]], dtype=np.uint8)
    b, g, r = np.asarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))[0, 0]
    return int(b), int(g), int(r)


def _crop(image: Image, box: Box4) -> Image:
    """The box with 15% context, its outline drawn, fitted into one montage cell."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx1, cy1 = max(0, int(x1 - 0.15 * w)), max(0, int(y1 - 0.15 * h))
    cx2, cy2 = (
        min(image.shape[1], int(x2 + 0.15 * w) + 1),
        min(image.shape[0], int(y2 + 0.15 * h) + 1),
    )
    crop = image[cy1:cy2, cx1:cx2].copy()
    cv2.rectangle(
        crop, (int(x1) - cx1, int(y1) - cy1), (int(x2) - cx1, int(y2) - cy1), (0, 200, 255), 1
    )
    scale = min(_CELL_W / crop.shape[1], (_CELL_H - 14) / crop.shape[0])
    crop = _resize(crop, max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale)))
    cell = np.full((_CELL_H, _CELL_W, 3), 40, np.uint8)
    cell[: crop.shape[0], : crop.shape[1]] = crop
    return cell


def _thumb(image: Image, boxes: Sequence[Box4]) -> Image:
    small = image.copy()
    for i, b in enumerate(boxes):
        color = (0, 255, 0) if i == 0 else (0, 0, 255)
        cv2.rectangle(small, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), color, 3)
    return _resize(small, _THUMB_W, _THUMB_W * SIZE[1] // SIZE[0])


def _resize(image: Image, width: int, height: int) -> Image:
    return np.asarray(cv2.resize(image, (width, height)), dtype=np.uint8)


def tracklet_montages(
    out: Path, per_row: int = 10, rows_per_page: int = 6, only: set[str] | None = None
) -> list[Path]:
    """One row per tracklet: id, frames, a thumbnail (first box green, last red), crops."""
    data = load_proposal()
    by_track: dict[str, list[tuple[int, Box4]]] = defaultdict(list)
    for r in data["boxes"]:
        by_track[r[6]].append((r[0], (r[1], r[2], r[3], r[4])))
    tids = sorted(t for t in by_track if only is None or t in only)
    wanted: dict[int, list[tuple[str, int, Box4]]] = defaultdict(list)  # frame -> (tid, slot, box)
    thumbs: dict[str, Image] = {}
    for tid in tids:
        life = by_track[tid]
        picks = sorted({round(x) for x in np.linspace(0, len(life) - 1, min(per_row, len(life)))})
        for slot, i in enumerate(picks):
            wanted[life[i][0]].append((tid, slot, life[i][1]))
    cells: dict[tuple[str, int], Image] = {}
    frame_of: dict[tuple[str, int], int] = {}
    for index, image in sampled_frames(video_path()):
        for tid, slot, box in wanted.get(index, []):
            cells[tid, slot] = _crop(image, box)
            frame_of[tid, slot] = index
            if slot == 0:
                life = by_track[tid]
                thumbs[tid] = _thumb(image, [life[0][1], life[-1][1]])
    out.mkdir(parents=True, exist_ok=True)
    pages: list[Path] = []
    row_h = _CELL_H + 4
    width = _TEXT_W + _THUMB_W + per_row * _CELL_W
    for p in range(0, len(tids), rows_per_page):
        page = np.full((row_h * rows_per_page, width, 3), 255, np.uint8)
        for r, tid in enumerate(tids[p : p + rows_per_page]):
            life = by_track[tid]
            y = r * row_h
            first, last = life[0], life[-1]
            lines = [
                tid,
                f"{first[0]}-{last[0]}",
                f"n={len(life)}",
                f"x {first[1][0]:.0f}->{last[1][0]:.0f}",
                f"h {first[1][3] - first[1][1]:.0f}->{last[1][3] - last[1][1]:.0f}",
            ]
            for k, text in enumerate(lines):
                scale = 0.7 if k == 0 else 0.5
                cv2.putText(
                    page, text, (4, y + 22 + 24 * k), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA
                )
            thumb = thumbs[tid]
            page[y : y + thumb.shape[0], _TEXT_W : _TEXT_W + _THUMB_W] = thumb
            for slot in range(per_row):
                if (tid, slot) not in cells:
                    continue
                x = _TEXT_W + _THUMB_W + slot * _CELL_W
                cell = cells[tid, slot]
                cv2.putText(
                    cell,
                    str(frame_of[tid, slot]),
                    (2, _CELL_H - 3),
                    _FONT,
                    0.4,
                    (255, 255, 255),
                    1,
                    cv2.LINE_AA,
                )
                page[y : y + _CELL_H, x : x + _CELL_W] = cell
            cv2.line(page, (0, y + row_h - 2), (width, y + row_h - 2), (160, 160, 160), 1)
        path = out / f"tracklets_{p // rows_per_page + 1:03d}.png"
        cv2.imwrite(str(path), page)
        pages.append(path)
    return pages


def frame_montages(
    out: Path,
    first: int,
    last: int,
    every: int = STEP,
    region: Box4 | None = None,
    tiles: int = 4,
    colors: dict[str, str] | None = None,
    people: dict[tuple[int, float, float], str | None] | None = None,
) -> list[Path]:
    """Full frames (or ``region``, enlarged) with every box drawn and named by its tracklet
    number; boxes of one suggested chain (``colors``: tracklet -> chain) share a colour.
    With ``people`` ((frame, x1, y1) -> person or None, from the label file) boxes are named
    and coloured by person instead ("-" for ignored boxes)."""
    data = load_proposal()
    rows_at: dict[int, list[list[Any]]] = defaultdict(list)
    for r in data["boxes"]:
        rows_at[r[0]].append(r)
    shots: list[tuple[int, Image]] = []
    for index, image in sampled_frames(video_path()):
        if index > last:
            break
        if index < first or (index - first) % every:
            continue
        canvas = image.copy()
        scale, ox, oy = 1.0, 0.0, 0.0
        if region is not None:
            x1, y1, x2, y2 = (int(v) for v in region)
            canvas = canvas[y1:y2, x1:x2]
            scale = min(640 / canvas.shape[1], 360 / canvas.shape[0])
            canvas = _resize(canvas, int(canvas.shape[1] * scale), int(canvas.shape[0] * scale))
            pad = np.full((360, 640, 3), 40, np.uint8)
            pad[: canvas.shape[0], : canvas.shape[1]] = canvas
            canvas, ox, oy = pad, x1, y1
        for r in rows_at.get(index, []):
            color = _color(colors.get(r[6], r[6]) if colors else r[6])
            text = r[6][1:].lstrip("0")
            if people is not None:
                pid = people.get((r[0], r[1], r[2]))
                text = pid or "-"
                color = _color(pid * 3) if pid else (128, 128, 128)
            p1 = (int((r[1] - ox) * scale), int((r[2] - oy) * scale))
            p2 = (int((r[3] - ox) * scale), int((r[4] - oy) * scale))
            cv2.rectangle(canvas, p1, p2, color, 2)
            org = (p1[0] + 2, max(14, p1[1] + 16))
            cv2.putText(canvas, text, org, _FONT, 0.6, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(canvas, text, org, _FONT, 0.6, color, 2, cv2.LINE_AA)
        cv2.putText(canvas, f"{index}", (8, 350), _FONT, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(canvas, f"{index}", (8, 350), _FONT, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        shots.append((index, canvas))
    out.mkdir(parents=True, exist_ok=True)
    pages: list[Path] = []
    per_row = 2 if tiles <= 4 else 3
    for p in range(0, len(shots), tiles):
        group = [s for _, s in shots[p : p + tiles]]
        while len(group) % per_row:
            group.append(np.zeros_like(group[0]))
        grid = np.vstack([np.hstack(group[i : i + per_row]) for i in range(0, len(group), per_row)])
        path = out / f"frames_{shots[p][0]:04d}.png"
        cv2.imwrite(str(path), grid)
        pages.append(path)
    return pages


def crossings(min_overlap: float = 0.05) -> list[tuple[int, int, set[str], Box4]]:
    """Groups of tracklets whose boxes touch in the same frame, or hand over (one ends where
    another starts one sampled frame later): (first frame, last frame, tracklets, region)."""
    data = load_proposal()
    rows_at: dict[int, list[list[Any]]] = defaultdict(list)
    for r in data["boxes"]:
        rows_at[r[0]].append(r)
    events: list[tuple[int, str, str, Box4]] = []
    spans = {t: (v[0], v[1]) for t, v in data["tracklets"].items()}
    for frame, rows in rows_at.items():
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                if overlap(tuple(a[1:5]), tuple(b[1:5])) >= min_overlap:
                    events.append((frame, a[6], b[6], _union(a[1:5], b[1:5])))
            if spans[a[6]][0] == frame:  # a starts here: was it near a box one step earlier?
                for b in rows_at.get(frame - STEP, []):
                    if b[6] != a[6] and iou(tuple(a[1:5]), tuple(b[1:5])) > 0.1:
                        events.append((frame, b[6], a[6], _union(a[1:5], b[1:5])))
    events.sort()
    groups: list[tuple[int, int, set[str], Box4]] = []
    for frame, one, two, box in events:
        for g, (f0, f1, tids, region) in enumerate(groups):
            if frame - f1 <= 5 * STEP and (one in tids or two in tids) and iou(region, box) > 0:
                groups[g] = (f0, frame, tids | {one, two}, _union(region, box))
                break
        else:
            groups.append((frame, frame, {one, two}, box))
    return groups


def chains(max_gap: int = 4 * STEP, min_iou: float = 0.15) -> list[list[str]]:
    """Loose suggestion (never a label): tracklets that probably continue one another.

    Greedy, one-to-one, best IoU first between a tracklet's last box moved on by its last
    velocity and a later tracklet's first box at most ``max_gap`` frames on. Only a reading aid
    for the montages: every link is checked by eye."""
    data = load_proposal()
    by_track: dict[str, list[tuple[int, Box4]]] = defaultdict(list)
    for r in data["boxes"]:
        by_track[r[6]].append((r[0], (r[1], r[2], r[3], r[4])))
    pairs: list[tuple[float, str, str]] = []
    for a, life in by_track.items():
        fa, box = life[-1]
        vel = np.zeros(4)
        if len(life) > 1:
            vel = (np.array(box) - np.array(life[-2][1])) / (fa - life[-2][0])
        for b, other in by_track.items():
            fb, first = other[0]
            if 0 < fb - fa <= max_gap:
                moved = np.array(box) + vel * (fb - fa)
                score = iou((moved[0], moved[1], moved[2], moved[3]), first)
                if score >= min_iou:
                    pairs.append((score, a, b))
    nxt: dict[str, str] = {}
    prv: dict[str, str] = {}
    for _, a, b in sorted(pairs, reverse=True):
        if a not in nxt and b not in prv:
            nxt[a], prv[b] = b, a
    out: list[list[str]] = []
    for t in sorted(by_track):
        if t in prv:
            continue
        chain = [t]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        out.append(chain)
    return out


def chain_montages(out: Path, per_row: int = 12, rows_per_page: int = 7) -> list[Path]:
    """Each chain of tracklets: first and last crop of every member, named tid@frame."""
    data = load_proposal()
    by_track: dict[str, list[tuple[int, Box4]]] = defaultdict(list)
    for r in data["boxes"]:
        by_track[r[6]].append((r[0], (r[1], r[2], r[3], r[4])))
    groups = chains()
    (WORK / "chains.txt").write_text(
        "\n".join(f"k{n:03d} " + " ".join(c) for n, c in enumerate(groups, 1)) + "\n"
    )
    rows: list[tuple[str, list[tuple[str, int, Box4]]]] = []
    for n, chain in enumerate(groups, 1):
        shots: list[tuple[str, int, Box4]] = []
        for t in chain:
            life = by_track[t]
            picks = [life[0]] if len(life) == 1 else [life[0], life[-1]]
            if len(chain) == 1 and len(life) > 2:
                idx = np.linspace(0, len(life) - 1, min(per_row, len(life)))
                picks = [life[round(i)] for i in sorted(set(idx.round()))]
            shots.extend((t, f, b) for f, b in picks)
        for k in range(0, len(shots), per_row):
            rows.append((f"k{n:03d}" + ("" if k == 0 else "+"), shots[k : k + per_row]))
    wanted: dict[int, list[tuple[int, int, Box4]]] = defaultdict(list)
    for r, (_, shots) in enumerate(rows):
        for slot, (_, f, b) in enumerate(shots):
            wanted[f].append((r, slot, b))
    cells: dict[tuple[int, int], Image] = {}
    for index, image in sampled_frames(video_path()):
        for r, slot, b in wanted.get(index, []):
            cells[r, slot] = _crop(image, b)
    out.mkdir(parents=True, exist_ok=True)
    pages: list[Path] = []
    row_h, text_w = _CELL_H + 4, 70
    width = text_w + per_row * _CELL_W
    for p in range(0, len(rows), rows_per_page):
        page = np.full((row_h * rows_per_page, width, 3), 255, np.uint8)
        for i, (name, shots) in enumerate(rows[p : p + rows_per_page]):
            y = i * row_h
            cv2.putText(page, name, (3, y + 24), _FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
            for slot, (t, f, b) in enumerate(shots):
                cell = cells[p + i, slot].copy()
                cv2.rectangle(cell, (0, _CELL_H - 26), (_CELL_W, _CELL_H), (0, 0, 0), -1)
                cv2.putText(
                    cell,
                    f"{t} {b[0]:.0f}",
                    (2, _CELL_H - 15),
                    _FONT,
                    0.38,
                    (255, 255, 255),
                    1,
                    cv2.LINE_AA,
                )
                cv2.putText(
                    cell, f"@{f}", (2, _CELL_H - 3), _FONT, 0.38, (255, 255, 255), 1, cv2.LINE_AA
                )
                x = text_w + slot * _CELL_W
                page[y : y + _CELL_H, x : x + _CELL_W] = cell
            cv2.line(page, (0, y + row_h - 2), (width, y + row_h - 2), (160, 160, 160), 1)
        path = out / f"chains_{p // rows_per_page + 1:03d}.png"
        cv2.imwrite(str(path), page)
        pages.append(path)
    return pages


def _union(a: Sequence[float], b: Sequence[float]) -> Box4:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


# ----------------------------------------------------------------------------------- the labels


def build(assign: dict[str, Any]) -> dict[str, Any]:
    """The label file from the proposal and the hand decisions (people, tracklet -> person)."""
    data = load_proposal()
    pieces: dict[str, list[tuple[str, int, int, str | None]]] = defaultdict(list)
    for name, t in assign["tracklets"].items():
        m = _PIECE.match(name)
        if m is None:
            raise SystemExit(f"bad tracklet name {name!r}")
        pieces[m.group(1)].append((name, t["frames"][0], t["frames"][1], t["person"]))
        if t["person"] is None and t.get("ignored") not in IGNORED_KINDS:
            raise SystemExit(f"{name}: an ignored tracklet needs 'ignored' in {IGNORED_KINDS}")
    unknown = set(pieces) - set(data["tracklets"])
    undecided = set(data["tracklets"]) - set(pieces)
    if unknown or undecided:
        raise SystemExit(f"unknown tracklets {sorted(unknown)}, undecided {sorted(undecided)}")
    boxes: list[list[Any]] = []
    ignored_people: list[list[Any]] = []
    used: dict[str, list[int]] = defaultdict(list)
    for r in data["boxes"]:
        hits = [p for p in pieces[r[6]] if p[1] <= r[0] <= p[2]]
        if len(hits) != 1:
            raise SystemExit(f"{r[6]} at frame {r[0]}: {len(hits)} pieces cover it")
        used[hits[0][0]].append(r[0])
        boxes.append([r[0], *r[1:5], hits[0][3]])
        if hits[0][3] is None:
            shown = IGNORED_KINDS[assign["tracklets"][hits[0][0]]["ignored"]]
            if shown:
                ignored_people.append([r[0], *r[1:5], shown])
    tracklets: dict[str, dict[str, Any]] = {}
    for name in sorted(assign["tracklets"]):
        frames = used.get(name)
        if not frames:
            raise SystemExit(f"{name} covers no box")
        tracklets[name] = {
            "person": assign["tracklets"][name]["person"],
            "frames": [min(frames), max(frames)],
        }
        if tracklets[name]["person"] is None:
            tracklets[name]["ignored"] = assign["tracklets"][name]["ignored"]
    label: dict[str, Any] = {
        "video": VIDEO,
        "fps": FPS,
        "frame_step": STEP,
        "size": list(SIZE),
        "detector": data["detector"],
        "people": assign["people"],
        "boxes": boxes,
    }
    if assign.get("missed"):
        label["missed"] = assign["missed"]
    # Ignored boxes that show people (two in one box, too small or too cut off to tell who):
    # [frame, x1, y1, x2, y2, how many people]. Presence scoring allows for them.
    label["ignored_people"] = ignored_people
    label["tracklets"] = tracklets
    return label


def dump(label: dict[str, Any]) -> str:
    """JSON with one line per box, person and tracklet (readable diffs)."""

    def block(key: str, value: Any) -> str:
        if isinstance(value, list) and value and isinstance(value[0], list):
            inner = ",\n    ".join(json.dumps(v) for v in value)
            return f'  "{key}": [\n    {inner}\n  ]'
        if isinstance(value, dict) and value:
            inner = ",\n    ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            return f'  "{key}": {{\n    {inner}\n  }}'
        return f"  {json.dumps(key)}: {json.dumps(value)}"

    return "{\n" + ",\n".join(block(k, v) for k, v in label.items()) + "\n}\n"


def visits(frames: Sequence[int], gap: int = VISIT_GAP) -> list[tuple[int, int]]:
    """Runs of a person's frames with no hole longer than ``gap`` frames."""
    runs: list[tuple[int, int]] = []
    for f in sorted(frames):
        if runs and f - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    return runs


def validate(label: dict[str, Any]) -> list[str]:
    """Everything wrong with a label file (empty: valid)."""
    errors: list[str] = []
    expected = {"video": VIDEO, "fps": FPS, "frame_step": STEP, "size": list(SIZE)}
    for key, value in expected.items():
        if label.get(key) != value:
            errors.append(f"{key}: {label.get(key)!r}, expected {value!r}")
    for key in ("detector", "people", "boxes", "tracklets"):
        if key not in label:
            errors.append(f"missing {key}")
    if errors:
        return errors
    extra = set(label) - {
        *expected,
        "detector",
        "people",
        "boxes",
        "tracklets",
        "missed",
        "ignored_people",
    }
    if extra:
        errors.append(f"unexpected keys {sorted(extra)}")
    people: dict[str, Any] = label["people"]
    for pid, p in people.items():
        if not _PERSON.match(pid):
            errors.append(f"bad person id {pid!r}")
        if p.get("kind") not in KINDS or not p.get("note"):
            errors.append(f"{pid}: needs kind in {KINDS} and a note")
    seen: set[str] = set()
    per_frame: dict[int, list[str]] = defaultdict(list)
    for row in [*label["boxes"], *label.get("missed", [])]:
        if len(row) != 6:
            errors.append(f"box {row}: expected [frame, x1, y1, x2, y2, person]")
            continue
        f, x1, y1, x2, y2, pid = row
        if not (isinstance(f, int) and 0 <= f < FRAMES and f % STEP == 0):
            errors.append(f"box {row}: frame not a sampled frame")
        if not (0 <= x1 < x2 <= SIZE[0] and 0 <= y1 < y2 <= SIZE[1]):
            errors.append(f"box {row}: outside the image or empty")
        if pid is not None and pid not in people:
            errors.append(f"box {row}: unknown person")
        if pid is not None:
            seen.add(pid)
    for row in label["boxes"]:
        if len(row) == 6 and row[5] is not None:
            per_frame[row[0]].append(row[5])
    for f, pids in per_frame.items():
        twice = sorted({p for p in pids if pids.count(p) > 1})
        if twice:
            errors.append(f"frame {f}: {twice} labelled on two boxes")
    missed = [r for r in label.get("missed", []) if len(r) == 6]
    for r in missed:
        if r[5] is None:
            errors.append(f"missed box {r}: needs a person")
        if r[5] in per_frame.get(r[0], []):
            errors.append(f"missed box {r}: person already has a detector box in that frame")
    unused = set(people) - seen
    if unused:
        errors.append(f"people without boxes: {sorted(unused)}")
    for tid, t in label["tracklets"].items():
        if not _PIECE.match(tid) or (t.get("person") is not None and t["person"] not in people):
            errors.append(f"tracklet {tid}: bad id or person")
        if t.get("person") is None and t.get("ignored") not in IGNORED_KINDS:
            errors.append(f"tracklet {tid}: ignored without a reason in {sorted(IGNORED_KINDS)}")
    null_boxes = {tuple(r[:5]) for r in label["boxes"] if len(r) == 6 and r[5] is None}
    for row in label.get("ignored_people", []):
        if len(row) != 6 or tuple(row[:5]) not in null_boxes or row[5] not in (1, 2):
            errors.append(f"ignored_people {row}: not an ignored box with 1 or 2 people")
    cache = WORK / "detections.json"
    if cache.exists():
        dets = json.loads(cache.read_text())["frames"]
        mine = sorted(tuple(r[:5]) for r in label["boxes"])
        theirs = sorted((int(f), *b[:4]) for f, bs in dets.items() for b in bs)
        if mine != theirs:
            errors.append(f"boxes differ from {cache} ({len(mine)} vs {len(theirs)})")
    return errors


def summary(label: dict[str, Any]) -> str:
    boxes = label["boxes"]
    by_person: dict[str, list[int]] = defaultdict(list)
    for r in boxes:
        if r[5] is not None:
            by_person[r[5]].append(r[0])
    kinds: dict[str, int] = defaultdict(int)
    for p in label["people"].values():
        kinds[p["kind"]] += 1
    nulls = sum(r[5] is None for r in boxes)
    tracklets = label["tracklets"]
    lines = [
        f"{label['video']}: {len(label['people'])} people "
        f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), "
        f"{len(tracklets)} tracklets ({sum(t['person'] is None for t in tracklets.values())} "
        f"ignored), {len(boxes)} boxes ({len(boxes) - nulls} labelled, {nulls} null), "
        f"{len(label.get('missed', []))} missed boxes added",
        f"{'person':7} {'kind':10} {'boxes':>5} {'frames':>11} {'visits':>6}  note",
    ]
    halves = {"tuning 0-899": (0, HALF), "held-out 900-1798": (HALF, FRAMES)}
    half_people: dict[str, set[str]] = {h: set() for h in halves}
    half_visits: dict[str, int] = dict.fromkeys(halves, 0)
    total_visits = 0
    for pid in sorted(by_person):
        frames = by_person[pid]
        runs = visits(frames)
        total_visits += len(runs)
        p = label["people"][pid]
        lines.append(
            f"{pid:7} {p['kind']:10} {len(frames):5} {min(frames):5}-{max(frames):5} "
            f"{len(runs):6}  {p['note']}"
        )
        for h, (a, b) in halves.items():
            inside = [f for f in frames if a <= f < b]
            if inside:
                half_people[h].add(pid)
                half_visits[h] += len(visits(inside))
    lines.append(f"visits (gap > {VISIT_GAP} frames splits): {total_visits}")
    both = half_people["tuning 0-899"] & half_people["held-out 900-1798"]
    for h in halves:
        n_boxes = sum(halves[h][0] <= r[0] < halves[h][1] for r in boxes if r[5] is not None)
        lines.append(
            f"{h}: {len(half_people[h])} people, {half_visits[h]} visits, {n_boxes} labelled boxes"
        )
    lines.append(f"people in both halves (a visit cut at frame {HALF}): {sorted(both)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.realvideo.label", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("propose", help="detect (cached in $GT_WORK) and propose tracklets")
    p.add_argument("--redetect", action="store_true", help="run the detector again")
    m = sub.add_parser("montage", help="PNG montages into $GT_WORK/montage")
    m.add_argument("--tracklets", nargs="*", help="only these tracklets")
    m.add_argument(
        "--frames",
        nargs=2,
        type=int,
        metavar=("FIRST", "LAST"),
        help="full frames with all boxes instead of tracklet rows",
    )
    m.add_argument("--every", type=int, default=STEP, help="with --frames: frame spacing")
    m.add_argument("--tiles", type=int, default=4, help="with --frames: frames per page")
    m.add_argument("--region", nargs=4, type=float, help="with --frames: x1 y1 x2 y2 to enlarge")
    m.add_argument("--crossings", action="store_true", help="neighbourhood of every crossing")
    m.add_argument("--chains", action="store_true", help="suggested chains of tracklets")
    m.add_argument("--labels", action="store_true", help="with --frames: name boxes by person")
    b = sub.add_parser("build", help="write the label file from the tracklet decisions")
    b.add_argument("--assign", type=Path, default=LABELS, help="people + tracklets JSON")
    sub.add_parser("check", help="validate the label file and print a summary")
    args = parser.parse_args(argv)

    if args.command == "propose":
        start = time.perf_counter()
        proposal(args.redetect)
        print(f"propose took {time.perf_counter() - start:.1f} s; wrote {WORK / 'proposal.json'}")
    elif args.command == "montage":
        out = WORK / "montage"
        if args.crossings:
            groups = crossings()
            lines = []
            for n, (f0, f1, tids, region) in enumerate(groups, 1):
                x1, y1, x2, y2 = region
                pad_x, pad_y = 0.3 * (x2 - x1) + 10, 0.2 * (y2 - y1) + 10
                region = (
                    max(0, x1 - pad_x),
                    max(0, y1 - pad_y),
                    min(SIZE[0], x2 + pad_x),
                    min(SIZE[1], y2 + pad_y),
                )
                lines.append(
                    f"c{n:03d} {f0}-{f1} {' '.join(sorted(tids))} "
                    f"region {' '.join(f'{v:.0f}' for v in region)}"
                )
            (WORK / "crossings.txt").write_text("\n".join(lines) + "\n")
            print(f"{len(groups)} crossings -> {WORK / 'crossings.txt'}")
        elif args.chains:
            pages = chain_montages(out)
            print(f"{len(pages)} pages in {out}; chains in {WORK / 'chains.txt'}")
        elif args.frames:
            colors = None
            people = None
            if args.labels:
                label = json.loads(LABELS.read_text())
                people = {(b[0], b[1], b[2]): b[5] for b in label["boxes"]}
            elif (WORK / "chains.txt").exists():
                colors = {
                    t: line.split()[0]
                    for line in (WORK / "chains.txt").read_text().splitlines()
                    for t in line.split()[1:]
                }
            pages = frame_montages(
                out / f"{'l' if args.labels else 'f'}{args.frames[0]}",
                args.frames[0],
                args.frames[1],
                args.every,
                tuple(args.region) if args.region else None,
                args.tiles,
                colors,
                people,
            )
            print("\n".join(map(str, pages)))
        else:
            pages = tracklet_montages(out, only=set(args.tracklets) if args.tracklets else None)
            print(f"{len(pages)} pages in {out}")
    elif args.command == "build":
        label = build(json.loads(args.assign.read_text()))
        errors = validate(label)
        if errors:
            print("\n".join(errors), file=sys.stderr)
            return 1
        LABELS.parent.mkdir(parents=True, exist_ok=True)
        LABELS.write_text(dump(label))
        print(f"wrote {LABELS}")
    elif args.command == "check":
        label = json.loads(LABELS.read_text())
        errors = validate(label)
        print(summary(label) if not errors else "\n".join(errors))
        return 1 if errors else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
