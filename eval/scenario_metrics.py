"""What a user of the simulated day would notice: alerts per visit, missed visitors, identities.

``Said`` is what the system answered for one person in one frame (from the HTTP answer or an
in-process replay); the scores compare it with the day's ground truth:

- notifications per true visit: every ``new_person`` decision counts, divided by the number of
  real visits (1.0 is perfect; more means duplicate alerts);
- missed new visits: real visits none of whose crops got ``new_person``: the person was merged
  into a visit already running (someone else's, usually), so nobody was told they arrived;
- hand-overs: the first crop of a visit on each further camera; it should continue the visit
  (no new alert) under the identity the visit had so far;
- split identities: real people who ended up under more than one person id (over the day);
- identity purity: share of crops whose person id's majority identity is their own.

The cooldown baseline is what today's notification blueprints do with plain person detection:
each camera notifies at most once per cooldown period, for whoever is in the picture.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.scenario_world import Day


@dataclass(frozen=True, slots=True)
class Said:
    person_id: str
    new_person: bool
    visit_id: str
    match: str
    similarity: float


type Answers = dict[tuple[int, int], Said]  # (frame index, position in the frame) -> answer


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def score(day: Day, answers: Answers, latencies_ms: list[float] | None = None) -> dict[str, Any]:
    """The dedup metrics of one run over ``day``."""
    per_visit: dict[int, list[tuple[float, str, Said]]] = defaultdict(list)
    missing = 0
    for frame in day.frames:
        for slot, person in enumerate(frame.people):
            said = answers.get((frame.index, slot))
            if said is None:
                missing += 1
                continue
            per_visit[person.visit].append((frame.timestamp, frame.camera, said))
    visits = len(day.visits)
    alerts = sum(s.new_person for seen in per_visit.values() for _, _, s in seen)
    alerted = Counter(v for v, seen in per_visit.items() for _, _, s in seen if s.new_person)
    missed = [v.index for v in day.visits if alerted[v.index] == 0]
    duplicated = sum(1 for v in day.visits if alerted[v.index] > 1)

    handovers = handover_right = handover_alerts = 0
    for seen in per_visit.values():
        ids_so_far: Counter[str] = Counter()
        current = None
        for _, camera, said in sorted(seen, key=lambda item: item[0]):
            if current is not None and camera != current:
                handovers += 1
                handover_right += said.person_id == ids_so_far.most_common(1)[0][0]
                handover_alerts += said.new_person
            current = camera
            ids_so_far[said.person_id] += 1

    ids_of_person: dict[int, set[str]] = defaultdict(set)
    people_of_id: dict[str, Counter[int]] = defaultdict(Counter)
    for frame in day.frames:
        for slot, person in enumerate(frame.people):
            said = answers.get((frame.index, slot))
            if said is not None:
                ids_of_person[person.pid].add(said.person_id)
                people_of_id[said.person_id][person.pid] += 1
    crops = sum(sum(c.values()) for c in people_of_id.values())
    pure = sum(c.most_common(1)[0][1] for c in people_of_id.values())
    split = sum(1 for ids in ids_of_person.values() if len(ids) > 1)
    result: dict[str, Any] = {
        "true_visits": visits,
        "notifications": alerts,
        "notifications_per_visit": round(alerts / visits, 4) if visits else None,
        "missed_new_visits": len(missed),
        "missed_share": round(len(missed) / visits, 4) if visits else None,
        "visits_alerted_more_than_once": duplicated,
        "handovers": handovers,
        "handovers_continued": round(handover_right / handovers, 4) if handovers else None,
        "handovers_alerted": handover_alerts,
        "people": len(ids_of_person),
        "split_people": split,
        "ids_per_person": round(float(np.mean([len(ids) for ids in ids_of_person.values()])), 3)
        if ids_of_person
        else None,
        "person_ids": len(people_of_id),
        "identity_purity": round(pure / crops, 4) if crops else None,
        "unanswered_crops": missing,
        "missed_visit_indices": missed,
    }
    if latencies_ms is not None:
        result["latency_ms"] = {
            "count": len(latencies_ms),
            "p50": _percentile(latencies_ms, 50),
            "p95": _percentile(latencies_ms, 95),
            "max": round(max(latencies_ms), 1) if latencies_ms else None,
        }
    return result


def cooldown_baseline(day: Day, cooldown_s: float) -> dict[str, Any]:
    """One notification per camera per ``cooldown_s``, triggered by anyone in the picture.

    Detection is taken as perfect (every frame with a person triggers), the best case for the
    baseline. A visit counts as notified when a notifying frame shows its person.
    """
    last: dict[str, float] = {}
    alerts = 0
    notified: set[int] = set()
    for frame in sorted(day.frames, key=lambda f: f.timestamp):
        if not frame.people:
            continue
        previous = last.get(frame.camera)
        if previous is not None and frame.timestamp - previous < cooldown_s:
            continue
        last[frame.camera] = frame.timestamp
        alerts += 1
        notified.update(p.visit for p in frame.people)
    visits = len(day.visits)
    missed = visits - len(notified)
    return {
        "cooldown_s": cooldown_s,
        "true_visits": visits,
        "notifications": alerts,
        "notifications_per_visit": round(alerts / visits, 4) if visits else None,
        "missed_new_visits": missed,
        "missed_share": round(missed / visits, 4) if visits else None,
    }


def describe_day(day: Day) -> dict[str, Any]:
    roles = Counter(p.role.value for p in day.persons.values())
    cameras_per_visit = Counter(len(v.segments) for v in day.visits)
    concurrent: Counter[int] = Counter()
    for visit in day.visits:
        others = sum(
            1
            for other in day.visits
            if other.index != visit.index and other.start <= visit.start < other.end + 60.0
        )
        concurrent[min(others, 4)] += 1
    return {
        "split": day.split,
        "seed": day.seed,
        "cameras": len(day.params.cameras),
        "identities": len(day.persons),
        "roles": dict(roles),
        "true_visits": len(day.visits),
        "visits_by_cameras_walked": {str(k): v for k, v in sorted(cameras_per_visit.items())},
        "visits_arriving_in_pairs": sum(
            1 for v in day.visits if sum(1 for o in day.visits if o.group == v.group) > 1
        ),
        # Other visits under way (seen within the last 60 s) when a visit starts; 4 = 4 or more.
        "others_on_site_at_arrival": {str(k): v for k, v in sorted(concurrent.items())},
        "frames": len(day.frames),
        "crops": day.crops(),
        "simulated_hours": round(day.duration_s / 3600.0, 2),
        "fps": day.params.fps,
    }
