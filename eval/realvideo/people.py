"""``python -m eval.realvideo.people``: what each labelled person got, one line each.

For one layout and one half of ``walk_bike_sample.mp4`` it lists each labelled person's alerts
(camera, frame and seconds after the person's first labelled box in that part) and the
identities their sightings were decided as. Each identity is shown with the person who holds
most of its labelled sightings, marked ``!`` when that is someone else. It is the listing the
fourteenth round's account of the held-out half was read from (docs/quality.md). It explains
the figures ``python -m eval.realvideo.run`` reports; it does not replace them.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

from eval.realvideo.metrics import Labels, majority_owners, who
from eval.realvideo.replay import LAYOUTS, Run, replay
from eval.realvideo.run import HELD_OUT, TUNING

PARTS = {"tuning": TUNING, "held_out": HELD_OUT, "whole": (0, 1_000_000)}


@dataclass(frozen=True, slots=True)
class PersonLine:
    person: str
    first_frame: int
    boxes: int
    alerts: list[tuple[str, int, float]]  # camera, frame, seconds after the first labelled box
    identities: list[tuple[str, str, int]]  # identity, its majority owner, this person's count

    def render(self) -> str:
        alerts = ", ".join(f"{cam}@{frame} (+{late:.2f} s)" for cam, frame, late in self.alerts)
        held = " ".join(
            f"{pid[:8]}({owner}{'' if owner == self.person else '!'})x{n}"
            for pid, owner, n in self.identities
        )
        return (
            f"{self.person}: first {self.first_frame}, {self.boxes} boxes; "
            f"alerts [{len(self.alerts)}] {alerts or 'none'}; identities {held or 'none'}"
        )


def people(run: Run, labels: Labels, first: int, last: int) -> list[PersonLine]:
    """One line per labelled person seen in frames [first, last). An alert on a box the labels
    ignore or lack counts for the person its identity mostly follows, as ``score`` counts it."""
    part = labels.restricted(first, last)
    sightings = [s for s in run.sightings if first <= s.frame_index < last]
    owners = [who(part, s.frame_index, s.box) for s in sightings]
    first_seen: dict[str, int] = {}
    boxes: Counter[str] = Counter()
    for frame in sorted(part.boxes):
        for _, person in part.boxes[frame]:
            if person is not None:
                first_seen.setdefault(person, frame)
                boxes[person] += 1
    majority = majority_owners(sightings, owners, first_seen)
    lines = []
    for person in sorted(first_seen):
        start = run.frame_times.get(first_seen[person], 0.0)
        alerts = [
            (s.camera, s.frame_index, s.issued_at - start)
            for s, o in zip(sightings, owners, strict=True)
            if s.new_person and (o if o in first_seen else majority.get(s.person_id)) == person
        ]
        mine = Counter(s.person_id for s, o in zip(sightings, owners, strict=True) if o == person)
        identities = [(pid, majority.get(pid, "?"), n) for pid, n in mine.most_common()]
        lines.append(PersonLine(person, first_seen[person], boxes[person], alerts, identities))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="one", choices=sorted(LAYOUTS))
    parser.add_argument("--part", default="tuning", choices=sorted(PARTS))
    args = parser.parse_args(argv)
    run = replay("walk_bike_sample.mp4", args.layout, step=3)
    for line in people(run, Labels.load("walk_bike_sample.mp4"), *PARTS[args.part]):
        print(line.render())
    for _, kept, dropped in run.merges:
        print(f"merged {dropped[:8]} into {kept[:8]}")


if __name__ == "__main__":
    main()
