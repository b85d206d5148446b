"""The real-video scores (eval/realvideo/metrics.py) on hand-built runs: presence against the
labels, strict and allowing for the people the labels ignore (two men in one box, a figure too
small to tell who)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.realvideo.metrics import Box4, Labels, PresenceRow, score
from eval.realvideo.people import people
from eval.realvideo.replay import Run, Sighting

PERSON: Box4 = (10.0, 10.0, 50.0, 130.0)
GROUP: Box4 = (200.0, 10.0, 300.0, 130.0)  # one box over two men: ignored, shows 2 people


def _run(counts: list[int]) -> Run:
    run = Run("one", {"street": (0, 640)})
    for n, count in enumerate(counts):
        frame = 3 * n
        t = 1000.0 + frame / 30.0
        run.frame_times[frame] = t
        run.index_of[t] = frame
        run.presence[("street", frame)] = [f"pending:{k}" for k in range(count)]
    return run


def _labels(frames: int, *, group: bool) -> Labels:
    boxes: dict[int, list[tuple[Box4, str | None]]] = {}
    hidden: dict[int, list[tuple[Box4, int]]] = {}
    for n in range(frames):
        boxes[3 * n] = [(PERSON, "p01")]
        if group:
            boxes[3 * n].append((GROUP, None))
            hidden[3 * n] = [(GROUP, 2)]
    return Labels("test.mp4", 3, {"p01": {"kind": "pedestrian"}}, boxes, hidden)


def test_people_in_an_ignored_group_box_are_allowed_for_only_there() -> None:
    # The server counts the labelled man and the two in the group box: 3 against a truth of 1.
    run = _run([3, 3, 3, 3])
    strict_and_allowed = score(run, _labels(4, group=True))
    assert strict_and_allowed["presence_within_one"] == 0.0
    assert strict_and_allowed["presence_within_one_allowing_ignored"] == 1.0
    # Without the group box in view the same count is wrong either way.
    no_group = score(run, _labels(4, group=False))
    assert no_group["presence_within_one"] == 0.0
    assert no_group["presence_within_one_allowing_ignored"] == 0.0


def test_ignored_people_never_excuse_counting_too_few_or_far_too_many() -> None:
    labels = _labels(4, group=True)
    # Nobody counted while the labelled man is in view: off by one, within one either way.
    assert score(_run([0, 0, 0, 0]), labels)["presence_within_one_allowing_ignored"] == 1.0
    # Two labelled men missing is not excused by a group box.
    two = Labels(
        "test.mp4",
        3,
        {"p01": {}, "p02": {}},
        {f: [*b, ((400.0, 10.0, 440.0, 130.0), "p02")] for f, b in labels.boxes.items()},
        labels.ignored_people,
    )
    assert score(_run([0, 0, 0, 0]), two)["presence_within_one_allowing_ignored"] == 0.0
    # Five counted where one labelled man and a group of two are seen: two too many.
    assert score(_run([5, 5, 5, 5]), labels)["presence_within_one_allowing_ignored"] == 0.0


def test_identities_after_the_servers_merges_follow_each_merge_to_its_end() -> None:
    """One man's sightings under three identities: as issued that is three; the server merged
    the second into the first and the third into the second, so he is left with one."""
    run = _run([1, 1, 1])
    for n, pid in enumerate(["a", "b", "c"]):
        t = run.frame_times[3 * n]
        run.sightings.append(Sighting("street", 3 * n, t, PERSON, pid, pid != "a", "new", 0.0, t))
    figures = score(run, _labels(3, group=False))
    assert figures["identities_per_person"] == 3.0
    assert figures["identities_per_person_after_merges"] == 3.0
    run.merges = [(1000.1, "a", "b"), (1000.2, "b", "c")]
    figures = score(run, _labels(3, group=False))
    assert figures["identities_per_person"] == 3.0, "what was issued stays counted"
    assert figures["identities_per_person_after_merges"] == 1.0


def test_the_label_file_says_why_each_box_is_ignored() -> None:
    import json

    from eval.realvideo.label import IGNORED_KINDS, LABELS, validate

    label = json.loads(LABELS.read_text())
    assert validate(label) == []
    for tracklet in label["tracklets"].values():
        if tracklet["person"] is None:
            assert tracklet["ignored"] in IGNORED_KINDS
    shown = [row[5] for row in label["ignored_people"]]
    assert shown and set(shown) <= {1, 2}
    # A tracklet ignored without a reason is refused.
    broken = json.loads(LABELS.read_text())
    name = next(k for k, t in broken["tracklets"].items() if t["person"] is None)
    del broken["tracklets"][name]["ignored"]
    assert any("without a reason" in e for e in validate(broken))


def test_presence_plot_shows_every_camera(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from eval.realvideo.run import plot_presence

    run = _run([3, 3, 1, 0])
    rows: list[PresenceRow] = []
    score(run, _labels(4, group=True), presence_rows=rows)
    assert [(r.truth, r.hidden, r.counted) for r in rows] == [(1, 2, 3)] * 2 + [
        (1, 2, 1),
        (1, 2, 0),
    ]
    path = plot_presence(run, rows, tmp_path)
    assert path is not None and path.stat().st_size > 10_000


def test_a_visit_announced_before_the_scored_part_is_not_missed_in_it() -> None:
    """The man is announced in the first frame and stays in view: scoring only the later
    frames (the held-out half, say) his visit is not "never announced"; had nobody announced
    him before, it would be."""
    run = _run([1] * 8)
    for frame, t in sorted(run.frame_times.items()):
        run.sightings.append(Sighting("street", frame, t, PERSON, "a", frame == 0, "new", 0.0, t))
    labels = _labels(8, group=False)
    later = score(run, labels, frames=(12, 24))
    assert later["missed_visits"] == 0
    assert later["notifications"] == 0, "the alert before the part is not counted in it"
    assert later["latency_p95_s"] == 0.0, "its latency belongs to the part where it began"
    for s in run.sightings:
        s.new_person = False
    assert score(run, labels, frames=(12, 24))["missed_visits"] == 1


def test_the_per_person_listing_names_whose_identity_took_someone() -> None:
    """Two men: the second is decided as the first's identity, so the listing shows him with
    no alert of his own and that identity marked as someone else's."""
    run = _run([2] * 4)
    other: Box4 = (400.0, 10.0, 440.0, 130.0)
    labels = _labels(4, group=False)
    labels = Labels(
        "test.mp4",
        3,
        {"p01": {}, "p02": {}},
        {f: [*b, (other, "p02")] for f, b in labels.boxes.items() if f >= 6}
        | {f: b for f, b in labels.boxes.items() if f < 6},
    )
    for frame, t in sorted(run.frame_times.items()):
        run.sightings.append(Sighting("street", frame, t, PERSON, "a", frame == 0, "new", 0.0, t))
        if frame >= 6:
            run.sightings.append(Sighting("street", frame, t, other, "a", False, "match", 0.9, t))
    lines = {line.person: line for line in people(run, labels, 0, 12)}
    assert [(c, f) for c, f, _ in lines["p01"].alerts] == [("street", 0)]
    assert lines["p02"].alerts == []
    assert lines["p02"].identities == [("a", "p01", 2)]
    assert "a(p01!)x2" in lines["p02"].render()
