"""Active-visit matching measured inside the simulated day, through the product's tier-1 scores.

The moments that decide alerts are the first crop of a person on each camera of a visit:

- a hand-over (the visit's 2nd or 3rd camera): the crop should go to the person the visit has
  been under so far; it is matched when that person has the best tier-1 score and the score
  reaches the threshold;
- an arrival (the visit's first camera) while other visits are active: every active person is
  an impostor; any score reaching the threshold is a false match (a missed visitor).

While the day is replayed, the tier's candidates for these crops are recorded just before
``Identities.observe`` (so with the banks and transit times the product had at that moment),
split into appearance, place plausibility and elapsed share of the window. The scores are then
recomputed for other time/place weights and thresholds: the match rate at the threshold that lets
1% of arrivals through, and what the logistic fit of the three parts says the weights should be.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from smart_reid_server.config import Settings
from smart_reid_server.identity.gallery import unit_rows
from smart_reid_server.identity.identities import Identities

from eval.scenario_metrics import Answers
from eval.scenario_replay import replay
from eval.scenario_world import Day, SimFrame

type Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Trial:
    """One deciding crop: its active candidates as (person id, appearance, place, elapsed)."""

    handover: bool
    right: str | None  # hand-overs: the person id the visit had so far
    candidates: tuple[tuple[str, float, float, float], ...]


def _segment(day: Day, visit: int, camera: str, t: float) -> int:
    for k, seg in enumerate(day.visits[visit].segments):
        if seg.camera == camera and seg.enter - 1e-6 <= t <= seg.leave + 1e-6:
            return k
    raise ValueError(f"visit {visit} is not on {camera} at {t}")


def collect(
    day: Day,
    vectors: list[Floats],
    config: Settings,
    *,
    model: str,
    threshold: float,
    crops_ok: list[list[bool]] | None = None,
) -> tuple[list[Trial], Answers]:
    """Replay ``day`` with ``config`` and record the tier-1 view of every deciding crop."""
    firsts: dict[tuple[int, int], tuple[int, int]] = {}
    for frame in day.frames:
        for slot, person in enumerate(frame.people):
            key = (person.visit, _segment(day, person.visit, frame.camera, frame.timestamp))
            firsts.setdefault(key, (frame.index, slot))
    deciding = set(firsts.values())
    window = float(config.section("visits")["window_s"])
    seen: dict[tuple[int, int], tuple[tuple[str, float, float, float], ...]] = {}

    def probe(frame: SimFrame, identities: Identities, rows: Floats) -> None:
        tier = identities.active_tier
        if tier is None:
            raise ValueError("active-visit trials need the active tier switched on")
        live = [
            v
            for v in identities.visits.active()
            if identities.visits.is_active(v.person_id, frame.timestamp)
        ]
        by_person = {v.person_id: v for v in live}
        found = tier.candidates(
            unit_rows(rows, identities.dim), frame.camera, frame.timestamp, live
        )
        for slot, candidates in enumerate(found):
            if (frame.index, slot) not in deciding:
                continue
            parts = []
            for c in candidates:
                visit = by_person[c.person_id]
                elapsed = frame.timestamp - visit.last_seen
                place = tier.transit.plausibility(visit.last_camera, frame.camera, elapsed)
                parts.append((c.person_id, c.appearance, place, min(1.0, abs(elapsed) / window)))
            seen[(frame.index, slot)] = tuple(parts)

    answers = replay(
        day,
        vectors,
        config,
        model=model,
        threshold=threshold,
        crops_ok=crops_ok,
        before_observe=probe,
    )
    crops_of: dict[int, list[tuple[float, tuple[int, int]]]] = defaultdict(list)
    for frame in day.frames:
        for slot, person in enumerate(frame.people):
            crops_of[person.visit].append((frame.timestamp, (frame.index, slot)))
    trials: list[Trial] = []
    for (visit, segment), key in sorted(firsts.items()):
        right = None
        if segment > 0:
            at = next(t for t, k in crops_of[visit] if k == key)
            before = [answers[k].person_id for t, k in crops_of[visit] if t < at and k in answers]
            right = Counter(before).most_common(1)[0][0] if before else None
        trials.append(Trial(segment > 0, right, seen.get(key, ())))
    return trials, answers


def match_rate(
    trials: list[Trial],
    place_weight: float,
    time_weight: float,
    false_match_rate: float = 0.01,
) -> dict[str, Any]:
    """Hand-overs matched at the threshold that lets ``false_match_rate`` of arrivals match."""
    genuine: list[tuple[float, bool]] = []
    impostor: list[float] = []
    for trial in trials:
        if not trial.candidates:
            continue
        scored = [
            (a + place_weight * p - time_weight * tau, pid) for pid, a, p, tau in trial.candidates
        ]
        best, who = max(scored)
        if trial.handover and trial.right is not None:
            genuine.append((best, who == trial.right))
        elif not trial.handover:
            impostor.append(best)
    if not genuine or not impostor:
        return {"handovers": len(genuine), "arrivals_with_company": len(impostor)}
    threshold = float(np.quantile(np.asarray(impostor), 1.0 - false_match_rate))
    matched = float(np.mean([right and s >= threshold for s, right in genuine]))
    return {
        "handovers": len(genuine),
        "arrivals_with_company": len(impostor),
        "threshold": round(threshold, 4),
        "false_match_rate": round(float(np.mean(np.asarray(impostor) >= threshold)), 4),
        "matched": round(matched, 4),
    }


def fitted_weights(trials: list[Trial]) -> dict[str, float]:
    """Logistic regression of "this candidate is the right one" on appearance, place and elapsed
    time, expressed as the fused score's weights (per unit of appearance)."""
    rows: list[list[float]] = []
    labels: list[float] = []
    for trial in trials:
        for pid, a, p, tau in trial.candidates:
            rows.append([a, p, tau, 1.0])
            labels.append(1.0 if trial.handover and pid == trial.right else 0.0)
    if not rows or not any(labels):
        return {}
    x = np.asarray(rows)
    y = np.asarray(labels)
    w = np.zeros(4)
    for _ in range(20000):
        predicted = 1.0 / (1.0 + np.exp(-(x @ w)))
        w -= 2.0 * (x.T @ (predicted - y) / len(y) + 1e-4 * np.r_[w[:3], 0.0])
    return {
        "place_weight": round(float(w[1] / w[0]), 3),
        "time_weight": round(float(-w[2] / w[0]), 3),
    }
