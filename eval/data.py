"""The CUHK03 labeled splits as lists of crops with identity and camera view.

File names are ``PPPP_CC.jpg``: identity PPPP within the split, cell CC; cells 00-04 were taken
by camera view A (0) and 05-09 by view B (1) (see ``../shared/data/README.md``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

_NAME = re.compile(r"^(\d{4})_(\d{2})\.jpg$")
REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``$SMART_REID_SHARED`` or ``<repo>/../shared``, where models and data live."""
    env = os.environ.get("SMART_REID_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def models_dir() -> Path:
    return shared_dir() / "models"


@dataclass(frozen=True, slots=True)
class Split:
    """One split: crop paths with parallel arrays of identity and camera view (0=A, 1=B)."""

    name: str
    paths: tuple[Path, ...]
    pids: npt.NDArray[np.int64]
    cams: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_identities(self) -> int:
        return len(np.unique(self.pids))

    def subset(self, identities: int, seed: int = 0) -> Split:
        """The crops of ``identities`` identities picked at random (for quick runs and tests)."""
        chosen = np.random.default_rng(seed).permutation(np.unique(self.pids))[:identities]
        keep = np.isin(self.pids, chosen)
        return Split(
            f"{self.name}[{identities} ids]",
            tuple(p for p, k in zip(self.paths, keep, strict=True) if k),
            self.pids[keep],
            self.cams[keep],
        )


def load_split(name: str, root: Path | None = None) -> Split:
    """Read ``cuhk03/labeled/<name>``; a missing folder or a stray file name is an error."""
    folder = (root or shared_dir() / "data" / "cuhk03" / "labeled") / name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"CUHK03 split {folder} not found: set SMART_REID_SHARED to the folder holding "
            "data/cuhk03/labeled/{train,val}"
        )
    paths: list[Path] = []
    pids: list[int] = []
    cams: list[int] = []
    for path in sorted(folder.iterdir()):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: expected a file name like 0001_05.jpg (identity_cell)")
        paths.append(path)
        pids.append(int(match.group(1)))
        cams.append(0 if int(match.group(2)) < 5 else 1)
    if not paths:
        raise FileNotFoundError(f"CUHK03 split {folder} holds no crops")
    return Split(name, tuple(paths), np.asarray(pids, np.int64), np.asarray(cams, np.int64))
