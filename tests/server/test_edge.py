"""Edge detectors: documented envelopes over a real Mosquitto broker, pictures inline or by URL."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import pytest
from aiohttp import web
from smart_reid_server.config import Settings
from smart_reid_server.ingest.edge import EdgeSource, parse_envelope
from smart_reid_server.ingest.sources import MqttSubscriber, Sources
from smart_reid_server.ingest.start import start_sources
from smart_reid_server.types import Box

from tests.server.sources_support import (
    LocalHttp,
    RecordingSink,
    jpeg,
    mean_abs_diff,
    paste,
    person_crop,
    publish_all,
    region,
    video_frame,
    wait_until,
)

PERSON_BOX = [300.0, 150.0, 370.0, 400.0]
OTHER_BOX = [520.0, 200.0, 580.0, 380.0]


@pytest.fixture(scope="module")
def scene(video_dir: Path, cuhk03_dir: Path) -> dict[str, Any]:
    street = video_frame(video_dir / "vtest.avi", 20)
    alice, bob = person_crop(cuhk03_dir, 5, 0), person_crop(cuhk03_dir, 6, 0)
    image = paste(paste(street, alice, PERSON_BOX), bob, OTHER_BOX)
    return {"image": image, "jpeg": jpeg(image), "alice": alice, "bob": bob}


def envelope(
    *,
    jpeg_bytes: bytes | None = None,
    url: str | None = None,
    camera: str = "garage",
    number: int = 123,
    detections: list[dict[str, Any]] | None = None,
    width: int = 768,
    height: int = 576,
) -> dict[str, Any]:
    frame: dict[str, Any] = {"number": number, "width": width, "height": height}
    if jpeg_bytes is not None:
        frame["jpeg"] = base64.b64encode(jpeg_bytes).decode()
    if url is not None:
        frame["url"] = url
    return {
        "version": 1,
        "source": {"device": "jetson-garage", "camera": camera, "timestamp": 1763740099.2},
        "frame": frame,
        "detections": detections
        if detections is not None
        else [
            {"track_id": "7", "class": "person", "confidence": 0.88, "box": PERSON_BOX},
            {"track_id": 9, "class": "person", "confidence": 0.74, "box": OTHER_BOX},
            {"track_id": "12", "class": "car", "confidence": 0.95, "box": [0, 400, 200, 570]},
        ],
    }


class FrameServer:
    """The edge device's own HTTP server, handing out frames by reference."""

    def __init__(self, pictures: dict[str, bytes]) -> None:
        self.pictures = pictures

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/frames/{name}", self.frame)

    async def frame(self, request: web.Request) -> web.Response:
        data = self.pictures.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="no such frame")
        return web.Response(body=data, content_type="image/jpeg")


async def _running_edge(
    make_settings: Callable[..., Settings], port: int, sink: RecordingSink, **edge: Any
) -> tuple[Sources, EdgeSource]:
    settings = make_settings(
        **{
            "mqtt.enabled": True,
            "mqtt.host": "127.0.0.1",
            "mqtt.port": port,
            "sources.edge": {"enabled": True, **edge},
        }
    )
    running = await start_sources(settings, sink)
    subscriber = running.subscribers[0]
    assert isinstance(subscriber, MqttSubscriber)
    await asyncio.wait_for(subscriber.ready.wait(), 10)
    source = running.sources[0]
    assert isinstance(source, EdgeSource)
    return running, source


async def _send(host: str, port: int, source: EdgeSource, payloads: list[bytes]) -> None:
    before = source.stats.received
    topic = "smart_reid/edge/jetson-garage"
    await asyncio.to_thread(publish_all, host, port, [(topic, p) for p in payloads])
    await wait_until(lambda: source.stats.received >= before + len(payloads), what="envelopes")
    await source.drain()


