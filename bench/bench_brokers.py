"""Transport candidates for worker -> matcher observations, measured on real engines.

    .venv/bin/python bench/bench_brokers.py [--kb 58] [--messages 600] [--latency-s 8] [--json FILE]

Each engine is started privately on a free loopback port, with durable settings:

- Mosquitto (generated config, persistence on), MQTT 5 shared subscription
  ``$share/matchers/obs/#``, QoS 1, paho-mqtt 2;
- nats-server ``-js`` (temp store dir), a work-queue stream ``OBS`` on ``obs.>`` in file
  storage and one durable pull consumer shared by the consumers, nats-py;
- redis-server (``appendonly yes`` in a temp dir), one stream, consumer group, redis-py asyncio.

One message is an observation as a worker would send it (``--kb``, default about 58 KB: 3 persons
x 512 float32 + boxes, 3 crop JPEGs of 4 KB, one 40 KB frame JPEG), keyed by one of 6 cameras.

Measured per transport:

1. throughput, 1 producer -> 1 consumer and 1 producer -> 2 consumers (msgs/s, MB/s), at most
   32 publishes in flight, every message acknowledged by its consumer;
2. publish -> consume latency p50/p95 at a paced 30 msg/s (6 cameras x 5 fps), 1 consumer;
3. crash: a consumer in a child process takes messages without acknowledging them and is killed
   with SIGKILL; how many of them reach the surviving consumer, and after how long (the NATS
   ``ack_wait`` and the Redis claim idle time are both set to ``--redeliver-s``);
4. per-camera order with 2 consumers: deliveries whose camera sequence number is lower than one
   already delivered for that camera (by either consumer, in arrival order).

Everything runs in one process (plus the crash child); on a 2-core machine the producer, the
consumers and the engine share the cores, so the figures are an upper bound on per-hop cost,
not a ceiling of the engines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CAMERAS = 6
WINDOW = 32
HEADER = struct.Struct("<qiiq")  # seq, camera, camera_seq, sent_ns


def default_kb() -> float:
    persons = 3
    vectors = persons * 512 * 4
    boxes = persons * 4 * 4
    crops = persons * 4096
    frame = 40 * 1024
    return (vectors + boxes + crops + frame + HEADER.size) / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, deadline_s: float = 15.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"engine on port {port} did not open within {deadline_s} s")


@contextmanager
def engine(name: str) -> Iterator[int]:
    """Start mosquitto / nats / redis privately; yield its port."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        if name == "mqtt":
            conf = Path(tmp) / "mosquitto.conf"
            conf.write_text(
                f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                f"persistence_location {tmp}/\nmax_queued_messages 100000\n"
                "max_inflight_messages 32\nmessage_size_limit 0\n"
            )
            cmd = [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)]
        elif name == "nats":
            cmd = [
                shutil.which("nats-server") or "nats-server",
                "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", tmp,
            ]  # fmt: skip
        elif name == "redis":
            cmd = [
                shutil.which("redis-server") or "redis-server",
                "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
                "--appendonly", "yes", "--save", "", "--protected-mode", "no",
            ]  # fmt: skip
        else:
            raise ValueError(name)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def make_payload(seq: int, camera: int, camera_seq: int, body: bytes) -> bytes:
    return HEADER.pack(seq, camera, camera_seq, time.perf_counter_ns()) + body


def parse(data: bytes) -> tuple[int, int, int, int]:
    seq, cam, cseq, sent = HEADER.unpack_from(data)
    return int(seq), int(cam), int(cseq), int(sent)


@dataclass
class Sink:
    """What consumers saw: arrival order and latency, thread-safe."""

    expected: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    last_cseq: dict[int, int] = field(default_factory=dict)
    out_of_order: int = 0
    bytes: int = 0
    per_consumer: dict[str, int] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    first_at: dict[int, float] = field(default_factory=dict)

    def take(self, data: bytes, consumer: str) -> None:
        now = time.perf_counter_ns()
        seq, cam, cseq, sent = parse(data)
        with self.lock:
            if seq in self.seen:
                self.duplicates += 1
                return
            self.seen.add(seq)
            self.first_at[seq] = time.monotonic()
            self.bytes += len(data)
            self.latencies_ms.append((now - sent) / 1e6)
            if cseq < self.last_cseq.get(cam, -1):
                self.out_of_order += 1
            self.last_cseq[cam] = max(cseq, self.last_cseq.get(cam, -1))
            self.per_consumer[consumer] = self.per_consumer.get(consumer, 0) + 1
            if len(self.seen) >= self.expected:
                self.done.set()


