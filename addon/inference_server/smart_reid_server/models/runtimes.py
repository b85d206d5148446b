"""One small interface over OpenVINO and onnxruntime.

Callers hand over a ready NCHW float32 batch of any size and get the model's outputs back as
numpy arrays, one row per image; everything runtime-specific (device names, execution
providers, thread settings, batching, inference requests) stays in this module. Loading also
runs one warm-up inference, so the first camera frame does not pay for lazy initialisation.

How a batch of N images is run (``LoadedModel.batch_mode``):

- ``parallel``: OpenVINO on CPU. The model keeps its batch of 1 and each image is its own
  request on a queue of parallel requests (one CPU stream per core). Measured on the 2-core
  target with person-reidentification-retail-0277, this costs about 7 ms of CPU per crop at any
  N, while one request with a dynamic batch costs 9-10 ms per crop at N = 2..4 and more at
  N = 1, and single requests with intra-op threading waste CPU time spinning.
- ``batch``: one call with the whole batch (models whose file has a dynamic batch, or OpenVINO
  on a GPU, where big batches pay).
- ``loop``: one call per image (models whose batch is fixed at 1 in onnxruntime).
- ``single``: a detector: one image per call, latency first.

Whatever the mode, an image's output does not depend on the other images in its call: batch
mode never runs a batch of 1 (CPU kernels for batch 1 differ from the batched ones in the last
bits), the other modes always run images alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .devices import ort_provider_options, plan, select_device
from .errors import ModelError
from .openvino import import_openvino

_LOGGER = logging.getLogger(__name__)

type Array = npt.NDArray[np.float32]
type BatchMode = Literal["single", "parallel", "batch", "loop"]

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
    batch_mode: BatchMode

    def run(self, batch: Array) -> list[npt.NDArray[Any]]:
        """The model's outputs for ``batch`` (N images), each with N rows."""
        raise NotImplementedError


class OpenVinoModel(LoadedModel):
    def __init__(
        self,
        path: Path,
        weights: Path | None,
        *,
        device: str,
        threads: int,
        many: bool,
        max_batch: int,
        name: str,
    ) -> None:
        ov = import_openvino()
        self.runtime = "openvino"
        self._name = name
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
        target = _openvino_device(device, list(core.available_devices), name)
        self.batch_mode = "single"
        if many:
            self.batch_mode = "parallel" if target == "CPU" else "batch"
        port = model.inputs[0]
        shape = port.get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4:
            raise ModelError(f"model {name} has input shape {shape}; [N, 3, H, W] is required")
        if self.batch_mode == "parallel" and shape[0].is_dynamic:
            model.reshape({port.get_any_name(): ov.PartialShape([1, *list(shape)[1:]])})
        elif self.batch_mode == "batch":
            # A bounded batch runs faster than an open one: buffers are planned for the maximum.
            bounded = ov.PartialShape([ov.Dimension(1, max(2, max_batch)), *list(shape)[1:]])
            try:
                model.reshape({port.get_any_name(): bounded})
            except RuntimeError as err:
                _LOGGER.debug("%s keeps its fixed batch: %s", name, _first_line(err))
                self.batch_mode = "loop"
        self.input_name = port.get_any_name()
        self.input_shape = tuple(
            -1 if dim.is_dynamic else dim.get_length()
            for dim in model.inputs[0].get_partial_shape()
        )
        hint = "THROUGHPUT" if self.batch_mode == "parallel" else "LATENCY"
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint}
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
        self.device = "cpu" if target == "CPU" else "openvino_gpu"
        self._outputs = len(compiled.outputs)
        self._request = compiled.create_infer_request()
        self._queue: Any = None
        self._results: list[list[npt.NDArray[Any]]] = []
        if self.batch_mode == "parallel":
            jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self._queue = ov.AsyncInferQueue(compiled, max(1, jobs))
            self._queue.set_callback(self._collect)
        self._lock = threading.Lock()

    def _collect(self, request: Any, index: int) -> None:
        self._results[index] = [
            np.array(request.get_output_tensor(i).data, copy=True) for i in range(self._outputs)
        ]

    def run(self, batch: Array) -> list[npt.NDArray[Any]]:
        with self._lock:
            count = batch.shape[0]
            if self.batch_mode == "parallel":
                self._results = [[] for _ in range(count)]
                for i in range(count):
                    self._queue.start_async({0: batch[i : i + 1]}, i)
                self._queue.wait_all()
                return _stack(self._results)
            if self.batch_mode == "batch":
                return [out[:count] for out in self._infer(_at_least_two(batch))]
            return _stack([self._infer(batch[i : i + 1]) for i in range(count)])

    def _infer(self, batch: Array) -> list[npt.NDArray[Any]]:
        self._request.infer({0: batch}, share_inputs=True)
        return [
            np.array(self._request.get_output_tensor(i).data, copy=True)
            for i in range(self._outputs)
        ]


