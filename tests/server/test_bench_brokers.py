"""Smoke test of bench/bench_brokers.py on real private engines: small runs, real assertions.

Checks what docs/scaling.md relies on: every message delivered once in the throughput runs, and
a SIGKILLed consumer's unacknowledged messages reach the survivor on NATS and Redis.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_brokers.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_brokers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_brokers"] = module
    spec.loader.exec_module(module)
    return module


def _require(binary: str, package: str) -> None:
    if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
        pytest.skip(f"{binary} not installed")
    pytest.importorskip(package)


ARGS = argparse.Namespace(messages=40, latency_s=0.5, rate=30.0, redeliver_s=1.0)


@pytest.mark.parametrize(
    ("transport", "binary", "package"),
    [("redis", "redis-server", "redis"), ("nats", "nats-server", "nats")],
)
def test_queue_transports_deliver_all_and_redeliver_a_dead_consumers_work(
    transport: str, binary: str, package: str
) -> None:
    _require(binary, package)
    bench = _bench()
    body = bytes(2048)
    out = bench.measure(transport, ARGS, body)
    for key in ("tput_1c", "tput_2c"):
        assert out[key]["delivered"] == ARGS.messages
        assert out[key]["duplicates"] == 0
    assert out["latency"]["n"] == int(ARGS.latency_s * ARGS.rate)
    crash = out["crash"]
    assert crash["taken_unacked"] > 0
    assert crash["redelivered"] == crash["taken_unacked"]
    # the claim / ack_wait timer runs from the delivery to the victim, not from the kill
    assert crash["redelivered_after_s"] <= ARGS.redeliver_s + 3.0
    assert crash["others_delivered"] == crash["others"]


def test_mqtt_shared_subscription_delivers_all() -> None:
    _require("mosquitto", "paho.mqtt.client")
    bench = _bench()
    with bench.engine("mqtt") as port:
        sink, _ = bench.run_mqtt(port, ARGS.messages, 2, bytes(2048), 0.0)
    assert len(sink.seen) == ARGS.messages
    assert sink.duplicates == 0
    assert set(sink.per_consumer) == {"c0", "c1"}