# ---------------------------------------------------------------- MQTT 5 (paho, thread based)


def mqtt_client(
    port: int,
    cid: str,
    on_msg: Callable[[bytes], None] | None,
    *,
    ack: bool = True,
    receive_max: int = 0,
) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5, manual_ack=not ack
    )
    c.max_inflight_messages_set(WINDOW)
    c.max_queued_messages_set(0)
    connected = threading.Event()
    subscribed = threading.Event()
    c.on_connect = lambda *_a: connected.set()
    c.on_subscribe = lambda *_a: subscribed.set()
    if on_msg is not None:
        c.on_message = lambda _c, _u, m: on_msg(m.payload)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    if receive_max:
        props.ReceiveMaximum = receive_max
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_start()
    if not connected.wait(10):
        raise RuntimeError("MQTT connect timed out")
    if on_msg is not None:
        c.subscribe("$share/matchers/obs/#", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("MQTT subscribe timed out")
    return c


def mqtt_publish_all(c: Any, msgs: list[tuple[int, bytes]], pace_s: float = 0.0) -> None:
    infos = []
    start = time.monotonic()
    for i, (cam, body) in enumerate(msgs):
        if pace_s:
            delay = start + i * pace_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        infos.append(c.publish(f"obs/cam{cam}", body(i) if callable(body) else body, qos=1))
    for info in infos:
        info.wait_for_publish(30)


def run_mqtt(port: int, n: int, consumers: int, body: bytes, pace_s: float) -> tuple[Sink, float]:
    sink = Sink(n)
    subs = [
        mqtt_client(port, f"c{k}", lambda d, k=k: sink.take(d, f"c{k}")) for k in range(consumers)
    ]
    pub = mqtt_client(port, "producer", None)
    cam_seq = [0] * CAMERAS
    plan = []
    for i in range(n):
        cam = i % CAMERAS
        plan.append((cam, cam_seq[cam]))
        cam_seq[cam] += 1
    t0 = time.perf_counter()
    mqtt_publish_all(
        pub,
        [(cam, lambda i, cam=cam, cs=cs: make_payload(i, cam, cs, body)) for cam, cs in plan],
        pace_s,
    )
    ok = sink.done.wait(120)
    elapsed = time.perf_counter() - t0
    for c in [pub, *subs]:
        c.disconnect()
        c.loop_stop()
    if not ok:
        print(f"  mqtt: only {len(sink.seen)}/{n} delivered", file=sys.stderr)
    return sink, elapsed


# ---------------------------------------------------------------- NATS JetStream


async def nats_setup(port: int, ack_wait_s: float) -> Any:
    import nats
    from nats.js.api import ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    with contextlib.suppress(NotFoundError):  # absent on first use
        await js.delete_stream("OBS")
    await js.add_stream(
        StreamConfig(
            name="OBS",
            subjects=["obs.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
        )
    )
    await js.add_consumer(
        "OBS", ConsumerConfig(durable_name="matcher", ack_wait=ack_wait_s, max_ack_pending=10000)
    )
    return nc


async def nats_consume(
    port: int, sink: Sink, name: str, stop: asyncio.Event, *, ack: bool = True
) -> None:
    import nats
    from nats.errors import TimeoutError as NatsTimeout

    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    psub = await js.pull_subscribe_bind("matcher", stream="OBS")
    while not stop.is_set():
        try:
            msgs = await psub.fetch(WINDOW, timeout=0.5)
        except (TimeoutError, NatsTimeout):
            continue
        for m in msgs:
            sink.take(m.data, name)
            if ack:
                await m.ack()
    await nc.close()


async def run_nats(
    port: int, n: int, consumers: int, body: bytes, pace_s: float
) -> tuple[Sink, float]:
    nc = await nats_setup(port, 30.0)
    js = nc.jetstream()
    sink = Sink(n)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(nats_consume(port, sink, f"c{k}", stop)) for k in range(consumers)]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    await produce_async(n, body, pace_s, lambda cam, data: js.publish(f"obs.cam{cam}", data))
    await wait_event(sink.done, 120)
    elapsed = time.perf_counter() - t0
    stop.set()
    await asyncio.gather(*tasks)
    await nc.close()
    return sink, elapsed


# ---------------------------------------------------------------- Redis Streams


async def redis_consume(
    port: int, sink: Sink, name: str, stop: asyncio.Event, *, ack: bool = True
) -> None:
    import redis.asyncio as aredis

    r = aredis.Redis(port=port)
    while not stop.is_set():
        res = await r.xreadgroup("matchers", name, {"obs": ">"}, count=WINDOW, block=500)
        ids = []
        for _stream, entries in res or []:
            for eid, fields in entries:
                sink.take(fields[b"d"], name)
                ids.append(eid)
        if ids and ack:
            await r.xack("obs", "matchers", *ids)
    await r.aclose()


async def redis_setup(port: int) -> Any:
    import redis.asyncio as aredis

    r = aredis.Redis(port=port)
    await r.delete("obs")
    await r.xgroup_create("obs", "matchers", id="0", mkstream=True)
    return r


async def run_redis(
    port: int, n: int, consumers: int, body: bytes, pace_s: float
) -> tuple[Sink, float]:
    r = await redis_setup(port)
    sink = Sink(n)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(redis_consume(port, sink, f"c{k}", stop)) for k in range(consumers)
    ]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    await produce_async(n, body, pace_s, lambda _cam, data: r.xadd("obs", {"d": data}))
    await wait_event(sink.done, 120)
    elapsed = time.perf_counter() - t0
    stop.set()
    await asyncio.gather(*tasks)
    await r.aclose()
    return sink, elapsed


