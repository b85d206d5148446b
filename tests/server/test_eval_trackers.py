"""eval.realvideo.trackers: scoring of per-detection track ids, and the product adapter."""

from __future__ import annotations

import pytest

from eval.realvideo.metrics import Box4, Labels
from eval.realvideo.trackers import Frame, ProductTracker, Result, score

pytest.importorskip("motmetrics")


def _scene() -> tuple[list[Frame], Labels]:
    """Two people walking apart over four frames, plus one ignored box on frame 3."""
    frames: list[Frame] = []
    boxes: dict[int, list[tuple[Box4, str | None]]] = {}
    for n, index in enumerate((0, 3, 6, 9)):
        a = (10.0 + 2 * n, 10.0, 40.0 + 2 * n, 90.0)
        b = (200.0 - 2 * n, 10.0, 230.0 - 2 * n, 90.0)
        frame_boxes = [a, b]
        boxes[index] = [(a, "p01"), (b, "p02")]
        if index == 3:
            junk = (400.0, 10.0, 420.0, 30.0)
            frame_boxes.append(junk)
            boxes[index].append((junk, None))
        frames.append(Frame(index, frame_boxes, [0.9] * len(frame_boxes)))
    return frames, Labels("v.mp4", 3, {}, boxes)


def _result(frames: list[Frame], swap_at: int | None = None) -> Result:
    result = Result("t", frames=len(frames))
    for f in frames:
        ids: list[str | None] = ["A", "B", *(["J"] * (len(f.boxes) - 2))]
        if swap_at is not None and f.index >= swap_at:
            ids[:2] = ["B", "A"]
        result.ids[f.index] = ids
    return result


def test_perfect_ids_score_one_and_ignored_boxes_do_not_count() -> None:
    frames, labels = _scene()
    figures = score(_result(frames), frames, labels)
    assert figures["idf1"] == pytest.approx(1.0)
    assert figures["id_switches"] == 0
    assert figures["mota"] == pytest.approx(1.0)
    assert figures["tracks"] == 2  # "J" sat on the ignored box only
    assert figures["no_id"] == 0


def test_a_swap_is_an_id_switch_and_missing_ids_are_misses() -> None:
    frames, labels = _scene()
    swapped = score(_result(frames, swap_at=6), frames, labels)
    assert swapped["id_switches"] == 2
    assert swapped["idf1"] < 1.0
    unassigned = _result(frames)
    unassigned.ids[0] = [None, None]
    figures = score(unassigned, frames, labels)
    assert figures["no_id"] == 2
    assert figures["misses"] == 2


def test_product_tracker_keeps_walkers_apart() -> None:
    frames, _ = _scene()
    tracker = ProductTracker()
    ids = [tracker.step(f, None, None)[:2] for f in frames]
    assert len({i[0] for i in ids}) == 1
    assert len({i[1] for i in ids}) == 1
    assert ids[0][0] != ids[0][1]
