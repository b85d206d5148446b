"""``python -m eval.risk.run``: the rule risk assessor against eval/risk/scenarios.yaml.

Each labelled visit is played through the product's own parts: the ``risk`` section of the
scenario file is validated by the server's config schema, a real ``Store`` (SQLite in a
temporary folder) holds the people and their earlier visits, a real ``VisitTracker`` turns
sightings (every 2 s on each camera of the path) into the visit, and the server's
``RiskMonitor`` assesses it frame by frame exactly as the server does, until the visit expires.
The final assessment's level is compared with the label.

Prints exact agreement, agreement within one level, household members above ``low``, the
confusion of expected against assessed levels, every miss with its reasons, and the cost of an
assessment. ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from smart_reid_server.config import validate
from smart_reid_server.identity.store import Store
from smart_reid_server.identity.visits import VisitTracker
from smart_reid_server.risk import LEVELS, Assessment, RiskConfig, RiskMonitor, assess
from smart_reid_server.risk.rules import WEIGHT_DEFAULTS

SCENARIOS = Path(__file__).with_name("scenarios.yaml")
WINDOW_S = 60.0
STEP_S = 2.0
HOUSEHOLD_LABELS = ("Alice", "Bob", "Charlie")


@dataclass(slots=True)
class Person:
    person_id: str
    status: str
    expect: str | None
    earlier_h: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    scenario: str
    person: str
    status: str
    expect: str
    final: Assessment
    published: int  # assessments published for the visit (interim and final)


def risk_config(section: dict[str, Any]) -> RiskConfig:
    """The scenario file's ``config`` through the server's own schema."""
    return RiskConfig.from_section(validate({"risk": section}).section("risk"))


def _people(spec: dict[str, Any]) -> list[Person]:
    people = [Person("subject", spec["status"], spec["expect"], list(spec.get("earlier_h", [])))]
    for index, other in enumerate(spec.get("companions", [])):
        people.append(Person(f"companion{index}", other["status"], other.get("expect")))
    return people


def _enrol(store: Store, people: list[Person], start: float) -> dict[str, str]:
    """Create the people with their status and history; person name -> id."""
    ids: dict[str, str] = {}
    household = iter(HOUSEHOLD_LABELS)
    for number, person in enumerate(people):
        person_id = f"{number:012x}"
        ids[person.person_id] = person_id
        first_seen = start - 3600.0 * max(person.earlier_h, default=0.0) - 1.0
        store.create_person(person_id, first_seen)
        if person.status == "household":
            store.rename(person_id, next(household))
        elif person.status == "known":
            store.rename(person_id, f"Known {number}")
            store.set_known(person_id, True)
        elif person.status == "named":
            store.rename(person_id, f"Named {number}")
        earlier = person.earlier_h or ([240.0] if person.status != "new_stranger" else [])
        for index, hours in enumerate(earlier):
            began = start - 3600.0 * hours
            visit_id = f"{number:06x}{index:06x}"
            store.start_visit(visit_id, person_id, began, index == 0)
            store.update_visit(
                visit_id,
                person_id=person_id,
                started_at=began,
                last_seen=began + 30.0,
                cameras=["street"],
                last_camera="street",
                sightings=15,
                ended_at=began + 30.0 + WINDOW_S,
            )
    return ids


def _frames(path: list[list[Any]], start: float) -> list[tuple[float, str]]:
    frames: list[tuple[float, str]] = []
    for camera, begin, end in path:
        t = float(begin)
        while t <= float(end):
            frames.append((start + t, str(camera)))
            t += STEP_S
    return sorted(frames)


def play(
    spec: dict[str, Any],
    config: RiskConfig,
    zone: ZoneInfo,
    folder: Path,
    zone_sensitivity: dict[str, float] | None = None,
) -> list[Outcome]:
    """One scenario through store, visit tracker and risk monitor; outcomes of scored people.
    The subject's ``zones`` are recorded as the server's zone watcher records them."""
    start = datetime.strptime(spec["start"], "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp()
    people = _people(spec)
    store = Store(folder / spec["id"])
    try:
        ids = _enrol(store, people, start)
        tracker = VisitTracker(WINDOW_S, presence_s=STEP_S)
        monitor = RiskMonitor(config)
        published: Counter[str] = Counter()
        finals: dict[str, Assessment] = {}

        def note(assessments: list[Assessment]) -> None:
            for a in assessments:
                published[a.facts.person_id] += 1
                if a.final:
                    finals[a.facts.person_id] = a

        for timestamp, camera in _frames(spec["path"], start):
            seen = []
            for person in people:
                person_id = ids[person.person_id]
                observation = tracker.observe(
                    person_id, camera, timestamp, is_new_identity=person.status == "new_stranger"
                )
                if observation.is_new_visit:
                    visit = observation.visit
                    store.start_visit(
                        visit.visit_id, person_id, visit.started_at, visit.is_new_identity
                    )
                for where, name, begin, end in spec.get("zones", []) if person is people[0] else []:
                    if where == camera and start + begin <= timestamp <= start + end:
                        sensitivity = (zone_sensitivity or {}).get(name)
                        if sensitivity is None:
                            sensitivity = config.camera_sensitivity(camera)
                        monitor.zones.saw(
                            observation.visit.visit_id, camera, name, sensitivity, timestamp
                        )
                seen.append(person_id)
            note(monitor.on_frame(store, tracker, seen, timestamp))
            note(monitor.tick(store, tracker, timestamp))
        last = max(v.last_seen for v in tracker.active())
        note(monitor.on_ended(store, tracker.expire(last + WINDOW_S)))
        outcomes = []
        for person in people:
            if person.expect is None:
                continue
            person_id = ids[person.person_id]
            outcomes.append(
                Outcome(
                    spec["id"],
                    person.person_id,
                    person.status,
                    person.expect,
                    finals[person_id],
                    published[person_id],
                )
            )
        return outcomes
    finally:
        store.close()


def _cost_us(outcomes: list[Outcome], config: RiskConfig, repeats: int = 2000) -> float:
    """Mean microseconds of one rule assessment (facts already collected)."""
    facts = [o.final.facts for o in outcomes]
    began = time.perf_counter()
    for _ in range(repeats):
        for f in facts:
            assess(f, config, final=True, timestamp=0.0)
    return (time.perf_counter() - began) / (repeats * len(facts)) * 1e6


def outcomes_of(path: Path = SCENARIOS) -> tuple[list[Outcome], RiskConfig]:
    """Every scored person's outcome of the scenario file, and the config they were scored by."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    config = risk_config(dict(data["config"]))
    zone = ZoneInfo(data["config"]["timezone"])
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="risk-eval-") as folder:
        for spec in data["visits"]:
            outcomes.extend(play(spec, config, zone, Path(folder)))
    return outcomes, config


