"""``python -m eval.realvideo.run``: the real-video figures (docs/quality.md "Real video").

Runs the server offline over ``walk_bike_sample.mp4`` (labelled: ``labels/``, LABELS.md) in every
camera layout and scores it: the first half of the video (frames 0-899) is where settings were
tuned, the second half (900-1799) is held out, and both are reported apart as well as whole. It
then runs ``vtest.avi``, which nobody labelled or tuned on, and reports what needs no labels:
notifications, identities, determinism. Writes ``eval/results/realvideo.json`` and
``eval/results/realvideo.md``; ``--plots`` adds presence-over-time plots (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.data import REPO
from eval.realvideo.metrics import (
    SUMMARY_HEADER,
    Labels,
    PresenceRow,
    score,
    summary_row,
    tracker_metrics,
)
from eval.realvideo.replay import LAYOUTS, Run, replay

RESULTS = REPO / "eval" / "results"
TUNING = (0, 900)
HELD_OUT = (900, 1800)


def decisions_key(run: Run) -> list[tuple[str, int, str, bool]]:
    """What must not change between two runs of the same input: who was decided where."""
    return [(s.camera, s.frame_index, s.person_id, s.new_person) for s in run.sightings]


def same_decisions(a: Run, b: Run) -> bool:
    """Two runs decided the same and counted the same people present after every frame
    (identity ids are random: compared by their first-seen order)."""

    def canonical(run: Run) -> tuple[list[tuple[str, int, int, bool]], list[Any]]:
        order: dict[str, int] = {}
        decided = [
            (camera, frame, order.setdefault(pid, len(order)), new)
            for camera, frame, pid, new in decisions_key(run)
        ]
        present = [
            (key, sorted(str(order.get(p, p)) for p in people))
            for key, people in sorted(run.presence.items())
        ]
        return decided, present

    return canonical(a) == canonical(b)


def evaluate(
    layouts: Sequence[str],
    *,
    overrides: Mapping[str, Any] | None = None,
    step: int = 3,
    vtest: bool = True,
    check_determinism: bool = True,
    plots: Path | None = None,
) -> dict[str, Any]:
    labels = Labels.load("walk_bike_sample.mp4")
    out: dict[str, Any] = {"walk_bike_sample": {}, "vtest": {}, "overrides": overrides or {}}
    for layout in layouts:
        run = replay("walk_bike_sample.mp4", layout, step=step, overrides=overrides)
        rows: list[PresenceRow] = []
        figures: dict[str, Any] = {
            "whole": score(run, labels, presence_rows=rows),
            "tuning": score(run, labels, frames=TUNING),
            "held_out": score(run, labels, frames=HELD_OUT),
            "tracker": tracker_metrics(run, labels),
            "seconds": round(run.seconds, 1),
        }
        if check_determinism:
            again = replay("walk_bike_sample.mp4", layout, step=step, overrides=overrides)
            figures["deterministic"] = same_decisions(run, again)
        out["walk_bike_sample"][layout] = figures
        if plots is not None:
            written = plot_presence(run, rows, plots)
            if written:
                figures["plot"] = str(written)
        logging.info("walk_bike_sample %s: %s", layout, _brief(figures["whole"]))
    if vtest:
        for layout in layouts:
            run = replay("vtest.avi", layout, step=1, overrides=overrides)
            figures = {
                "notifications": sum(s.new_person for s in run.sightings),
                "identities": len({s.person_id for s in run.sightings}),
                "sightings": len(run.sightings),
                "max_present": max((len(v) for v in run.presence.values()), default=0),
                "merges": len(run.merges),
            }
            if check_determinism:
                again = replay("vtest.avi", layout, step=1, overrides=overrides)
                figures["deterministic"] = same_decisions(run, again)
            out["vtest"][layout] = figures
            logging.info("vtest %s: %s", layout, figures)
    return out


def plot_presence(run: Run, rows: Sequence[PresenceRow], folder: Path) -> Path | None:
    """People present over time, one panel per camera: what the server counted against the
    labelled people (the band above the truth: people in ignored boxes), with its alerts and
    the line between the tuning and held-out halves. None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("no plots: matplotlib is not installed (pip install matplotlib)")
        return None
    cameras = list(run.cameras)
    fig, axes = plt.subplots(len(cameras), 1, figsize=(12, 2.6 * len(cameras)), squeeze=False)
    start = min(run.frame_times.values())
    split = run.frame_times.get(HELD_OUT[0])
    for ax, camera in zip(axes[:, 0], cameras, strict=True):
        mine = sorted((r for r in rows if r.camera == camera), key=lambda r: r.timestamp)
        t = [r.timestamp - start for r in mine]
        truth = [r.truth for r in mine]
        ax.fill_between(
            t,
            truth,
            [r.truth + r.hidden for r in mine],
            step="post",
            color="0.85",
            label="+ people in ignored boxes",
        )
        ax.step(t, truth, where="post", color="black", label="labelled people")
        ax.step(t, [r.counted for r in mine], where="post", color="tab:blue", label="server")
        alerts = [s.timestamp - start for s in run.sightings if s.camera == camera and s.new_person]
        ax.plot(alerts, [0] * len(alerts), "v", color="tab:red", label="new_person")
        if split is not None:
            ax.axvline(split - start, color="tab:green", linestyle="--", label="held out from here")
        ax.set_title(f"{run.layout}: camera {camera}")
        ax.set_ylabel("people present")
        ax.legend(loc="upper left", fontsize="small", ncol=5)
    axes[-1, 0].set_xlabel("seconds into walk_bike_sample.mp4")
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"realvideo_presence_{run.layout}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _brief(figures: Mapping[str, Any]) -> str:
    return (
        f"{figures['notifications']} notifications for {figures['true_visits']} visits "
        f"({figures['per_visit']:.2f}), {figures['missed_visits']} missed, "
        f"{figures['identities_per_person']:.2f} identities/person, "
        f"{len(figures['impure_identities'])} impure, presence "
        f"{figures['presence_within_one'] * 100:.1f}%"
    )


