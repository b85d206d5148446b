"""Cost of zone and line evaluation per frame (docs/server.md "Zones and lines").

    .venv/bin/python bench/bench_zones.py [--people 5] [--frames 20000]

A camera with the garden of docs/server.md (a 4-point and a 4-point zone, one line) and
``--people`` people walking random paths across the picture; ``ZoneWatcher.frame`` is timed one
frame at a time, as the server calls it on its identity thread. Prints the median and p99 per
frame and per person in microseconds, and how many events the walk produced. A camera without
zones is not timed: the server skips it before calling the watcher.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon" / "inference_server"))

from smart_reid_server.config import validate  # noqa: E402
from smart_reid_server.vision.zones import ZoneConfig, ZoneWatcher  # noqa: E402

GARDEN = {
    "cameras": {
        "back_garden": {
            "zones": {
                "back_door": {
                    "polygon": [[0.62, 0.55], [0.95, 0.55], [0.95, 1.0], [0.62, 1.0]],
                    "sensitivity": 0.9,
                },
                "lawn": {"polygon": [[0.0, 0.45], [0.55, 0.4], [0.6, 1.0], [0.0, 1.0]]},
            },
            "lines": {"gate": {"points": [[0.35, 0.2], [0.55, 0.2]], "in": "right"}},
        }
    }
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20000)
    args = parser.parse_args()
    config = ZoneConfig.from_section(validate({"zones": GARDEN}).section("zones"))
    watcher = ZoneWatcher(config)
    rng = random.Random(7)
    where = [[rng.random(), rng.random()] for _ in range(args.people)]
    times: list[float] = []
    events = 0
    for frame in range(args.frames):
        sightings = []
        for index, point in enumerate(where):
            point[0] = min(1.0, max(0.0, point[0] + rng.uniform(-0.02, 0.02)))
            point[1] = min(1.0, max(0.0, point[1] + rng.uniform(-0.02, 0.02)))
            sightings.append((f"p{index}", f"v{index}", (point[0], point[1])))
        began = time.perf_counter()
        events += len(watcher.frame("back_garden", frame * 0.2, sightings))
        times.append((time.perf_counter() - began) * 1e6)
    times.sort()
    median, p99 = statistics.median(times), times[int(len(times) * 0.99)]
    print(f"load average {os.getloadavg()[0]:.1f}; {args.people} people, {args.frames} frames")
    print(
        f"per frame: median {median:.1f} us, p99 {p99:.1f} us; "
        f"per person: median {median / args.people:.1f} us; {events} events"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
