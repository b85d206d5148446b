"""Device selection: the fastest available device, one clear warning when falling back.

This machine (and CI) has no GPU, so the selection logic is exercised with the accelerator
lists a GPU host reports (onnxruntime's provider names and OpenVINO's device names, exactly as
those libraries return them), and the fallback end to end with the real runtimes and models.
bench/bench_gpu.py measures the real GPU path on a GPU host.
"""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from server_support import running_app, settings_for
from smart_reid_server.models.devices import (
    Accelerators,
    ort_provider_options,
    plan,
    probe,
    select_device,
)
from smart_reid_server.models.runtimes import load_model

CPU_ONLY = Accelerators(("CPUExecutionProvider",), ("CPU",))
NVIDIA = Accelerators(
    ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"), ("CPU",)
)
CUDA_ONLY = Accelerators(("CUDAExecutionProvider", "CPUExecutionProvider"), ("CPU",))
INTEL = Accelerators(("CPUExecutionProvider",), ("CPU", "GPU"))
EVERYTHING = Accelerators(NVIDIA.ort_providers, ("CPU", "GPU.0", "GPU.1"))


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        (CPU_ONLY, "cpu"),
        (NVIDIA, "tensorrt"),
        (CUDA_ONLY, "cuda"),
        (INTEL, "openvino_gpu"),
        (EVERYTHING, "tensorrt"),
    ],
)
def test_auto_takes_the_fastest_available(machine: Accelerators, expected: str) -> None:
    choice = select_device("auto", machine)
    assert choice.device == expected
    assert choice.fallback is None
    assert choice.available[-1] == "cpu"
    assert choice.available[0] == expected


def test_requested_device_that_exists_is_used() -> None:
    assert select_device("cuda", NVIDIA).device == "cuda"  # not "upgraded" to TensorRT
    assert select_device("openvino_gpu", EVERYTHING).device == "openvino_gpu"
    assert select_device("cpu", EVERYTHING).device == "cpu"
    assert select_device("gpu", INTEL).device == "openvino_gpu"


def test_missing_device_falls_back_to_the_fastest_there_is_and_says_why() -> None:
    choice = select_device("cuda", CPU_ONLY)
    assert choice.device == "cpu"
    assert choice.fallback is not None
    assert "'cuda' is not available" in choice.fallback
    assert "running on CPU" in choice.fallback
    assert "onnxruntime providers: CPU" in choice.fallback  # what was found
    assert "gpus: all" in choice.fallback  # what to do
    assert select_device("tensorrt", CUDA_ONLY).device == "cuda"
    assert select_device("openvino_gpu", NVIDIA).device == "tensorrt"
    intel = select_device("cuda", INTEL)
    assert (intel.device, "running on OpenVINO GPU" in str(intel.fallback)) == (
        "openvino_gpu",
        True,
    )
    assert "/dev/dri" in str(select_device("openvino_gpu", CPU_ONLY).fallback)
    assert select_device("gpu", CPU_ONLY).fallback is not None
    with pytest.raises(ValueError, match="unknown device 'npu'"):
        select_device("npu", CPU_ONLY)


def test_info_names_requested_selected_and_available() -> None:
    assert select_device("tensorrt", CUDA_ONLY).as_info() == {
        "requested": "tensorrt",
        "selected": "cuda",
        "available": ["cuda", "cpu"],
        "fallback": select_device("tensorrt", CUDA_ONLY).fallback,
    }


@pytest.mark.parametrize(
    ("device", "file", "configured", "expected"),
    [
        ("cuda", "yolox.onnx", "auto", ("onnxruntime", "cuda")),
        ("tensorrt", "yolox.onnx", "auto", ("onnxruntime", "tensorrt")),
        # onnxruntime cannot open OpenVINO IR: the ReID model stays with OpenVINO's CPU
        ("cuda", "reid.xml", "auto", ("openvino", "cpu")),
        ("openvino_gpu", "yolox.onnx", "auto", ("openvino", "gpu")),
        ("openvino_gpu", "reid.xml", "auto", ("openvino", "gpu")),
        ("cpu", "yolox.onnx", "auto", ("onnxruntime", "cpu")),
        # models.runtime set by the user wins; the device applies within it where it can
        ("cuda", "yolox.onnx", "openvino", ("openvino", "cpu")),
        ("openvino_gpu", "yolox.onnx", "onnxruntime", ("onnxruntime", "cpu")),
    ],
)
def test_plan_per_model_file(
    device: str, file: str, configured: str, expected: tuple[str, str]
) -> None:
    where = plan(
        device,  # type: ignore[arg-type]
        preferred_runtime="onnxruntime",
        configured_runtime=configured,
        path=Path(file),
    )
    assert (where.runtime, where.device) == expected


def test_this_machine_is_probed_for_real() -> None:
    """No GPU here: auto is the CPU, quietly; the probe lists what the runtimes report."""
    found = probe()
    assert "CPUExecutionProvider" in found.ort_providers
    assert "CPU" in found.openvino_devices
    if found.available() != ("cpu",):
        pytest.skip(f"this machine has an accelerator: {found.describe()}")
    assert select_device("auto").device == "cpu"
    assert select_device("auto").fallback is None
    # Only installed providers are handed to onnxruntime (it refuses unknown ones).
    assert ort_provider_options("tensorrt", None) == ["CPUExecutionProvider"]


def test_load_model_with_auto_is_quiet_on_cpu(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if probe().available() != ("cpu",):
        pytest.skip("this machine has an accelerator")
    with caplog.at_level(logging.INFO):
        model = load_model(
            [models_dir / "detectors/yolox_nano_416.onnx"], name="yolox_nano_416", device="auto"
        )
    assert (model.runtime, model.device) == ("onnxruntime", "cpu")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_server_falls_back_with_one_warning_and_reports_it(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """models.device: tensorrt on a machine without it: the server starts on the CPU, warns
    once (not once per model), and says so in /api/info (which HA's diagnostics include)."""
    if probe().available() != ("cpu",):
        pytest.skip("this machine has an accelerator")
    settings = settings_for(tmp_path, models_dir, models={"device": "tensorrt"})
    with caplog.at_level(logging.INFO):
        async with running_app(settings) as app:
            url = f"http://127.0.0.1:{app.http_port}/api/info"
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                info = await response.json()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    device_warnings = [w for w in warnings if "not available" in w]
    assert len(device_warnings) == 1, warnings
    assert "device 'tensorrt' is not available" in device_warnings[0]
    assert "running on CPU" in device_warnings[0]
    assert info["models"]["detector"]["device"] == "cpu"
    assert info["models"]["reid"]["device"] == "cpu"
    device = info["settings"]["device"]
    assert (device["requested"], device["selected"], device["available"]) == (
        "tensorrt",
        "cpu",
        ["cpu"],
    )
    assert device["fallback"] == device_warnings[0]
    loaded = [r.getMessage() for r in caplog.records if "models loaded" in r.getMessage()]
    assert loaded and "on cpu" in loaded[0]
