"""What a household sees, scored against the hand-made labels (``labels/*.json``, LABELS.md).

Each decision the server made is tied to a labelled person by its box (same frame, overlap with
the person's labelled box); decisions on boxes labelled "ignore" (two people in one box, a bike
alone, unrecognisable) or on boxes nobody labelled are counted apart. Figures:

- notifications per true person-visit (``new_person`` decisions for labelled people / their
  visits; a person's visit ends after ``window_s`` unseen, as the server's do), and visits never
  announced. An alert raised on a box the labels ignore or lack counts for the labelled person its
  identity then follows mostly; alerts for people the labels do not cover at all (cameras that see
  a strip of the picture find smaller people than the labelled whole-picture detector) are
  reported apart;
- identities per labelled person, and impure identities (mostly one person, but another person
  holds more than 5 % of their sightings);
- presence: the server's people-present count per camera after each frame against the labelled
  people seen on that camera within the last ``presence_s`` (within one of the truth); and the
  same allowing for the people in ignored boxes (two men in one box, a figure too small or too
  cut off to tell who): those are people the camera really sees, whom the truth does not count,
  so a count up to their number above the truth (the most shown in one frame of the window) is
  not an error there;
- decision latency: first sighting of a person's visit to the frame that announced it. Scoring a
  part of the video (the tuning or held-out half), a visit already going on when the part begins
  counts as announced if it was announced before the part (its latency belongs to the part where
  it began);
- baselines on the same frames: a camera that alerts then stays quiet for the window ("cooldown"),
  and a perfect per-camera system (one alert per person per camera per visit);
- tracker: IDF1, ID switches, MOTA of the server's per-camera tracker (``motmetrics``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.realvideo.replay import Run, Sighting

LABELS = Path(__file__).resolve().parent / "labels"
Box4 = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Labels:
    video: str
    frame_step: int
    people: dict[str, dict[str, Any]]
    boxes: dict[int, list[tuple[Box4, str | None]]]  # frame index -> boxes
    # frame index -> ignored boxes that show people, with how many (LABELS.md)
    ignored_people: dict[int, list[tuple[Box4, int]]] = field(default_factory=dict)

    @classmethod
    def load(cls, video: str) -> Labels:
        raw = json.loads((LABELS / f"{Path(video).stem}.json").read_text())
        boxes: dict[int, list[tuple[Box4, str | None]]] = defaultdict(list)
        for frame, x1, y1, x2, y2, person in raw["boxes"]:
            boxes[int(frame)].append(((float(x1), float(y1), float(x2), float(y2)), person))
        hidden: dict[int, list[tuple[Box4, int]]] = defaultdict(list)
        for frame, x1, y1, x2, y2, shown in raw.get("ignored_people", []):
            hidden[int(frame)].append(((float(x1), float(y1), float(x2), float(y2)), int(shown)))
        return cls(
            raw["video"], int(raw["frame_step"]), dict(raw["people"]), dict(boxes), dict(hidden)
        )

    def restricted(self, first: int, last: int) -> Labels:
        """Only frames ``first`` <= index < ``last`` (tuning / held-out halves)."""
        return Labels(
            self.video,
            self.frame_step,
            self.people,
            {i: b for i, b in self.boxes.items() if first <= i < last},
            {i: b for i, b in self.ignored_people.items() if first <= i < last},
        )


def iou(a: Box4, b: Box4) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter)


def inside_share(a: Box4, b: Box4) -> float:
    """How much of ``a`` lies inside ``b``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)


UNLABELLED = "?"  # a box the labels do not have (or the frame was not labelled)
IGNORED = "-"  # a box labelled "ignore"


def who(labels: Labels, frame: int, box: Box4) -> str:
    """The labelled person a server box shows: a person id, IGNORED or UNLABELLED.

    A box from a camera that sees only part of the picture can be cut by the camera's edge: it
    then lies inside the labelled box without covering it, so a box mostly inside exactly one
    labelled box also counts."""
    best, best_iou = UNLABELLED, 0.0
    for gt_box, person in labels.boxes.get(frame, []):
        overlap = iou(box, gt_box)
        if overlap > best_iou:
            best, best_iou = (person or IGNORED), overlap
    if best_iou >= 0.5:
        return best
    holders = [
        (person or IGNORED)
        for gt_box, person in labels.boxes.get(frame, [])
        if inside_share(box, gt_box) >= 0.8 and iou(box, gt_box) >= 0.2
    ]
    return holders[0] if len(holders) == 1 else UNLABELLED


def _on_camera(box: Box4, columns: tuple[int, int]) -> bool:
    centre = (box[0] + box[2]) / 2.0
    return columns[0] <= centre < columns[1]


