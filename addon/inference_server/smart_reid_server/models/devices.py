"""Which inference device to use: the fastest one this machine really has.

``models.device`` names what the user wants:

- ``auto``: the fastest available, in this order: TensorRT, CUDA (onnxruntime's execution
  providers, NVIDIA GPUs), an OpenVINO GPU (Intel iGPU/Arc through ``/dev/dri``), the CPU;
- ``tensorrt``, ``cuda``, ``openvino_gpu``: that one (``tensorrt`` also uses CUDA for the
  operators TensorRT does not take); ``gpu`` is the older spelling for "any GPU";
- ``cpu``: the CPU.

A requested device this machine does not have falls back to the fastest one it does have, with
one clear warning from the server (``log_choice``) saying what was asked for, what was found and
what runs instead. What is available is probed once per process (``probe``): the onnxruntime
execution providers that are installed (``onnxruntime-gpu`` provides CUDA and TensorRT) and the
OpenVINO devices (``GPU`` appears when an Intel GPU and its compute runtime are present).

Per model the device then decides the runtime (``plan``): an ONNX file runs in onnxruntime on
CUDA/TensorRT and in OpenVINO on an OpenVINO GPU; an OpenVINO IR file (``.xml``) can only run in
OpenVINO, so with an NVIDIA device it stays on the CPU (or an OpenVINO GPU, when there is one).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

_LOGGER = logging.getLogger(__name__)

type Device = Literal["tensorrt", "cuda", "openvino_gpu", "cpu"]

# Fastest first.
DEVICE_ORDER: tuple[Device, ...] = ("tensorrt", "cuda", "openvino_gpu", "cpu")
REQUESTABLE = ("auto", "cpu", "cuda", "tensorrt", "openvino_gpu", "gpu")

_ORT_PROVIDER: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
}
_LABEL: dict[str, str] = {
    "tensorrt": "TensorRT (onnxruntime)",
    "cuda": "CUDA (onnxruntime)",
    "openvino_gpu": "OpenVINO GPU",
    "cpu": "CPU",
}


@dataclass(frozen=True, slots=True)
class Accelerators:
    """What this machine offers: onnxruntime providers and OpenVINO devices."""

    ort_providers: tuple[str, ...]
    openvino_devices: tuple[str, ...]

    @property
    def openvino_gpu(self) -> str | None:
        """OpenVINO's name of the first GPU (``GPU`` or ``GPU.0``), if any."""
        return next((d for d in self.openvino_devices if d.startswith("GPU")), None)

    def has(self, device: str) -> bool:
        if device == "cpu":
            return True
        if device == "openvino_gpu":
            return self.openvino_gpu is not None
        return _ORT_PROVIDER.get(device, "") in self.ort_providers

    def available(self) -> tuple[Device, ...]:
        """Every usable device, fastest first (always ends with ``cpu``)."""
        return tuple(d for d in DEVICE_ORDER if self.has(d))

    def describe(self) -> str:
        providers = ", ".join(p.removesuffix("ExecutionProvider") for p in self.ort_providers)
        return (
            f"onnxruntime providers: {providers or 'none'}; "
            f"OpenVINO devices: {', '.join(self.openvino_devices) or 'none'}"
        )


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """The outcome of ``select_device``: what runs, and why when it is not what was asked."""

    requested: str
    device: Device
    available: tuple[Device, ...]
    fallback: str | None = None  # the warning text when the requested device is missing

    def as_info(self) -> dict[str, Any]:
        """For ``info.settings.device`` (the API, the status page, HA diagnostics)."""
        return {
            "requested": self.requested,
            "selected": self.device,
            "available": list(self.available),
            "fallback": self.fallback,
        }


@functools.cache
def probe() -> Accelerators:
    """Ask both runtimes what they can use (once per process; cheap, no model is loaded)."""
    providers: tuple[str, ...] = ()
    try:
        import onnxruntime as ort

        providers = tuple(ort.get_available_providers())
        if "CUDAExecutionProvider" in providers and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu installed from PyPI finds the CUDA/cuDNN libraries of the
            # nvidia-* wheels only after this (a no-op where they come from the system).
            with contextlib.suppress(Exception):
                ort.preload_dlls()
    except ImportError:
        pass
    devices: tuple[str, ...] = ("CPU",)
    try:
        from .openvino import import_openvino

        ov = import_openvino()
        devices = tuple(ov.Core().available_devices)
    except Exception as err:  # no OpenVINO, or a broken GPU plugin: the CPU still works
        _LOGGER.debug("OpenVINO devices could not be listed: %s", err)
    return Accelerators(providers, devices)