# ---------------------------------------------------------------- shared async helpers


async def wait_event(ev: threading.Event, timeout_s: float) -> bool:
    return await asyncio.to_thread(ev.wait, timeout_s)


async def produce_async(
    n: int, body: bytes, pace_s: float, send: Callable[[int, bytes], Any]
) -> None:
    """Publish n messages, at most WINDOW awaiting the engine's acknowledgement."""
    sem = asyncio.Semaphore(WINDOW)
    pending: set[asyncio.Task[Any]] = set()
    cam_seq = [0] * CAMERAS
    start = time.monotonic()

    async def one(cam: int, data: bytes) -> None:
        try:
            await send(cam, data)
        finally:
            sem.release()

    for i in range(n):
        if pace_s:
            delay = start + i * pace_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        cam = i % CAMERAS
        await sem.acquire()
        t = asyncio.create_task(one(cam, make_payload(i, cam, cam_seq[cam], body)))
        pending.add(t)
        t.add_done_callback(pending.discard)
        cam_seq[cam] += 1
    await asyncio.gather(*pending)


# ---------------------------------------------------------------- crash test


_last_change: dict[int, tuple[int, float]] = {}


def _idle(got: list[int], quiet_s: float = 1.5) -> bool:
    """True once ``got`` has not grown for ``quiet_s`` (the victim has all it will get)."""
    n, since = _last_change.get(0, (-1, 0.0))
    if n != len(got):
        _last_change[0] = (len(got), time.monotonic())
        return False
    return time.monotonic() - since > quiet_s


def _wait_taken(got: list[int], take: int) -> None:
    end = time.monotonic() + 20
    while len(got) < take and time.monotonic() < end and not (got and _idle(got)):
        time.sleep(0.02)


def crash_child(transport: str, port: int, take: int) -> None:
    """Child: take ``take`` messages, never acknowledge, report their seqs, wait to be killed."""
    got: list[int] = []

    def note(data: bytes) -> None:
        got.append(parse(data)[0])

    if transport == "mqtt":
        mqtt_client(port, "victim", note, ack=False, receive_max=take)
        print("ready", flush=True)
        _wait_taken(got, take)
    else:

        async def main() -> None:
            if transport == "nats":
                import nats

                nc = await nats.connect(f"nats://127.0.0.1:{port}")
                psub = await nc.jetstream().pull_subscribe_bind("matcher", stream="OBS")
                print("ready", flush=True)
                end = time.monotonic() + 20
                while len(got) < take and time.monotonic() < end and not (got and _idle(got)):
                    try:
                        for m in await psub.fetch(take - len(got), timeout=0.3):
                            note(m.data)
                    except Exception:
                        continue
            else:
                import redis.asyncio as aredis

                r = aredis.Redis(port=port)
                print("ready", flush=True)
                end = time.monotonic() + 20
                while len(got) < take and time.monotonic() < end and not (got and _idle(got)):
                    res = await r.xreadgroup(
                        "matchers", "victim", {"obs": ">"}, count=take - len(got), block=300
                    )
                    for _s, entries in res or []:
                        for _eid, fields in entries:
                            note(fields[b"d"])

        asyncio.run(main())
    print("took " + ",".join(map(str, got)), flush=True)
    time.sleep(600)


