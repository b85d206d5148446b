"""LLM load never delays decisions: frame -> ``new_person`` with the LLM idle and busy (issue 13).

    .venv/bin/python bench/bench_risk_llm.py [--people 40] [--endpoint slow|real|URL]

The real server runs in this process twice on the same frames (real ReID model, store, visits,
rule assessor): once without ``risk.llm`` (idle), once with it and every assessment sent to
the LLM (``min_level: low``). ``--endpoint slow`` (default) is a local OpenAI-style endpoint
that holds every request for 30 s, so the narrator always has a request in flight and a full
queue; ``real`` is llama.cpp's server with Gemma 3 270M from ``.venv-llm`` (it also competes
for the CPU, as it would on a small home server); a URL uses that endpoint.

Each frame is a CUHK03 crop of a person not seen before (so each decision is a ``new_person``),
uploaded to ``POST /api/frames`` one at a time; the time to its answer (which carries the
decision, published on MQTT before the answer) is the latency. Prints p50/p95 for both runs and
busy/idle as a ratio, and the narrator's counters (requests queued, dropped, in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon" / "inference_server"))
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from smart_reid_server.config import load  # noqa: E402
from smart_reid_server.serve.app import SmartReidApp  # noqa: E402

SHARED = Path(os.environ.get("SMART_REID_SHARED", ROOT.parent / "shared"))
CUHK = SHARED / "data" / "cuhk03" / "labeled" / "val"
HOLD_S = 30.0


@contextlib.asynccontextmanager
async def slow_endpoint() -> AsyncIterator[str]:
    closing = asyncio.Event()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), HOLD_S)
        return web.json_response({"error": "too slow on purpose"}, status=503)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        closing.set()
        await runner.cleanup()


def _settings(data_dir: Path, llm_url: str | None) -> Any:
    risk: dict[str, Any] = {"cameras": {"front": 0.25}}
    if llm_url:
        risk["llm"] = {"url": llm_url, "min_level": "low", "timeout_s": 120, "queue": 8}
    return load(
        None,
        environ={},
        overrides={
            "data_dir": str(data_dir),
            "log_level": "error",
            "models": {"dir": str(SHARED / "models"), "download": False},
            "quality": {"min_height_px": 50},
            "cameras": ["front"],
            "mqtt": {"enabled": False},
            "http": {"port": 0},
            "visits": {"window_s": 5.0},
            "risk": risk,
        },
    )


def _frames(people: int) -> Iterator[bytes]:
    for pid in range(people):
        yield (CUHK / f"{pid:04d}_00.jpg").read_bytes()


async def _run(people: int, llm_url: str | None) -> tuple[list[float], dict[str, Any]]:
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as folder:
        app = SmartReidApp(_settings(Path(folder), llm_url))
        await app.start()
        try:
            base = app.http_url()
            async with aiohttp.ClientSession() as session:
                t = time.time() - 3600
                for i, jpeg in enumerate(_frames(people)):
                    form = aiohttp.FormData()
                    form.add_field("image", jpeg, filename="f.jpg", content_type="image/jpeg")
                    form.add_field("camera", "front")
                    form.add_field("timestamp", str(t + i * 10.0))
                    h, w = _size(jpeg)
                    form.add_field("detections", f'[{{"box": [0, 0, {w}, {h}], "score": 0.9}}]')
                    began = time.perf_counter()
                    async with session.post(f"{base}/api/frames", data=form) as response:
                        body = await response.json()
                    elapsed = time.perf_counter() - began
                    if response.status == 200 and any(
                        d.get("new_person") for d in body["decisions"]
                    ):
                        latencies.append(elapsed * 1000.0)
            stats = app.stats()["risk_llm"]
        finally:
            await app.stop()
    return latencies, stats


def _size(jpeg: bytes) -> tuple[int, int]:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return int(image.shape[0]), int(image.shape[1])


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _main(people: int, endpoint: str, threads: int | None) -> int:
    idle, _ = await _run(people, None)
    if endpoint == "slow":
        async with slow_endpoint() as url:
            busy, stats = await _run(people, url)
    elif endpoint == "real":
        from eval.risk.llm import local_llm

        with local_llm(threads=threads) as url:
            busy, stats = await _run(people, url)
    else:
        busy, stats = await _run(people, endpoint)
    print(f"load average: {os.getloadavg()[0]:.2f}; {people} new people, one frame each")
    if endpoint == "real":
        print(f"LLM threads: {threads or 'llama.cpp default (all cores)'}")
    for name, values in (("idle", idle), ("busy", busy)):
        print(
            f"{name}: frame -> new_person p50 {statistics.median(values):.0f} ms, "
            f"p95 {_p(values, 0.95):.0f} ms ({len(values)} decisions)"
        )
    print(
        f"busy/idle: p50 x{statistics.median(busy) / statistics.median(idle):.2f}, "
        f"p95 x{_p(busy, 0.95) / _p(idle, 0.95):.2f}"
    )
    print(
        f"narrator while busy ({endpoint}): requested {stats['requested']}, in flight "
        f"{stats['in_flight']}, queued {stats['queued']}, dropped {stats['dropped_queue_full']}, "
        f"published {stats['published']}, failures {stats['failures']}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--endpoint", default="slow", help="slow | real | an OpenAI-style URL")
    parser.add_argument(
        "--llm-threads", type=int, default=None, help="real: llama.cpp's --n_threads"
    )
    args = parser.parse_args(argv)
    return asyncio.run(_main(args.people, args.endpoint, args.llm_threads))


if __name__ == "__main__":
    sys.exit(main())
