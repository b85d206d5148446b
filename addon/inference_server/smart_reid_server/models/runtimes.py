"""One small interface over OpenVINO and onnxruntime.

Callers hand over a ready NCHW float32 batch and get the model's outputs back as numpy arrays;
everything runtime-specific (device names, execution providers, thread settings, dynamic batch,
inference requests) stays in this module. Loading also runs one warm-up inference, so the first
camera frame does not pay for lazy kernel compilation.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .errors import ModelError

_LOGGER = logging.getLogger(__name__)

type Array = npt.NDArray[np.float32]
type DeviceName = Literal["cpu", "gpu", "cuda", "tensorrt", "auto"]
type RuntimeChoice = Literal["auto", "openvino", "onnxruntime"]

_ORT_PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ORT_DEVICE = {provider: device for device, provider in _ORT_PROVIDERS.items()}


class LoadedModel:
    """A model ready to run. ``run`` is thread-safe."""

    runtime: str
    device: str
    input_name: str
    input_shape: tuple[int, ...]  # -1 for a dynamic dimension
    dynamic_batch: bool

    def run(self, batch: Array) -> list[npt.NDArray[Any]]:
        raise NotImplementedError


class OpenVinoModel(LoadedModel):
    def __init__(
        self,
        path: Path,
        weights: Path | None,
        *,
        device: str,
        threads: int,
        dynamic_batch: bool,
        name: str,
    ) -> None:
        ov = _openvino()
        self.runtime = "openvino"
        core = ov.Core()
        try:
            model = core.read_model(str(path), str(weights) if weights else None)
        except RuntimeError as err:
            raise ModelError(
                f"OpenVINO cannot read model {name} from {path}: {_first_line(err)}. The file "
                "may be damaged: delete it (or set models.verify: true to check it)"
            ) from err
        if len(model.inputs) != 1:
            raise ModelError(f"model {name} has {len(model.inputs)} inputs; exactly 1 is supported")
        port = model.inputs[0]
        shape = port.get_partial_shape()
        self.dynamic_batch = False
        if dynamic_batch and shape.rank.is_static and shape.rank.get_length() == 4:
            if shape[0].is_dynamic:
                self.dynamic_batch = True
            else:
                try:
                    model.reshape({port.get_any_name(): ov.PartialShape([-1, *list(shape)[1:]])})
                    self.dynamic_batch = True
                except RuntimeError as err:
                    _LOGGER.debug("%s keeps its fixed batch: %s", name, _first_line(err))
        self.input_name = port.get_any_name()
        self.input_shape = tuple(
            -1 if dim.is_dynamic else dim.get_length()
            for dim in model.inputs[0].get_partial_shape()
        )
        available = list(core.available_devices)
        target = _openvino_device(device, available, name)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            compiled = core.compile_model(model, target, config if target == "CPU" else {})
        except RuntimeError as err:
            if target == "CPU":
                raise ModelError(
                    f"OpenVINO cannot compile model {name}: {_first_line(err)}"
                ) from err
            _LOGGER.warning(
                "model %s: OpenVINO device %s failed (%s); running on CPU",
                name,
                target,
                _first_line(err),
            )
            target = "CPU"
            compiled = core.compile_model(model, target, config)
        self.device = target.lower()
        self._request = compiled.create_infer_request()
        self._outputs = len(compiled.outputs)
        self._lock = threading.Lock()

    def run(self, batch: Array) -> list[npt.NDArray[Any]]:
        with self._lock:
            self._request.infer({0: batch}, share_inputs=True)
            return [
                np.array(self._request.get_output_tensor(i).data, copy=True)
                for i in range(self._outputs)
            ]


class OnnxRuntimeModel(LoadedModel):
    def __init__(self, path: Path, *, device: str, threads: int, name: str) -> None:
        import onnxruntime as ort

        self.runtime = "onnxruntime"
        options = ort.SessionOptions()
        options.log_severity_level = 3  # exporters leave harmless warnings in many files
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # Spinning worker threads would steal the few cores from the other model between calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = _ort_providers(device, ort.get_available_providers())
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception classes
            raise ModelError(
                f"onnxruntime cannot load model {name} from {path}: {_first_line(err)}. The file "
                "may be damaged: delete it (or set models.verify: true to check it)"
            ) from err
        used = session.get_providers()
        self.device = _ORT_DEVICE.get(used[0], used[0]) if used else "cpu"
        if device not in ("cpu", "auto") and self.device == "cpu":
            _LOGGER.warning(
                "model %s: device %r is not available to onnxruntime (providers: %s); "
                "running on CPU",
                name,
                device,
                ", ".join(ort.get_available_providers()),
            )
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"model {name} has {len(inputs)} inputs; exactly 1 is supported")
        self.input_name = inputs[0].name
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in inputs[0].shape)
        self.dynamic_batch = bool(self.input_shape) and self.input_shape[0] == -1
        self._session = session

    def run(self, batch: Array) -> list[npt.NDArray[Any]]:
        outputs = self._session.run(None, {self.input_name: batch})
        return [np.asarray(out) for out in outputs]


def _openvino() -> Any:
    """Import OpenVINO with its usage telemetry off.

    Importing ``openvino`` sets up Intel's telemetry client, which reports the import (and ONNX
    reads) to Google Analytics from a forked process. A camera server has no business phoning
    home, and forking a multi-threaded process can deadlock. The client is a singleton, so
    creating it first with consent withdrawn silences every later use.
    """
    if "openvino" not in sys.modules:
        with contextlib.suppress(Exception):
            import openvino_telemetry

            client = openvino_telemetry.Telemetry(
                app_name="OpenVINO",
                tid="none",
                backend="ga4",
                enable_opt_in_dialog=False,
                disable_in_ci=True,
            )
            client.consent = False
    import openvino as ov

    with contextlib.suppress(Exception):
        from openvino.tools.ovc import telemetry

        telemetry.consent = False
    return ov


def _openvino_device(requested: str, available: Sequence[str], name: str) -> str:
    gpus = [d for d in available if d.startswith("GPU")]
    if requested == "cpu":
        return "CPU"
    if requested == "auto":
        return gpus[0] if gpus else "CPU"
    if requested == "gpu" and gpus:
        return gpus[0]
    _LOGGER.warning(
        "model %s: device %r is not available to OpenVINO (devices: %s); running on CPU",
        name,
        requested,
        ", ".join(available) or "none",
    )
    return "CPU"


def _ort_providers(requested: str, available: Sequence[str]) -> list[str]:
    """Providers in preference order, only those installed (the caller warns on fallback)."""
    if requested == "tensorrt":
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    elif requested in ("cuda", "gpu"):
        wanted = ["CUDAExecutionProvider"]
    elif requested == "auto":
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    else:
        wanted = []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def choose_runtime(preferred: str, configured: str, path: Path, name: str) -> str:
    """The runtime that will open ``path``: the configured one when it can, else the model's."""
    is_ir = path.suffix.lower() == ".xml"
    if configured == "auto":
        return "openvino" if is_ir else preferred
    if configured == "onnxruntime" and is_ir:
        _LOGGER.warning(
            "model %s is an OpenVINO IR file, which onnxruntime cannot open; using OpenVINO", name
        )
        return "openvino"
    return configured