async def test_inline_and_referenced_frames_keep_the_devices_boxes_and_tracks(
    mosquitto_broker: tuple[str, int],
    make_settings: Callable[..., Settings],
    scene: dict[str, Any],
) -> None:
    host, port = mosquitto_broker
    small = cv2.resize(scene["image"], (384, 288), interpolation=cv2.INTER_AREA)
    device = FrameServer({"123.jpg": scene["jpeg"], "small.jpg": jpeg(small)})
    http = await LocalHttp(device.routes).start()
    sink = RecordingSink()
    running, source = await _running_edge(
        make_settings, port, sink, allowed_url_prefixes=[f"{http.url}/frames/"]
    )
    try:
        await _send(
            host,
            port,
            source,
            [
                json.dumps(envelope(jpeg_bytes=scene["jpeg"])).encode(),
                json.dumps(envelope(url=f"{http.url}/frames/123.jpg", number=124)).encode(),
                # The device sent a half-size picture; its boxes are in full-frame pixels.
                json.dumps(envelope(url=f"{http.url}/frames/small.jpg", number=125)).encode(),
                # Only a car in view: nothing to do, nothing fetched.
                json.dumps(
                    envelope(
                        url=f"{http.url}/frames/nothing.jpg",
                        number=126,
                        detections=[{"class": "car", "confidence": 0.9, "box": [1, 1, 50, 50]}],
                    )
                ).encode(),
            ],
        )
    finally:
        await running.stop()
        await http.stop()

    sink.frames.sort(key=lambda f: f.frame_id)
    assert [f.frame_id for f in sink.frames] == [
        "jetson-garage-123",
        "jetson-garage-124",
        "jetson-garage-125",
    ]
    assert sorted(http.paths("/frames/")) == ["/frames/123.jpg", "/frames/small.jpg"]
    for frame in sink.frames:
        assert frame.camera == "garage" and frame.source == "edge"
        assert frame.timestamp == pytest.approx(1763740099.2)
        assert frame.extra["edge_device"] == "jetson-garage"
        assert frame.extra["track_ids"] == ["7", "9"]
        assert frame.detections is not None
        assert [d.track_id for d in frame.detections] == ["7", "9"]  # the car is not a person
        assert [d.score for d in frame.detections] == pytest.approx([0.88, 0.74])
    full, by_url, halved = sink.frames
    for frame in (full, by_url):
        assert frame.detections is not None
        assert frame.detections[0].box == Box(*PERSON_BOX)
        alice = region(frame.image, frame.detections[0].box)
        assert mean_abs_diff(alice, scene["alice"]) < 12
        bob = region(frame.image, frame.detections[1].box)
        assert mean_abs_diff(bob, scene["bob"]) < 12
    assert halved.image.shape == (288, 384, 3)
    assert halved.detections is not None
    assert halved.detections[0].box == Box(150.0, 75.0, 185.0, 200.0)
    assert mean_abs_diff(region(halved.image, halved.detections[0].box), scene["alice"]) < 15
    assert source.stats.extra["no_person"] == 1


async def test_malformed_envelopes_are_rejected_with_a_reason(
    mosquitto_broker: tuple[str, int],
    make_settings: Callable[..., Settings],
    scene: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, port = mosquitto_broker
    device = FrameServer({"big.jpg": b"\xff\xd8" + b"\x00" * (2 * 1024 * 1024)})
    http = await LocalHttp(device.routes).start()
    good = envelope(jpeg_bytes=scene["jpeg"])

    def broken(change: Callable[[dict[str, Any]], None]) -> bytes:
        message = json.loads(json.dumps(good))
        change(message)
        return json.dumps(message).encode()

    cases: list[tuple[bytes, str]] = [
        (b"{not json", "not JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (broken(lambda m: m.update(version=2)), "unsupported version"),
        (broken(lambda m: m["source"].pop("camera")), "source.camera: required key not provided"),
        (broken(lambda m: m["source"].update(camera="Front Door")), "camera 'Front Door'"),
        (broken(lambda m: m["frame"].pop("jpeg")), "exactly one of jpeg (base64) or url"),
        (broken(lambda m: m["frame"].update(url="http://x/y.jpg")), "exactly one of jpeg"),
        (broken(lambda m: m["frame"].update(jpeg="@@not base64@@")), "not valid base64"),
        (broken(lambda m: m["frame"].update(width="768")), "frame.width"),
        (broken(lambda m: m["detections"][0].update(box=[370, 150, 300, 400])), "x2 > x1"),
        (broken(lambda m: m["detections"][0].update(confidence=1.7)), "confidence"),
        (
            broken(lambda m: m["detections"][0].update(box=[900, 600, 950, 700])),
            "outside the 768x576",
        ),
        (broken(lambda m: m["detections"][0].update(box=[700, 100, 900, 300])), "mostly outside"),
        (
            broken(lambda m: m["frame"].update(jpeg=base64.b64encode(b"hello").decode())),
            "not an image",
        ),
        (
            json.dumps(envelope(url=f"{http.url}/frames/missing.jpg")).encode(),
            "answered HTTP 404",
        ),
        (
            json.dumps(envelope(url=f"{http.url}/frames/big.jpg")).encode(),
            "byte limit",
        ),
    ]
    sink = RecordingSink()
    caplog.set_level(logging.WARNING, logger="smart_reid_server.ingest.edge")
    running, source = await _running_edge(
        make_settings, port, sink, max_frame_mb=1, allowed_url_prefixes=[f"{http.url}/frames/"]
    )
    try:
        await _send(host, port, source, [payload for payload, _ in cases])
        # The service keeps running: a good envelope after all that still gets through.
        await _send(host, port, source, [json.dumps(good).encode()])
    finally:
        await running.stop()
        await http.stop()

    assert len(sink.frames) == 1
    assert source.stats.rejected == len(cases)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for _payload, reason in cases:
        assert any(reason in line for line in logged), f"no warning saying {reason!r}: {logged}"


def test_the_documented_example_envelope_parses(scene: dict[str, Any]) -> None:
    """The example in docs/sources.md is a valid envelope (with a real picture put in)."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sources.md").read_text()
    start = docs.index("```json", docs.index("## Edge detectors")) + len("```json")
    example = json.loads(docs[start : docs.index("```", start)])
    example["frame"]["jpeg"] = base64.b64encode(scene["jpeg"]).decode()
    parsed = parse_envelope(json.dumps(example).encode(), max_bytes=10 * 1024 * 1024)
    assert parsed.camera == "garage" and parsed.device == "jetson-garage"
    assert [d.track_id for d in parsed.persons] == ["7"]
