"""The product's main job on real video: many camera views, one alert per person per visit.

No multi-camera recording of the same people is available, so the demo makes cameras out of one
video: ``--cameras N`` cuts every frame into N side-by-side vertical strips (``left``/``right``
for 2), each a camera of its own. Pedestrians crossing the scene leave one camera and enter the
next, which is exactly the case Smart ReID exists for: a per-camera system alerts again on every
camera, Smart ReID recognises the person and stays quiet.

Everything runs through the real server classes (``SmartReidApp``: Pipeline, Identities, Publisher,
the same as ``serve``), with the video's own clock as frame time. The summary compares the alerts
sent with two per-camera baselines computed from the same sightings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .config import Settings, validate
from .logging_setup import setup_logging
from .models.errors import ModelError
from .pipeline import FrameDroppedError, FrameResult
from .serve.app import SmartReidApp, StartupError
from .types import Decision, Frame, Image, MatchStatus
from .vision.snapshots import Marker, render_jpeg

STRIP_NAMES = {1: ["cam"], 2: ["left", "right"], 3: ["left", "middle", "right"]}
SEEN_REPEAT_S = 5.0


def default_video() -> Path:
    shared = os.environ.get("SMART_REID_SHARED")
    root = Path(shared) if shared else Path(__file__).resolve().parents[3].parent / "shared"
    return root / "data" / "video" / "vtest.avi"


def camera_names(count: int) -> list[str]:
    return STRIP_NAMES.get(count) or [f"cam{i + 1}" for i in range(count)]


def split(image: Image, count: int) -> list[Image]:
    """``count`` side-by-side vertical strips of ``image``."""
    width = image.shape[1]
    edges = [round(i * width / count) for i in range(count + 1)]
    return [image[:, edges[i] : edges[i + 1]].copy() for i in range(count)]


def video_frames(path: Path, step: int, limit: int) -> Iterator[tuple[int, float, Image]]:
    """(index, seconds into the video, BGR image) for every ``step``-th frame."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise StartupError(f"cannot open video {path}; pass --video with a readable file")
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    index = 0
    try:
        while limit <= 0 or index < limit:
            ok, image = capture.read()
            if not ok:
                break
            if index % step == 0:
                yield index, index / fps, np.asarray(image, dtype=np.uint8)
            index += 1
    finally:
        capture.release()


def broker_reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


# --- MQTT: a private broker by default, and nothing retained left behind ----------------------


class DemoMqttError(Exception):
    """The broker the user asked for cannot be used; the message says why."""


@dataclass(slots=True)
class DemoBroker:
    """Where the demo publishes: a Mosquitto of its own (``private``) or the user's broker."""

    host: str
    port: int
    private: bool
    username: str | None = None
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    def stop(self) -> None:
        """Stop the private broker (nothing to do for the user's)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_private_broker() -> DemoBroker | None:
    """Mosquitto on a free 127.0.0.1 port, in memory only; None when it is not installed."""
    binary = _mosquitto_binary()
    if binary is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="smart-reid-demo-broker-"))
    for _ in range(3):  # a free port can be taken between choosing it and binding it
        port = _free_port()
        config = workdir / "mosquitto.conf"
        config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n",
            encoding="utf-8",
        )
        process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and process.poll() is None:
            if broker_reachable("127.0.0.1", port):
                return DemoBroker("127.0.0.1", port, private=True, process=process, workdir=workdir)
            time.sleep(0.05)
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=5)
    shutil.rmtree(workdir, ignore_errors=True)
    return None


class _RetainedSession:
    """A short paho session on the demo's broker: read what is retained under the base topic,
    and put retained topics back the way they were."""

    def __init__(self, broker: DemoBroker, base: str, timeout_s: float = 5.0) -> None:
        self.base = base
        self.timeout_s = timeout_s
        self.retained: dict[str, bytes] = {}
        self._marker = f"{base}/demo_cleanup/{uuid.uuid4().hex[:12]}"
        self._caught_up = threading.Event()
        self._connected = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"smart-reid-demo-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        if broker.username:
            self._client.username_pw_set(broker.username, broker.password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._broker = broker

    def __enter__(self) -> _RetainedSession:
        try:
            self._client.connect(self._broker.host, self._broker.port, keepalive=30)
        except OSError as err:
            raise DemoMqttError(
                f"cannot connect to the MQTT broker at {self._broker.host}:{self._broker.port} "
                f"({err})"
            ) from err
        self._client.loop_start()
        return self

    def __exit__(self, *_: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            return
        self._connected.set()
        client.subscribe(f"{self.base}/#", qos=1)

    def _on_subscribe(self, client: mqtt.Client, *_: object) -> None:
        # The broker queues every retained message for the new subscription before this
        # marker, so once the marker is back, ``retained`` is complete.
        client.publish(self._marker, b"done", qos=1)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._marker:
            self._caught_up.set()
        elif message.retain and message.payload:
            self.retained[message.topic] = bytes(message.payload)

    def read(self) -> dict[str, bytes]:
        """Every retained message under ``<base>/``, topic -> payload."""
        if not self._caught_up.wait(self.timeout_s):
            what = "accepted the connection" if not self._connected.is_set() else "answered"
            raise DemoMqttError(
                f"the MQTT broker at {self._broker.host}:{self._broker.port} never {what} "
                f"within {self.timeout_s:.0f} s (check mqtt.username/password)"
            )
        return dict(self.retained)

    def put(self, topic: str, payload: bytes) -> None:
        """Set a retained topic (an empty payload clears it) and wait for the broker's ack."""
        info = self._client.publish(topic, payload, qos=1, retain=True)
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(self.timeout_s)


