"""Issue 11: the holes a hostile or broken input found, each closed and kept closed.

Every test here failed on the code before the fix. The server runs as users run it by default:
on loopback, without a token (the case a web page in the user's browser can reach).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web
from PIL import Image as PILImage
from smart_reid_server.identity.store import Store
from smart_reid_server.ingest.edge import EdgeSource, EnvelopeError, parse_envelope
from smart_reid_server.ingest.frigate import FrigateSource
from smart_reid_server.ingest.mqtt import MqttIngest
from smart_reid_server.ingest.sources import (
    FetchError,
    QuietLog,
    fetch_bytes,
    url_allowed,
)
from smart_reid_server.serve.app import SmartReidApp, bounded_crops
from smart_reid_server.serve.stats import CameraBook
from smart_reid_server.types import Box, Detection, Frame
from smart_reid_server.vision.decode import BadFrameError, BoxBudget, decode_image, parse_detections

from tests.server.server_support import cuhk, full_box, jpeg_image, running_app, settings_for
from tests.server.sources_support import LocalHttp, RecordingSink

pytestmark = pytest.mark.timeout(120)
module_loop = pytest.mark.asyncio(loop_scope="module")

JSON = {"Content-Type": "application/json"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path
) -> AsyncIterator[SmartReidApp]:
    settings = settings_for(tmp_path_factory.mktemp("security-data"), models_dir)
    async with running_app(settings) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="module")
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _form(jpeg: bytes, camera: str = "front", **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("image", jpeg, filename="frame.jpg", content_type="image/jpeg")
    form.add_field("camera", camera)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def _persons(client: aiohttp.ClientSession, app: SmartReidApp) -> list[str]:
    async with client.get(f"{app.http_url()}/api/persons") as response:
        assert response.status == 200
        return [p["person_id"] for p in (await response.json())["persons"]]


def _png_bomb(side: int = 20000) -> bytes:
    """A few hundred KiB of PNG that claims side x side pixels (grey, all zeros)."""
    buffer = io.BytesIO()
    PILImage.new("L", (side, side)).save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def _nested_json(depth: int = 100_000) -> bytes:
    return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"


# -- 1. supplied boxes are capped and deduplicated --------------------------------------------


def test_a_huge_box_list_is_refused_before_any_box_is_parsed() -> None:
    budget = BoxBudget(max_persons=32)
    boxes = [{"box": [i % 300, 0, i % 300 + 10, 40], "score": 0.9} for i in range(5000)]
    with pytest.raises(BadFrameError) as caught:
        parse_detections(json.dumps(boxes), 640, 480, budget)
    assert caught.value.code == 400 and "detect.max_persons" in caught.value.message
    assert budget.refused_frames == 1


def test_near_identical_boxes_count_once_and_distinct_ones_are_capped() -> None:
    budget = BoxBudget(max_persons=4)
    same = [{"box": [10 + i * 0.1, 10, 110, 310], "score": 0.5 + i / 100} for i in range(30)]
    kept = parse_detections(same, 640, 480, budget)
    assert len(kept) == 1 and kept[0].score == pytest.approx(0.79)  # the best scored stays
    assert budget.merged == 29
    distinct = [{"box": [i * 100, 0, i * 100 + 50, 200]} for i in range(6)]
    with pytest.raises(BadFrameError, match="6 distinct boxes"):
        parse_detections(distinct, 640, 480, budget)


def test_the_pipeline_never_crops_more_than_max_persons_whatever_the_source() -> None:
    seen: list[int] = []

    def crops(_frame: Frame, detections: list[Detection]) -> list[Any]:
        seen.append(len(detections))
        return []

    run = bounded_crops(crops, BoxBudget(max_persons=3))
    many = [Detection(Box(i * 20, 0, i * 20 + 15, 60), score=i / 100) for i in range(50)]
    frame = Frame("front", np.zeros((100, 1000, 3), np.uint8), 1.0)
    run(frame, many)
    assert seen == [3]


@module_loop
async def test_an_upload_with_thousands_of_boxes_is_a_clear_400_and_creates_nobody(
    server: SmartReidApp, client: aiohttp.ClientSession, cuhk03_dir: Path
) -> None:
    jpeg = cuhk(cuhk03_dir, "0003_05")
    box = full_box(jpeg)[0]
    height, width = jpeg_image(jpeg).shape[:2]
    before = await _persons(client, server)
    distinct = [{"box": [0, 0, width - i % 20, height - i // 20 % 20]} for i in range(5000)]
    url = f"{server.http_url()}/api/frames"
    async with client.post(url, data=_form(jpeg, detections=json.dumps(distinct))) as response:
        assert response.status == 400
        assert "detect.max_persons" in (await response.json())["message"]
    assert await _persons(client, server) == before
    # The same person sent 200 times is one person, one decision.
    copies = json.dumps([box] * 200)
    async with client.post(url, data=_form(jpeg, detections=copies)) as response:
        assert response.status == 200
        assert len((await response.json())["decisions"]) == 1
    async with client.get(f"{server.http_url()}/api/stats") as response:
        boxes = (await response.json())["supplied_boxes"]
    assert boxes["refused_frames"] >= 1 and boxes["merged"] >= 199 and boxes["max_persons"] == 32


def test_edge_envelopes_with_too_many_people_are_rejected() -> None:
    envelope = {
        "version": 1,
        "source": {"device": "jetson", "camera": "garage"},
        "frame": {"width": 640, "height": 480, "jpeg": base64.b64encode(b"x").decode()},
        "detections": [
            {"class": "person", "confidence": 0.9, "box": [i * 15, 0, i * 15 + 10, 100]}
            for i in range(40)
        ],
    }
    with pytest.raises(EnvelopeError, match="max_persons"):
        parse_envelope(json.dumps(envelope).encode(), max_bytes=1 << 20, boxes=BoxBudget(32))


# -- 2. ids never become paths outside the data directory --------------------------------------


@module_loop
@pytest.mark.parametrize(
    "path",
    [
        "/api/visits/{escape}/snapshot.jpg",
        "/api/persons/{escape}/thumbnail.jpg",
        "/api/persons/{escape}",
        "/api/visits/{escape}",
        "/api/cameras/{escape}/snapshot.jpg",
    ],
)
async def test_file_routes_do_not_follow_dot_dot_in_ids(
    server: SmartReidApp, client: aiohttp.ClientSession, tmp_path: Path, path: str
) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 not yours")
    data_dir = server.data_dir.resolve()
    climb = "..%2F" * (len(data_dir.parts) + 2)
    target = str(secret.with_suffix("")).lstrip("/").replace("/", "%2F")
    for escape in (climb + target, climb.replace("..", "%2E%2E") + target):
        url = server.http_url() + path.format(escape=escape)
        async with client.get(yarl_encoded(url)) as response:
            body = await response.read()
            assert response.status == 404, (url, response.status)
            assert b"not yours" not in body


def yarl_encoded(url: str) -> Any:
    import yarl

    return yarl.URL(url, encoded=True)


def test_the_store_refuses_image_names_that_leave_its_folders(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    try:
        outside = tmp_path / "outside.jpg"
        outside.write_bytes(b"x")
        assert store.snapshot_path("../../outside") is None
        assert store.thumbnail_path("../outside") is None
        (store.snapshots_dir / "linked.jpg").symlink_to(outside)
        assert store.snapshot_path("linked") is None  # a link out of the folder is not served
        with pytest.raises(ValueError):
            store.save_snapshot("../escape", b"x")
        assert not (tmp_path / "data" / "escape.jpg").exists()
    finally:
        store.close()


# -- 3. web pages cannot drive the API -----------------------------------------------------------


@module_loop
async def test_cross_site_requests_cannot_reset_the_gallery(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    async with (
        running_app(settings_for(tmp_path, models_dir)) as app,
        aiohttp.ClientSession() as client,
    ):
        base = app.http_url()
        jpeg = cuhk(cuhk03_dir, "0004_00")
        async with client.post(
            f"{base}/api/frames", data=_form(jpeg, detections=json.dumps(full_box(jpeg)))
        ) as r:
            assert r.status == 200
        attempts: list[tuple[dict[str, str], bytes, int]] = [
            ({"Content-Type": "text/plain"}, b"{}", 415),  # a form / no-cors fetch
            ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=b", 415),
            ({**JSON, "Origin": "http://evil.example"}, b"{}", 403),
            ({**JSON, "Origin": "null"}, b"{}", 403),
            ({**JSON, "Sec-Fetch-Site": "cross-site"}, b"{}", 403),
            ({**JSON, "Sec-Fetch-Site": "same-site"}, b"{}", 403),
            ({**JSON, "Origin": "http://127.0.0.1:1"}, b"{}", 403),  # another local service
        ]
        for headers, body, status in attempts:
            async with client.post(f"{base}/api/reset", data=body, headers=headers) as r:
                assert r.status == status, headers
                assert (await r.json())["error"] in ("cross_origin", "unsupported_media_type")
        person = (await _persons(client, app))[0]
        async with client.delete(
            f"{base}/api/persons/{person}", headers={"Origin": "http://evil.example"}
        ) as r:
            assert r.status == 403
        async with client.post(
            f"{base}/api/frames", data=_form(jpeg), headers={"Origin": "http://evil.example"}
        ) as r:
            assert r.status == 403
        assert await _persons(client, app) == [person]
        # Scripts, curl and Home Assistant (no Origin, JSON) and the server's own origin work.
        async with client.post(
            f"{base}/api/reset", json={}, headers={"Origin": base, "Sec-Fetch-Site": "same-origin"}
        ) as r:
            assert r.status == 200 and (await r.json())["forgotten"] == 1


@module_loop
async def test_without_a_token_only_this_servers_host_names_are_answered(
    server: SmartReidApp, client: aiohttp.ClientSession
) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: refused, reads included."""
    base = server.http_url()
    for host in ("evil.example", "evil.example:8756", "127.0.0.1.evil.example"):
        async with client.get(f"{base}/api/persons", headers={"Host": host}) as response:
            assert response.status == 403, host
            assert (await response.json())["error"] == "forbidden_host"
    port = base.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        async with client.get(f"{base}/api/persons", headers={"Host": host}) as response:
            assert response.status == 200, host