def run(path: Path = SCENARIOS, weights: dict[str, float] | None = None) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    section = dict(data["config"])
    if weights:
        section["weights"] = {**section.get("weights", {}), **weights}
    config = risk_config(section)
    zone = ZoneInfo(data["config"]["timezone"])
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="risk-eval-") as folder:
        sensitivity = {str(k): float(v) for k, v in (data.get("zone_sensitivity") or {}).items()}
        for spec in data["visits"]:
            outcomes.extend(play(spec, config, zone, Path(folder), sensitivity))
    exact = sum(o.final.level == o.expect for o in outcomes)
    within = sum(abs(LEVELS.index(o.final.level) - LEVELS.index(o.expect)) <= 1 for o in outcomes)
    household = [o for o in outcomes if o.status == "household"]
    household_above = sum(o.final.level != "low" for o in household)
    confusion = Counter((o.expect, o.final.level) for o in outcomes)
    return {
        "visits": len(data["visits"]),
        "assessed": len(outcomes),
        "exact": exact,
        "exact_share": exact / len(outcomes),
        "within_one": within,
        "within_one_share": within / len(outcomes),
        "household": len(household),
        "household_above_low": household_above,
        "confusion": {f"{e}->{a}": n for (e, a), n in sorted(confusion.items())},
        "assess_us": _cost_us(outcomes, config),
        "published_per_visit": sum(o.published for o in outcomes) / len(outcomes),
        "misses": [
            {
                "scenario": o.scenario,
                "person": o.person,
                "expect": o.expect,
                "level": o.final.level,
                "score": o.final.score,
                "reasons": [f"{r.text} ({r.points:+d})" for r in o.final.reasons],
            }
            for o in outcomes
            if o.final.level != o.expect
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--perturb",
        action="store_true",
        help="also score with each default weight 20 %% lower and higher, one at a time",
    )
    parser.add_argument(
        "--server",
        action="store_true",
        help="play the visits through the whole server with CUHK03 people (eval/risk/server.py)",
    )
    parser.add_argument(
        "--llm",
        nargs="?",
        const="",
        metavar="URL",
        help="also narrate every final assessment with an OpenAI-compatible LLM (eval/risk/llm.py;"
        " without URL: Gemma 3 270M from .venv-llm) and report its agreement and latency",
    )
    args = parser.parse_args(argv)
    if args.server:
        return _main_server(args.scenarios, args.json)
    result = run(args.scenarios)
    n = result["assessed"]
    print(f"{result['visits']} visits, {n} people assessed")
    print(f"exact agreement:        {result['exact']}/{n} = {result['exact_share']:.1%}")
    print(f"within one level:       {result['within_one']}/{n} = {result['within_one_share']:.1%}")
    print(f"household above low:    {result['household_above_low']} of {result['household']}")
    print(f"rule assessment cost:   {result['assess_us']:.1f} us per visit (budget 1000 us)")
    print(f"published per visit:    {result['published_per_visit']:.2f} (interim + final)")
    print(
        "expected -> assessed:   " + ", ".join(f"{k}: {v}" for k, v in result["confusion"].items())
    )
    for miss in result["misses"]:
        print(
            f"  miss {miss['scenario']} ({miss['person']}): expected {miss['expect']}, "
            f"got {miss['level']} {miss['score']}: " + "; ".join(miss["reasons"])
        )
    if args.perturb:
        shares = []
        for name, weight in WEIGHT_DEFAULTS.items():
            for factor in (0.8, 1.2):
                changed = run(args.scenarios, {name: weight * factor})
                shares.append((changed["exact_share"], f"{name} x{factor}"))
                print(
                    f"  {name} x{factor}: exact {changed['exact_share']:.1%}, within one "
                    f"{changed['within_one_share']:.1%}, household above low "
                    f"{changed['household_above_low']}"
                )
        worst = min(shares)
        print(
            f"weights +-20 %: exact agreement {worst[0]:.1%} ({worst[1]}) to {max(shares)[0]:.1%}"
        )
        result["perturbed_exact_min"] = worst[0]
    if args.llm is not None:
        from eval.risk.llm import main_llm

        outcomes, config = outcomes_of(args.scenarios)
        result["llm"] = main_llm(outcomes, dict(config.levels), args.llm or None)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def summarise(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement figures of outcome dicts (``expect``, ``level``, ``status``)."""
    n = len(outcomes)
    exact = sum(o["level"] == o["expect"] for o in outcomes)
    within = sum(abs(LEVELS.index(o["level"]) - LEVELS.index(o["expect"])) <= 1 for o in outcomes)
    household = [o for o in outcomes if o["status"] == "household"]
    return {
        "assessed": n,
        "exact": exact,
        "exact_share": exact / n,
        "within_one": within,
        "within_one_share": within / n,
        "household": len(household),
        "household_above_low": sum(o["level"] != "low" for o in household),
        "misses": [o for o in outcomes if o["level"] != o["expect"]],
    }


def _main_server(path: Path, out: Path | None) -> int:
    import asyncio
    import logging

    from eval.risk.server import SHARED, play_server

    logging.basicConfig(level=logging.WARNING)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    began = time.perf_counter()
    outcomes = asyncio.run(play_server(data, SHARED / "models"))
    result = summarise(outcomes)
    n = result["assessed"]
    split = [f"{o['scenario']}/{o['person']}" for o in outcomes if not o["identity_ok"]]
    print(f"through the server: {n} people assessed in {time.perf_counter() - began:.0f} s")
    print(f"exact agreement:        {result['exact']}/{n} = {result['exact_share']:.1%}")
    print(f"within one level:       {result['within_one']}/{n} = {result['within_one_share']:.1%}")
    print(f"household above low:    {result['household_above_low']} of {result['household']}")
    print(f"identity errors (split, or an id shared with another person): {len(split)} {split}")
    for miss in result["misses"]:
        print(
            f"  miss {miss['scenario']} ({miss['person']}): expected {miss['expect']}, "
            f"got {miss['level']} {miss['score']}: " + "; ".join(miss["reasons"])
        )
    if out:
        out.write_text(json.dumps({**result, "outcomes": outcomes}, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
