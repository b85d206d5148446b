"""Model registry, fetching/verification and runtime selection, with real model files.

Downloads are served by a real HTTP server on 127.0.0.1 from a copy of a real model file.
"""

from __future__ import annotations

import http.server
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from smart_reid_server import config
from smart_reid_server.models import (
    REGISTRY,
    ModelError,
    ModelFile,
    ModelManager,
    ModelSpec,
    get_spec,
    load_model,
    names,
    reid_spec,
    sha256_file,
)
from smart_reid_server.vision.embed import Embedder

OSNET = "osnet_x0_25_msmt17"
OSNET_FILE = "reid/osnet_x0_25_msmt17.onnx"


# -- registry -------------------------------------------------------------------------------


def test_registry_lists_the_supported_models_with_the_documented_defaults() -> None:
    assert names("detector") == ["yolox_nano_416", "nanodet_m_416", "light_person_detector_192"]
    assert set(names("reid")) == {
        "person-reidentification-retail-0277",
        "person-reidentification-retail-0286",
        "person-reidentification-retail-0287",
        "person-reidentification-retail-0288",
        "person-reidentification-retail-0267",
        OSNET,
    }
    settings = config.validate({})
    models = settings.section("models")
    assert reid_spec(models).name == "person-reidentification-retail-0277"
    assert get_spec(models["detector"]).kind == "detector"
    for name in names("reid"):
        spec = get_spec(name)
        assert spec.is_reid and spec.default_threshold is not None
        assert (spec.input.height, spec.input.width) == (256, 128)


def test_every_registered_file_matches_the_real_copy(models_dir: Path) -> None:
    """The sha256 and sizes in the registry are the ones of the trusted reference files."""
    checked = 0
    for spec in REGISTRY.values():
        for file in spec.files:
            path = models_dir / file.path
            assert path.is_file(), f"{file.path} missing from {models_dir}"
            assert file.size == path.stat().st_size, file.path
            assert file.sha256 == sha256_file(path), file.path
            checked += 1
    assert checked == 13


def test_urls_point_at_the_upstream_releases() -> None:
    omz = get_spec("person-reidentification-retail-0277").files
    assert [f.url for f in omz] == [
        "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2023.0/models_bin/1/"
        f"person-reidentification-retail-0277/FP16/person-reidentification-retail-0277.{ext}"
        for ext in ("xml", "bin")
    ]
    assert get_spec("yolox_nano_416").main_file.url == (
        "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"
    )


def test_unknown_model_name_lists_the_choices() -> None:
    with pytest.raises(ModelError, match=r"unknown detector 'yolo9'.*yolox_nano_416"):
        get_spec("yolo9", "detector")
    with pytest.raises(ModelError, match="unknown reid 'yolox_nano_416'"):
        get_spec("yolox_nano_416", "reid")


def test_custom_reid_from_configuration_becomes_a_spec(models_dir: Path) -> None:
    settings = config.validate(
        {
            "models": {
                "custom_reid": {
                    "path": str(models_dir / OSNET_FILE),
                    "color_order": "rgb",
                    "scale": 1 / 255,
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                    "threshold": 0.55,
                }
            }
        }
    )
    spec = reid_spec(settings.section("models"))
    assert spec.name == "custom:osnet_x0_25_msmt17"
    assert spec.runtime == "onnxruntime"
    assert spec.input.color_order == "rgb"
    assert spec.default_threshold == 0.55
    assert spec.main_file.sha256 is None and spec.main_file.url is None


# -- local files and verification -------------------------------------------------------------


def _copy(models_dir: Path, dest_root: Path, rel: str) -> Path:
    dest = dest_root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(models_dir / rel, dest)
    return dest


def test_local_dir_file_is_found_and_verified(models_dir: Path, tmp_path: Path) -> None:
    manager = ModelManager(models_dir, tmp_path / "cache", download=False)
    paths = manager.resolve(get_spec("person-reidentification-retail-0277"))
    assert [p.name for p in paths.values()] == [
        "person-reidentification-retail-0277.xml",
        "person-reidentification-retail-0277.bin",
    ]
    assert all(
        p.parent == models_dir / "reid/person-reidentification-retail-0277/FP16"
        for p in paths.values()
    )
    # The verification is remembered on disk, so the next start does not hash again.
    assert (tmp_path / "cache" / ".verified.json").is_file()