def load_model(
    files: Sequence[Path],
    *,
    name: str,
    preferred_runtime: str = "onnxruntime",
    runtime: str = "auto",
    device: str = "cpu",
    threads: int = 0,
    dynamic_batch: bool = False,
    warmup_batch: int = 1,
) -> LoadedModel:
    """Open a model file (``files[0]``; ``files[1]`` is the IR weights file when given).

    ``dynamic_batch`` asks for a reshape of a fixed batch-1 OpenVINO input, so embedders can run
    many crops in one call; the result's ``dynamic_batch`` says whether that worked.
    """
    path = Path(files[0])
    if not path.is_file():
        raise ModelError(f"model file {path} for {name} does not exist")
    chosen = choose_runtime(preferred_runtime, runtime, path, name)
    model: LoadedModel
    if chosen == "openvino":
        weights = Path(files[1]) if len(files) > 1 else None
        model = OpenVinoModel(
            path, weights, device=device, threads=threads, dynamic_batch=dynamic_batch, name=name
        )
    else:
        model = OnnxRuntimeModel(path, device=device, threads=threads, name=name)
    _warm_up(model, name, warmup_batch)
    _LOGGER.debug(
        "loaded %s with %s on %s (input %s %s)",
        name,
        model.runtime,
        model.device,
        model.input_name,
        model.input_shape,
    )
    return model


def _warm_up(model: LoadedModel, name: str, batch: int) -> None:
    shape = list(model.input_shape)
    if len(shape) != 4 or any(d <= 0 for d in shape[1:]):
        raise ModelError(
            f"model {name} has input shape {model.input_shape}; an image input "
            "[batch, 3, height, width] with a fixed height and width is required"
        )
    shape[0] = batch if model.dynamic_batch else 1
    try:
        model.run(np.zeros(shape, dtype=np.float32))
    except Exception as err:
        raise ModelError(f"model {name} failed its first test run: {_first_line(err)}") from err
