"""Issue 11: the holes a hostile or broken input found, each closed and kept closed.

Every test here failed on the code before the fix. The server runs as users run it by default:
on loopback, without a token (the case a web page in the user's browser can reach).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from smart_reid_server.app import SmartReidApp
from smart_reid_server.store import Store

from tests.server.server_support import cuhk, full_box, running_app, settings_for

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