def crash_test(
    transport: str, port: int, body: bytes, redeliver_s: float, take: int = 10
) -> dict[str, Any]:
    """A survivor and a victim consume together; the victim takes up to ``take`` messages
    without acknowledging and is SIGKILLed. Do its messages reach the survivor, and when?"""
    total = 6 * take
    if transport == "nats":
        asyncio.run(_nats_reset(port, redeliver_s))
    elif transport == "redis":
        asyncio.run(_redis_reset(port))
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--crash-child",
            transport,
            "--port",
            str(port),
            "--take",
            str(take),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{transport} crash child did not start")
    sink = Sink(total)
    stop = threading.Event()
    survivor = threading.Thread(
        target=_survive, args=(transport, port, sink, stop, redeliver_s), daemon=True
    )
    survivor.start()
    if not sink.done.wait(0) and not _ready.wait(10):
        raise RuntimeError("survivor did not start")
    if transport == "mqtt":
        pub = mqtt_client(port, "producer", None)
        mqtt_publish_all(
            pub, [(i % CAMERAS, make_payload(i, i % CAMERAS, i, body)) for i in range(total)]
        )
        pub.disconnect()
        pub.loop_stop()
    elif transport == "nats":
        asyncio.run(_nats_pub(port, total, body))
    else:
        asyncio.run(_redis_pub(port, total, body))
    line = child.stdout.readline().strip()
    if not line.startswith("took"):
        raise RuntimeError(f"{transport} crash child said {line!r}")
    victim = {int(s) for s in line[5:].split(",") if s}
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = time.monotonic()
    window_s = max(10.0, 3 * redeliver_s + 5)
    sink.done.wait(window_s)
    stop.set()
    survivor.join(15)
    _ready.clear()
    back = [sink.first_at[s] - killed_at for s in victim if s in sink.first_at]
    others = set(range(total)) - victim
    return {
        "taken_unacked": len(victim),
        "redelivered": len(back),
        "redelivered_after_s": round(max(back), 2) if back else None,
        "others_delivered": len(others & sink.seen),
        "others": len(others),
        "window_s": window_s,
    }


_ready = threading.Event()


def _survive(
    transport: str, port: int, sink: Sink, stop: threading.Event, redeliver_s: float
) -> None:
    if transport == "mqtt":
        sub = mqtt_client(port, "survivor", lambda d: sink.take(d, "survivor"))
        _ready.set()
        stop.wait()
        sub.disconnect()
        sub.loop_stop()
        return

    async def main() -> None:
        astop = asyncio.Event()
        if transport == "nats":
            task = asyncio.create_task(nats_consume(port, sink, "survivor", astop))
            _ready.set()
            await asyncio.to_thread(stop.wait)
            astop.set()
            await task
        else:
            await _redis_survive(port, sink, stop, redeliver_s, astop)

    asyncio.run(main())


async def _nats_reset(port: int, ack_wait_s: float) -> None:
    nc = await nats_setup(port, ack_wait_s)
    await nc.close()


async def _redis_reset(port: int) -> None:
    r = await redis_setup(port)
    await r.aclose()


async def _nats_pub(port: int, total: int, body: bytes) -> None:
    import nats

    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    for i in range(total):
        await js.publish(f"obs.cam{i % CAMERAS}", make_payload(i, i % CAMERAS, i, body))
    await nc.close()


async def _redis_pub(port: int, total: int, body: bytes) -> None:
    import redis.asyncio as aredis

    r = aredis.Redis(port=port)
    for i in range(total):
        await r.xadd("obs", {"d": make_payload(i, i % CAMERAS, i, body)})
    await r.aclose()


async def _redis_survive(
    port: int, sink: Sink, stop: threading.Event, redeliver_s: float, astop: asyncio.Event
) -> None:
    """Survivor reads new entries and, as the product's matcher would, claims idle ones."""
    import redis.asyncio as aredis

    task = asyncio.create_task(redis_consume(port, sink, "survivor", astop))
    r = aredis.Redis(port=port)
    _ready.set()
    while not stop.is_set():
        _next, entries, _deleted = await r.xautoclaim(
            "obs",
            "matchers",
            "survivor",
            min_idle_time=int(redeliver_s * 1000),
            start_id="0-0",
            count=100,
        )
        ids = []
        for eid, fields in entries:
            sink.take(fields[b"d"], "survivor")
            ids.append(eid)
        if ids:
            await r.xack("obs", "matchers", *ids)
        await asyncio.sleep(0.1)
    astop.set()
    await task
    await r.aclose()


