"""Per-camera tracking: links the same person across consecutive frames so we embed less.

Embedding a crop is the most expensive step per person. A person standing at the door for a
minute is the same person in every frame, and a camera's consecutive frames show it plainly:
the boxes overlap. So each camera gets a light tracker (IoU matching of detections against each
track's box moved forward at its constant velocity, with a centre-distance fallback for small,
fast boxes at low frame rates; a track missing from the camera's frames for more than
``relink_s`` is not continued) and the pipeline embeds a track's crop only

- for its first ``embed_first`` sightings (a few looks, so a bad first crop does not decide),
- then every ``embed_every``-th sighting (appearance may change: a coat comes off),
- or whenever the crop is clearly better than the best one embedded so far
  (``better_factor`` times the quality: bigger, surer, sharper).

A box that holds two people walking close (it covers where two tracks of about its height are
expected, side by side, and is as wide as both) is flagged ``group`` on its detection: its crop
is no look of anyone (``tracklets``), and a track that comes from such a box pays
``GROUP_PENALTY`` on its next link, so the other person's track, which waited outside the
group, takes its person back first.

Detections that arrive with a ``track_id`` (an edge device's tracker, a Frigate event id) keep
that id: the device already tracked them, better than we could from sampled frames.

Call contract (the pipeline, between detection/quality and embedding)::

    tracked = tracks.update(frame.camera, detections, frame.timestamp, sharpness=[...])
    for item in tracked:              # same order as ``detections``
        if item.embed:                # embed item.detection's crop, match, remember per track
            ...
        else:                         # reuse the match remembered for item.track_id
            ...                       # (embed anyway if nothing is remembered)
        if item.best:                 # best crop of this track so far: thumbnail candidate
            ...
    for camera, track_id in tracks.expire(now):   # now: the latest frame time
        ...                           # forget what was remembered for the track

``sharpness`` (optional, one value per detection) is the crop's quality sharpness; without it
the quality is size x detector score. Thread-safe: frames of one camera may be handled by
several workers, and a frame older than the newest one seen does not move tracks backwards.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..types import Box, Detection

GROUP_PENALTY = 0.5  # added to the link cost of a track whose last box held two people


@dataclass(frozen=True, slots=True)
class TrackedDetection:
    """One detection with its track and what to do with its crop."""

    detection: Detection  # the input detection with ``track_id`` set to the track's id
    track_id: str
    embed: bool  # embed this crop now
    best: bool  # the best crop of this track so far
    quality: float  # the crop quality the choices were made on (bigger is better)
    hits: int  # sightings of the track including this one
    new_track: bool


@dataclass(slots=True)
class _Track:
    track_id: str
    box: Box
    last_seen: float
    external: bool
    hits: int = 0
    vx: float = 0.0  # centre velocity, pixels per second
    vy: float = 0.0
    best_quality: float = 0.0
    embedded_quality: float = 0.0
    since_embed: int = 0
    group: bool = False  # its last box held two or more people

    def predicted(self, timestamp: float) -> Box:
        dt = max(0.0, timestamp - self.last_seen)
        dx, dy = self.vx * dt, self.vy * dt
        b = self.box
        return Box(b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.area + b.area - inter)


def _inside_share(inner: Box, outer: Box) -> float:
    """The share of ``inner``'s area that lies inside ``outer``."""
    w = min(inner.x2, outer.x2) - max(inner.x1, outer.x1)
    h = min(inner.y2, outer.y2) - max(inner.y1, outer.y1)
    if w <= 0 or h <= 0 or inner.area <= 0:
        return 0.0
    return w * h / inner.area


