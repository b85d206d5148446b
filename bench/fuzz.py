"""Deep fuzz run against a real server: the CI fuzz (tests/server/test_fuzz.py), for longer.

    .venv/bin/python bench/fuzz.py                     # 20,000 inputs, seed 1
    .venv/bin/python bench/fuzz.py --inputs 100000 --seed 7 --minutes 20

Starts the server in-process on loopback (real models from ../shared/models, a throw-away data
dir, no broker: MQTT ingest, edge and Frigate messages are handed to their handlers as the
broker would), sends the inputs in batches and, after each batch, checks the rules in
tests/server/fuzz_support.py: no 5xx, no task ended by an exception, counters that add up, a
real frame still processed, resident memory bounded. Prints one line per batch; exits 1 on the
first broken rule with the seed and batch that reproduce it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon" / "inference_server"))
sys.path.insert(0, str(ROOT))

from smart_reid_server.serve.app import SmartReidApp  # noqa: E402

from tests.server.fuzz_support import FuzzRun  # noqa: E402
from tests.server.server_support import settings_for  # noqa: E402

SHARED = Path(os.environ.get("SMART_REID_SHARED", ROOT.parent / "shared"))


async def main(args: argparse.Namespace) -> int:
    person = SHARED / "data" / "cuhk03" / "labeled" / "val" / "0007_00.jpg"
    with tempfile.TemporaryDirectory(prefix="smart-reid-fuzz-") as data_dir:
        settings = settings_for(Path(data_dir), SHARED / "models", http={"port": 0})
        app = SmartReidApp(settings)
        await app.start()
        started = time.monotonic()
        sent = 0
        batch = 0
        try:
            while sent < args.inputs and time.monotonic() - started < args.minutes * 60:
                size = min(args.batch, args.inputs - sent)
                run = FuzzRun(
                    app,
                    person.read_bytes(),
                    seed=args.seed * 1_000_003 + batch,
                    max_rss_growth_mib=args.max_rss_growth_mib,
                )
                report = await run.run(size, time_budget_s=args.minutes * 60)
                sent += sum(report.inputs.values())
                print(f"batch {batch} (seed {args.seed}): {report.summary()}", flush=True)
                if report.problems:
                    print("\n".join(report.problems[:50]), file=sys.stderr)
                    print(f"reproduce: --seed {args.seed}, batch {batch}", file=sys.stderr)
                    return 1
                batch += 1
        finally:
            await app.stop()
        print(f"{sent} inputs in {time.monotonic() - started:.0f} s, no problem found")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2_000, help="inputs between checks")
    parser.add_argument("--minutes", type=float, default=30.0, help="stop after this long")
    parser.add_argument("--max-rss-growth-mib", type=float, default=400.0)
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(main(parser.parse_args())))