def person_visits(times: Sequence[float], window_s: float) -> list[tuple[float, float]]:
    """Split sorted sighting times into visits: a gap of ``window_s`` or more ends one."""
    visits: list[tuple[float, float]] = []
    for t in times:
        if visits and t - visits[-1][1] < window_s:
            visits[-1] = (visits[-1][0], t)
        else:
            visits.append((t, t))
    return visits


@dataclass(frozen=True, slots=True)
class PresenceRow:
    """One camera-frame: the labelled people seen there within the presence window, the people
    shown in ignored boxes there, and what the server counted."""

    camera: str
    frame: int
    timestamp: float
    truth: int
    hidden: int
    counted: int


def _merged_into(into: Mapping[str, str], person_id: str) -> str:
    """The identity ``person_id`` ended up as after automatic merges (``into``: dropped ->
    kept)."""
    seen = {person_id}
    while person_id in into and into[person_id] not in seen:
        person_id = into[person_id]
        seen.add(person_id)
    return person_id


def majority_owners(
    sightings: Sequence[Sighting], owners: Sequence[str], people: Collection[str]
) -> dict[str, str]:
    """Identity -> the labelled person (of ``people``) holding most of its sightings: whom its
    alert was about. An alert raised on a box the labels ignore (two people in one box, say)
    announces the person the identity then follows."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for s, o in zip(sightings, owners, strict=True):
        if o in people:
            counts[s.person_id][o] += 1
    return {person_id: c.most_common(1)[0][0] for person_id, c in counts.items()}


def _announced_before(
    run: Run,
    labels: Labels,
    first: int,
    visits: Mapping[str, list[tuple[float, float]]],
    window_s: float,
) -> dict[str, float]:
    """People whose first visit in the frames from ``first`` on began earlier (seen within
    ``window_s`` before ``first``) and was announced earlier: person -> that alert's time.

    An alert counts for a person on their own labelled box, or on a box the labels ignore or
    lack when the identity's labelled sightings before ``first`` are mostly that person (as
    ``score`` attributes alerts)."""
    times = run.frame_times
    start = times.get(first)
    if start is None:
        return {}
    seen_before: dict[str, list[float]] = defaultdict(list)
    for frame, rows in labels.boxes.items():
        if frame < first and frame in times:
            for _, person in rows:
                if person is not None:
                    seen_before[person].append(times[frame])
    carried: dict[str, float] = {}  # person -> when their going-on visit began
    for person, person_visits_ in visits.items():
        before = sorted(t for t in seen_before.get(person, []) if t < start)
        if not before or not person_visits_:
            continue
        earlier = person_visits(before, window_s)
        if person_visits_[0][0] - earlier[-1][1] < window_s:
            carried[person] = earlier[-1][0]
    if not carried:
        return {}
    earlier_sightings = [s for s in run.sightings if s.frame_index < first]
    owners = [who(labels, s.frame_index, s.box) for s in earlier_sightings]
    majority = majority_owners(earlier_sightings, owners, seen_before)
    out: dict[str, float] = {}
    for s, o in zip(earlier_sightings, owners, strict=True):
        if not s.new_person:
            continue
        person = o if o in seen_before else majority.get(s.person_id, o)
        began = carried.get(person)
        if began is not None and s.timestamp >= began - 1e-6 and person not in out:
            out[person] = s.timestamp
    return out


def score(
    run: Run,
    labels: Labels,
    *,
    window_s: float = 60.0,
    presence_s: float = 2.0,
    frames: tuple[int, int] | None = None,
    presence_rows: list[PresenceRow] | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring for one run (optionally only frames [a, b)).
    ``presence_rows``, when given, receives the presence comparison of every camera-frame (for
    plots)."""
    whole = labels
    if frames is not None:
        labels = labels.restricted(*frames)
    in_range = set(labels.boxes) if frames is not None else set(run.frame_times)
    times = run.frame_times
    sightings = [s for s in run.sightings if s.frame_index in in_range]
    # Truth: when each labelled person is seen, overall and per camera.
    seen: dict[str, list[float]] = defaultdict(list)
    seen_on: dict[tuple[str, str], list[float]] = defaultdict(list)
    for frame in sorted(labels.boxes):
        if frame not in times:
            continue
        for box, person in labels.boxes[frame]:
            if person is None:
                continue
            seen[person].append(times[frame])
            for camera, columns in run.cameras.items():
                if _on_camera(box, columns):
                    seen_on[(person, camera)].append(times[frame])
    visits = {p: person_visits(sorted(set(ts)), window_s) for p, ts in seen.items()}
    true_visits = sum(len(v) for v in visits.values())

    owner = [who(labels, s.frame_index, s.box) for s in sightings]
    majority = majority_owners(sightings, owner, seen)
    alerts = [
        (s, o if o in seen else majority.get(s.person_id, o))
        for s, o in zip(sightings, owner, strict=True)
        if s.new_person
    ]
    announced: set[tuple[str, int]] = set()
    latencies: list[float] = []
    if frames is not None:
        # A visit already going on when the part begins (the person was seen within the window
        # before it) was announced, if at all, before it: that alert counts for it, and its
        # latency belongs to the part where the visit began.
        announced.update((o, 0) for o in _announced_before(run, whole, frames[0], visits, window_s))
    for s, o in alerts:
        if o in visits:
            for n, (start, end) in enumerate(visits[o]):
                if start - 1e-6 <= s.timestamp <= end + window_s and (o, n) not in announced:
                    announced.add((o, n))
                    latencies.append(s.issued_at - start)
                    break
    identities_of: dict[str, set[str]] = defaultdict(set)
    people_of: dict[str, Counter[str]] = defaultdict(Counter)
    for s, o in zip(sightings, owner, strict=True):
        if o in visits:
            identities_of[o].add(s.person_id)
            people_of[s.person_id][o] += 1
    impure = []
    for person_id, held in people_of.items():
        total = sum(held.values())
        ranked = held.most_common()
        if len(ranked) > 1 and ranked[1][1] > 0.05 * total:
            impure.append({"identity": person_id, "people": dict(ranked)})
    into = {dropped: kept for _, kept, dropped in run.merges}
    labelled = sum(sum(c.values()) for c in people_of.values())
    purity = sum(c.most_common(1)[0][1] for c in people_of.values()) / labelled if labelled else 1.0

    # (camera, frame time) -> people shown in ignored boxes on that camera in that frame
    hidden_at: dict[tuple[str, float], int] = defaultdict(int)
    for frame, rows in labels.ignored_people.items():
        if frame not in times:
            continue
        for box, shown in rows:
            for camera, columns in run.cameras.items():
                if _on_camera(box, columns):
                    hidden_at[(camera, times[frame])] += shown
    presence_ok, presence_total, presence_err = 0, 0, []
    presence_ok_hidden = 0
    for (camera, frame), ids in run.presence.items():
        if frame not in in_range:
            continue
        t = times[frame]
        truth = sum(
            1
            for (person, cam), ts in seen_on.items()
            if cam == camera and any(t - presence_s < x <= t for x in ts)
        )
        # Identities never seen on a labelled box are people the labels do not cover (the
        # strip cameras' detector finds smaller people than the whole picture's): not counted.
        counted = sum(1 for pid in ids if pid in majority or pid.startswith("pending:"))
        hidden = max(
            (n for (cam, x), n in hidden_at.items() if cam == camera and t - presence_s < x <= t),
            default=0,
        )
        presence_total += 1
        presence_ok += abs(counted - truth) <= 1
        presence_ok_hidden += truth - 1 <= counted <= truth + hidden + 1
        presence_err.append(counted - truth)
        if presence_rows is not None:
            presence_rows.append(PresenceRow(camera, frame, t, truth, hidden, counted))

    return {
        "layout": run.layout,
        "frames": len(in_range),
        "people": len(visits),
        "true_visits": true_visits,
        # Alerts for labelled people (on their box, or raised on an ignored/unlabelled box for
        # the identity that then follows them) against the labelled visits; the alerts for
        # people the labels do not cover are reported apart.
        "notifications": sum(1 for _, o in alerts if o in visits),
        "notifications_unlabelled_people": sum(1 for _, o in alerts if o not in visits),
        "per_visit": sum(1 for _, o in alerts if o in visits) / true_visits if true_visits else 0.0,
        "missed_visits": true_visits - len(announced),
        "identities_per_person": (
            float(np.mean([len(v) for v in identities_of.values()])) if identities_of else 0.0
        ),
        # The same once the server's automatic merges are applied (the identities a household
        # is left with: a merged-away identity's device is gone); the figure above counts each
        # identity a decision was ever issued under.
        "identities_per_person_after_merges": (
            float(
                np.mean([len({_merged_into(into, p) for p in v}) for v in identities_of.values()])
            )
            if identities_of
            else 0.0
        ),
        "identities": len({s.person_id for s in sightings}),
        "impure_identities": impure,
        "purity": purity,
        "presence_within_one": presence_ok / presence_total if presence_total else 1.0,
        "presence_within_one_allowing_ignored": (
            presence_ok_hidden / presence_total if presence_total else 1.0
        ),
        "presence_mean_error": float(np.mean(presence_err)) if presence_err else 0.0,
        # frames counted more than one too many / too few (the strict figure's two ways to fail)
        "presence_too_many": sum(1 for e in presence_err if e > 1),
        "presence_too_few": sum(1 for e in presence_err if e < -1),
        "latency_p50_s": float(np.percentile(latencies, 50)) if latencies else 0.0,
        "latency_p95_s": float(np.percentile(latencies, 95)) if latencies else 0.0,
        "baseline_cooldown": cooldown_baseline(run, labels, window_s),
        "baseline_per_camera": sum(
            len(person_visits(sorted(set(ts)), window_s)) for ts in seen_on.values()
        ),
        "merges": len(run.merges),
        "sightings": len(sightings),
        "sightings_unlabelled": sum(1 for o in owner if o == UNLABELLED),
    }


