"""Matcher take-over time: kill -9 the leading matcher, time until the standby decides again.

    .venv/bin/python bench/bench_failover.py [--rounds 5] [--pg postgresql://...] [--json FILE]

Two matcher processes (``smart-reid serve``, ``cluster.role: matcher``, each with its own data
folder, ``store.url`` on a throw-away database of the PostgreSQL at ``--pg``) and one worker
process share a private redis-server started here. Two cameras stream JPEG frames of vtest.avi
into Redis at ``--fps`` each, with live timestamps, all the time. Each round:

1. find the leader (``/api/health`` ready) and the standby (health names standby);
2. kill -9 the leader; measure until the standby's ``/api/health`` is ready, and until its first
   decision (a camera's high-water mark in Redis moves past where the dead leader left it);
3. start the killed matcher again, as its supervisor would, and wait until it stands by.

Prints p50 and max over the rounds, in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import psycopg
import redis.asyncio as aioredis
from bench_cluster import SHARED, free_port, private_redis, serve_process
from smart_reid_server.cluster.matcher import enqueue
from smart_reid_server.cluster.messages import FrameMsg, encode_jpeg
from smart_reid_server.cluster.transport import Keys

PREFIX = "fb"
CAMERAS = {"a": 0, "b": 300}


def read_frames(count: int) -> dict[str, list[bytes]]:
    capture = cv2.VideoCapture(str(SHARED / "data" / "video" / "vtest.avi"))
    images = []
    while len(images) < max(CAMERAS.values()) + 2 * count:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    capture.release()
    return {
        cam: [encode_jpeg(images[start + 2 * i]) for i in range(count)]
        for cam, start in CAMERAS.items()
    }


class Processes:
    def __init__(self, tmp: Path, redis_url: str, store_url: str) -> None:
        self.tmp = tmp
        self.redis_url = redis_url
        self.store_url = store_url
        self.ports = {"m1": free_port(), "m2": free_port()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def config(self, name: str) -> dict[str, Any]:
        role = "worker" if name == "w" else "matcher"
        return {
            "data_dir": str(self.tmp / name),
            "log_level": "info",
            "models": {"dir": str(SHARED / "models"), "download": False, "threads": 1},
            "cameras": list(CAMERAS),
            "mqtt": {"enabled": False},
            "http": {"enabled": role == "matcher", "port": self.ports.get(name, 0)},
            "queue": {"per_camera": 1000, "workers": 1},
            "store": {"url": self.store_url},
            "cluster": {
                "role": role,
                "redis_url": self.redis_url,
                "prefix": PREFIX,
                "lease_s": 2.0,
                **({"worker_id": "w"} if role == "worker" else {}),
            },
        }

    def start(self, name: str) -> None:
        self.procs[name] = serve_process(
            self.config(name), self.tmp / f"{name}.yaml", self.tmp / f"{name}.log"
        )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def health(http: aiohttp.ClientSession, port: int) -> str:
    """ready | degraded | standby | starting | down"""
    try:
        url = f"http://127.0.0.1:{port}/api/health"
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as reply:
            body = await reply.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return "down"
    if any("standby" in r for r in body["reasons"]):
        return "standby"
    return str(body["status"])


async def wait_for(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {within} s for {what}; see the logs")
        await asyncio.sleep(0.02)


async def feed(client: aioredis.Redis, frames: dict[str, list[bytes]], fps: float) -> None:
    keys = Keys(PREFIX)
    i = 0
    while True:
        for cam, jpegs in frames.items():
            msg = FrameMsg(cam, time.time(), jpegs[i % len(jpegs)], f"{cam}-{i}")
            await enqueue(client, keys, msg, backlog=10000)
        i += 1
        await asyncio.sleep(1.0 / fps)


async def hwm(client: aioredis.Redis) -> dict[bytes, bytes]:
    return dict(await client.hgetall(Keys(PREFIX).hwm))


async def run(tmp: Path, redis_url: str, store_url: str, rounds: int, fps: float) -> Any:
    procs = Processes(tmp, redis_url, store_url)
    client = aioredis.Redis.from_url(redis_url)
    http = aiohttp.ClientSession()
    feeder: asyncio.Task[None] | None = None
    out: list[dict[str, float]] = []
    try:
        procs.start("m1")
        await wait_for(lambda: _is(http, procs.ports["m1"], "ready", "degraded"), 120, "m1")
        procs.start("m2")
        procs.start("w")
        await wait_for(lambda: _is(http, procs.ports["m2"], "standby"), 120, "m2 standing by")
        feeder = asyncio.create_task(feed(client, read_frames(60), fps))
        await wait_for(lambda: _is(http, procs.ports["m1"], "ready"), 120, "m1 ready")
        for n in range(rounds):
            states = {m: await health(http, p) for m, p in procs.ports.items()}
            leader = next(m for m, s in states.items() if s == "ready")
            standby = next(m for m, s in states.items() if s == "standby")
            port = procs.ports[standby]
            procs.kill(leader)
            killed = time.monotonic()
            left = await hwm(client)

            first_s, ready_s = await take_over(client, http, port, left, killed)
            out.append({"ready_s": round(ready_s, 3), "first_decision_s": round(first_s, 3)})
            print(f"round {n + 1}: {leader} killed, {standby} ready {ready_s:.2f} s, "
                  f"first decision {first_s:.2f} s", file=sys.stderr)  # fmt: skip
            procs.start(leader)
            await wait_for(
                lambda p=procs.ports[leader]: _is(http, p, "standby"), 120, f"{leader} standby"
            )
    finally:
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        procs.stop_all()
        await http.close()
        await client.aclose()
    return out


async def take_over(
    client: aioredis.Redis,
    http: aiohttp.ClientSession,
    port: int,
    left: dict[bytes, bytes],
    killed: float,
) -> tuple[float, float]:
    """Seconds from ``killed`` to the first decision after it and to the standby's health
    ready, both polled in one loop (each is when its condition was first seen true)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(seen) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the standby did not take over within 60 s; see the logs")
        if "first" not in seen and await hwm(client) != left:
            seen["first"] = time.monotonic() - killed
        if "ready" not in seen and await health(http, port) == "ready":
            seen["ready"] = time.monotonic() - killed
        await asyncio.sleep(0.01)
    return seen["first"], seen["ready"]


async def _is(http: aiohttp.ClientSession, port: int, *states: str) -> bool:
    return await health(http, port) in states


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_s": round(float(np.percentile(values, 50)), 3),
        "max_s": round(max(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fps", type=float, default=4.0, help="frames per second per camera")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    database = f"smart_reid_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"'.encode())
    try:
        with tempfile.TemporaryDirectory() as tmp_name, private_redis(tmp_name) as redis_url:
            rounds = asyncio.run(
                run(Path(tmp_name), redis_url, f"{args.pg}/{database}", args.rounds, args.fps)
            )
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'.encode())
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rounds": rounds,
        "ready": summary([r["ready_s"] for r in rounds]),
        "first_decision": summary([r["first_decision_s"] for r in rounds]),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