def report(results: Mapping[str, Any]) -> str:
    lines = ["# Real video (generated by `python -m eval.realvideo.run`)", ""]
    lines.append("## walk_bike_sample.mp4 (labelled; first half tuned on, second half held out)")
    lines.append("")
    lines.append(SUMMARY_HEADER)
    for layout, figures in results["walk_bike_sample"].items():
        for part in ("whole", "tuning", "held_out"):
            lines.append(summary_row(f"{layout} {part}", figures[part]))
    lines.append("")
    lines.append("| layout | tracker IDF1 | ID switches | MOTA | fragmentations | deterministic |")
    lines.append("|---|---|---|---|---|---|")
    for layout, figures in results["walk_bike_sample"].items():
        t = figures["tracker"]
        lines.append(
            f"| {layout} | {t['idf1']:.3f} | {t['id_switches']} | {t['mota']:.3f} | "
            f"{t['fragmentations']} | {figures.get('deterministic', '-')} |"
        )
    if results["vtest"]:
        lines += ["", "## vtest.avi (not labelled, never tuned on)", ""]
        lines.append(
            "| layout | notifications | identities | most present at once | merges "
            "| deterministic |"
        )
        lines.append("|---|---|---|---|---|---|")
        for layout, f in results["vtest"].items():
            lines.append(
                f"| {layout} | {f['notifications']} | {f['identities']} | {f['max_present']} | "
                f"{f['merges']} | {f.get('deterministic', '-')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a server setting to try, e.g. tracks.decide_looks=2",
    )
    parser.add_argument("--no-vtest", action="store_true")
    parser.add_argument(
        "--plots", action="store_true", help="presence-over-time PNGs next to the report"
    )
    parser.add_argument("--no-determinism", action="store_true", help="run each layout once")
    parser.add_argument("--out", default=str(RESULTS / "realvideo"), help="file stem")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        overrides.setdefault(section, {})[name] = (
            json.loads(value) if value not in ("", "null") else None
        )
    results = evaluate(
        args.layouts.split(","),
        overrides=overrides,
        vtest=not args.no_vtest,
        check_determinism=not args.no_determinism,
        plots=Path(args.out).parent if args.plots else None,
    )
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    text = report(results)
    stem.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
