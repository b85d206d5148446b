"""``python -m eval``: measure identity quality and write eval/results/ and eval/thresholds.json.

Embeddings are cached under eval/results/cache/, so only the first run (or a run after the
product's embedding code changed) spends minutes embedding; later runs take about a minute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from eval import experiments, report
from eval.data import REPO, load_split

_LOGGER = logging.getLogger("eval")
ACTIVE_REPEATS = {"val": 20, "train": 3}


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__)
    parser.add_argument(
        "--splits", default="val,train", help="comma-separated CUHK03 labeled splits"
    )
    parser.add_argument("--out", type=Path, default=REPO / "eval" / "results")
    parser.add_argument(
        "--thresholds",
        type=Path,
        default=REPO / "eval" / "thresholds.json",
        help="where to write the recommended thresholds ('-' to skip)",
    )
    parser.add_argument("--no-timing", action="store_true", help="skip embedding timings")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    logging.getLogger("eval").setLevel(logging.INFO)

    try:
        splits = {name: load_split(name) for name in args.splits.split(",") if name}
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ctx = experiments.Context(splits, timing=not args.no_timing)
    results: dict[str, Any] = {
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "splits": {n: {"crops": len(s), "identities": s.num_identities} for n, s in splits.items()},
    }
    results["retrieval"] = experiments.run_retrieval(ctx)
    results["online"] = experiments.run_online(ctx)
    results["calibration"] = experiments.run_calibration(ctx)
    results["thresholds"] = experiments.thresholds_file(results["calibration"])
    results["active"] = experiments.run_active(ctx, ACTIVE_REPEATS)
    results["embedding_ms_per_crop"] = dict(ctx.embed_ms)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    images = report.plots(results, args.out)
    (args.out / "report.md").write_text(report.markdown(results, images), encoding="utf-8")
    if str(args.thresholds) != "-":
        text = json.dumps(results["thresholds"], indent=2) + "\n"
        args.thresholds.write_text(text, encoding="utf-8")
    print(f"wrote {args.out / 'report.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
