"""The HTTP API against a real server (real models, real CUHK03 and video frames).

One server (token protected) serves most tests of this module; tests create the people they
look at, so they do not depend on each other's order. Reset runs on a server of its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
import pytest_asyncio
from smart_reid_server import __version__
from smart_reid_server.identity.match import CENTERED_THRESHOLDS
from smart_reid_server.serve.app import SmartReidApp

from tests.server.server_support import (
    CuhkPicker,
    cuhk,
    full_box,
    jpeg_image,
    running_app,
    settings_for,
    upload,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Server:
    def __init__(self, app: SmartReidApp, cuhk03_dir: Path) -> None:
        self.app = app
        self.base = app.http_url()
        self.cuhk03_dir = cuhk03_dir

    def image(self, name: str) -> bytes:
        return cuhk(self.cuhk03_dir, name)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, cuhk03_dir: Path
) -> AsyncIterator[Server]:
    settings = settings_for(
        tmp_path_factory.mktemp("api-data"),
        models_dir,
        http={"port": 0, "token": TOKEN, "max_upload_mb": 1},
        # These tests are about the API's routes, and one server serves the whole module, so
        # earlier tests' visitors are still on a visit when later tests need a stranger. The
        # active-visit tier may (by design, at about 1% of strangers) fold a stranger into such
        # a visit; its behaviour is tested in test_identities.py and test_scenario.py.
        match={"active_tier": False},
    )
    async with running_app(settings) as app:
        yield Server(app, cuhk03_dir)


@pytest_asyncio.fixture(loop_scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as client:
        yield client


async def _get(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with session.get(url, **kw) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.read()


# -- health, auth, info ------------------------------------------------------------------------


async def test_health_is_open_and_ready_without_a_token(server: Server) -> None:
    async with aiohttp.ClientSession() as anonymous:
        status, body = await _get(anonymous, f"{server.base}/api/health")
    assert status == 200
    assert body["status"] == "ready" and body["reasons"] == []
    assert body["version"]


async def test_every_other_route_needs_the_bearer_token(server: Server) -> None:
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/api/info", "/api/persons", "/api/cameras", "/api/settings"):
            status, body = await _get(anonymous, server.base + path)
            assert status == 401, path
            assert body["error"] == "unauthorized" and "Bearer" in body["message"]
        wrong = {"Authorization": "Bearer nope"}
        status, _ = await _get(anonymous, f"{server.base}/api/info", headers=wrong)
        assert status == 401
        async with anonymous.post(f"{server.base}/api/reset", json={}) as response:
            assert response.status == 401


async def test_info_describes_models_cameras_and_thresholds(
    server: Server, session: aiohttp.ClientSession
) -> None:
    status, info = await _get(session, f"{server.base}/api/info")
    assert status == 200
    assert info["contract"] == 1 and len(info["server_id"]) == 12
    assert info["http_url"] == server.base
    assert info["cameras"] == ["front", "back"]
    assert info["models"]["detector"]["name"] == "yolox_nano_416"
    reid = info["models"]["reid"]
    assert reid["name"] == "person-reidentification-retail-0277"
    assert reid["is_reid"] is True and reid["dim"] == 256
    assert server.app.embedder is not None
    # retail-0277 matches per-camera centred embeddings by default, with its centred thresholds.
    expected = CENTERED_THRESHOLDS[reid["name"]][0]
    assert info["settings"]["camera_centering"] is True
    assert info["settings"]["match_threshold"] == pytest.approx(expected)
    assert info["settings"]["uncertain_threshold"] == pytest.approx(expected - 0.1)
    assert info["settings"]["auth_required"] is True


async def test_settings_are_served_with_secrets_redacted(
    server: Server, session: aiohttp.ClientSession
) -> None:
    status, body = await _get(session, f"{server.base}/api/settings")
    assert status == 200
    assert body["http"]["token"] == "**redacted**"
    assert TOKEN not in str(body)
    assert body["cameras"] == ["front", "back"]


# -- frames ------------------------------------------------------------------------------------


async def test_one_person_on_two_cameras_is_one_new_person_then_matched(
    server: Server, session: aiohttp.ClientSession
) -> None:
    app = server.app
    picker = CuhkPicker(server.cuhk03_dir, app.embedder)
    view_a, view_b = picker.same_person(app.threshold + 0.02)
    stranger = picker.stranger([view_a, view_b], below=app.uncertain_threshold - 0.02)
    now = time.time() - 10  # in the past: later tests' frames are the cameras' latest
    status, first = await upload(
        session, server.base, "front", server.image(view_a), timestamp=now, frame_id="f-1"
    )
    assert status == 200, first
    assert first["camera"] == "front" and first["frame_id"] == "f-1" and first["detections"] == 1
    (a,) = first["decisions"]
    assert a["new_person"] is True and a["is_new_identity"] is True and a["match"] == "new"
    assert a["visit_cameras"] == ["front"]
    assert a["snapshot_url"] == f"/api/visits/{a['visit_id']}/snapshot.jpg"
    assert a["thumbnail_url"].startswith(f"/api/persons/{a['person_id']}/thumbnail.jpg?v=")

    status, second = await upload(
        session, server.base, "back", server.image(view_b), timestamp=now + 2
    )
    assert status == 200, second
    (b,) = second["decisions"]
    assert b["person_id"] == a["person_id"] and b["visit_id"] == a["visit_id"]
    assert b["new_person"] is False and b["match"] == "matched"
    assert b["similarity"] >= app.threshold
    assert b["visit_cameras"] == ["front", "back"] and b["first_camera"] == "front"
    assert second["frame_id"] is None and b["frame_id"] is None, "no frame_id sent: null"

    status, third = await upload(
        session, server.base, "front", server.image(stranger), timestamp=now + 3
    )
    (c,) = third["decisions"]
    assert c["person_id"] != a["person_id"] and c["new_person"] is True
    assert c["match"] == "new" and c["is_new_identity"] is True
    assert second["latency_ms"] > 0


async def _search(
    session: aiohttp.ClientSession, base: str, jpeg: bytes, **fields: str
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("image", jpeg, filename="who.jpg", content_type="image/jpeg")
    for key, value in fields.items():
        form.add_field(key, value)
    async with session.post(f"{base}/api/search", data=form) as response:
        return response.status, await response.json()


async def test_search_names_the_person_in_a_picture_without_learning_anything(
    server: Server, session: aiohttp.ClientSession
) -> None:
    app = server.app
    picker = CuhkPicker(server.cuhk03_dir, app.embedder)
    view_a, view_b = picker.same_person(0.6, skip=set(range(0, 12)))
    others = [picker.stranger([view_a, view_b], below=0.3, skip={int(view_a[:4])})]
    others.append(picker.stranger([view_a, view_b, *others], below=0.3, skip={int(view_a[:4])}))
    now = time.time() - 400  # in the past: later tests' frames must be the cameras' latest
    ids = []
    for i, name in enumerate([view_a, *others]):
        status, body = await upload(
            session, server.base, "front", server.image(name), timestamp=now + 90 * i
        )
        assert status == 200, body
        ids.append(body["decisions"][0]["person_id"])
    before = {
        p["person_id"]: p for p in (await _get(session, f"{server.base}/api/persons"))[1]["persons"]
    }

    box = json.dumps(full_box(server.image(view_b)))
    status, found = await _search(
        session, server.base, server.image(view_b), camera="back", detections=box, limit="3"
    )
    assert status == 200, found
    assert found["camera"] == "back" and found["quality_ok"] is True
    assert 1 <= len(found["results"]) <= 3
    best = found["results"][0]
    assert best["person_id"] == ids[0]
    assert (
        best["match"] in ("matched", "uncertain") and best["similarity"] >= app.uncertain_threshold
    )
    scores = [hit["score"] for hit in found["results"]]
    assert scores == sorted(scores, reverse=True)
    # One or two exemplars a person: ordered by the cosine (re-ranking needs more views).
    assert found["ranking"] == "cosine" and best["score"] == best["similarity"]
    assert {"label", "known", "exemplars", "thumbnail_url"} <= set(best)

    # Without a box the detector finds the person: the crop pasted into a larger picture.
    canvas = np.full((480, 640, 3), 90, np.uint8)
    person = jpeg_image(server.image(view_b))
    h, w = person.shape[:2]
    canvas[100 : 100 + h, 300 : 300 + w] = person
    picture = cv2.imencode(".jpg", canvas)[1].tobytes()
    status, again = await _search(session, server.base, picture)
    assert status == 200, again
    assert again["camera"] is None and again["results"][0]["person_id"] == ids[0]
    x1, y1, x2, y2 = again["box"]
    assert 280 <= x1 < x2 <= 320 + w and 80 <= y1 < y2 <= 120 + h

    # Searching stored nothing: same people, same exemplars, no new visit.
    after = {
        p["person_id"]: p for p in (await _get(session, f"{server.base}/api/persons"))[1]["persons"]
    }
    assert after.keys() == before.keys()
    for person_id, person in after.items():
        assert person["exemplars"] == before[person_id]["exemplars"]
        assert person["visit_count"] == before[person_id]["visit_count"]


async def test_search_errors_say_what_to_do(server: Server, session: aiohttp.ClientSession) -> None:
    jpeg = server.image("0004_00")
    grey = cv2.imencode(".jpg", np.full((480, 640, 3), 128, np.uint8))[1].tobytes()
    cases: list[tuple[bytes, dict[str, str], int, str, str]] = [
        (grey, {}, 422, "no_person", "no person found"),
        (jpeg, {"limit": "0"}, 400, "bad_request", "limit"),
        (jpeg, {"limit": "many"}, 400, "bad_request", "limit"),
        (jpeg, {"camera": "garage"}, 404, "not_found", "unknown camera"),
        (jpeg[: len(jpeg) // 2], {}, 400, "bad_request", "truncated"),
        (b"hello", {}, 415, "unsupported_media_type", "not an image"),
    ]
    for data, fields, code, error, words in cases:
        status, body = await _search(session, server.base, data, **fields)
        assert status == code, (fields, body)
        assert body["error"] == error and words in body["message"], (fields, body)


async def test_raw_jpeg_body_with_query_camera_runs_the_detector(
    server: Server, session: aiohttp.ClientSession, video_dir: Path
) -> None:
    capture = cv2.VideoCapture(str(video_dir / "vtest.avi"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = capture.read()
    capture.release()
    assert ok
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    url = f"{server.base}/api/frames?camera=back&frame_id=raw-100"
    async with session.post(url, data=jpeg, headers={"Content-Type": "image/jpeg"}) as response:
        assert response.status == 200
        body = await response.json()
    assert body["frame_id"] == "raw-100"
    assert body["detections"] >= 3  # vtest frame 100 shows several pedestrians
    assert len(body["decisions"]) == body["detections"]
    for decision in body["decisions"]:
        x1, y1, x2, y2 = decision["box"]
        assert 0 <= x1 < x2 <= frame.shape[1] and 0 <= y1 < y2 <= frame.shape[0]
        assert decision["source"] == "http"


async def test_upload_errors_use_contract_codes_and_say_what_to_do(
    server: Server, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="smart_reid_server.serve.api")
    jpeg = server.image("0004_00")
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("no camera", {"camera": ""}, 400, "camera is missing"),
        ("unknown camera", {"camera": "garage"}, 404, "auto_add_cameras"),
        ("bad camera name", {"camera": "Front Door"}, 400, "a-z, 0-9"),
        ("not an image", {"data": b"hello world"}, 415, "not an image"),
        ("truncated", {"data": jpeg[: len(jpeg) // 2]}, 400, "truncated"),
        ("box outside", {"detections": [{"box": [900, 900, 950, 990]}]}, 400, "detections[0]"),
        # 9 % of the box in the picture: refused rather than clipped into a sliver of a person.
        ("box mostly outside", {"detections": [{"box": [-100, 0, 10, 50]}]}, 400, "mostly"),
        ("bad timestamp", {"timestamp": "noon"}, 400, "Unix seconds"),
    ]
    for name, change, code, words in cases:
        form = aiohttp.FormData()
        form.add_field("image", change.get("data", jpeg), filename="x.jpg")
        form.add_field("camera", change.get("camera", "front"))
        if "detections" in change:
            form.add_field("detections", str(change["detections"]).replace("'", '"'))
        if "timestamp" in change:
            form.add_field("timestamp", change["timestamp"])
        async with session.post(f"{server.base}/api/frames", data=form) as response:
            body = await response.json()
            assert response.status == code, (name, body)
            assert words in body["message"], (name, body)
            assert body["error"]
        # Each refusal is one log line with its status, camera and reason (no image bytes).
        logged = [r.getMessage() for r in caplog.records if r.name == "smart_reid_server.serve.api"]
        assert len(logged) == 1, (name, logged)
        line = logged[0]
        assert line.startswith(f"frame upload refused: status={code} error={body['error']}")
        # The camera as given, with spaces and control characters shown as "?" (one line).
        shown = change.get("camera", "front").replace(" ", "?") or "-"
        assert f"camera={shown} " in line and words in line
        assert "\\x" not in line and "JFIF" not in line
        caplog.clear()


async def test_oversized_and_wrongly_typed_uploads_are_refused(
    server: Server, session: aiohttp.ClientSession
) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (900, 900, 3), dtype=np.uint8)
    big = cv2.imencode(".png", noise)[1].tobytes()
    assert len(big) > 1048576
    url = f"{server.base}/api/frames?camera=front"
    async with session.post(url, data=big, headers={"Content-Type": "image/png"}) as response:
        body = await response.json()
        assert response.status == 413 and body["error"] == "too_large"
        assert "max_upload_mb" in body["message"]
    async with session.post(url, data=b"{}", headers={"Content-Type": "text/plain"}) as response:
        assert response.status == 415
        assert "multipart/form-data" in (await response.json())["message"]
    form = aiohttp.FormData()
    form.add_field("camera", "front")
    form.add_field("other", b"x", filename="x.bin")
    async with session.post(f"{server.base}/api/frames", data=form) as response:
        assert response.status == 400
        assert "'image'" in (await response.json())["message"]


async def test_unknown_routes_and_methods_answer_json(
    server: Server, session: aiohttp.ClientSession
) -> None:
    status, body = await _get(session, f"{server.base}/api/nothing")
    assert status == 404 and body["error"] == "not_found"
    async with session.put(f"{server.base}/api/persons") as response:
        assert response.status == 405
        assert (await response.json())["error"] == "method_not_allowed"


# -- persons -----------------------------------------------------------------------------------


async def _new_person(server: Server, session: aiohttp.ClientSession, image: str) -> dict[str, Any]:
    status, body = await upload(session, server.base, "front", server.image(image))
    assert status == 200, body
    decision = dict(body["decisions"][0])
    assert decision["match"] == "new", f"{image} was taken for someone else: {decision}"
    return decision


async def test_persons_list_get_and_filters(server: Server, session: aiohttp.ClientSession) -> None:
    decision = await _new_person(server, session, "0020_00")
    person_id = decision["person_id"]
    status, person = await _get(session, f"{server.base}/api/persons/{person_id}")
    assert status == 200
    assert person["label"].startswith("Visitor ") and person["known"] is False
    assert person["named"] is False  # nobody chose that label
    assert person["present"] is True and person["camera"] == "front"
    assert person["visit_id"] == decision["visit_id"] and person["cameras"] == ["front"]
    _, listed = await _get(session, f"{server.base}/api/persons")
    assert person_id in [p["person_id"] for p in listed["persons"]]
    _, on_back = await _get(session, f"{server.base}/api/persons?camera=back")
    assert person_id not in [p["person_id"] for p in on_back["persons"]]
    _, present = await _get(session, f"{server.base}/api/persons?present=true")
    assert person_id in [p["person_id"] for p in present["persons"]]
    status, body = await _get(session, f"{server.base}/api/persons?known=maybe")
    assert status == 400 and "known" in body["message"]
    status, body = await _get(session, f"{server.base}/api/persons/000000000000")
    assert status == 404 and "unknown person" in body["message"]


async def test_rename_and_mark_known(server: Server, session: aiohttp.ClientSession) -> None:
    person_id = (await _new_person(server, session, "0021_00"))["person_id"]
    url = f"{server.base}/api/persons/{person_id}"
    async with session.patch(url, json={"label": "Alice", "known": True}) as response:
        assert response.status == 200
        person = await response.json()
    assert person["label"] == "Alice" and person["known"] is True and person["named"] is True
    _, known = await _get(session, f"{server.base}/api/persons?known=true")
    assert [p["label"] for p in known["persons"] if p["person_id"] == person_id] == ["Alice"]
    assert [p["named"] for p in known["persons"] if p["person_id"] == person_id] == [True]
    # The next sighting carries the new name.
    status, _ = await upload(session, server.base, "front", server.image("0021_01"))
    assert status == 200
    for body, words in [
        ({}, "label"),
        ({"label": 5}, "label must be a string"),
        ({"known": "yes"}, "known must be true or false"),
        ({"label": "   "}, "must not be empty"),
        ({"label": "x" * 65}, "at most 64 characters"),  # the limit docs/contract.md states
    ]:
        async with session.patch(url, json=body) as response:
            assert response.status == 400, body
            assert words in (await response.json())["message"]
    json_type = {"Content-Type": "application/json"}
    async with session.patch(url, data=b"not json", headers=json_type) as response:
        assert response.status == 400
    async with session.patch(url, data=b'{"label": "Bob"}') as response:
        assert response.status == 415  # JSON bodies must say application/json
    async with session.patch(f"{server.base}/api/persons/ffffffffffff", json={"label": "X"}) as r:
        assert r.status == 404


async def test_forget_deletes_the_person_and_their_thumbnail(
    server: Server, session: aiohttp.ClientSession
) -> None:
    person = await _new_person(server, session, "0022_00")
    person_id = person["person_id"]
    status, jpeg = await _get(session, f"{server.base}/api/persons/{person_id}/thumbnail.jpg")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"
    # The advertised URL (with its picture version) answers the same picture.
    assert (await _get(session, f"{server.base}{person['thumbnail_url']}")) == (200, jpeg)
    thumbnail = jpeg_image(jpeg)
    original = jpeg_image(server.image("0022_00"))
    assert thumbnail.shape == original.shape  # the crop itself, not a whole frame
    async with session.delete(f"{server.base}/api/persons/{person_id}") as response:
        assert response.status == 200
        assert await response.json() == {"forgotten": person_id}
    status, _ = await _get(session, f"{server.base}/api/persons/{person_id}")
    assert status == 404
    status, _ = await _get(session, f"{server.base}/api/persons/{person_id}/thumbnail.jpg")
    assert status == 404
    async with session.delete(f"{server.base}/api/persons/{person_id}") as response:
        assert response.status == 404


async def test_a_person_seen_only_in_poor_crops_advertises_no_picture(
    server: Server, session: aiohttp.ClientSession
) -> None:
    """Too small for the quality gates (min_height_px 50 here): identified, but no picture, so
    Home Assistant makes no image entity instead of one that shows a broken image."""
    # A training-split person: no other test of this module shows them.
    name = sorted(p.stem for p in (server.cuhk03_dir / "train").glob("*_00.jpg"))[-1]
    crop = jpeg_image(cuhk(server.cuhk03_dir, name, split="train"))
    tiny = cv2.imencode(".jpg", cv2.resize(crop, (crop.shape[1] * 40 // crop.shape[0], 40)))[1]
    status, body = await upload(session, server.base, "back", tiny.tobytes())
    assert status == 200, body
    (decision,) = body["decisions"]
    assert decision["quality_ok"] is False and decision["thumbnail_url"] is None
    person_id = decision["person_id"]
    status, person = await _get(session, f"{server.base}/api/persons/{person_id}")
    assert status == 200 and person["thumbnail_url"] is None
    status, error = await _get(session, f"{server.base}/api/persons/{person_id}/thumbnail.jpg")
    assert status == 404 and "no thumbnail yet" in error["message"]


async def test_merge_folds_one_identity_into_another(
    server: Server, session: aiohttp.ClientSession
) -> None:
    keep = (await _new_person(server, session, "0023_00"))["person_id"]
    drop = (await _new_person(server, session, "0024_00"))["person_id"]
    assert keep != drop
    # The user named the identity that goes; the one kept still has its generated label. A user
    # may well choose a name of the generated form: it is still theirs.
    async with session.patch(
        f"{server.base}/api/persons/{drop}", json={"label": "Visitor 9000"}
    ) as response:
        assert response.status == 200
        assert (await response.json())["named"] is True
    url = f"{server.base}/api/persons/{keep}/merge"
    async with session.post(url, json={"from": drop}) as response:
        assert response.status == 200
        merged = await response.json()
    assert merged["person_id"] == keep and merged["exemplars"] >= 2
    assert merged["label"] == "Visitor 9000" and merged["named"] is True  # the user's name stays
    status, person = await _get(session, f"{server.base}/api/persons/{keep}")
    assert status == 200 and person["named"] is True
    status, _ = await _get(session, f"{server.base}/api/persons/{drop}")
    assert status == 404
    async with session.post(url, json={"from": keep}) as response:
        assert response.status == 400
    async with session.post(url, json={}) as response:
        assert response.status == 400
    async with session.post(url, json={"from": "0123456789ab"}) as response:
        assert response.status == 404


# -- visits and cameras ------------------------------------------------------------------------


async def test_visit_and_its_annotated_snapshot(
    server: Server, session: aiohttp.ClientSession
) -> None:
    decision = await _new_person(server, session, "0025_00")
    status, visit = await _get(session, f"{server.base}/api/visits/{decision['visit_id']}")
    assert status == 200
    assert visit["person_id"] == decision["person_id"] and visit["cameras"] == ["front"]
    assert visit["ended_at"] is None and visit["sightings"] == 1
    status, jpeg = await _get(session, f"{server.base}{decision['snapshot_url']}")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"
    drawn = jpeg_image(jpeg)
    plain = jpeg_image(server.image("0025_00"))
    assert drawn.shape == plain.shape
    assert float(np.abs(drawn.astype(int) - plain.astype(int)).mean()) > 2.0  # box + label drawn
    status, body = await _get(session, f"{server.base}/api/visits/aaaaaaaaaaaa")
    assert status == 404 and body["error"] == "not_found"
    status, _ = await _get(session, f"{server.base}/api/visits/aaaaaaaaaaaa/snapshot.jpg")
    assert status == 404


async def test_camera_states_and_snapshots(server: Server, session: aiohttp.ClientSession) -> None:
    decision = await _new_person(server, session, "0026_00")
    status, body = await _get(session, f"{server.base}/api/cameras")
    assert status == 200
    states = {c["camera"]: c for c in body["cameras"]}
    assert set(states) == {"front", "back"}
    front = states["front"]
    assert decision["person_id"] in front["person_ids_present"]
    assert front["last_person_id"] == decision["person_id"]
    assert front["frames_processed"] >= 1 and front["sightings_today"] >= 1
    assert front["unknown_present"] is True
    status, single = await _get(session, f"{server.base}/api/cameras/front")
    assert status == 200 and single["camera"] == "front"
    status, jpeg = await _get(session, f"{server.base}/api/cameras/front/snapshot.jpg")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"
    status, body = await _get(session, f"{server.base}/api/cameras/garage")
    assert status == 404 and "garage" in body["message"]


async def test_stats_report_per_stage_latency(
    server: Server, session: aiohttp.ClientSession
) -> None:
    await _new_person(server, session, "0027_00")
    status, stats = await _get(session, f"{server.base}/api/stats")
    assert status == 200
    for stage in ("decode", "embed", "match", "total"):
        assert stats["latency"][stage]["count"] >= 1
        assert stats["latency"][stage]["p95_ms"] >= stats["latency"][stage]["p50_ms"] >= 0
    assert stats["frames_processed"] >= 1


# -- reset (own server) ------------------------------------------------------------------------


async def test_reset_by_camera_then_everyone(
    tmp_path: Path, models_dir: Path, cuhk03_dir: Path
) -> None:
    settings = settings_for(tmp_path, models_dir)
    async with running_app(settings) as app, aiohttp.ClientSession() as session:
        base = app.http_url()
        picker = CuhkPicker(cuhk03_dir, app.embedder)
        view_a, view_b = picker.same_person(app.threshold + 0.02)
        other = picker.stranger([view_a, view_b], below=app.uncertain_threshold - 0.02)
        now = time.time()
        both = await upload(session, base, "front", cuhk(cuhk03_dir, view_a), timestamp=now)
        await upload(session, base, "back", cuhk(cuhk03_dir, view_b), timestamp=now + 1)
        back_only = await upload(session, base, "back", cuhk(cuhk03_dir, other), timestamp=now + 2)
        both_id = both[1]["decisions"][0]["person_id"]
        back_id = back_only[1]["decisions"][0]["person_id"]
        async with session.post(f"{base}/api/reset", json={"camera": "back"}) as response:
            assert response.status == 200
            assert await response.json() == {"forgotten": 1}
        _, listed = await _get(session, f"{base}/api/persons")
        ids = [p["person_id"] for p in listed["persons"]]
        assert both_id in ids and back_id not in ids
        async with session.post(f"{base}/api/reset", json={"camera": "garage"}) as response:
            assert response.status == 404
        async with session.post(f"{base}/api/reset", json={}) as response:
            assert response.status == 200
            assert (await response.json())["forgotten"] == len(ids)
        _, listed = await _get(session, f"{base}/api/persons")
        assert listed["persons"] == []
        # The gallery is empty too: the same person comes back as a new identity.
        again = await upload(session, base, "front", cuhk(cuhk03_dir, view_a))
        assert again[1]["decisions"][0]["is_new_identity"] is True


async def test_a_generic_embedder_runs_but_health_says_why_it_is_degraded(
    tmp_path: Path, models_dir: Path
) -> None:
    custom = {
        "path": str(models_dir / "reid" / "osnet_x0_25_msmt17.onnx"),
        "color_order": "rgb",
        "scale": 1 / 255,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "is_reid": False,
    }
    settings = settings_for(
        tmp_path,
        models_dir,
        models={"dir": str(models_dir), "download": False, "custom_reid": custom},
    )
    async with running_app(settings) as app, aiohttp.ClientSession() as session:
        status, body = await _get(session, f"{app.http_url()}/api/health")
        assert status == 200 and body["status"] == "degraded"
        assert any(r.startswith("model: reid fallback") for r in body["reasons"])
        _, info = await _get(session, f"{app.http_url()}/api/info")
        assert info["models"]["reid"]["is_reid"] is False and info["models"]["reid"]["dim"] == 512


async def test_a_server_on_every_interface_announces_an_address_others_can_use(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        tmp_path, models_dir, http={"host": "0.0.0.0", "port": 0, "token": TOKEN}
    )
    with caplog.at_level(logging.WARNING, logger="smart_reid_server.serve.app"):
        async with running_app(settings) as app, aiohttp.ClientSession(headers=AUTH) as session:
            url = app.http_url()
            assert "0.0.0.0" not in url and url.endswith(f":{app.http_port}")
            status, info = await _get(session, f"{url}/api/info")  # reachable at that address
            assert status == 200 and info["http_url"] == url
    advice = [r for r in caplog.records if "http.public_url" in r.getMessage()]
    assert len(advice) == 1 and advice[0].levelno == logging.WARNING


async def test_public_url_is_announced_as_configured(tmp_path: Path, models_dir: Path) -> None:
    settings = settings_for(
        tmp_path,
        models_dir,
        http={"host": "0.0.0.0", "token": TOKEN, "public_url": "http://nas.lan:8756/"},
    )
    assert SmartReidApp(settings).http_url() == "http://nas.lan:8756"


async def test_the_status_page_at_the_root_is_public_and_tells_no_secrets(
    server: Server, session: aiohttp.ClientSession
) -> None:
    """Home Assistant's "Visit" link opens ``/`` in a browser, which has no token."""
    status, _ = await upload(session, server.base, "front", server.image("0012_00"))
    assert status == 200
    async with aiohttp.ClientSession() as browser, browser.get(f"{server.base}/") as response:
        assert response.status == 200
        assert response.content_type == "text/html" and response.charset == "utf-8"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        page = await response.text()
    info = server.app.info()
    assert f"<title>Smart ReID {__version__}</title>" in page
    assert ">ready<" in page or ">degraded<" in page
    for role in ("detector", "reid"):
        model = info["models"][role]
        assert f"{model['name']} ({model['runtime']}, device {model['device']})" in page
    # With a token, camera names (possibly "bedroom") are for token holders only.
    assert f"<td>{len(info['cameras'])} (names need the API token)</td>" in page
    assert not any(f">{camera}<" in page or f"{camera}," in page for camera in info["cameras"])
    assert TOKEN not in page
    assert "https://github.com/smart-reid/smart-reid/blob/main/docs/server.md" in page
    persons = (await _get(session, f"{server.base}/api/persons"))[1]["persons"]
    assert persons, "people exist; none of them may show here"
    assert not any(p["person_id"] in page or p["label"] in page for p in persons)
    # The JSON API is as it was: still token-only, still JSON errors.
    async with aiohttp.ClientSession() as browser:
        status, body = await _get(browser, f"{server.base}/api/info")
        assert status == 401 and body["error"] == "unauthorized"
    status, body = await _get(session, f"{server.base}/index.html")
    assert status == 404 and body["error"] == "not_found"


async def test_the_status_page_escapes_what_it_shows(tmp_path: Path, models_dir: Path) -> None:
    """A value from the configuration (here a broker name in a health reason) is shown as
    text, never as markup; without a token the camera names are listed."""
    settings = settings_for(
        tmp_path,
        models_dir,
        http={"port": 0},
        mqtt={"enabled": True, "host": "<b>broker</b>", "port": 1},
    )
    async with (
        running_app(settings) as app,
        aiohttp.ClientSession() as browser,
        browser.get(f"{app.http_url()}/") as response,
    ):
        assert response.status == 200
        page = await response.text()
    assert "&lt;b&gt;broker&lt;/b&gt;" in page and "<b>broker" not in page
    assert ">degraded<" in page
    assert f"<td>{', '.join(app.cameras.names)}</td>" in page
