"""Shared fixtures for the server suite.

The real models and data live outside the repository in ``<repo>/../shared`` (override with
``SMART_REID_SHARED``); tests that need them skip with a message saying what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]


def _need(path: Path, what: str) -> Path:
    if not path.is_dir():
        pytest.skip(f"{what} not found at {path} (set SMART_REID_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(Path(os.environ.get("SMART_REID_SHARED", _REPO.parent / "shared")), "shared dir")


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return _need(shared_dir / "models", "real models")


@pytest.fixture(scope="session")
def cuhk03_dir(shared_dir: Path) -> Path:
    return _need(shared_dir / "data" / "cuhk03" / "labeled", "CUHK03 labeled crops")


@pytest.fixture(scope="session")
def video_dir(shared_dir: Path) -> Path:
    return _need(shared_dir / "data" / "video", "test videos")


# Fixtures for the wiring/pipeline tests (broker, settings factory, ...) go below this line.
