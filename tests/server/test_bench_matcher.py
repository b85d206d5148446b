"""Smoke test of bench/bench_matcher.py: a few simulated cameras through the real identity layer."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest
from _embeddings import missing_reason

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_matcher.py"


def test_simulated_cameras_reach_the_identity_layer_and_the_store() -> None:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    spec = importlib.util.spec_from_file_location("bench_matcher", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_matcher"] = bench
    spec.loader.exec_module(bench)
    out = bench.simulate(argparse.Namespace(cameras=3, fps=5.0, seconds=4.0, seed=1))
    assert out["observations"] == 3 * 20
    assert 3 * 20 <= out["persons"] <= 4 * 3 * 20
    assert out["gallery_people"] >= 1  # somebody was decided a new person and stored
    assert out["decisions"] > 0
    assert out["store_rows_written"] > 0
    assert out["cost_ms_p50"] <= out["cost_ms_p95"]