class OnnxRuntimeModel(LoadedModel):
    def __init__(
        self,
        path: Path,
        *,
        device: str,
        threads: int,
        many: bool,
        name: str,
        cache_dir: Path | None = None,
    ) -> None:
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
        providers = ort_provider_options(device, cache_dir)
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
        dynamic = bool(self.input_shape) and self.input_shape[0] == -1
        self.batch_mode = "single" if not many else "batch" if dynamic else "loop"
        self._session = session

    def run(self, batch: Array) -> list[npt.NDArray[Any]]:
        count = batch.shape[0]
        if self.batch_mode == "batch":
            return [out[:count] for out in self._infer(_at_least_two(batch))]
        if count == 1:
            return self._infer(batch)
        return _stack([self._infer(batch[i : i + 1]) for i in range(count)])

    def _infer(self, batch: Array) -> list[npt.NDArray[Any]]:
        return [np.asarray(out) for out in self._session.run(None, {self.input_name: batch})]


def _at_least_two(batch: Array) -> Array:
    if batch.shape[0] != 1:
        return batch
    doubled: Array = np.concatenate([batch, batch])
    return doubled


def _stack(per_image: list[list[npt.NDArray[Any]]]) -> list[npt.NDArray[Any]]:
    """Per-image output lists (each with a batch axis of 1) -> one array per output."""
    return [np.concatenate(outputs) for outputs in zip(*per_image, strict=True)]


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
    many: bool = False,
    max_batch: int = 32,
    cache_dir: Path | None = None,
) -> LoadedModel:
    """Open a model file (``files[0]``; ``files[1]`` is the IR weights file when given).

    ``many``: callers will pass several images per call (an embedder), so set the model up for
    throughput; otherwise for the latency of one image (a detector). ``max_batch`` bounds the
    batch of models run in ``batch`` mode. ``device`` is ``models.device`` (see
    ``models.devices``); a device this machine lacks gives one warning naming the model and the
    device that runs instead. ``cache_dir`` keeps TensorRT engines between starts.
    """
    path = Path(files[0])
    if not path.is_file():
        raise ModelError(f"model file {path} for {name} does not exist")
    chosen = choose_runtime(preferred_runtime, runtime, path, name)
    choice = select_device(device)
    if choice.fallback:
        _LOGGER.warning("model %s: %s", name, choice.fallback)
    where = plan(choice.device, preferred_runtime=chosen, configured_runtime=runtime, path=path)
    model: LoadedModel
    if where.runtime == "openvino":
        weights = Path(files[1]) if len(files) > 1 else None
        model = OpenVinoModel(
            path,
            weights,
            device=where.device,
            threads=threads,
            many=many,
            max_batch=max_batch,
            name=name,
        )
    else:
        model = OnnxRuntimeModel(
            path, device=where.device, threads=threads, many=many, name=name, cache_dir=cache_dir
        )
    _warm_up(model, name, 2 if many else 1)
    _LOGGER.debug(
        "loaded %s with %s on %s (input %s %s, %s)",
        name,
        model.runtime,
        model.device,
        model.input_name,
        model.input_shape,
        model.batch_mode,
    )
    return model


def _warm_up(model: LoadedModel, name: str, batch: int) -> None:
    shape = list(model.input_shape)
    if len(shape) != 4 or any(d <= 0 for d in shape[1:]):
        raise ModelError(
            f"model {name} has input shape {model.input_shape}; an image input "
            "[batch, 3, height, width] with a fixed height and width is required"
        )
    shape[0] = batch if model.batch_mode != "single" else 1
    try:
        model.run(np.zeros(shape, dtype=np.float32))
    except Exception as err:
        raise ModelError(f"model {name} failed its first test run: {_first_line(err)}") from err
