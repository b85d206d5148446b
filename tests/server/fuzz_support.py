"""Seeded hostile inputs for every door of a running server, and the checks that must hold.

Used by ``tests/server/test_fuzz.py`` (a small run in CI) and ``bench/fuzz.py`` (long runs).
Each generator takes a ``random.Random`` so a run is reproduced exactly by its seed. Inputs are
mutations of valid ones (a real JPEG, a valid envelope, a valid Frigate event) plus classics
(decompression bombs, deep JSON, broken multipart, path traversal in ids, cross-site headers),
so most of them get past the first check and exercise what lies behind it.

``FuzzRun.run`` drives them against a started ``SmartReidApp`` (HTTP over loopback; MQTT, edge
and Frigate handlers called as the broker would call them, Frigate's snapshots served by a
local fake) and returns a ``FuzzReport``; ``FuzzReport.problems`` lists every broken rule:
- no HTTP answer >= 500 (503 ``overloaded`` excepted: that is back-pressure, not a failure);
- no task ended by an exception the loop had to report, no frame failed in the pipeline;
- every counter adds up (MQTT ingest, edge, Frigate);
- a real frame is still processed afterwards;
- resident memory grew by less than ``max_rss_growth_mib``.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
from aiohttp import web
from PIL import Image as PILImage
from smart_reid_server.ingest.edge import EdgeSource
from smart_reid_server.ingest.frigate import FrigateSource
from smart_reid_server.ingest.mqtt import MqttIngest
from smart_reid_server.serve.app import SmartReidApp

# -- building blocks ------------------------------------------------------------------------------


def encode(image: np.ndarray[Any, Any], fmt: str = ".jpg") -> bytes:
    ok, buffer = cv2.imencode(fmt, image)
    assert ok
    return bytes(buffer.tobytes())


def pillow_bytes(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.new(mode, size).save(buffer, fmt)
    return buffer.getvalue()


def png_bomb(side: int) -> bytes:
    return pillow_bytes("L", (side, side), "PNG")


def claimed_size_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims another size (the IHDR is rewritten, CRC left wrong)."""
    data = bytearray(pillow_bytes("RGB", (8, 8), "PNG"))
    data[16:20] = width.to_bytes(4, "big")
    data[20:24] = height.to_bytes(4, "big")
    return bytes(data)


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """Bit flips, truncation, splices and inserted junk."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if not buffer:
            buffer.extend(rng.randbytes(rng.randint(1, 64)))
        elif choice < 0.35:
            for _ in range(rng.randint(1, 16)):
                index = rng.randrange(len(buffer))
                buffer[index] ^= 1 << rng.randrange(8)
        elif choice < 0.55:
            del buffer[rng.randrange(len(buffer)) :]
        elif choice < 0.75:
            at = rng.randrange(len(buffer))
            buffer[at:at] = rng.randbytes(rng.randint(1, 256))
        else:
            start = rng.randrange(len(buffer))
            buffer[start : start + rng.randint(1, 64)] = b"\xff" * rng.randint(0, 64)
    return bytes(buffer)


class Corpus:
    """Valid and hostile pictures, built once per run."""

    def __init__(self, person_jpeg: bytes) -> None:
        self.person_jpeg = person_jpeg
        image = cv2.imdecode(np.frombuffer(person_jpeg, np.uint8), cv2.IMREAD_COLOR)
        self.height, self.width = image.shape[:2]
        self.valid = [
            person_jpeg,
            encode(image, ".png"),
            pillow_bytes("1", (40, 80), "PNG"),
            pillow_bytes("P", (40, 80), "PNG"),
            pillow_bytes("I;16", (40, 80), "PNG"),
            pillow_bytes("LA", (40, 80), "PNG"),
            pillow_bytes("RGBA", (40, 80), "PNG"),
            pillow_bytes("RGB", (40, 80), "GIF"),
            pillow_bytes("RGB", (40, 80), "BMP"),
            pillow_bytes("RGB", (40, 80), "TIFF"),
            pillow_bytes("CMYK", (40, 80), "JPEG"),
            pillow_bytes("RGB", (1, 1), "PNG"),
        ]
        self.bombs = [
            png_bomb(9000),
            png_bomb(20000),
            claimed_size_png(100000, 100000),
            claimed_size_png(0, 10),
            claimed_size_png(2**31 - 1, 1),
        ]

    def picture(self, rng: random.Random) -> bytes:
        roll = rng.random()
        if roll < 0.1:
            return rng.choice(self.bombs)
        if roll < 0.15:
            return rng.randbytes(rng.randint(0, 512))
        base = rng.choice(self.valid)
        return base if roll < 0.45 else mutate_bytes(rng, base)


_WEIRD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    1e308,
    -1e308,
    "1",
    "nan",
    [],
    {},
    "",
    2**64,
    0.5,
    [1, 2],
    "x" * 300,
]


def weird(rng: random.Random) -> Any:
    return rng.choice(_WEIRD_VALUES)


def boxes(rng: random.Random, width: int, height: int) -> Any:
    """A detections list: mostly plausible, sometimes hostile (huge, duplicated, malformed)."""
    roll = rng.random()
    if roll < 0.05:
        return weird(rng)
    count = rng.choice([0, 1, 2, 5, 31, 32, 33, 64, 300, 3000])
    if rng.random() < 0.3:
        one = {"box": [0, 0, width, height], "score": 0.9}
        return [one] * count
    out: list[Any] = []
    for _ in range(count):
        x1, y1 = rng.uniform(-50, width), rng.uniform(-50, height)
        box: Any = [x1, y1, x1 + rng.uniform(-5, width), y1 + rng.uniform(-5, height)]
        if rng.random() < 0.1:
            box[rng.randrange(4)] = weird(rng)
        item: Any = {"box": box, "score": rng.choice([0.9, 0.1, 1.5, -0.1, "x"])}
        if rng.random() < 0.2:
            item["track_id"] = weird(rng)
        if rng.random() < 0.05:
            item = weird(rng)
        out.append(item)
    return out


def mutate_json(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """Replace, drop or retype random fields of a JSON value."""
    if isinstance(value, dict):
        out = dict(value)
        for key in list(out):
            roll = rng.random()
            if roll < 0.1:
                del out[key]
            elif roll < 0.2:
                out[key] = weird(rng)
            elif roll < 0.6 and depth < 6:
                out[key] = mutate_json(rng, out[key], depth + 1)
        if rng.random() < 0.05:
            out["extra_" + str(rng.randrange(100))] = weird(rng)
        return out
    if isinstance(value, list):
        return [mutate_json(rng, v, depth + 1) if rng.random() < 0.3 else v for v in value]
    if rng.random() < 0.15:
        return weird(rng)
    return value


def dumps(rng: random.Random, value: Any) -> bytes:
    data = json.dumps(value).encode()
    roll = rng.random()
    if roll < 0.05:
        return mutate_bytes(rng, data)
    if roll < 0.07:
        return deep_json(rng.choice([1000, 50000]))
    return data


# -- per-door inputs ------------------------------------------------------------------------------


def ingest_payload(rng: random.Random, corpus: Corpus) -> bytes:
    picture = corpus.picture(rng)
    if rng.random() < 0.3:
        return picture
    envelope: dict[str, Any] = {"image": base64.b64encode(picture).decode()}
    if rng.random() < 0.8:
        envelope["detections"] = boxes(rng, corpus.width, corpus.height)
    if rng.random() < 0.5:
        envelope["timestamp"] = rng.choice([time.time(), weird(rng), "1e10", 1e13])
    if rng.random() < 0.3:
        envelope["frame_id"] = weird(rng)
    if rng.random() < 0.1:
        envelope["image"] = "data:image/jpeg;base64," + envelope["image"][: rng.randint(0, 999)]
    return dumps(rng, mutate_json(rng, envelope) if rng.random() < 0.3 else envelope)


def edge_envelope(rng: random.Random, corpus: Corpus, frame_url: str) -> bytes:
    detections = boxes(rng, corpus.width, corpus.height)
    if isinstance(detections, list):
        detections = [
            {**d, "class": rng.choice(["person", "PERSON", "car", 5]), "confidence": 0.9}
            if isinstance(d, dict)
            else d
            for d in detections
        ]
    envelope: dict[str, Any] = {
        "version": 1,
        "source": {"device": "jetson-fuzz", "camera": "front", "timestamp": time.time()},
        "frame": {"number": rng.randrange(10**6), "width": corpus.width, "height": corpus.height},
        "detections": detections,
    }
    if rng.random() < 0.6:
        envelope["frame"]["jpeg"] = base64.b64encode(corpus.picture(rng)).decode()
    else:
        envelope["frame"]["url"] = rng.choice(
            [
                f"{frame_url}/frames/{rng.randrange(8)}.jpg",
                f"{frame_url}/frames/../secret.jpg",
                f"{frame_url}/redirect",
                "http://169.254.169.254/latest/meta-data/",
                "http://127.0.0.1:9/x.jpg",
                "http://[::1",
                "file:///etc/passwd",
            ]
        )
    return dumps(rng, mutate_json(rng, envelope) if rng.random() < 0.4 else envelope)


def frigate_event(rng: random.Random, corpus: Corpus) -> bytes:
    event_id = rng.choice(
        [
            f"{time.time():.6f}-{rng.randrange(16**6):06x}",
            "../../../etc/passwd",
            "abc?x=1#",
            "..",
            "a/b",
            "%2e%2e",
            "x" * 300,
            "",
        ]
    )
    after = {
        "id": event_id,
        "camera": rng.choice(["front", "Front Door", "back", "x" * 80]),
        "label": rng.choice(["person", "person", "car"]),
        "score": rng.choice([0.9, 0.3]),
        "box": [0, 0, corpus.width, corpus.height],
        "snapshot": {"frame_time": rng.random(), "box": [1, 1, corpus.width - 1, corpus.height]},
        "current_zones": [],
        "false_positive": rng.random() < 0.05,
    }
    event = {"type": rng.choice(["new", "update", "update", "end"]), "after": after}
    return dumps(rng, mutate_json(rng, event) if rng.random() < 0.4 else event)


_ID_CHOICES = [
    "0123456789ab",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2E%2E%2F%2E%2E",
    "..",
    "ABCDEF012345",
    "x" * 200,
    "%00",
    "%C0%AE%C0%AE",
]


@dataclass(frozen=True, slots=True)
class HttpCase:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | aiohttp.FormData | None


def http_case(rng: random.Random, corpus: Corpus) -> HttpCase:
    """One request to a random route, with a random mix of valid and hostile parts."""
    pid = rng.choice(_ID_CHOICES)
    headers: dict[str, str] = {}
    if rng.random() < 0.1:
        headers["Origin"] = rng.choice(["http://evil.example", "null", "http://127.0.0.1:1"])
    if rng.random() < 0.05:
        headers["Host"] = rng.choice(["evil.example", "", "[::1", "a" * 300])
    roll = rng.random()
    if roll < 0.4:
        route = rng.choice(["/api/frames", "/api/search"])
        kind = rng.random()
        if kind < 0.5:
            form = aiohttp.FormData()
            form.add_field(
                "image", corpus.picture(rng), filename="f.jpg", content_type="image/jpeg"
            )
            form.add_field("camera", rng.choice(["front", "back", "nope", "../x", ""]))
            if rng.random() < 0.7:
                detections = boxes(rng, corpus.width, corpus.height)
                form.add_field("detections", json.dumps(detections))
            if rng.random() < 0.2:
                form.add_field("timestamp", str(weird(rng)))
            if rng.random() < 0.2:
                form.add_field("limit", str(weird(rng)))
            return HttpCase("POST", route, headers, form)
        if kind < 0.75:
            headers["Content-Type"] = rng.choice(
                ["image/jpeg", "image/png", "application/octet-stream"]
            )
            query = rng.choice(["?camera=front", "?camera=back&timestamp=nan", "", "?limit=0"])
            return HttpCase("POST", route + query, headers, corpus.picture(rng))
        boundary = "b" + str(rng.randrange(1000))
        headers["Content-Type"] = rng.choice(
            [f"multipart/form-data; boundary={boundary}", "multipart/form-data", "multipart/mixed"]
        )
        valid = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
                f"Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + corpus.person_jpeg
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return HttpCase("POST", route, headers, mutate_bytes(rng, valid))
    if roll < 0.65:
        json_type = rng.random() < 0.8
        if json_type:
            headers["Content-Type"] = "application/json"
        else:
            headers["Content-Type"] = rng.choice(
                ["text/plain", "application/x-www-form-urlencoded", ""]
            )
        body_value = rng.choice(
            [
                {"label": weird(rng)},
                {"known": weird(rng)},
                {"from": pid},
                {"camera": weird(rng)},
                weird(rng),
            ]
        )
        body = dumps(rng, body_value)
        method, path = rng.choice(
            [
                ("PATCH", f"/api/persons/{pid}"),
                ("POST", f"/api/persons/{pid}/merge"),
                ("POST", "/api/reset"),
                ("DELETE", f"/api/persons/{pid}"),
            ]
        )
        if path == "/api/reset" and rng.random() < 0.7:
            body = b'{"camera": "nope"}'  # keep the gallery: a reset would end the run's meaning
        return HttpCase(method, path, headers, body)
    path = rng.choice(
        [
            "/api/health",
            "/api/info",
            "/api/settings",
            "/api/stats",
            f"/api/persons?camera={pid}&known={weird(rng)}",
            f"/api/persons/{pid}",
            f"/api/persons/{pid}/thumbnail.jpg",
            f"/api/visits/{pid}",
            f"/api/visits/{pid}/snapshot.jpg",
            f"/api/cameras/{pid}",
            "/api/cameras/front/snapshot.jpg",
            "/api/cameras",
            "/api/%ff%fe",
            "/api/persons/" + "a/" * 50,
            f"/?camera={weird(rng)}",  # the status page (HTML), with a query it ignores
        ]
    )
    return HttpCase(rng.choice(["GET", "GET", "GET", "HEAD", "PUT"]), path, headers, None)


# -- the run --------------------------------------------------------------------------------------


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


@dataclass(slots=True)
class FuzzReport:
    inputs: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    loop_errors: list[str] = field(default_factory=list)
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0
    seconds: float = 0.0

    def summary(self) -> str:
        total = sum(self.inputs.values())
        return (
            f"{total} inputs {self.inputs} in {self.seconds:.1f} s; HTTP statuses "
            f"{dict(sorted(self.statuses.items()))}; RSS {self.rss_before_mib:.0f} -> "
            f"{self.rss_after_mib:.0f} MiB; problems: {len(self.problems)}"
        )


class _FakeFrigate:
    """Frigate's snapshot API and an edge device's frame server, serving fuzzed pictures."""

    def __init__(self, rng: random.Random, corpus: Corpus) -> None:
        self.rng = rng
        self.corpus = corpus
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/{tail:.*}", self._picture)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _redirect(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/")

    async def _picture(self, _request: web.Request) -> web.Response:
        roll = self.rng.random()
        if roll < 0.1:
            return web.Response(status=self.rng.choice([404, 500, 302]))
        return web.Response(body=self.corpus.picture(self.rng), content_type="image/jpeg")


class FuzzRun:
    """Drive ``inputs`` hostile inputs, spread over every door, into a running app."""

    def __init__(
        self,
        app: SmartReidApp,
        person_jpeg: bytes,
        *,
        seed: int = 11,
        max_rss_growth_mib: float = 400.0,
        concurrency: int = 4,
    ) -> None:
        self.app = app
        self.rng = random.Random(seed)
        self.corpus = Corpus(person_jpeg)
        self.max_rss_growth_mib = max_rss_growth_mib
        self.concurrency = concurrency
        self.report = FuzzReport()

    def _count(self, door: str) -> None:
        self.report.inputs[door] = self.report.inputs.get(door, 0) + 1

    async def run(self, inputs: int, *, time_budget_s: float = 600.0) -> FuzzReport:
        app, report, rng = self.app, self.report, self.rng
        assert app.pipeline is not None
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()

        def on_loop_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            report.loop_errors.append(str(context.get("exception") or context.get("message")))

        loop.set_exception_handler(on_loop_error)
        gc.collect()
        report.rss_before_mib = rss_mib()
        failed_before = app.pipeline.counters.failed
        started = time.monotonic()
        fake = _FakeFrigate(random.Random(rng.random()), self.corpus)
        await fake.start()
        base = app.http_url()
        auth = {"Authorization": f"Bearer {app.token}"} if app.token else {}
        try:
            async with aiohttp.ClientSession(headers=auth) as session:
                ingest = MqttIngest(
                    app.pipeline,
                    app.cameras,
                    base_topic="fuzz",
                    max_bytes=app.max_upload_bytes,
                    boxes=app.boxes,
                )
                edge = EdgeSource(
                    {
                        "allowed_url_prefixes": [f"{fake.url}/frames/", f"{fake.url}/redirect"],
                        "fetch_timeout_s": 5.0,
                    },
                    app.pipeline,
                    session,
                    topic="fuzz/edge/+",
                    boxes=app.boxes,
                )
                frigate = FrigateSource(
                    {"url": fake.url, "min_score": 0.5, "fetch_timeout_s": 5.0},
                    app.pipeline,
                    session,
                )
                doors: list[tuple[str, Callable[[], Any]]] = [
                    ("http", lambda: self._http(session, base)),
                    (
                        "mqtt",
                        lambda: ingest.on_message(
                            f"fuzz/ingest/{rng.choice(['front', 'back', 'nope', 'X'])}",
                            ingest_payload(rng, self.corpus),
                        ),
                    ),
                    (
                        "edge",
                        lambda: edge.on_message(
                            "fuzz/edge/jetson", edge_envelope(rng, self.corpus, fake.url)
                        ),
                    ),
                    (
                        "frigate",
                        lambda: frigate.on_message(
                            "frigate/events", frigate_event(rng, self.corpus)
                        ),
                    ),
                ]
                pending: set[asyncio.Future[Any]] = set()
                for _ in range(inputs):
                    if time.monotonic() - started > time_budget_s:
                        break
                    door, act = rng.choice(doors)
                    self._count(door)
                    result = act()
                    if asyncio.iscoroutine(result):
                        pending.add(asyncio.ensure_future(result))
                    if len(pending) >= self.concurrency:
                        _done, pending = await asyncio.wait(
                            pending, return_when=asyncio.FIRST_COMPLETED
                        )
                    await asyncio.sleep(0)  # let handlers' tasks start, as a broker would
                if pending:
                    await asyncio.wait(pending)
                await ingest.drain()
                await edge.drain()
                await frigate.drain()
                await app.pipeline.drain()
                self._check_counters(ingest, edge, frigate)
                await self._check_real_frame(session, base)
                await edge.stop()
                await frigate.stop()
        finally:
            await fake.stop()
            gc.collect()
            await asyncio.sleep(0)
            loop.set_exception_handler(previous_handler)
        report.seconds = time.monotonic() - started
        report.rss_after_mib = rss_mib()
        failed = app.pipeline.counters.failed - failed_before
        if failed:
            report.problems.append(f"{failed} frames failed inside the pipeline")
        for error in report.loop_errors:
            report.problems.append(f"the event loop reported: {error}")
        growth = report.rss_after_mib - report.rss_before_mib
        if growth > self.max_rss_growth_mib:
            report.problems.append(f"resident memory grew by {growth:.0f} MiB")
        return report

    async def _http(self, session: aiohttp.ClientSession, base: str) -> None:
        case = http_case(self.rng, self.corpus)
        try:
            async with session.request(
                case.method,
                base + case.path,
                data=case.body,
                headers=case.headers,
                timeout=aiohttp.ClientTimeout(total=120),
                skip_auto_headers=["Content-Type"] if "Content-Type" in case.headers else (),
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, ValueError) as err:
            # The client refused to send it (an invalid header): nothing reached the server.
            self.report.statuses[0] = self.report.statuses.get(0, 0) + 1
            del err
            return
        self.report.statuses[status] = self.report.statuses.get(status, 0) + 1
        if status >= 500 and not (status == 503 and b"overloaded" in body):
            self.report.problems.append(
                f"{case.method} {case.path[:80]} {case.headers} answered {status}: {body[:200]!r}"
            )

    def _check_counters(self, ingest: MqttIngest, edge: EdgeSource, frigate: FrigateSource) -> None:
        s = ingest.stats
        if s.received != s.accepted + s.rejected + s.dropped:
            self.report.problems.append(f"MQTT ingest counters do not add up: {s}")
        e = edge.stats
        if e.received != e.offered + e.dropped + e.rejected + e.extra["no_person"]:
            self.report.problems.append(f"edge counters do not add up: {e}")
        f = frigate.stats
        x = f.extra
        accounted = (
            f.offered
            + f.dropped
            + f.rejected
            + x["ignored"]
            + x["skipped_duplicates"]
            + x["coalesced"]
            + x["fetch_errors"]
            + x["no_snapshot"]
        )
        if f.received != accounted:
            self.report.problems.append(f"Frigate counters do not add up: {f}")

    async def _check_real_frame(self, session: aiohttp.ClientSession, base: str) -> None:
        corpus = self.corpus
        form = aiohttp.FormData()
        form.add_field("image", corpus.person_jpeg, filename="f.jpg", content_type="image/jpeg")
        form.add_field("camera", "front")
        form.add_field(
            "detections", json.dumps([{"box": [0, 0, corpus.width, corpus.height], "score": 0.9}])
        )
        async with session.post(f"{base}/api/frames", data=form) as response:
            body = await response.json()
            if response.status != 200 or len(body.get("decisions", [])) != 1:
                self.report.problems.append(
                    f"a real frame after the fuzz run answered {response.status}: {body}"
                )
