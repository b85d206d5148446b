"""Per-model starting means for per-camera centering (``match.camera_centering``).

``priors.json`` beside this module holds, per registry ReID model, the mean unit embedding of
people in ordinary street video (written by ``python -m eval.priors``). A camera starts centred
with it and moves to its own mean as it sees people (``match.CameraCentering``). Models without an
entry (custom models) start uncentred and wait for their own mean.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

_LOGGER = logging.getLogger(__name__)
PRIORS_FILE = Path(__file__).with_name("priors.json")


@cache
def _table() -> dict[str, list[float]]:
    try:
        data = json.loads(PRIORS_FILE.read_text(encoding="utf-8"))
        return {name: entry["mean"] for name, entry in data["models"].items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        _LOGGER.warning("no centering priors (%s: %s); cameras start uncentred", PRIORS_FILE, err)
        return {}


def prior_mean(model: str, dim: int) -> npt.NDArray[np.float32] | None:
    """The starting mean for ``model``'s ``dim``-long embeddings, or None if there is none."""
    values = _table().get(model)
    if values is None:
        return None
    if len(values) != dim:
        _LOGGER.warning(
            "centering prior for %s has %d values but the model gives %d; not used",
            model,
            len(values),
            dim,
        )
        return None
    return np.asarray(values, dtype=np.float32)
