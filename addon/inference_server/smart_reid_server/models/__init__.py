"""Model registry, download/verification and runtimes for the detect and embed stages."""

from .download import ModelManager, sha256_file
from .errors import ModelError
from .registry import (
    REGISTRY,
    InputSpec,
    ModelFile,
    ModelSpec,
    custom_reid_spec,
    detector_spec,
    get_spec,
    names,
    reid_spec,
)
from .runtimes import LoadedModel, load_model

__all__ = [
    "REGISTRY",
    "InputSpec",
    "LoadedModel",
    "ModelError",
    "ModelFile",
    "ModelManager",
    "ModelSpec",
    "custom_reid_spec",
    "detector_spec",
    "get_spec",
    "load_model",
    "names",
    "reid_spec",
    "sha256_file",
]
