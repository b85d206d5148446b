"""Helpers for tests that run the real server: CUHK03 uploads and an app started in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
from smart_reid_server.config import Settings, load
from smart_reid_server.serve.app import SmartReidApp
from smart_reid_server.types import Image, Vector


def cuhk(cuhk03_dir: Path, name: str, split: str = "val") -> bytes:
    """A CUHK03 crop, e.g. ``cuhk(dir, "0003_05")`` (cells 00-04 view A, 05-09 view B)."""
    return (cuhk03_dir / split / f"{name}.jpg").read_bytes()


def jpeg_image(data: bytes) -> Image:
    """Decode test bytes with OpenCV directly (not through the code under test)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "test image does not decode"
    return np.asarray(image, dtype=np.uint8)


def full_box(jpeg: bytes) -> list[dict[str, Any]]:
    """CUHK03 images are already person crops: one box covering the whole image."""
    height, width = jpeg_image(jpeg).shape[:2]
    return [{"box": [0, 0, width, height], "score": 0.95}]


def settings_for(data_dir: Path, models_dir: Path, **sections: Any) -> Settings:
    """Test settings (see conftest ``make_settings``) for fixtures wider than one test."""
    tree: dict[str, Any] = {
        "data_dir": str(data_dir),
        "log_level": "warning",
        "models": {"dir": str(models_dir), "download": False},
        "quality": {"min_height_px": 50},
        "cameras": ["front", "back"],
        "mqtt": {"enabled": False},
        "http": {"port": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            tree[key] = {**tree[key], **value}
        else:
            tree[key] = value
    return load(None, environ={}, overrides=tree)


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[SmartReidApp]:
    app = SmartReidApp(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def upload(
    session: aiohttp.ClientSession,
    base: str,
    camera: str,
    jpeg: bytes,
    *,
    detections: list[dict[str, Any]] | None = None,
    whole_image_box: bool = True,
    timestamp: float | None = None,
    frame_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST /api/frames as multipart; returns (status, JSON body)."""
    form = aiohttp.FormData()
    form.add_field("image", jpeg, filename="frame.jpg", content_type="image/jpeg")
    form.add_field("camera", camera)
    boxes = detections if detections is not None else (full_box(jpeg) if whole_image_box else None)
    if boxes is not None:
        form.add_field("detections", json.dumps(boxes))
    if timestamp is not None:
        form.add_field("timestamp", str(timestamp))
    if frame_id is not None:
        form.add_field("frame_id", frame_id)
    async with session.post(f"{base}/api/frames", data=form, headers=headers) as response:
        return response.status, await response.json()


async def upload_ok(base: str, camera: str, jpeg: bytes, timestamp: float) -> dict[str, Any]:
    """One frame (the whole image as the person's box) in its own session; must be accepted."""
    async with aiohttp.ClientSession() as session:
        status, body = await upload(session, base, camera, jpeg, timestamp=timestamp)
    assert status == 200, body
    return body


class CuhkPicker:
    """Chooses CUHK03 identities by what the real model makes of them, at test time.

    CUHK03's two camera views are hard (rank-1 about 63 % for the default model), and many
    identities are not recognised across views at the match threshold. A test about cross-camera
    *wiring* needs a person the model does recognise, and a stranger it does not confuse with
    them; this picks both from the data with the product's own embedder instead of hard-coding
    file names.
    """

    def __init__(self, cuhk03_dir: Path, embedder: Any, split: str = "val", ids: int = 40) -> None:
        self.root = cuhk03_dir / split
        self.split = split
        self.embedder = embedder
        self.ids = ids
        self._vectors: dict[str, Vector] = {}

    def _vector(self, name: str) -> Vector:
        if name not in self._vectors:
            image = cv2.imread(str(self.root / f"{name}.jpg"))
            self._vectors[name] = np.asarray(self.embedder.embed([image])[0], dtype=np.float32)
        return self._vectors[name]

    def _cells(self, pid: int, view: str) -> list[str]:
        cells = range(0, 5) if view == "A" else range(5, 10)
        names = [f"{pid:04d}_{c:02d}" for c in cells]
        return [n for n in names if (self.root / f"{n}.jpg").is_file()]

    def same_person(self, threshold: float, skip: set[int] | None = None) -> tuple[str, str]:
        """(view-A image, view-B image) of one identity the model matches above ``threshold``."""
        for pid in range(self.ids):
            if skip and pid in skip:
                continue
            for a in self._cells(pid, "A"):
                for b in self._cells(pid, "B"):
                    if float(self._vector(a) @ self._vector(b)) >= threshold:
                        return a, b
        raise AssertionError(f"no CUHK03 identity matches across views above {threshold}")

    def stranger(self, to: list[str], below: float, skip: set[int] | None = None) -> str:
        """A view-A image of another identity, below ``below`` similarity to every image in ``to``."""
        taken = {int(name[:4]) for name in to} | (skip or set())
        for pid in range(self.ids):
            if pid in taken:
                continue
            for name in self._cells(pid, "A"):
                if all(float(self._vector(name) @ self._vector(t)) < below for t in to):
                    return name
        raise AssertionError("no CUHK03 identity is dissimilar enough")
