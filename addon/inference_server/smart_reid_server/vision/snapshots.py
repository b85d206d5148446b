"""Annotated snapshots: the frame a notification links to, with every person boxed and named.

One colour per person id (derived from the id, so the same person keeps their colour across
cameras and restarts) makes it obvious at a glance that two cameras saw the same visitor.
Drawing and JPEG encoding are CPU work: callers run ``render_jpeg`` in an executor.
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Box, Decision, Image, MatchStatus

JPEG_QUALITY = 85


@dataclass(frozen=True, slots=True)
class Marker:
    """What to draw for one person: where, who, and how sure."""

    box: Box
    person_id: str
    label: str
    similarity: float
    status: MatchStatus
    new_person: bool = False

    @classmethod
    def from_decision(cls, decision: Decision) -> Marker:
        return cls(
            box=decision.box,
            person_id=decision.person_id,
            label=decision.label,
            similarity=decision.similarity,
            status=decision.match,
            new_person=decision.new_person,
        )


def person_colour(person_id: str) -> tuple[int, int, int]:
    """A stable, saturated BGR colour for an id."""
    digest = hashlib.blake2b(person_id.encode("utf-8"), digest_size=2).digest()
    hue = int.from_bytes(digest, "big") / 65535.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def _caption(marker: Marker) -> str:
    if marker.status is MatchStatus.NEW:
        how = "new"
    elif marker.status is MatchStatus.UNCERTAIN:
        how = f"? {marker.similarity:.2f}"
    else:
        how = f"{marker.similarity:.2f}"
    return f"{marker.label} ({how})" + (" NEW VISIT" if marker.new_person else "")


def annotate(image: Image, markers: Iterable[Marker]) -> Image:
    """A copy of ``image`` with a box and a caption per marker."""
    canvas: Image = image.copy()
    height, width = canvas.shape[:2]
    scale = max(0.4, min(1.2, width / 1280.0))
    thickness = max(1, round(2 * scale))
    for marker in markers:
        colour = person_colour(marker.person_id)
        box = marker.box.clipped(width, height)
        p1 = (round(box.x1), round(box.y1))
        p2 = (round(box.x2) - 1, round(box.y2) - 1)
        cv2.rectangle(canvas, p1, p2, colour, thickness)
        text = _caption(marker)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = p1[1] - th - base - 2 if p1[1] - th - base - 2 >= 0 else p1[1]
        # Keep the caption inside the picture for people at its right edge.
        left = max(0, min(p1[0], width - tw - 3))
        cv2.rectangle(canvas, (left, top), (left + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(
            canvas,
            text,
            (left + 1, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return canvas


def encode_jpeg(image: Image, quality: int = JPEG_QUALITY) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as JPEG")
    return bytes(np.asarray(buffer).tobytes())


def render_jpeg(image: Image, markers: Iterable[Marker]) -> bytes:
    """Annotate and encode in one call, so one executor hop does both."""
    return encode_jpeg(annotate(image, markers))