# -- 4. no request forgery through sources -----------------------------------------------------


def test_edge_urls_must_lie_under_an_allowed_prefix() -> None:
    allowed = ["http://jetson.lan:8080/frames/"]
    assert url_allowed("http://jetson.lan:8080/frames/1.jpg", allowed)
    assert url_allowed("http://JETSON.lan:8080/frames/a/b.jpg?n=1", allowed)
    for url in (
        "http://jetson.lan:8080/frames/1.jpg",  # allowed, but with nothing configured: off
    ):
        assert not url_allowed(url, [])
    for url in (
        "http://jetson.lan:8081/frames/1.jpg",
        "https://jetson.lan:8080/frames/1.jpg",
        "http://jetson.lan.evil.example:8080/frames/1.jpg",
        "http://jetson.lan:8080/framesX/1.jpg",
        "http://jetson.lan:8080/frames/../admin",
        "http://jetson.lan:8080/frames/%2e%2e/admin",
        "http://jetson.lan:8080/frames/..%2Fadmin",
        "http://user:pw@jetson.lan:8080/frames/1.jpg",
        "http://jetson.lan:8080\\@evil.example/frames/1.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "http://[::1/frames/1.jpg",
    ):
        assert not url_allowed(url, allowed), url


@module_loop
async def test_edge_frames_by_url_are_off_unless_allowed(tmp_path: Path) -> None:
    fetched: list[str] = []

    async def frame(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.Response(body=b"x", content_type="image/jpeg")

    http = await LocalHttp(lambda app: app.router.add_get("/{tail:.*}", frame)).start()
    envelope = {
        "version": 1,
        "source": {"device": "jetson", "camera": "garage"},
        "frame": {"width": 64, "height": 128, "url": f"{http.url}/internal/admin.jpg"},
        "detections": [{"class": "person", "confidence": 0.9, "box": [0, 0, 60, 120]}],
    }
    sink = RecordingSink()
    try:
        async with aiohttp.ClientSession() as session:
            for prefixes in ([], [f"{http.url}/frames/"]):
                source = EdgeSource({"allowed_url_prefixes": prefixes}, sink, session, topic="e/+")
                assert await source.handle("e/jetson", json.dumps(envelope).encode()) is None
                assert source.stats.rejected == 1
    finally:
        await http.stop()
    assert fetched == [] and sink.frames == []


@module_loop
async def test_redirects_are_never_followed() -> None:
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/snap.jpg":
            raise web.HTTPFound("/elsewhere.jpg")
        return web.Response(body=b"secret", content_type="image/jpeg")

    http = await LocalHttp(lambda app: app.router.add_get("/{tail:.*}", redirect)).start()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(FetchError, match="redirect"):
                await fetch_bytes(session, f"{http.url}/snap.jpg", max_bytes=1000, timeout_s=5)
    finally:
        await http.stop()
    assert hits == ["/snap.jpg"]


@module_loop
async def test_frigate_event_ids_never_reach_the_url_unchecked() -> None:
    requested: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        requested.append(request.raw_path)
        return web.Response(status=404)

    http = await LocalHttp(lambda app: app.router.add_get("/{tail:.*}", anything)).start()
    sink = RecordingSink()
    try:
        async with aiohttp.ClientSession() as session:
            source = FrigateSource({"url": http.url, "min_score": 0.5}, sink, session)
            for event_id in ("../../../etc/passwd", "abc?x=1#", "a/b", "..", "x y", "%2e%2e"):
                event = {
                    "type": "new",
                    "after": {
                        "id": event_id,
                        "camera": "front",
                        "label": "person",
                        "score": 0.9,
                        "box": [0, 0, 50, 100],
                    },
                }
                source.on_message("frigate/events", json.dumps(event).encode())
            await source.drain()
            assert source.stats.rejected == 6
            good = dict(event, after=dict(event["after"], id="1763740099.123-abc"))
            source.on_message("frigate/events", json.dumps(good).encode())
            await source.drain()
    finally:
        await http.stop()
    assert len(requested) == 1
    assert requested[0].startswith("/api/events/1763740099.123-abc/snapshot.jpg?")
    assert source.stats.extra["no_snapshot"] == 1


# -- 5. bombs and broken bodies are client errors, never crashes -------------------------------


def test_a_decompression_bomb_is_too_large_not_a_crash() -> None:
    with pytest.raises(BadFrameError) as caught:
        decode_image(_png_bomb(), max_bytes=20 << 20)
    assert caught.value.code == 413


@module_loop
async def test_bombs_and_broken_multipart_are_4xx_over_http(
    server: SmartReidApp, client: aiohttp.ClientSession
) -> None:
    base = server.http_url()
    async with client.post(
        f"{base}/api/frames?camera=front", data=_png_bomb(), headers={"Content-Type": "image/png"}
    ) as response:
        assert response.status == 413
    broken = [
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="image"\r\n\r\nabc',
        ),
        ("multipart/form-data", b"garbage"),
        ("multipart/form-data; boundary=x", b"--y\r\n\r\n"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data\r\n\r\n--x--\r\n",
        ),
    ]
    for content_type, body in broken:
        for route in ("/api/frames", "/api/search"):
            async with client.post(
                base + route, data=body, headers={"Content-Type": content_type}
            ) as response:
                assert response.status == 400, (route, content_type, body)
                assert (await response.json())["error"] == "bad_request"
    for body in (b"\xff\xfe{}", _nested_json()):
        async with client.post(f"{base}/api/reset", data=body, headers=JSON) as response:
            assert response.status == 400


