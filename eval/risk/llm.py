"""The LLM narrative against the labelled visits (``python -m eval.risk.run --llm [URL]``).

Every final rule assessment of the scenario set (played exactly as ``run`` plays it) is given
to the server's own ``Narrator`` with an OpenAI-compatible endpoint: ``URL``, or without one
llama.cpp's server with Gemma 3 270M from ``.venv-llm`` (``scripts/setup --llm``), started on a
free loopback port. One request at a time, so latency is the model's, not a queue's.

Reported: how often the answer passed validation (else the household sees the rule result),
the agreement of what the household sees in LLM mode (the narrative's level when valid, else
the rule level) with the labels, the agreement of the model's own level before the one-step
clamp, how often the clamp or the no-reason rule changed it, and latency p50/p95.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from smart_reid_server.risk import LEVELS
from smart_reid_server.risk.llm import LlmConfig, Narrator

REPO = Path(__file__).resolve().parents[2]
LLM_VENV = Path(os.environ.get("SMART_REID_LLM_VENV", REPO / ".venv-llm"))


@contextmanager
def local_llm(ready_within_s: float = 180.0, threads: int | None = None) -> Iterator[str]:
    """Base URL of llama.cpp's server with ``.venv-llm/gemma.gguf``, for the duration
    (``threads``: its ``--n_threads``; None: llama.cpp's default, every core)."""
    python = LLM_VENV / "bin" / "python"
    model = Path(os.environ.get("SMART_REID_LLM_MODEL", LLM_VENV / "gemma.gguf"))
    if not python.exists() or not model.exists():
        raise SystemExit(f"{LLM_VENV} with gemma.gguf is missing: run scripts/setup --llm")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(python), "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048"]
        + (["--n_threads", str(threads)] if threads else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_within_s
        while True:
            if process.poll() is not None:
                raise SystemExit(f"llama_cpp.server exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise SystemExit("llama_cpp.server did not come up") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # busy generating: it does not stop at once
            process.kill()
            process.wait()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


async def narrate_all(
    outcomes: list[Any], url: str, levels: dict[str, int], timeout_s: float = 120.0
) -> dict[str, Any]:
    """Each outcome's final assessment through the Narrator; the figures in the docstring."""
    published: list[dict[str, Any]] = []

    async def keep(payload: dict[str, Any]) -> None:
        published.append(payload)

    config = LlmConfig(url=url, timeout_s=timeout_s, rate_per_min=10000, daily_tokens=10**9)
    narrator = Narrator(config, levels, keep)
    raw: list[str | None] = []
    original = narrator.client.complete

    async def recording(*args: Any, **kwargs: Any) -> Any:
        try:
            answer, tokens = await original(*args, **kwargs)
        except Exception:
            raw.append(None)
            raise
        raw.append(answer.get("level") if isinstance(answer.get("level"), str) else None)
        return answer, tokens

    narrator.client.complete = recording  # type: ignore[method-assign]
    rows = []
    latencies = []
    try:
        for outcome in outcomes:
            rules = outcome.final.to_json()
            t0 = time.perf_counter()
            payload = await narrator.narrate(rules)
            latencies.append(time.perf_counter() - t0)
            rows.append(
                {
                    "scenario": outcome.scenario,
                    "person": outcome.person,
                    "status": outcome.status,
                    "expect": outcome.expect,
                    "rules": rules["level"],
                    "model": raw[-1] if raw else None,
                    "seen": payload["level"] if payload else rules["level"],
                    "valid": payload is not None,
                    "adjusted": bool(payload and payload["llm"]["adjustment"]),
                    "summary": payload["summary"] if payload else None,
                }
            )
    finally:
        await narrator.client.close()
    n = len(rows)

    def agree(key: str, within: int = 0) -> int:
        return sum(
            1
            for r in rows
            if r[key] in LEVELS and abs(LEVELS.index(r[key]) - LEVELS.index(r["expect"])) <= within
        )

    household = [r for r in rows if r["status"] == "household"]
    return {
        "assessed": n,
        "valid": sum(r["valid"] for r in rows),
        "adjusted": sum(r["adjusted"] for r in rows),
        "exact": agree("seen"),
        "within_one": agree("seen", 1),
        "model_exact": agree("model"),
        "model_within_one": agree("model", 1),
        "rules_exact": agree("rules"),
        "household_above_low": sum(r["seen"] != "low" for r in household),
        "household": len(household),
        "latency_p50_s": _pct(latencies, 0.5),
        "latency_p95_s": _pct(latencies, 0.95),
        "failures": narrator.snapshot_stats()["failures"],
        "rows": rows,
    }


def report(result: dict[str, Any]) -> None:
    n = result["assessed"]
    print(f"LLM mode: {n} final assessments narrated, one at a time")
    print(f"valid answers:          {result['valid']}/{n} (else the rule result stands)")
    print(f"changed by the server:  {result['adjusted']} (clamped to one step, or no reason)")
    print(
        f"exact agreement:        {result['exact']}/{n} = {result['exact'] / n:.1%}  (rules alone: {result['rules_exact'] / n:.1%})"
    )
    print(f"within one level:       {result['within_one']}/{n} = {result['within_one'] / n:.1%}")
    print(
        f"the model's own level:  exact {result['model_exact']}/{n}, within one {result['model_within_one']}/{n}"
    )
    print(f"household above low:    {result['household_above_low']} of {result['household']}")
    print(
        f"latency:                p50 {result['latency_p50_s']:.1f} s, p95 {result['latency_p95_s']:.1f} s"
    )
    if result["failures"]:
        print(f"failures:               {result['failures']}")


def main_llm(outcomes: list[Any], levels: dict[str, int], url: str | None) -> dict[str, Any]:
    if url:
        result = asyncio.run(narrate_all(outcomes, url, levels))
    else:
        with local_llm() as base:
            result = asyncio.run(narrate_all(outcomes, base, levels))
    report(result)
    return result
