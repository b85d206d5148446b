"""Cost of the rule risk assessment per visit, against the 1 ms budget (issue 13).

    .venv/bin/python bench/bench_risk.py [--persons 2000] [--visits 40000] [--repeats 3000]

A real store (SQLite in a temporary folder) is filled with ``--persons`` people and
``--visits`` earlier visits spread over 90 days (the default retention), so the look-ups of
"visits in the last 24 h / 7 d" run against a realistic table. The visit assessed is a stranger
on five cameras with two companions. Timed, one call at a time:

- ``rules``: ``risk.assess`` on collected facts (the rule assessor alone);
- ``facts``: ``risk.facts.collect`` (status of the person and companions, visit counts: store
  reads);
- ``per frame``: ``RiskMonitor.on_frame`` for a frame with the person, as the server calls it on
  every frame (facts + rules + the publish decision; nothing due, so no store write);
- ``publish``: the same when an assessment is due (adds the store write of the assessment).

Prints median and p99 in microseconds and the median as a share of the 1 ms budget. The load
average is printed because other work on the box inflates wall times.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon" / "inference_server"))

from smart_reid_server.identity.store import Store  # noqa: E402
from smart_reid_server.identity.visits import VisitTracker  # noqa: E402
from smart_reid_server.risk import RiskConfig, RiskMonitor, assess  # noqa: E402
from smart_reid_server.risk.facts import TimeOfDay, collect  # noqa: E402

BUDGET_US = 1000.0
CAMERAS = ["street", "driveway", "garage", "back_garden", "hallway"]


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e6)
    return out


def fill(store: Store, persons: int, visits: int, now: float) -> None:
    rng = random.Random(13)
    for n in range(persons):
        store.create_person(f"{n:012x}", now - 90 * 86400.0)
    with store.transaction() as db:
        for n in range(visits):
            started = now - rng.uniform(0, 90 * 86400.0)
            db.execute(
                "INSERT INTO visits (visit_id, person_id, started_at, last_seen) VALUES (?,?,?,?)",
                (f"v{n:011x}", f"{rng.randrange(persons):012x}", started, started + 60.0),
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--visits", type=int, default=40000)
    parser.add_argument("--repeats", type=int, default=3000)
    args = parser.parse_args(argv)
    config = RiskConfig(
        sensitivity={"street": 0.0, "driveway": 0.2, "garage": 0.6, "back_garden": 0.8},
        clock=TimeOfDay(),
    )
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-risk-") as folder:
        store = Store(folder)
        fill(store, args.persons, args.visits, now)
        tracker = VisitTracker(60.0)
        people = ["000000000001", "000000000002", "000000000003"]
        for i, camera in enumerate(CAMERAS):
            for person in people:
                observation = tracker.observe(person, camera, now + 10 * i, is_new_identity=True)
                if observation.is_new_visit:
                    store.start_visit(observation.visit.visit_id, person, now, True)
        monitor = RiskMonitor(config)
        monitor.on_frame(store, tracker, people, now + 40)
        visit = tracker.active_for(people[0])
        assert visit is not None
        companions = monitor.companions.of(visit.visit_id)
        facts = collect(visit, store, companions, clock=config.clock)
        due = RiskMonitor(config)  # never published anything: every frame is due

        results = {
            "rules": timed(lambda: assess(facts, config, final=False, timestamp=now), args.repeats),
            "facts": timed(
                lambda: collect(visit, store, companions, clock=config.clock), args.repeats
            ),
            "per frame": timed(
                lambda: monitor.on_frame(store, tracker, people[:1], now + 41), args.repeats
            ),
            "publish": timed(
                lambda: (due._published.clear(), due.on_frame(store, tracker, people[:1], now)),
                max(100, args.repeats // 10),
            ),
        }
        store.close()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"risk assessment, {args.persons} persons / {args.visits} stored visits, load {load:.2f}")
    print(f"{'step':<10} {'median us':>10} {'p99 us':>10} {'of 1 ms':>8}")
    for name, samples in results.items():
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        median = statistics.median(ordered)
        print(f"{name:<10} {median:>10.1f} {p99:>10.1f} {median / BUDGET_US:>8.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