# ---------------------------------------------------------------- driver


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def measure(transport: str, args: argparse.Namespace, body: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with engine(transport) as port:

        def run(n: int, consumers: int, pace_s: float) -> tuple[Sink, float]:
            if transport == "mqtt":
                return run_mqtt(port, n, consumers, body, pace_s)
            fn = run_nats if transport == "nats" else run_redis
            return asyncio.run(fn(port, n, consumers, body, pace_s))

        run(50, 1, 0.0)  # warm-up: connections, stream files
        for consumers in (1, 2):
            sink, elapsed = run(args.messages, consumers, 0.0)
            out[f"tput_{consumers}c"] = {
                "msgs_s": round(len(sink.seen) / elapsed, 1),
                "mb_s": round(sink.bytes / elapsed / 1e6, 1),
                "delivered": len(sink.seen),
                "duplicates": sink.duplicates,
                "out_of_order": sink.out_of_order,
                "per_consumer": sink.per_consumer,
            }
        n = int(args.latency_s * args.rate)
        sink, _ = run(n, 1, 1.0 / args.rate)
        out["latency"] = {
            "p50_ms": round(pct(sink.latencies_ms, 50), 2),
            "p95_ms": round(pct(sink.latencies_ms, 95), 2),
            "n": len(sink.latencies_ms),
        }
        out["crash"] = crash_test(transport, port, body, args.redeliver_s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--kb",
        type=float,
        default=default_kb(),
        help="message size in KiB (default: %(default).1f)",
    )
    ap.add_argument("--messages", type=int, default=600, help="messages per throughput run")
    ap.add_argument("--latency-s", type=float, default=8.0, help="seconds of paced traffic")
    ap.add_argument(
        "--rate", type=float, default=30.0, help="paced rate, msgs/s (6 cameras x 5 fps)"
    )
    ap.add_argument(
        "--redeliver-s", type=float, default=2.0, help="NATS ack_wait = Redis claim idle time"
    )
    ap.add_argument("--only", default="mqtt,nats,redis", help="comma list of transports")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--crash-child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--take", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.crash_child:
        crash_child(args.crash_child, args.port, args.take)
        return
    body = (
        np.random.default_rng(0)
        .integers(0, 256, int(args.kb * 1024) - HEADER.size, dtype=np.uint8)
        .tobytes()
    )
    print(f"message {len(body) + HEADER.size} B, {args.messages} msgs per throughput run, "
          f"window {WINDOW}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    results: dict[str, Any] = {}
    for transport in args.only.split(","):
        t0 = time.monotonic()
        results[transport] = measure(transport, args, body)
        print(f"  {transport} done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    report(results)
    if args.json:
        args.json.write_text(json.dumps({"kb": args.kb, "results": results}, indent=2))


def report(results: dict[str, Any]) -> None:
    names = {
        "mqtt": "MQTT 5 shared sub (Mosquitto)",
        "nats": "NATS JetStream pull",
        "redis": "Redis Streams group",
    }
    ref = results.get("redis")
    print()
    print("| transport | 1c msgs/s | 1c MB/s | 2c msgs/s | 2c MB/s | p50 ms @30/s | p95 ms @30/s "
          "| crash: redelivered / after | 2c out-of-order |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for t, r in results.items():
        c = r["crash"]
        after = f"{c['redelivered_after_s']} s" if c["redelivered_after_s"] is not None else "never"
        lost = c["others"] - c["others_delivered"]
        crash = f"{c['redelivered']}/{c['taken_unacked']} / {after}" + (
            f" ({lost} others lost)" if lost else ""
        )
        print(f"| {names[t]} | {r['tput_1c']['msgs_s']} | {r['tput_1c']['mb_s']} | {r['tput_2c']['msgs_s']} "
              f"| {r['tput_2c']['mb_s']} | {r['latency']['p50_ms']} | {r['latency']['p95_ms']} | {crash} "
              f"| {r['tput_2c']['out_of_order']} |")  # fmt: skip
    if ref:
        print(
            "\nratios against Redis Streams (throughput: higher is better; latency: lower is better)"
        )
        for t, r in results.items():
            print(f"  {t:6s} 1c {r['tput_1c']['msgs_s'] / ref['tput_1c']['msgs_s']:.2f}x  "
                  f"2c {r['tput_2c']['msgs_s'] / ref['tput_2c']['msgs_s']:.2f}x  "
                  f"p50 {r['latency']['p50_ms'] / ref['latency']['p50_ms']:.2f}x  "
                  f"p95 {r['latency']['p95_ms'] / ref['latency']['p95_ms']:.2f}x")  # fmt: skip
    print(
        "\nper-consumer split (2c):", {t: r["tput_2c"]["per_consumer"] for t, r in results.items()}
    )


if __name__ == "__main__":
    main()