def retained_before(broker: DemoBroker, base: str) -> dict[str, bytes]:
    """What the broker holds under ``<base>/`` before the demo starts; refuses a base topic
    where a Smart ReID server is online (the demo would pose as it, and its clean-up would
    remove that server's state)."""
    with _RetainedSession(broker, base) as session:
        found = session.read()
    if found.get(f"{base}/status") == b"online":
        raise DemoMqttError(
            f"a Smart ReID server is online under {base}/ on {broker.host}:{broker.port}; "
            "give the demo a base topic of its own with --base-topic"
        )
    return found


def restore_retained(broker: DemoBroker, base: str, before: dict[str, bytes]) -> int:
    """Put every retained topic under ``<base>/`` back as it was before the demo: clear what the
    demo added, restore what it overwrote. Returns how many topics it touched."""
    with _RetainedSession(broker, base) as session:
        now = session.read()
        changed = 0
        for topic, payload in now.items():
            previous = before.get(topic, b"")
            if payload != previous:
                session.put(topic, previous)
                changed += 1
        for topic, payload in before.items():
            if topic not in now:
                session.put(topic, payload)
                changed += 1
    return changed


@dataclass(slots=True)
class Tally:
    """Alerts Smart ReID sends vs what per-camera alerting would send for the same sightings."""

    window_s: float
    frames: int = 0
    sightings: int = 0
    alerts: int = 0
    uncertain: int = 0
    identities: set[str] = field(default_factory=set)
    new_identities: int = 0
    per_person_camera: int = 0
    camera_cooldown: int = 0
    _pair_last: dict[tuple[str, str], float] = field(default_factory=dict)
    _camera_alert: dict[str, float] = field(default_factory=dict)
    cameras_of_visit: dict[str, set[str]] = field(default_factory=dict)

    def add(self, decision: Decision) -> None:
        self.sightings += 1
        self.identities.add(decision.person_id)
        t = decision.timestamp
        if decision.new_person:
            self.alerts += 1
        if decision.is_new_identity and decision.new_person:
            self.new_identities += 1
        if decision.match is MatchStatus.UNCERTAIN:
            self.uncertain += 1
        self.cameras_of_visit.setdefault(decision.visit_id, set()).add(decision.camera)
        # Baseline 1: each camera recognises people on its own (one alert per person per camera
        # per visit window): what per-camera ReID or per-camera object events give you.
        pair = (decision.camera, decision.person_id)
        last = self._pair_last.get(pair)
        if last is None or t - last >= self.window_s:
            self.per_person_camera += 1
        self._pair_last[pair] = t
        # Baseline 2: a camera alerts on any person, then stays quiet for the window.
        quiet_until = self._camera_alert.get(decision.camera)
        if quiet_until is None or t >= quiet_until:
            self.camera_cooldown += 1
            self._camera_alert[decision.camera] = t + self.window_s


class DemoPrinter:
    """One line per decision worth reading: new visits, uncertain matches, camera changes."""

    def __init__(self, start: float, verbose: bool) -> None:
        self.start = start
        self.verbose = verbose
        self._last_line: dict[tuple[str, str], float] = {}
        self._visit_cameras: dict[str, int] = {}

    def decision(self, d: Decision) -> str | None:
        key = (d.camera, d.person_id)
        grew = len(d.visit_cameras) > self._visit_cameras.get(d.visit_id, 0)
        self._visit_cameras[d.visit_id] = len(d.visit_cameras)
        if d.new_person:
            what = "NEW VISIT" + (" (first time)" if d.is_new_identity else " (returning)")
        elif grew:
            what = "seen on another camera: no alert"
        else:
            what = f"uncertain (probably {d.label})" if d.match is MatchStatus.UNCERTAIN else "seen"
            last = self._last_line.get(key)
            if not self.verbose and last is not None and d.timestamp - last < SEEN_REPEAT_S:
                return None
        self._last_line[key] = d.timestamp
        similarity = "  - " if d.match is MatchStatus.NEW else f"{d.similarity:4.2f}"
        return (
            f"{d.timestamp - self.start:7.1f}s  {d.camera:7s} {d.label:11s} {what:34s} "
            f"sim {similarity}  visit cameras [{', '.join(d.visit_cameras)}]"
        )


