"""What travels between the roles, in one compact versioned encoding.

A message is ``b"SRC" + version byte + u32 header length + JSON header + binary blobs``; the
header lists the blob sizes. Images travel as JPEG, vectors as little-endian float32 rows. JSON
keeps the header readable in ``redis-cli`` and needs no extra package; the blobs keep the bulk
(pictures, vectors) out of JSON.

- ``FrameMsg``: one camera frame on its way to the worker that owns the camera.
- ``Observation``: what a worker saw in one frame (or a notice: tracks ended, frame dropped),
  on its way to the matcher.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field, fields
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ..types import Box, Crop, Detection, Image, QualityReport

MAGIC = b"SRC"
VERSION = 2
JPEG_QUALITY = 90
_HEAD = struct.Struct("<3sBI")


class MessageError(ValueError):
    """A message that cannot be read (another version, or damaged)."""


def pack(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    header = {**header, "blobs": [len(b) for b in blobs]}
    text = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([_HEAD.pack(MAGIC, VERSION, len(text)), text, *blobs])


def unpack(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    if len(data) < _HEAD.size:
        raise MessageError("message too short")
    magic, version, size = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise MessageError("not a Smart ReID cluster message")
    if version != VERSION:
        raise MessageError(
            f"message version {version}, this server reads {VERSION}: run the same Smart ReID "
            "version on every worker and the matcher"
        )
    end = _HEAD.size + size
    try:
        header = json.loads(data[_HEAD.size : end])
    except ValueError as err:
        raise MessageError(f"damaged header: {err}") from None
    blobs: list[bytes] = []
    at = end
    for length in header.pop("blobs", []):
        blobs.append(bytes(data[at : at + int(length)]))
        at += int(length)
    if at != len(data):
        raise MessageError("message length does not match its header")
    return header, blobs


def encode_jpeg(image: Image, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MessageError("could not encode a picture as JPEG")
    return bytes(buf.tobytes())


def decode_jpeg(data: bytes) -> Image:
    """A picture of a message (JPEG, or the frame as its camera sent it: PNG too)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MessageError("a picture in the message does not decode")
    return np.asarray(image, dtype=np.uint8)


# What the tracker marks on a detection, beyond its box, score, label and track: every such
# flag travels (a flag the matcher did not get would make it decide differently from one process).
DETECTION_FLAGS: tuple[str, ...] = tuple(
    f.name for f in fields(Detection) if f.name not in ("box", "score", "label", "track_id")
)


def detection_row(d: Detection) -> list[Any]:
    b = d.box
    flags = {name: getattr(d, name) for name in DETECTION_FLAGS}
    return [b.x1, b.y1, b.x2, b.y2, d.score, d.label, d.track_id, flags]


def detection_from(row: list[Any]) -> Detection:
    x1, y1, x2, y2, score, label, track_id, flags = row
    if not isinstance(flags, dict):
        raise MessageError("a detection's flags must be an object")
    return Detection(
        Box(float(x1), float(y1), float(x2), float(y2)),
        float(score),
        str(label),
        None if track_id is None else str(track_id),
        **{name: bool(flags.get(name, False)) for name in DETECTION_FLAGS},
    )


@dataclass(slots=True)
class FrameMsg:
    """A frame in ``<prefix>:frames:<camera>``: the picture as sent (any format the server
    decodes), and what came with it."""

    camera: str
    timestamp: float
    image: bytes
    frame_id: str = ""
    source: str = "http"
    detections: list[Detection] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ref: str = ""  # set when someone waits for the decisions (HTTP upload)
    enqueued_at: float = 0.0  # wall clock, for the hop latency

    def encode(self) -> bytes:
        header = {
            "k": "frame",
            "camera": self.camera,
            "ts": self.timestamp,
            "id": self.frame_id,
            "src": self.source,
            "det": None if self.detections is None else [detection_row(d) for d in self.detections],
            "extra": self.extra,
            "ref": self.ref,
            "enq": self.enqueued_at,
        }
        return pack(header, [self.image])

    @classmethod
    def decode(cls, data: bytes) -> FrameMsg:
        h, blobs = unpack(data)
        if h.get("k") != "frame" or len(blobs) != 1:
            raise MessageError("not a frame message")
        det = h.get("det")
        return cls(
            camera=str(h["camera"]),
            timestamp=float(h["ts"]),
            image=blobs[0],
            frame_id=str(h.get("id") or ""),
            source=str(h.get("src") or "http"),
            detections=None if det is None else [detection_from(r) for r in det],
            extra=dict(h.get("extra") or {}),
            ref=str(h.get("ref") or ""),
            enqueued_at=float(h.get("enq") or 0.0),
        )


