"""Frames published to <base>/ingest/<camera> on a real broker, processed by a real server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as mqtt
import pytest
import pytest_asyncio
from paho.mqtt.enums import CallbackAPIVersion
from smart_reid_server.serve.app import SmartReidApp

from tests.server.server_support import cuhk, full_box, jpeg_image, running_app, settings_for

pytestmark = pytest.mark.timeout(120)

BASE = "sr_ingest"


class Sender:
    """A camera script publishing frames (a real paho client, QoS 1)."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-camera"
        )
        self.client.connect(host, port)
        self.client.loop_start()

    def send(self, camera: str, payload: bytes | dict[str, Any]) -> None:
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.client.publish(f"{BASE}/ingest/{camera}", data, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest_asyncio.fixture
async def server(
    tmp_path: Path, models_dir: Path, mosquitto_broker: tuple[str, int]
) -> AsyncIterator[SmartReidApp]:
    host, port = mosquitto_broker
    settings = settings_for(
        tmp_path,
        models_dir,
        mqtt={"enabled": True, "host": host, "port": port, "base_topic": BASE},
        http={"enabled": False},
        queue={"per_camera": 32, "workers": 2},  # bursts of test messages are not overload
    )
    async with running_app(settings) as app:
        yield app


@pytest.fixture
def sender(mosquitto_broker: tuple[str, int]) -> Iterator[Sender]:
    camera = Sender(*mosquitto_broker)
    yield camera
    camera.close()


@pytest.fixture(scope="module")
def street_jpeg(video_dir: Path) -> bytes:
    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return bytes(cv2.imencode(".jpg", frame)[1].tobytes())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def _connected(app: SmartReidApp) -> None:
    """Until the server's ingest subscription is acknowledged by the broker."""
    for _ in range(1000):
        if app.publisher.subscribed:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("server never subscribed to its ingest topic")


async def test_raw_jpeg_bytes_run_the_detector_and_publish_decisions(
    server: SmartReidApp,
    sender: Sender,
    street_jpeg: bytes,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
) -> None:
    await _connected(server)
    events = mqtt_collector(*mosquitto_broker, f"{BASE}/events/#")
    before = time.time()
    sender.send("front", street_jpeg)
    new = await events.await_for(f"{BASE}/events/new_person", count=3)
    for message in new:
        decision = message.json()
        assert decision["camera"] == "front" and decision["source"] == "mqtt"
        assert decision["timestamp"] >= before - 1  # raw bytes: the arrival time
        assert decision["new_person"] is True and decision["visit_cameras"] == ["front"]
    sightings = await events.await_for(f"{BASE}/events/sighting", count=len(new))
    assert {m.json()["person_id"] for m in sightings} >= {m.json()["person_id"] for m in new}


async def test_json_with_boxes_skips_detection_and_keeps_time_and_frame_id(
    server: SmartReidApp,
    sender: Sender,
    cuhk03_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
) -> None:
    await _connected(server)
    events = mqtt_collector(*mosquitto_broker, f"{BASE}/events/new_person")
    crop = cuhk(cuhk03_dir, "0007_00")
    sender.send(
        "back",
        {
            "image": _b64(crop),
            "timestamp": 1763740099.5,
            "frame_id": "edge-42",
            "detections": full_box(crop),
        },
    )
    (message,) = await events.await_for(f"{BASE}/events/new_person")
    decision = message.json()
    assert decision["camera"] == "back" and decision["frame_id"] == "edge-42"
    assert decision["timestamp"] == 1763740099.5
    image = jpeg_image(crop)
    assert decision["box"] == [0.0, 0.0, float(image.shape[1]), float(image.shape[0])]


async def test_json_without_boxes_runs_the_detector(
    server: SmartReidApp,
    sender: Sender,
    street_jpeg: bytes,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
) -> None:
    await _connected(server)
    events = mqtt_collector(*mosquitto_broker, f"{BASE}/events/sighting")
    sender.send("front", {"image": _b64(street_jpeg), "frame_id": "cam-1"})
    sightings = await events.await_for(f"{BASE}/events/sighting", count=3)
    assert {m.json()["frame_id"] for m in sightings} == {"cam-1"}
    sender.send("front", {"image": _b64(street_jpeg), "frame_id": "cam-2", "detections": []})
    sender.send("front", {"image": _b64(street_jpeg), "frame_id": "cam-3"})
    later = await events.await_for(
        f"{BASE}/events/sighting", lambda m: m.json()["frame_id"] == "cam-3", count=3
    )
    assert later
    assert not events.on(f"{BASE}/events/sighting", lambda m: m.json()["frame_id"] == "cam-2")


async def test_bad_payloads_are_logged_once_and_dropped_and_the_server_keeps_working(
    server: SmartReidApp,
    sender: Sender,
    cuhk03_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _connected(server)
    caplog.set_level(logging.WARNING, logger="smart_reid_server.ingest.mqtt")
    events = mqtt_collector(*mosquitto_broker, f"{BASE}/events/#")
    crop = cuhk(cuhk03_dir, "0008_00")
    bad: list[tuple[str, bytes | dict[str, Any], str]] = [
        ("front", b"definitely not a picture", "not an image"),
        ("front", b'{"image": "%%%"}', "not valid base64"),
        ("front", b"{not json", "not valid JSON"),
        ("front", {"frame_id": "x"}, 'needs "image"'),
        (
            "front",
            {"image": _b64(crop), "detections": [{"box": [500, 500, 600, 700]}]},
            "lies outside",
        ),
        # Three quarters of the box left of the picture: refused, not clipped into a sliver.
        (
            "front",
            {"image": _b64(crop), "detections": [{"box": [-60, 0, 20, 100]}]},
            "mostly outside",
        ),
        ("front", {"image": _b64(crop), "timestamp": "soon"}, "Unix seconds"),
        ("garage", {"image": _b64(crop)}, "unknown camera"),
    ]
    for camera, payload, _ in bad:
        sender.send(camera, payload)
    for _ in range(5):  # the same mistake again and again: no extra log lines
        sender.send("front", b"definitely not a picture")
    sender.send("front", {"image": _b64(crop), "detections": full_box(crop), "frame_id": "good"})
    (good,) = await events.await_for(f"{BASE}/events/new_person")
    assert good.json()["frame_id"] == "good"
    assert server.ingest is not None
    await server.ingest.drain()
    lines = [r.getMessage() for r in caplog.records]
    for camera, _, words in bad:
        hits = [line for line in lines if words in line and f"camera {camera}" in line]
        assert len(hits) == 1, (words, lines)
    assert server.ingest.stats.rejected == len(bad) + 5
    assert server.health()[0] == "ready"


async def test_frames_on_other_ingest_topics_are_logged_not_lost(
    server: SmartReidApp,
    sender: Sender,
    cuhk03_dir: Path,
    mosquitto_broker: tuple[str, int],
    mqtt_collector: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A camera script publishing one level too deep (or on ``ingest`` itself) hears why."""
    await _connected(server)
    caplog.set_level(logging.WARNING, logger="smart_reid_server.ingest.mqtt")
    events = mqtt_collector(*mosquitto_broker, f"{BASE}/events/#")
    crop = cuhk(cuhk03_dir, "0008_00")
    assert server.ingest is not None
    for topic in (f"{BASE}/ingest/front/raw", f"{BASE}/ingest", f"{BASE}/ingest/back/x/y"):
        sender.client.publish(topic, crop, qos=1).wait_for_publish(5)
    # One client's QoS 1 messages arrive in order: once this frame is decided, the others
    # were handled.
    sender.send("front", {"image": _b64(crop), "detections": full_box(crop)})
    await events.await_for(f"{BASE}/events/new_person")
    lines = [r.getMessage() for r in caplog.records if "not an ingest topic" in r.getMessage()]
    # One line for the first; the others are the same mistake within the minute (rate limit).
    assert len(lines) == 1, lines
    assert f"{BASE}/ingest/front/raw" in lines[0] and f"{BASE}/ingest/<camera>" in lines[0]
    assert server.ingest.stats.rejected == 3 and server.ingest.stats.received == 4
    assert server.health()[0] == "ready"