def select_device(requested: str, accelerators: Accelerators | None = None) -> DeviceChoice:
    """The device for ``models.device`` = ``requested`` on this machine."""
    found = accelerators if accelerators is not None else probe()
    available = found.available()
    fastest = available[0]
    if requested == "auto":
        return DeviceChoice(requested, fastest, available)
    if requested == "cpu":
        return DeviceChoice(requested, "cpu", available)
    if requested == "gpu":  # any GPU
        if fastest != "cpu":
            return DeviceChoice(requested, fastest, available)
    elif requested in ("tensorrt", "cuda", "openvino_gpu"):
        if found.has(requested):
            return DeviceChoice(requested, requested, available)  # type: ignore[arg-type]
        if requested == "tensorrt" and found.has("cuda"):
            fastest = "cuda"
    else:
        raise ValueError(f"unknown device {requested!r}; use one of {', '.join(REQUESTABLE)}")
    message = (
        f"device {requested!r} is not available ({found.describe()}); running on "
        f"{_LABEL[fastest]}{_hint(requested)}"
    )
    return DeviceChoice(requested, fastest, available, fallback=message)


def _hint(requested: str) -> str:
    if requested in ("tensorrt", "cuda"):
        return (
            ". For NVIDIA GPUs use the smart-reid NVIDIA image (onnxruntime-gpu) and start it "
            "with the NVIDIA container toolkit (gpus: all)"
        )
    if requested in ("openvino_gpu", "gpu"):
        return (
            ". For an Intel GPU pass /dev/dri into the container and install the Intel compute "
            "runtime (the smart-reid images have it on amd64)"
        )
    return ""


def log_choice(choice: DeviceChoice) -> None:
    """One line: a warning when falling back, else which device runs and what else exists."""
    if choice.fallback:
        _LOGGER.warning("%s", choice.fallback)
    else:
        _LOGGER.info(
            "inference device: %s (models.device %s; available: %s)",
            _LABEL[choice.device],
            choice.requested,
            ", ".join(choice.available),
        )


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """Where one model file runs: its runtime and that runtime's device name."""

    runtime: Literal["openvino", "onnxruntime"]
    device: str  # onnxruntime: tensorrt | cuda | cpu; OpenVINO: gpu | cpu


def plan(
    device: Device, *, preferred_runtime: str, configured_runtime: str, path: Path
) -> ModelPlan:
    """The runtime and device for one model file, given the chosen ``device``.

    ``configured_runtime`` (``models.runtime``) wins when it is not ``auto``: the device then
    applies within that runtime where it can (else the model runs on that runtime's CPU).
    """
    is_ir = path.suffix.lower() == ".xml"
    nvidia = device in ("tensorrt", "cuda")
    runtime: Literal["openvino", "onnxruntime"]
    if is_ir or configured_runtime == "openvino":
        runtime = "openvino"
    elif configured_runtime == "onnxruntime" or nvidia:
        runtime = "onnxruntime"
    elif device == "openvino_gpu":
        runtime = "openvino"
    else:
        runtime = "openvino" if preferred_runtime == "openvino" else "onnxruntime"
    if runtime == "onnxruntime":
        return ModelPlan(runtime, device if nvidia else "cpu")
    if device == "openvino_gpu":
        return ModelPlan(runtime, "gpu")
    return ModelPlan(runtime, "cpu")


def ort_provider_options(device: str, cache_dir: Path | None) -> list[Any]:
    """onnxruntime's ``providers`` argument for ``device`` (only installed providers)."""
    import onnxruntime as ort

    installed = set(ort.get_available_providers())
    providers: list[Any] = []
    if device == "tensorrt" and "TensorrtExecutionProvider" in installed:
        options: dict[str, Any] = {}
        if cache_dir is not None:
            # Building an engine takes minutes; cached, later starts take seconds.
            with contextlib.suppress(OSError):
                cache_dir.mkdir(parents=True, exist_ok=True)
                options = {
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache_dir),
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": str(cache_dir),
                }
        providers.append(("TensorrtExecutionProvider", options))
    if device in ("tensorrt", "cuda") and "CUDAExecutionProvider" in installed:
        providers.append("CUDAExecutionProvider")
    providers.append("CPUExecutionProvider")
    return providers


__all__ = [
    "DEVICE_ORDER",
    "REQUESTABLE",
    "Accelerators",
    "DeviceChoice",
    "ModelPlan",
    "log_choice",
    "ort_provider_options",
    "plan",
    "probe",
    "select_device",
]