def cooldown_baseline(run: Run, labels: Labels, window_s: float) -> int:
    """A camera that alerts on any detected person, then stays quiet for the window."""
    alerts = 0
    for columns in run.cameras.values():
        quiet_until = -np.inf
        for frame in sorted(labels.boxes):
            t = run.frame_times.get(frame)
            if t is None:
                continue
            if any(_on_camera(b, columns) for b, _ in labels.boxes[frame]) and t >= quiet_until:
                alerts += 1
                quiet_until = t + window_s
    return alerts


def tracker_metrics(run: Run, labels: Labels) -> dict[str, Any]:
    """IDF1, ID switches, MOTA, fragmentations of the server's tracker, per camera, summed."""
    import motmetrics as mm  # eval extra; only the tracker figures need it

    accumulators = []
    names = []
    number: dict[str, int] = {}  # motmetrics wants numeric ids
    by_frame: dict[tuple[str, int], list[tuple[Box4, str]]] = defaultdict(list)
    for camera, frame, box, track_id in run.tracks:
        by_frame[(camera, frame)].append((box, track_id))
    for camera, columns in run.cameras.items():
        acc = mm.MOTAccumulator(auto_id=True)
        for frame in sorted(labels.boxes):
            if frame not in run.frame_times:
                continue
            truth = [
                (b, p) for b, p in labels.boxes[frame] if p is not None and _on_camera(b, columns)
            ]
            hyps = [
                (b, t)
                for b, t in by_frame.get((camera, frame), [])
                if who(labels, frame, b) != IGNORED
            ]
            # 1 - IoU, no pair below IoU 0.5 (motmetrics' iou_matrix needs NumPy < 2).
            distances = np.full((len(truth), len(hyps)), np.nan)
            for r, (tb, _) in enumerate(truth):
                for c, (hb, _) in enumerate(hyps):
                    overlap = iou(tb, hb)
                    if overlap >= 0.5:
                        distances[r, c] = 1.0 - overlap
            acc.update(
                [number.setdefault(p, len(number)) for _, p in truth],
                [number.setdefault(f"track:{t}", len(number)) for _, t in hyps],
                distances,
            )
        accumulators.append(acc)
        names.append(camera)
    host = mm.metrics.create()
    summary = host.compute_many(
        accumulators,
        names=names,
        metrics=["idf1", "num_switches", "mota", "num_fragmentations", "num_unique_objects"],
        generate_overall=True,
    )
    row = summary.loc["OVERALL"]
    return {
        "idf1": float(row["idf1"]),
        "id_switches": int(row["num_switches"]),
        "mota": float(row["mota"]),
        "fragmentations": int(row["num_fragmentations"]),
        "tracks": len({(c, t) for c, _, _, t in run.tracks}),
    }


def sighting_owner(labels: Labels, sighting: Sighting) -> str:
    return who(labels, sighting.frame_index, sighting.box)


def summary_row(name: str, figures: Mapping[str, Any]) -> str:
    return (
        f"| {name} | {figures['people']} / {figures['true_visits']} | "
        f"{figures['notifications']} ({figures['per_visit']:.2f}) | {figures['missed_visits']} | "
        f"{figures['identities_per_person']:.2f} "
        f"({figures.get('identities_per_person_after_merges', figures['identities_per_person']):.2f})"
        f" | {len(figures['impure_identities'])} | "
        f"{figures['presence_within_one'] * 100:.1f}% | "
        f"{figures.get('presence_within_one_allowing_ignored', 0.0) * 100:.1f}% | "
        f"{figures['latency_p95_s']:.2f} | "
        f"{figures['baseline_cooldown']} / {figures['baseline_per_camera']} |"
    )


SUMMARY_HEADER = (
    "| run | people / visits | notifications (per visit) | missed visits | identities per person "
    "(after the server's merges) | impure identities | presence within 1 | presence, people in ignored boxes allowed "
    "| latency p95 s | cooldown / per-camera baseline |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)