def choose_broker(base: Settings, args: argparse.Namespace) -> DemoBroker | None:
    """The broker the demo publishes to: the one given with --mqtt-host/--mqtt-port, else a
    private Mosquitto of its own (None: no MQTT; --no-mqtt, or Mosquitto is not installed).
    The broker in the configuration (mqtt.host, SMART_REID_MQTT__HOST) is never used by
    default: that is where a real server and Home Assistant live."""
    if args.no_mqtt:
        return None
    if args.mqtt_host is None and args.mqtt_port is None:
        return start_private_broker()
    host = args.mqtt_host or "127.0.0.1"
    port = int(args.mqtt_port or 1883)
    if not broker_reachable(host, port):
        raise DemoMqttError(f"no MQTT broker answers at {host}:{port} (--mqtt-host/--mqtt-port)")
    mqtt_cfg = base.section("mqtt")
    return DemoBroker(
        host, port, private=False, username=mqtt_cfg["username"], password=mqtt_cfg["password"]
    )


def _demo_settings(
    base: Settings, args: argparse.Namespace, cameras: list[str], broker: DemoBroker | None
) -> Settings:
    raw = dict(base.raw)
    raw["cameras"] = cameras
    raw["http"] = {**base.section("http"), "enabled": False}
    mqtt = dict(base.section("mqtt"))
    mqtt["enabled"] = broker is not None
    mqtt["base_topic"] = args.base_topic
    if broker is not None:
        mqtt.update(
            host=broker.host, port=broker.port, username=broker.username, password=broker.password
        )
    raw["mqtt"] = mqtt
    if base.raw.get("log_level") == "info":
        raw["log_level"] = "warning"
    return validate(raw)


async def _run(
    app: SmartReidApp, args: argparse.Namespace, video: Path, out: Path, clock: list[float]
) -> Tally:
    cameras = app.cameras.names
    pipeline = app.pipeline
    assert pipeline is not None
    window = float(app.settings.section("visits")["window_s"])
    tally = Tally(window)
    start = clock[0]
    printer = DemoPrinter(start, args.verbose)
    in_flight: deque[asyncio.Future[FrameResult]] = deque()
    limit = max(1, int(app.settings.section("queue")["per_camera"])) * len(cameras)
    loop = asyncio.get_running_loop()
    snapshots: list[asyncio.Future[None]] = []

    async def settle(result_future: asyncio.Future[FrameResult]) -> None:
        try:
            result = await result_future
        except FrameDroppedError:
            return
        tally.frames += 1
        for decision in result.decisions:
            tally.add(decision)
            line = printer.decision(decision)
            if line:
                print(line, flush=True)
        if any(d.new_person for d in result.decisions):
            markers = [Marker.from_decision(d) for d in result.decisions]
            name = f"{result.frame.frame_id}.jpg"
            snapshots.append(
                loop.run_in_executor(None, _write_jpeg, out / name, result.frame.image, markers)
            )

    for index, offset, image in video_frames(video, max(1, args.step), args.frames):
        timestamp = start + offset
        clock[0] = timestamp
        for camera, strip in zip(cameras, split(image, len(cameras)), strict=True):
            frame = Frame(
                camera=camera,
                image=strip,
                timestamp=timestamp,
                source="demo",
                frame_id=f"{index:05d}_{camera}",
            )
            in_flight.append(pipeline.submit(frame))
            while len(in_flight) >= limit:
                await settle(in_flight.popleft())
    while in_flight:
        await settle(in_flight.popleft())
    await pipeline.expire_now()
    await asyncio.gather(*snapshots)
    return tally


def _write_jpeg(path: Path, image: Image, markers: list[Marker]) -> None:
    path.write_bytes(render_jpeg(image, markers))


def run_demo(base: Settings, args: argparse.Namespace) -> int:
    """``smart-reid demo``: returns the process exit code."""
    video = Path(args.video) if args.video else default_video()
    if not video.is_file():
        print(f"smart-reid demo: video {video} not found; pass --video or set SMART_REID_SHARED")
        return 2
    count = max(1, min(4, int(args.cameras)))
    cameras = camera_names(count)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="smart-reid-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    data_dir = None
    if not args.data_dir:
        data_dir = tempfile.mkdtemp(prefix="smart-reid-demo-data-")
        base = validate({**base.raw, "data_dir": data_dir})
    try:
        broker = choose_broker(base, args)
    except DemoMqttError as err:
        print(f"smart-reid demo: {err}")
        _remove(data_dir)
        return 2
    try:
        return _run_with_broker(base, args, video, out, cameras, broker)
    finally:
        if broker is not None:
            broker.stop()
        # The demo's identities live only as long as the demo (--data-dir keeps them).
        _remove(data_dir)