@dataclass(slots=True)
class Observation:
    """One frame as a worker saw it (``kind`` "obs"), or a notice: "end" (the worker's tracker
    lost ``ended`` tracks) or "drop" (the frame ``ref`` was shed, overloaded)."""

    kind: str
    camera: str
    owner: str  # the worker's token: feedback goes to <prefix>:feedback:<owner>
    seq: int = 0  # the frame's number on the camera at this worker (look-again feedback)
    entry: str = ""  # the frame's id in the camera's frames stream (idempotency)
    ref: str = ""
    frame_id: str = ""
    source: str = "http"
    timestamp: float = 0.0
    width: int = 0
    height: int = 0
    supplied_boxes: bool = False  # the detections came with the frame
    detections: list[Detection] = field(default_factory=list)
    crops: list[Crop] = field(default_factory=list)
    vectors: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    fresh: list[bool] | None = None
    frame_jpeg: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)
    # track ids that ended: kind "end", or with a frame ("obs"): as of that frame's time
    ended: list[str] = field(default_factory=list)
    reason: str = ""  # kind "drop"
    enqueued_at: float = 0.0
    sent_at: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)

    def encode(self) -> bytes:
        vectors = np.ascontiguousarray(self.vectors, dtype="<f4")
        crop_jpegs = [encode_jpeg(c.image) for c in self.crops]
        header = {
            "k": self.kind,
            "camera": self.camera,
            "owner": self.owner,
            "seq": self.seq,
            "entry": self.entry,
            "ref": self.ref,
            "id": self.frame_id,
            "src": self.source,
            "ts": self.timestamp,
            "size": [self.width, self.height],
            "supplied": self.supplied_boxes,
            "det": [detection_row(d) for d in self.detections],
            "crops": [
                [detection_row(c.detection), c.quality.ok, c.quality.sharpness, c.quality.reasons]
                for c in self.crops
            ],
            "vshape": list(vectors.shape),
            "fresh": self.fresh,
            "extra": self.extra,
            "ended": self.ended,
            "reason": self.reason,
            "enq": self.enqueued_at,
            "sent": self.sent_at,
            "lat": self.latency_ms,
        }
        return pack(header, [self.frame_jpeg, vectors.tobytes(), *crop_jpegs])

    @classmethod
    def decode(cls, data: bytes, *, images: bool = True) -> Observation:
        """``images=False`` leaves the pictures out (a redelivered frame the matcher skips)."""
        h, blobs = unpack(data)
        kind = str(h.get("k"))
        if kind not in ("obs", "end", "drop"):
            raise MessageError(f"not an observation ({kind})")
        rows, cols = (int(n) for n in h.get("vshape") or [0, 0])
        if len(blobs) < 2 or len(blobs[1]) != rows * cols * 4:
            raise MessageError("the vectors do not fit their shape")
        vectors = np.frombuffer(blobs[1], dtype="<f4").reshape(rows, cols).astype(np.float32)
        crop_rows = h.get("crops") or []
        if len(blobs) != 2 + len(crop_rows):
            raise MessageError("crop pictures missing")
        crops = [
            Crop(
                detection_from(det),
                decode_jpeg(blob) if images else np.zeros((1, 1, 3), np.uint8),
                QualityReport(bool(ok), float(sharp), tuple(str(r) for r in reasons)),
            )
            for (det, ok, sharp, reasons), blob in zip(crop_rows, blobs[2:], strict=True)
        ]
        width, height = (int(n) for n in h.get("size") or [0, 0])
        fresh = h.get("fresh")
        return cls(
            kind=kind,
            camera=str(h["camera"]),
            owner=str(h["owner"]),
            seq=int(h.get("seq") or 0),
            entry=str(h.get("entry") or ""),
            ref=str(h.get("ref") or ""),
            frame_id=str(h.get("id") or ""),
            source=str(h.get("src") or "http"),
            timestamp=float(h.get("ts") or 0.0),
            width=width,
            height=height,
            supplied_boxes=bool(h.get("supplied")),
            detections=[detection_from(r) for r in h.get("det") or []],
            crops=crops,
            vectors=vectors,
            fresh=None if fresh is None else [bool(f) for f in fresh],
            frame_jpeg=blobs[0],
            extra=dict(h.get("extra") or {}),
            ended=[str(t) for t in h.get("ended") or []],
            reason=str(h.get("reason") or ""),
            enqueued_at=float(h.get("enq") or 0.0),
            sent_at=float(h.get("sent") or 0.0),
            latency_ms={str(k): float(v) for k, v in (h.get("lat") or {}).items()},
        )


def entry_key(entry: str) -> tuple[int, int]:
    """A stream entry id ("1700000000000-3") as a number pair that sorts like Redis does."""
    ms, _, seq = entry.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (0, 0)