@module_loop
async def test_mqtt_ingest_counts_every_message_and_survives_hostile_ones(
    cuhk03_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jpeg = cuhk(cuhk03_dir, "0005_00")
    good = json.dumps(
        {"image": base64.b64encode(jpeg).decode(), "detections": full_box(jpeg)}
    ).encode()
    sink = RecordingSink()
    ingest = MqttIngest(
        sink,
        CameraBook(["front"], auto_add=False),
        base_topic="b",
        max_bytes=20 << 20,
        max_pending_per_camera=8,
    )
    hostile = [_png_bomb(), _nested_json(), good, b"\x89PNG\r\n\x1a\n" + b"\0" * 40, good]
    for payload in hostile:
        ingest.on_message("b/ingest/front", payload)
    await ingest.drain()
    stats = ingest.stats
    assert stats.received == len(hostile)
    assert stats.received == stats.accepted + stats.rejected + stats.dropped
    assert stats.accepted == 2 and len(sink.frames) == 2
    assert stats.rejected == 3


@module_loop
async def test_edge_and_frigate_handlers_survive_hostile_payloads() -> None:
    sink = RecordingSink()
    async with aiohttp.ClientSession() as session:
        edge = EdgeSource({}, sink, session, topic="e/+")
        assert await edge.handle("e/x", _nested_json()) is None
        assert edge.stats.rejected == 1
        frigate = FrigateSource({"url": "http://127.0.0.1:9"}, sink, session)
        frigate.on_message("frigate/events", _nested_json())  # raised RecursionError before
        assert frigate.stats.rejected == 1


def test_problem_logs_are_rate_limited_even_when_every_reason_differs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.quiet")
    quiet = QuietLog(logger, every_s=3600.0, max_lines=5)
    with caplog.at_level(logging.WARNING, logger="test.quiet"):
        for i in range(500):
            quiet.warning(f"key{i}", "problem %d", i)
    assert len(caplog.records) == 5


# -- 6. forgetting erases the bytes ------------------------------------------------------------


def _files_bytes(data_dir: Path) -> bytes:
    return b"".join(
        path.read_bytes()
        for path in sorted(data_dir.iterdir())
        if path.name.startswith("identities.sqlite3") and path.is_file()
    )


def test_forget_and_purge_leave_no_vector_or_id_on_disk(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    store = Store(tmp_path)
    try:
        vectors: dict[str, list[np.ndarray[Any, Any]]] = {}
        for index, person in enumerate(("aaaaaaaaaaa1", "bbbbbbbbbbb2", "ccccccccccc3")):
            store.create_person(person, 1000.0 + index)
            vectors[person] = []
            for k in range(6):
                vector = rng.standard_normal(256).astype(np.float32)
                vector /= np.linalg.norm(vector)
                vectors[person].append(vector)
                store.add_exemplar(index * 10 + k + 1, person, vector, "m", camera="front")
            for visit in range(20):
                visit_id = f"{person[:10]}{visit:02d}"
                store.start_visit(visit_id, person, 1000.0 + visit, visit == 0)
                store.record_sighting(person, "front", 1000.0 + visit)
        store.set_known("ccccccccccc3", True)
        store.forget("aaaaaaaaaaa1")
        store.purge(older_than=5000.0)  # bbbbbbbbbbb2 is stale; ccccccccccc3 is known
        on_disk = _files_bytes(tmp_path)
        for person, gone in (
            ("aaaaaaaaaaa1", True),
            ("bbbbbbbbbbb2", True),
            ("ccccccccccc3", False),
        ):
            assert (person.encode() in on_disk) is not gone, person
            for vector in vectors[person]:
                blob = np.ascontiguousarray(vector, dtype="<f4").tobytes()
                assert (blob[:64] in on_disk) is not gone, person
    finally:
        store.close()


@module_loop
async def test_forget_over_http_erases_the_persons_embeddings_from_disk(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    async with (
        running_app(settings_for(tmp_path, models_dir)) as app,
        aiohttp.ClientSession() as client,
    ):
        base = app.http_url()
        for name in ("0006_00", "0006_01", "0006_02"):
            jpeg = cuhk(cuhk03_dir, name)
            form = _form(jpeg, detections=json.dumps(full_box(jpeg)))
            async with client.post(f"{base}/api/frames", data=form) as response:
                assert response.status == 200
        person = (await _persons(client, app))[0]
        reader = sqlite3.connect(f"file:{tmp_path / 'identities.sqlite3'}?mode=ro", uri=True)
        blobs = [r[0] for r in reader.execute("SELECT vector FROM exemplars")]
        reader.close()
        assert blobs and all(blob[:64] in _files_bytes(tmp_path) for blob in blobs)
        async with client.delete(f"{base}/api/persons/{person}") as response:
            assert response.status == 200
        on_disk = _files_bytes(tmp_path)
        assert person.encode() not in on_disk
        assert not any(blob[:64] in on_disk for blob in blobs)
        assert not list((tmp_path / "thumbnails").glob(f"{person}*"))


# -- 7. sources report what they did -------------------------------------------------------------


@module_loop
async def test_stats_report_frigate_and_edge_sources(
    tmp_path: Path, models_dir: Path, mosquitto_broker: tuple[str, int]
) -> None:
    from tests.server.sources_support import publish_all, wait_until

    host, port = mosquitto_broker
    settings = settings_for(
        tmp_path,
        models_dir,
        mqtt={"enabled": True, "host": host, "port": port, "base_topic": "sec"},
        sources={"frigate": {"url": "http://127.0.0.1:9"}, "edge": {"enabled": True}},
    )
    async with running_app(settings) as app, aiohttp.ClientSession() as client:
        event = {
            "type": "new",
            "after": {
                "id": "1.2-x",
                "camera": "front",
                "label": "person",
                "score": 0.9,
                "box": [0, 0, 50, 100],
            },
        }
        # Messages published before the broker acknowledged the subscriptions would be lost.
        await wait_until(lambda: app.publisher.subscribed, what="the server's subscriptions")
        await asyncio.to_thread(
            publish_all,
            host,
            port,
            [("frigate/events", json.dumps(event).encode()), ("sec/edge/jetson", b"{bad")],
        )

        async def stats() -> dict[str, Any]:
            async with client.get(f"{app.http_url()}/api/stats") as response:
                body: dict[str, Any] = await response.json()
                return body["sources"]

        await wait_until(lambda: app.sources.sources[0].stats.extra["fetch_errors"] == 1)
        await wait_until(lambda: app.sources.sources[1].stats.rejected == 1)
        sources = await stats()
    assert sources["frigate"]["received"] == 1 and sources["frigate"]["fetch_errors"] == 1
    assert sources["frigate"]["accepted"] == 0
    assert sources["edge"]["received"] == 1 and sources["edge"]["rejected"] == 1
    assert {"received", "accepted", "rejected", "dropped", "fetch_errors"} <= set(sources["edge"])


def test_an_empty_token_does_not_open_the_api_on_every_interface(tmp_path: Path) -> None:
    from smart_reid_server.config import ConfigError, load

    for token in ("", "   "):
        with pytest.raises(ConfigError, match=r"http\.token"):
            load(None, environ={}, overrides={"http": {"host": "0.0.0.0", "token": token}})


def test_auto_added_cameras_stop_at_a_limit(caplog: pytest.LogCaptureFixture) -> None:
    """Whoever can publish on the ingest topic must not grow the camera list without end."""
    from smart_reid_server.serve.stats import MAX_AUTO_CAMERAS

    cameras = CameraBook([], auto_add=True)
    ingest = MqttIngest(RecordingSink(), cameras, base_topic="b", max_bytes=1 << 20)
    admitted = [cameras.admit(f"cam_{i}") for i in range(MAX_AUTO_CAMERAS + 10)]
    assert admitted.count(True) == MAX_AUTO_CAMERAS and len(cameras.names) == MAX_AUTO_CAMERAS
    assert cameras.admit("cam_0")  # the ones already added keep working
    ingest.on_message("b/ingest/one_too_many", b"x")
    assert ingest.stats.rejected == 1 and ingest.stats.received == 1
    assert any("camera limit" in r.getMessage() for r in caplog.records)


def test_passwords_inside_stream_urls_are_redacted_from_settings(tmp_path: Path) -> None:
    from smart_reid_server.config import load

    settings = load(
        None,
        environ={},
        overrides={
            "data_dir": str(tmp_path),
            "sources": {
                "streams": [{"camera": "front", "url": "rtsp://admin:hunter2@10.0.0.5:554/s1"}]
            },
        },
    )
    shown = json.dumps(settings.redacted())
    assert "hunter2" not in shown and "rtsp://admin:**redacted**@10.0.0.5:554/s1" in shown


def test_a_failing_message_handler_cannot_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """The dispatchers' last line: a handler bug logs its traceback, but not once per message."""
    from smart_reid_server.ingest.sources import MqttSubscriber
    from smart_reid_server.serve.publish import Publisher

    def broken(_topic: str, _payload: bytes) -> None:
        raise RuntimeError("bug")

    publisher = Publisher({"enabled": False, "base_topic": "b"})
    subscriber = MqttSubscriber(host="127.0.0.1", name="test")
    publisher.subscribe("b/#", broken)
    subscriber.subscribe("b/#", broken)
    with caplog.at_level(logging.WARNING):
        for _ in range(200):
            publisher._on_message("b/x", b"")
            subscriber._on_message("b/x", b"")
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)