def _remove(path: str | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _run_with_broker(
    base: Settings,
    args: argparse.Namespace,
    video: Path,
    out: Path,
    cameras: list[str],
    broker: DemoBroker | None,
) -> int:
    settings = _demo_settings(base, args, cameras, broker)
    setup_logging(str(settings.raw["log_level"]))
    topic = str(settings.section("mqtt")["base_topic"])
    before: dict[str, bytes] = {}
    if broker is not None and not broker.private:
        try:
            before = retained_before(broker, topic)
        except DemoMqttError as err:
            print(f"smart-reid demo: {err}")
            return 2
    count = len(cameras)
    print(
        f"Smart ReID demo: {video.name} cut into {count} side-by-side camera(s): {', '.join(cameras)}"
    )
    print(
        "  People walking across the scene move from one camera to the next; a per-camera system "
        "alerts again on each camera, Smart ReID should not."
    )
    if broker is None:
        reason = "--no-mqtt" if args.no_mqtt else "mosquitto is not installed for a private broker"
        print(f"  MQTT: off ({reason}); decisions are printed only")
    elif broker.private:
        print(
            f"  MQTT: a private broker of the demo's own at {broker.host}:{broker.port}, under "
            f"{topic}/ (stopped at exit; your own broker is not touched)"
        )
        print(
            f"        watch it: mosquitto_sub -h {broker.host} -p {broker.port} -t '{topic}/#' -v"
        )
    else:
        print(
            f"  MQTT: publishing to {broker.host}:{broker.port} under {topic}/ as asked; its "
            "retained messages are put back as they were at exit"
        )
    print(f"  annotated snapshots of every new visit: {out}")
    print()
    clock = [time.time()]
    app = SmartReidApp(settings, clock=lambda: clock[0])
    started = time.monotonic()

    async def main() -> Tally:
        # `kill` (SIGTERM) ends the demo like Ctrl-C does: stop, stop the private broker, and
        # put the broker's retained topics back.
        task = asyncio.current_task()
        if task is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await app.start()
            return await _run(app, args, video, out, clock)
        finally:
            await app.stop()

    interrupted = False
    try:
        tally = asyncio.run(main())
    except (ModelError, StartupError) as err:
        print(f"smart-reid demo: cannot start: {err}")
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    finally:
        if broker is not None and not broker.private:
            _tidy_broker(broker, topic, before)
    if interrupted:
        print("\nsmart-reid demo: interrupted")
        return 130
    elapsed = time.monotonic() - started
    _summary(tally, app, elapsed, len(cameras))
    return 0


def _tidy_broker(broker: DemoBroker, topic: str, before: dict[str, bytes]) -> None:
    """Leave the user's broker as the demo found it (the private one simply stops)."""
    try:
        changed = restore_retained(broker, topic, before)
    except DemoMqttError as err:
        print(f"smart-reid demo: could not clear its retained messages: {err}")
        return
    print(f"  MQTT: {changed} retained message(s) under {topic}/ put back as they were")


def _summary(tally: Tally, app: SmartReidApp, elapsed: float, cameras: int) -> None:
    multi = sum(1 for c in tally.cameras_of_visit.values() if len(c) > 1)
    latency = app.latency.summary().get("total", {})
    print()
    print("Summary")
    print(
        f"  frames processed      {tally.frames} camera frames in {elapsed:.1f} s "
        f"({tally.frames / max(elapsed, 1e-9):.1f} frames/s, incl. model loading)"
    )
    if latency:
        print(
            f"  latency per frame     p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms"
        )
    print(f"  sightings             {tally.sightings} (persons x frames)")
    print(f"  identities            {len(tally.identities)} ({tally.uncertain} uncertain matches)")
    print(f"  visits                {tally.alerts}, of which {multi} seen on more than one camera")
    print(f"  alerts sent           {tally.alerts}  (one per person per visit, all cameras)")
    print(
        f"  per-camera baseline   {tally.per_person_camera}  (one per person per camera: "
        f"{tally.per_person_camera - tally.alerts} duplicate alerts avoided)"
    )
    print(
        f"  camera cooldown       {tally.camera_cooldown}  (any person, then {tally.window_s:.0f} s "
        f"quiet per camera: misses everyone who arrives during the quiet time)"
    )
    if cameras == 1:
        print("  (one camera: nothing to deduplicate across cameras; try --cameras 2)")


__all__ = ["run_demo"]
