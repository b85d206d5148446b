"""Who is who among the detector's boxes of the scripted scene, and how many people it finds.

The product's detector (``Detector.from_config`` with the default settings, as in
``eval/realvideo/label.py``) runs on every frame of every camera; its boxes are memoised by pixel
hash in the same memo the replay's server uses, so the server sees exactly these boxes. A box is
a person when it overlaps their truth box (the pasted crop clipped to the picture, or the box of
what nearer people leave visible) with IoU >= 0.5, one box to one person, best overlaps first.
A box that matches nobody, or in which another person's visible pixels cover a quarter or more,
is ``None`` (two people in one box), as the hand labels of the street film do. The result is a
``eval.realvideo.metrics.Labels`` (frame index -> boxes in the side-by-side coordinates of the
replay, ``hall`` at x 0-639, ``yard`` at 640-1279), which ``metrics.score`` scores like the
street film's labels.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eval.realvideo.metrics import Box4, Labels, iou
from eval.synthvideo.scene import CAMERAS, WIDTH, Rendered, Scene, Truth

OTHER_SHARE = 0.25  # another person's visible pixels covering this share of a box: two people
WHOLE = "whole, in view"
COLUMNS: dict[str, tuple[int, int]] = {
    c: (i * WIDTH, (i + 1) * WIDTH) for i, c in enumerate(CAMERAS)
}


def overlap(box: Box4, truth: Truth) -> float:
    best = iou(box, truth.box)
    if truth.visible is not None:
        best = max(best, iou(box, truth.visible))
    return best


def label_frame(boxes: Sequence[Box4], rendered: Rendered) -> tuple[list[str | None], list[int]]:
    """Each box's person (or None), and for each truth the index of its box (or -1)."""
    pairs = sorted(
        ((overlap(b, t), i, j) for i, b in enumerate(boxes) for j, t in enumerate(rendered.truths)),
        reverse=True,
    )
    owner_of_box: list[int] = [-1] * len(boxes)
    box_of_truth: list[int] = [-1] * len(rendered.truths)
    for score, i, j in pairs:
        if score < 0.5:
            break
        if owner_of_box[i] < 0 and box_of_truth[j] < 0:
            owner_of_box[i], box_of_truth[j] = j, i
    names: list[str | None] = []
    for i, b in enumerate(boxes):
        j = owner_of_box[i]
        if j < 0:
            names.append(None)
            continue
        x1, y1 = max(int(b[0]), 0), max(int(b[1]), 0)
        x2, y2 = int(np.ceil(b[2])), int(np.ceil(b[3]))
        inside = rendered.owner[y1:y2, x1:x2]
        area = max(inside.size, 1)
        counts = np.bincount(inside.ravel() + 1, minlength=len(rendered.truths) + 1)[1:]
        others = [c for n, c in enumerate(counts) if n != j]
        names.append(
            None if others and max(others) >= OTHER_SHARE * area else rendered.truths[j].person
        )
    return names, box_of_truth


def category(truth: Truth) -> str:
    """What a truth box shows: the whole person, a person cut by the picture's side, or a person
    partly or mostly behind someone nearer."""
    if truth.occluded >= 0.5:
        return "mostly hidden (>= 50 %)"
    if truth.occluded >= 0.1:
        return "partly hidden (10-50 %)"
    if truth.in_frame < 0.5:
        return "cut by the side, < 50 % in view"
    if truth.in_frame < 0.999:
        return "cut by the side, >= 50 % in view"
    return WHOLE


@dataclass(slots=True)
class SceneTruth:
    """Detector boxes with their people, per camera and frame, and the detector's recall."""

    boxes: dict[tuple[str, int], list[tuple[Box4, str | None]]] = field(default_factory=dict)
    found: Counter[str] = field(default_factory=Counter)  # category -> truths with a box
    total: Counter[str] = field(default_factory=Counter)  # category -> truths
    # (person, event) -> frames with a labelled box, per camera
    seen: dict[tuple[str, str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    unmatched_boxes: int = 0
    two_people_boxes: int = 0
    whole: Counter[str] = field(default_factory=Counter)  # person -> whole, in-view truths
    whole_found: Counter[str] = field(default_factory=Counter)

    def add(
        self, camera: str, k: int, boxes: Sequence[Box4], rendered: Rendered, walks: Any
    ) -> None:
        names, box_of_truth = label_frame(boxes, rendered)
        self.boxes[(camera, k)] = list(zip(boxes, names, strict=True))
        for truth, i in zip(rendered.truths, box_of_truth, strict=True):
            kind = category(truth)
            self.total[kind] += 1
            self.found[kind] += i >= 0
            if kind == WHOLE:
                self.whole[truth.person] += 1
                self.whole_found[truth.person] += i >= 0
            if i >= 0 and names[i] == truth.person:
                self.seen[(truth.person, camera, walks[truth.walk].event)].append(k)
        for i, name in enumerate(names):
            if name is None:
                if i in box_of_truth:
                    self.two_people_boxes += 1
                else:
                    self.unmatched_boxes += 1

    def recall(self) -> dict[str, Any]:
        """Share of truth boxes the detector found (IoU >= 0.5), by category; "detectable" is
        every person at least half in view and less than half hidden."""
        rows = {k: {"truths": self.total[k], "found": self.found[k]} for k in sorted(self.total)}
        detectable = [
            k
            for k in self.total
            if k not in ("mostly hidden (>= 50 %)", "cut by the side, < 50 % in view")
        ]
        found = sum(self.found[k] for k in detectable)
        total = sum(self.total[k] for k in detectable)
        labelled = sum(1 for b in self.boxes.values() for _, p in b if p is not None)
        return {
            "by_category": {
                k: {**v, "recall": v["found"] / v["truths"] if v["truths"] else 0.0}
                for k, v in rows.items()
            },
            "detectable_recall": found / total if total else 0.0,
            "detectable_truths": total,
            "all_recall": sum(self.found.values()) / max(sum(self.total.values()), 1),
            "boxes": sum(len(b) for b in self.boxes.values()),
            "labelled_boxes": labelled,
            "two_people_boxes": self.two_people_boxes,
            "unmatched_boxes": self.unmatched_boxes,
        }

    def recall_by_person(self) -> dict[str, float]:
        """Share of each person's whole, in-view truth boxes the detector found."""
        return {p: self.whole_found[p] / n for p, n in sorted(self.whole.items()) if n}

    def labels(self, scene: Scene, cameras: Iterable[str]) -> Labels:
        """The ``Labels`` of the given cameras, boxes shifted to their columns."""
        chosen = list(cameras)
        boxes: dict[int, list[tuple[Box4, str | None]]] = defaultdict(list)
        for (camera, k), found in sorted(self.boxes.items()):
            if camera not in chosen:
                continue
            dx = COLUMNS[camera][0]
            for (x1, y1, x2, y2), person in found:
                boxes[k].append(((x1 + dx, y1, x2 + dx, y2), person))
        people: dict[str, dict[str, Any]] = {
            name: {"cuhk03_val_identity": p.pid} for name, p in scene.people.items()
        }
        return Labels(f"synthvideo seed {scene.seed}", 1, people, dict(boxes))