def _centre(box: Box) -> tuple[float, float]:
    return (box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0


def crop_quality(detection: Detection, sharpness: float | None = None) -> float:
    """How useful a crop is for re-identification: size times certainty, times sharpness.

    ``sqrt(area)`` (a linear size) so twice as tall counts as twice as good; sharpness enters
    as ``s / (s + 50)``, which saturates: beyond a point sharper is not better.
    """
    value = math.sqrt(max(detection.box.area, 0.0)) * max(detection.score, 0.0)
    if sharpness is not None:
        s = max(sharpness, 0.0)
        value *= s / (s + 50.0)
    return value


class CameraTracker:
    """Tracks of one camera (see the module docstring for the call contract)."""

    def __init__(
        self,
        camera: str,
        *,
        iou_threshold: float = 0.2,
        max_centre_shift: float = 0.6,
        max_age_s: float = 3.0,
        relink_s: float = 1.5,
        group_cover: float = 0.5,
        group_widen: float = 1.2,
        external_max_age_s: float = 60.0,
        embed_first: int = 3,
        embed_every: int = 10,
        better_factor: float = 1.3,
        max_tracks: int = 256,
    ) -> None:
        self.camera = camera
        self.iou_threshold = iou_threshold
        self.max_centre_shift = max_centre_shift
        self.max_age_s = max_age_s
        self.relink_s = relink_s
        self.group_cover = group_cover
        self.group_widen = group_widen
        self.external_max_age_s = external_max_age_s
        self.embed_first = embed_first
        self.embed_every = embed_every
        self.better_factor = better_factor
        self.max_tracks = max_tracks
        self._tracks: dict[str, _Track] = {}
        self._counter = 0
        self._latest = -math.inf
        self._previous_frame = -math.inf  # the newest frame time before the current one
        self._ended: list[str] = []
        self._weak: set[int] = set()  # detections of the current update linked by distance
        self._group: set[int] = set()  # detections of the current update holding two people
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return len(self._tracks)

    def update(
        self,
        detections: Sequence[Detection],
        timestamp: float,
        sharpness: Sequence[float] | None = None,
    ) -> list[TrackedDetection]:
        """Assign each detection to a track (new or continued); same order as ``detections``."""
        if sharpness is not None and len(sharpness) != len(detections):
            raise ValueError(
                f"sharpness has {len(sharpness)} values for {len(detections)} detections"
            )
        with self._lock:
            if timestamp > self._latest:
                self._previous_frame, self._latest = self._latest, timestamp
            assigned = self._assign(detections, timestamp)
            out: list[TrackedDetection] = []
            for index, detection in enumerate(detections):
                track, is_new = assigned[index]
                quality = crop_quality(detection, None if sharpness is None else sharpness[index])
                out.append(
                    self._record(
                        track,
                        detection,
                        timestamp,
                        quality,
                        is_new,
                        weak=index in self._weak,
                        group=index in self._group,
                    )
                )
            self._expire_locked(self._latest)
            return out

    def expire(self, now: float) -> list[str]:
        """Drop tracks not seen for their max age; the ids of all tracks ended since last call.

        ``update`` also ends stale tracks (so a camera's memory stays bounded even if nobody
        calls this); their ids are kept and reported here.
        """
        with self._lock:
            self._expire_locked(now)
            ended, self._ended = self._ended, []
            return ended

    # -- internals (lock held) ------------------------------------------------------------------

    def _assign(
        self, detections: Sequence[Detection], timestamp: float
    ) -> dict[int, tuple[_Track, bool]]:
        assigned: dict[int, tuple[_Track, bool]] = {}
        free: list[int] = []
        for index, detection in enumerate(detections):
            if detection.track_id is None:
                free.append(index)
                continue
            track = self._tracks.get(detection.track_id)
            if track is None:
                track = self._new_track(detection, timestamp, external_id=detection.track_id)
                assigned[index] = (track, True)
            else:
                assigned[index] = (track, False)
        # A track missing from the camera's frames for longer than ``relink_s`` is not
        # continued: extrapolated that far, its box lands on whoever walks there next (on real
        # video most tracks that carried two people were re-linked after 1.5-2 s out of sight).
        # Whoever appears is a new track, and the identity layer decides by looks whether it is
        # the person lost there. A track seen in the camera's previous frame always may go on
        # (a camera sending a frame every 2 s).
        previous = self._previous_frame
        candidates = [
            t
            for t in self._tracks.values()
            if not t.external
            and t.hits > 0
            and (timestamp - t.last_seen <= self.relink_s or t.last_seen >= previous)
        ]
        pairs: list[tuple[float, int, int, bool]] = []
        predicted = [t.predicted(timestamp) for t in candidates]
        for index in free:
            box = detections[index].box
            for t_index, guess in enumerate(predicted):
                cost = self._cost(guess, box)
                if cost is not None:
                    by_distance = cost >= 1.0  # linked by centre distance, not by overlap
                    if candidates[t_index].group:
                        # Out of a box of two people, a track of one of them that waited
                        # outside it takes the box first: the group's track may hold either.
                        cost += GROUP_PENALTY
                    pairs.append((cost, index, t_index, by_distance))
        pairs.sort()
        used_tracks: set[int] = set()
        self._weak = set()
        for _, index, t_index, by_distance in pairs:
            if index in assigned or t_index in used_tracks:
                continue
            assigned[index] = (candidates[t_index], False)
            used_tracks.add(t_index)
            if by_distance:
                self._weak.add(index)
        for index in free:
            if index not in assigned:
                assigned[index] = (self._new_track(detections[index], timestamp, None), True)
        self._group = {
            index
            for index in free
            if self._is_group(detections[index].box, assigned[index][0], candidates, predicted)
        }
        return assigned

    def _is_group(
        self, box: Box, track: _Track, candidates: Sequence[_Track], predicted: Sequence[Box]
    ) -> bool:
        """Whether ``box`` holds two or more people (walking close, detected as one box): it
        covers ``group_cover`` of the boxes where two of the camera's tracks of about its
        height are expected, side by side (together ``group_widen`` times as wide as the wider
        of them) and about as wide as both together. One person in front of another is not a
        group: their box is no wider than the person in front. A track already on a group box
        stays in the group while its box still covers another track's."""
        covered = [
            (t, guess)
            for t, guess in zip(candidates, predicted, strict=True)
            if _inside_share(guess, box) >= self.group_cover
            and 0.67 <= max(guess.height, 1.0) / max(box.height, 1.0) <= 1.5
        ]
        if track.group and any(t is not track for t, _ in covered):
            return True
        for n, (_, a) in enumerate(covered):
            for _, b in covered[n + 1 :]:
                union = max(a.x2, b.x2) - min(a.x1, b.x1)
                if (
                    union >= self.group_widen * max(a.width, b.width, 1.0)
                    and box.width >= 0.8 * union
                ):
                    return True
        return False

    def _cost(self, guess: Box, box: Box) -> float | None:
        """Lower is a better match; None when the boxes cannot be the same person."""
        overlap = iou(guess, box)
        if overlap >= self.iou_threshold:
            return 1.0 - overlap
        gh, bh = max(guess.height, 1.0), max(box.height, 1.0)
        if not 0.67 <= bh / gh <= 1.5:
            return None
        (gx, gy), (bx, by) = _centre(guess), _centre(box)
        shift = math.hypot(gx - bx, gy - by) / max(gh, bh)
        if shift > self.max_centre_shift:
            return None
        return 1.0 + shift

    def _new_track(self, detection: Detection, timestamp: float, external_id: str | None) -> _Track:
        if external_id is None:
            self._counter += 1
            track_id = f"{self.camera}:{self._counter}"
        else:
            track_id = external_id
        track = _Track(track_id, detection.box, timestamp, external=external_id is not None)
        if len(self._tracks) >= self.max_tracks:
            oldest = min(self._tracks.values(), key=lambda t: t.last_seen)
            del self._tracks[oldest.track_id]
            self._ended.append(oldest.track_id)
        self._tracks[track_id] = track
        return track

    def _record(
        self,
        track: _Track,
        detection: Detection,
        timestamp: float,
        quality: float,
        is_new: bool,
        *,
        weak: bool = False,
        group: bool = False,
    ) -> TrackedDetection:
        dt = timestamp - track.last_seen
        if track.hits > 0 and dt > 0:
            (ox, oy), (nx, ny) = _centre(track.box), _centre(detection.box)
            mvx, mvy = (nx - ox) / dt, (ny - oy) / dt
            if track.hits == 1:
                track.vx, track.vy = mvx, mvy
            else:
                track.vx, track.vy = 0.5 * (track.vx + mvx), 0.5 * (track.vy + mvy)
        if dt >= 0 or track.hits == 0:
            track.box = detection.box
            track.last_seen = max(track.last_seen, timestamp)
        track.hits += 1
        track.since_embed += 1
        track.group = group
        best = quality > track.best_quality
        if best:
            track.best_quality = quality
        embed = (
            weak  # a link by position alone: look at the person to be sure
            or track.hits <= self.embed_first
            or track.since_embed >= self.embed_every
            or (quality > 0 and quality >= track.embedded_quality * self.better_factor)
        )
        if embed:
            track.since_embed = 0
            track.embedded_quality = max(track.embedded_quality, quality)
        return TrackedDetection(
            detection=replace(detection, track_id=track.track_id, weak_link=weak, group=group),
            track_id=track.track_id,
            embed=embed,
            best=best,
            quality=quality,
            hits=track.hits,
            new_track=is_new,
        )

    def _expire_locked(self, now: float) -> None:
        gone = [
            t.track_id
            for t in self._tracks.values()
            if now - t.last_seen > (self.external_max_age_s if t.external else self.max_age_s)
        ]
        for track_id in gone:
            del self._tracks[track_id]
        self._ended.extend(gone)
        if len(self._ended) > 4 * self.max_tracks:
            del self._ended[: len(self._ended) - 4 * self.max_tracks]


class Tracks:
    """One ``CameraTracker`` per camera, made on first use with the same settings."""

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._cameras: dict[str, CameraTracker] = {}
        self._lock = threading.Lock()

    def camera(self, camera: str) -> CameraTracker:
        with self._lock:
            tracker = self._cameras.get(camera)
            if tracker is None:
                tracker = CameraTracker(camera, **self._settings)
                self._cameras[camera] = tracker
            return tracker

    def update(
        self,
        camera: str,
        detections: Sequence[Detection],
        timestamp: float,
        sharpness: Sequence[float] | None = None,
    ) -> list[TrackedDetection]:
        return self.camera(camera).update(detections, timestamp, sharpness)

    def expire(self, now: float, camera: str | None = None) -> list[tuple[str, str]]:
        """Drop lost tracks on every camera (or on ``camera`` alone, as of that camera's own
        frame time); (camera, track_id) of each one dropped."""
        with self._lock:
            if camera is None:
                trackers = list(self._cameras.values())
            else:
                trackers = [t for t in (self._cameras.get(camera),) if t is not None]
        return [(t.camera, track_id) for t in trackers for track_id in t.expire(now)]

    def forget(self, camera: str) -> None:
        """Drop a camera's tracks (camera removed or reset)."""
        with self._lock:
            self._cameras.pop(camera, None)

    @property
    def active(self) -> int:
        with self._lock:
            return sum(t.active for t in self._cameras.values())