def test_verification_is_cached_by_size_and_mtime(models_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "models"
    path = _copy(models_dir, local, OSNET_FILE)
    ModelManager(local, tmp_path / "cache", download=False).resolve(get_spec(OSNET))
    # Same size, same mtime, different content: trusted from the cache (that is the point of it).
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ModelManager(local, tmp_path / "cache", download=False).resolve(get_spec(OSNET))
    # Touching the file invalidates the cached digest and the damage is found.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(ModelError, match="has sha256"):
        ModelManager(local, tmp_path / "cache", download=False).resolve(get_spec(OSNET))


def test_corrupt_local_file_is_refused_with_what_to_do(models_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "models"
    path = _copy(models_dir, local, OSNET_FILE)
    with path.open("r+b") as handle:
        handle.seek(5000)
        handle.write(b"\x00" * 64)
    manager = ModelManager(local, tmp_path / "cache", download=False)
    with pytest.raises(ModelError) as err:
        manager.resolve(get_spec(OSNET))
    message = str(err.value)
    assert str(path) in message
    assert "expected dddd73c80b78e24ef982f9c352c1947b42d67433887011e8eb33a00313edef5e" in message
    assert "delete it, or set models.verify: false" in message
    # The user's file is never deleted, and with verification off it is used as it is.
    assert path.is_file()
    unverified = ModelManager(local, tmp_path / "cache", download=False, verify=False)
    assert unverified.resolve(get_spec(OSNET))[OSNET_FILE] == path


def test_missing_file_without_download_says_how_to_fix(tmp_path: Path) -> None:
    manager = ModelManager(tmp_path / "empty", tmp_path / "cache", download=False)
    with pytest.raises(ModelError) as err:
        manager.resolve(get_spec("yolox_nano_416"))
    message = str(err.value)
    assert "detectors/yolox_nano_416.onnx" in message
    assert "models.download is false" in message
    assert "set models.download: true" in message


def test_model_without_download_url_must_be_supplied(tmp_path: Path) -> None:
    manager = ModelManager(None, tmp_path / "cache", download=True)
    with pytest.raises(ModelError, match="cannot be downloaded: copy it there"):
        manager.resolve(get_spec("person-reidentification-retail-0267"))


# -- downloads from a real HTTP server --------------------------------------------------------


@dataclass
class _Server:
    url: str
    payload: bytes = b""
    mode: str = "ok"  # ok | short
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def http_server() -> Iterator[_Server]:
    state = _Server("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            body = state.payload
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.mode == "short":
                self.wfile.write(body[: len(body) // 3])
                self.wfile.flush()
                self.close_connection = True
                return
            for start in range(0, len(body), 64 * 1024):
                self.wfile.write(body[start : start + 64 * 1024])

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _served_spec(server: _Server, models_dir: Path, tmp_path: Path) -> ModelSpec:
    """The osnet spec, its URL pointing at ``server``, which serves a copy of the real file."""
    server.payload = _copy(models_dir, tmp_path / "served", OSNET_FILE).read_bytes()
    spec = get_spec(OSNET)
    file = replace(spec.main_file, url=f"{server.url}/osnet_x0_25_msmt17.onnx")
    return replace(spec, files=(file,))


def test_download_verifies_and_caches(
    http_server: _Server, models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _served_spec(http_server, models_dir, tmp_path)
    cache = tmp_path / "cache"
    manager = ModelManager(None, cache, download=True)
    with caplog.at_level(logging.INFO, logger="smart_reid_server.models.download"):
        path = manager.resolve(spec)[OSNET_FILE]
    assert path == cache / OSNET_FILE
    assert sha256_file(path) == spec.main_file.sha256
    progress = [r.getMessage() for r in caplog.records if "%" in r.getMessage()]
    assert progress, "download progress was not logged"
    assert all(m.endswith("%") for m in progress)
    assert list(cache.glob("reid/.*part")) == []  # no temp files left behind
    # The downloaded model really runs.
    assert Embedder(spec, {OSNET_FILE: path}).embed([np.zeros((64, 32, 3), np.uint8)]).shape == (
        1,
        512,
    )
    # Next start: served from the cache, no request.
    hits = len(http_server.hits)
    assert ModelManager(None, cache, download=True).resolve(spec)[OSNET_FILE] == path
    assert len(http_server.hits) == hits


def test_corrupt_download_is_rejected_and_not_cached(
    http_server: _Server, models_dir: Path, tmp_path: Path
) -> None:
    spec = _served_spec(http_server, models_dir, tmp_path)
    data = bytearray(http_server.payload)
    data[len(data) // 2] ^= 0x55
    http_server.payload = bytes(data)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as err:
        ModelManager(None, cache, download=True).resolve(spec)
    message = str(err.value)
    assert "has sha256" in message and f"expected {spec.main_file.sha256}" in message
    assert "set models.verify: false" in message
    assert not (cache / OSNET_FILE).exists()
    assert list((cache / "reid").iterdir()) == []


def test_interrupted_download_is_retried_then_reported(
    http_server: _Server, models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _served_spec(http_server, models_dir, tmp_path)
    http_server.mode = "short"
    cache = tmp_path / "cache"
    manager = ModelManager(None, cache, download=True, attempts=2)
    with pytest.raises(ModelError, match=r"could not download .*connection closed after"):
        manager.resolve(spec)
    assert len(http_server.hits) == 2
    assert not (cache / OSNET_FILE).exists()
    assert list((cache / "reid").iterdir()) == []
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 2
    # Once the network behaves, the same manager gets the file.
    http_server.mode = "ok"
    assert sha256_file(manager.resolve(spec)[OSNET_FILE]) == spec.main_file.sha256


def test_damaged_cache_file_is_fetched_again(
    http_server: _Server, models_dir: Path, tmp_path: Path
) -> None:
    spec = _served_spec(http_server, models_dir, tmp_path)
    cache = tmp_path / "cache"
    broken = cache / OSNET_FILE
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a model")
    path = ModelManager(None, cache, download=True).resolve(spec)[OSNET_FILE]
    assert sha256_file(path) == spec.main_file.sha256
    assert len(http_server.hits) == 1


def test_missing_url_answers_with_the_http_error(
    http_server: _Server, models_dir: Path, tmp_path: Path
) -> None:
    spec = get_spec(OSNET)
    file = ModelFile(OSNET_FILE, "http://127.0.0.1:9/nothing.onnx", spec.main_file.sha256)
    with pytest.raises(ModelError, match="could not download"):
        ModelManager(None, tmp_path / "cache", download=True, attempts=1).resolve(
            replace(spec, files=(file,))
        )


# -- runtimes --------------------------------------------------------------------------------


def test_unavailable_cuda_falls_back_to_cpu_with_one_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        model = load_model(
            [models_dir / "detectors/yolox_nano_416.onnx"], name="yolox_nano_416", device="cuda"
        )
    assert (model.runtime, model.device) == ("onnxruntime", "cpu")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "'cuda' is not available" in warnings[0].getMessage()
    assert "running on CPU" in warnings[0].getMessage()


def test_unavailable_openvino_gpu_falls_back_to_cpu_with_one_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = models_dir / "reid/person-reidentification-retail-0288/FP32"
    with caplog.at_level(logging.WARNING):
        model = load_model(
            [folder / "person-reidentification-retail-0288.xml"],
            name="0288",
            device="gpu",
            many=True,
        )
    if model.device != "cpu":
        pytest.skip(f"this machine has an OpenVINO GPU ({model.device})")
    assert (model.runtime, model.device, model.batch_mode) == ("openvino", "cpu", "parallel")
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_onnx_model_can_be_forced_into_either_runtime(models_dir: Path) -> None:
    onnx = models_dir / "detectors/light_person_detector_192.onnx"
    via_ov = load_model([onnx], name="light", runtime="openvino", threads=1)
    via_ort = load_model([onnx], name="light", runtime="onnxruntime", threads=1)
    assert (via_ov.runtime, via_ort.runtime) == ("openvino", "onnxruntime")
    assert via_ov.input_shape == via_ort.input_shape == (1, 3, 192, 192)


def test_ir_model_forced_to_onnxruntime_runs_in_openvino(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = models_dir / "reid/person-reidentification-retail-0288/FP32"
    with caplog.at_level(logging.WARNING):
        model = load_model(
            [folder / "person-reidentification-retail-0288.xml"], name="0288", runtime="onnxruntime"
        )
    assert model.runtime == "openvino"
    assert "onnxruntime cannot open" in caplog.text


def test_broken_model_file_gives_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 10)
    with pytest.raises(ModelError, match="may be damaged"):
        load_model([bad], name="bad")


def test_openvino_usage_telemetry_is_switched_off(models_dir: Path) -> None:
    """Loading a model must not report anything to Intel's analytics from the user's network."""
    import openvino_telemetry

    load_model(
        [models_dir / "detectors/light_person_detector_192.onnx"], name="l", runtime="openvino"
    )
    assert openvino_telemetry.Telemetry().consent is False
