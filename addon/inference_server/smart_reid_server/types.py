"""Small typed records that the pipeline stages hand to each other.

ingest -> Frame -> detect -> Detection -> (quality gate) Crop -> embed -> Embedding
-> match/visits -> Decision -> publish (MQTT) / api (HTTP).

Images are numpy arrays in BGR channel order, uint8, shape (H, W, 3): that is what
the decoders produce and what every shipped model expects, so no stage converts twice.
Times are Unix seconds (float) for anything a user sees, and time.monotonic() for
latency measurement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

# Camera names appear in MQTT topics, URLs and file names: keep them to this safe alphabet.
CAMERA_NAME = re.compile(r"^[a-z0-9_]{1,64}$")

type Image = npt.NDArray[np.uint8]
type Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in pixel coordinates of the frame it came from."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def clipped(self, frame_width: int, frame_height: int) -> Box:
        return Box(
            min(max(self.x1, 0.0), float(frame_width)),
            min(max(self.y1, 0.0), float(frame_height)),
            min(max(self.x2, 0.0), float(frame_width)),
            min(max(self.y2, 0.0), float(frame_height)),
        )

    def as_list(self) -> list[float]:
        return [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)]


@dataclass(frozen=True, slots=True)
class Detection:
    """One person found in a frame, by our detector or supplied with the frame."""

    box: Box
    score: float
    label: str = "person"
    track_id: str | None = None  # set by an upstream tracker (edge device, Frigate event id)
    # Set by our tracker when it continued a track by position alone (the boxes did not
    # overlap): a weak link, so the identity check looks at this crop (tracklets.py).
    weak_link: bool = False
    # Set by our tracker when the box covers the boxes of two or more of its tracks: people
    # merged into one box. Its crop shows more than one person (tracklets.py).
    group: bool = False


@dataclass(slots=True)
class Frame:
    """A decoded camera image on its way through the pipeline."""

    camera: str
    image: Image
    timestamp: float  # when the camera took it (Unix seconds)
    source: str = "http"  # http | mqtt | frigate | stream | folder | edge | demo
    frame_id: str = ""
    # Detections that came with the frame (Frigate box, edge detector): detection is skipped.
    detections: list[Detection] | None = None
    # Free-form references a notification may want to link back to (frigate_event_id, ...).
    extra: dict[str, Any] = field(default_factory=dict)
    received_monotonic: float = 0.0  # time.monotonic() when ingest accepted it

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Why a crop may or may not teach the gallery anything."""

    ok: bool
    sharpness: float
    reasons: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        """A single number to pick the best snapshot of a visit (bigger is better)."""
        return self.sharpness


@dataclass(slots=True)
class Crop:
    """A person cut out of a frame, with its quality assessment."""

    detection: Detection
    image: Image
    quality: QualityReport


@dataclass(frozen=True, slots=True)
class Embedding:
    """An L2-normalised appearance vector from one ReID model."""

    vector: Vector
    model: str


class MatchStatus(StrEnum):
    """How sure the matcher is about an identity."""

    MATCHED = "matched"  # similarity above the model's threshold
    UNCERTAIN = "uncertain"  # in the band just below it: probably the same person
    NEW = "new"  # nobody in the gallery is close enough


@dataclass(frozen=True, slots=True)
class MatchResult:
    person_id: str | None  # None only when status is NEW and no identity was created
    similarity: float  # best cosine similarity (0.0 for an empty gallery)
    status: MatchStatus
    # Runner-up identity when the decision was close, for "probably the same person" reports.
    candidate_id: str | None = None
    candidate_similarity: float = 0.0


@dataclass(slots=True)
class Decision:
    """The pipeline's answer for one person in one frame: the unit of the MQTT/HTTP contract."""

    camera: str
    timestamp: float
    person_id: str
    label: str
    known: bool
    new_person: bool  # first sighting of a visit: notify
    is_new_identity: bool  # the gallery had never seen this person before
    match: MatchStatus
    similarity: float
    visit_id: str
    visit_cameras: list[str]
    first_camera: str
    box: Box
    detection_score: float
    quality_ok: bool
    frame_id: str = ""
    source: str = "http"
    candidate_id: str | None = None
    candidate_similarity: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The payload documented in docs/contract.md (sighting and new_person messages)."""
        return {
            "camera": self.camera,
            "timestamp": round(self.timestamp, 3),
            "person_id": self.person_id,
            "label": self.label,
            "known": self.known,
            "new_person": self.new_person,
            "is_new_identity": self.is_new_identity,
            "match": self.match.value,
            "similarity": round(self.similarity, 4),
            "candidate_id": self.candidate_id,
            "candidate_similarity": round(self.candidate_similarity, 4),
            "visit_id": self.visit_id,
            "visit_cameras": list(self.visit_cameras),
            "first_camera": self.first_camera,
            "box": self.box.as_list(),
            "detection_score": round(self.detection_score, 3),
            "quality_ok": self.quality_ok,
            "frame_id": self.frame_id or None,  # null when the sender named no frame
            "source": self.source,
            **({"extra": self.extra} if self.extra else {}),
        }
