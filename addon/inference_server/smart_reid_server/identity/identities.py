"""Identities: the one object the app asks "who is this?" and tells "forget that person".

It ties the global Gallery, the Matcher, the VisitTracker and the Store together, so that every
frame's crops become Decisions, visits open and close, and everything learned is persisted in the
same transaction as the frame that taught it.

Threading: an Identities (with its Store, Gallery and VisitTracker) is confined to ONE thread.
The app runs every call (observe, expire, queries, operations, load) in a single-thread executor;
none of these objects locks anything.

Choices worth knowing:

- Two-tier matching (``match.ActiveTier``, on unless ``active`` is disabled): each crop is first
  weighed against the people on an active visit, with their recent crops, where and when they were
  last seen; only if none of them takes it does the gallery decide (strict threshold), else a new
  identity. Sure hand-overs between cameras teach the tier the walking times between them.
- UNCERTAIN gallery matches follow ``match.UncertainPolicy``; with the active tier the people on a
  visit are decided by tier 1 instead, so the policy applies to the others (default: a new
  identity, reported with ``candidate_id``). Without the active tier the default policy counts an
  UNCERTAIN crop for the candidate only while the candidate is on a visit.
- A new identity is always seeded with the crop that created it, even one that failed the quality
  gates: an identity without an exemplar could never be recognised again. Later exemplars are
  learned only from MATCHED, quality-ok crops.
- ``Decision.is_new_identity`` is a property of the visit: true on every decision of a
  first-time visitor's first visit (the announcing one included), false on later visits.
- Best snapshot per visit: we keep a reference (frame image + that frame's decisions + score) for
  each active visit, one frame per visit, and do not render or encode anything here. The app
  renders it with ``snapshots.render_jpeg`` (``VisitSnapshot.decisions`` carry boxes and labels)
  and, when a visit ends (the ENDED event carries its snapshot), saves the JPEG with
  ``save_visit_snapshot``; references of the last few ended visits stay until then.
- ``changed_person_ids`` lists persons whose published state changed in ways a user sees
  (new identity, visit started, camera changed or added, exemplars, thumbnail); a bare
  ``last_seen`` bump does not count, or every sighting would re-publish the person. Visits that
  end (``expire``) also change the person (no longer present): re-publish ``event.visit.person_id``.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ..config import Settings
from ..types import (
    Box,
    Crop,
    Decision,
    Frame,
    Image,
    MatchResult,
    MatchStatus,
    QualityReport,
)
from ..vision.crops import thumbnail_score
from ..vision.tracklets import (
    DEPARTURE_MARGIN,
    DEPARTURE_WAIT_S,
    Crossing,
    Look,
    TrackBook,
    TrackSettings,
    TrackState,
    at_edge,
    at_side,
    crowded,
    look_weight,
    overlap_partners,
    overlapped,
    sliver,
)
from .gallery import Gallery, unit_rows
from .match import (
    ActiveTier,
    ActiveTierConfig,
    CameraCentering,
    Matcher,
    UncertainPolicy,
    camera_centering_for,
    centering_enabled,
)
from .rerank import rerank_candidates
from .store import IdentityStore, PersonRecord, UnknownPersonError, check_label
from .visits import PairKind, TransitTimes, Visit, VisitObservation, VisitTracker

__all__ = [
    "ActiveTierConfig",
    "Identities",
    "MergeEvent",
    "ObserveResult",
    "PersonView",
    "SearchHit",
    "UncertainPolicy",
    "UnknownPersonError",
    "VisitEvent",
    "VisitEventReason",
    "VisitSnapshot",
]

_LOGGER = logging.getLogger(__name__)
MEANS_SAVE_S = 10.0
PRESENCE_FRAME_GAPS = 3.0  # a camera's presence window is at least this many frame intervals
MAX_PRESENCE_GAP_S = 60.0  # how often the per-camera centering means are written to the store

DAY_S = 86400.0
THUMBNAIL_JPEG_QUALITY = 90
# A person's picture changes only for a clearly better crop (score at least 1.2 times the
# kept one's, plus 0.02), and within 10 s of frame time of the last change only for a much
# better one (twice the score: someone who stepped in from the border, cut off, and is now
# whole), so it settles instead of being rewritten at every frame (crops.thumbnail_score).
THUMBNAIL_GAIN = 1.2
THUMBNAIL_MIN_STEP = 0.02
THUMBNAIL_INTERVAL_S = 10.0
THUMBNAIL_SOON_GAIN = 2.0
# A better snapshot is announced only when clearly better and not too often per visit.
SNAPSHOT_ANNOUNCE_GAIN = 1.25
SNAPSHOT_ANNOUNCE_INTERVAL_S = 5.0
_ENDED_SNAPSHOTS_KEPT = 16
DEFAULT_ACTIVE_TIER = ActiveTierConfig()  # what an Identities built without ``active`` uses


def thumbnail_url(person_id: str, version: str | None = None) -> str:
    """The picture's path, with ``version`` in a ``v`` query: the URL changes when the picture
    does (and only then), so a reader fetches each picture once."""
    path = f"/api/persons/{person_id}/thumbnail.jpg"
    return path if version is None else f"{path}?v={version}"


def _picture_version(score: float, modified_ns: int) -> str:
    """A short tag that changes with the picture: a new picture always has another score (it
    must beat the kept one) and another file time; both, so neither alone can repeat a tag."""
    return f"{zlib.crc32(f'{score!r}/{modified_ns}'.encode()):08x}"


def _snapshot_rank(quality: QualityReport) -> float:
    """Bigger is better; any crop that passed the quality gates beats every one that did not."""
    score = max(0.0, float(quality.score))
    return score if quality.ok else -1.0 / (1.0 + score)


class VisitEventReason(StrEnum):
    CAMERA_ADDED = "camera_added"
    BETTER_SNAPSHOT = "better_snapshot"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class VisitSnapshot:
    """The best frame of a visit so far; render with ``snapshots.render_jpeg``."""

    visit_id: str
    person_id: str
    camera: str
    timestamp: float
    image: Image
    decisions: tuple[Decision, ...]
    rank: float


@dataclass(frozen=True, slots=True)
class VisitEvent:
    """A ``visit_updated`` / ``visit_ended`` message (contract "Visit event")."""

    reason: VisitEventReason
    camera: str
    visit: Visit  # a copy taken when the event happened
    label: str
    known: bool
    thumbnail_url: str | None
    snapshot: VisitSnapshot | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason.value,
            "camera": self.camera,
            "visit": self.visit.to_json(
                label=self.label, known=self.known, thumbnail_url=self.thumbnail_url
            ),
        }


@dataclass(frozen=True, slots=True)
class MergeEvent:
    """Two identities found to be one person while on a visit, merged by the server
    (contract "Merged"): ``dropped`` was folded into ``kept``."""

    kept: str
    dropped: str
    visit_id: str  # the kept person's visit, which now holds both
    dropped_visit_id: str  # the visit announced for ``dropped`` (its notification is stale)
    similarity: float
    camera: str
    timestamp: float
    # "same_person": a duplicate within a visit (``dropped_visit_id``'s notification is stale);
    # "returning": someone seen on an earlier visit, whose new visit (``visit_id``, the same as
    # ``dropped_visit_id``) goes on under ``kept`` (its notification names them now).
    reason: str = "same_person"

    def to_json(self, kept: PersonView | None = None) -> dict[str, Any]:
        return {
            "person_id": self.kept,
            "merged_person_id": self.dropped,
            "visit_id": self.visit_id,
            "merged_visit_id": self.dropped_visit_id,
            "similarity": round(self.similarity, 4),
            "camera": self.camera,
            "timestamp": round(self.timestamp, 3),
            "reason": self.reason,
            **({"label": kept.label, "known": kept.known} if kept is not None else {}),
        }


@dataclass(slots=True)
class ObserveResult:
    decisions: list[Decision]
    visit_events: list[VisitEvent] = field(default_factory=list)
    changed_person_ids: set[str] = field(default_factory=set)
    merges: list[MergeEvent] = field(default_factory=list)
    look_again: set[str] = field(default_factory=set)  # track ids whose next crop to embed


# A decided track missing from its camera's frame at most this long, whose last box another
# track's box now covers, is taken as hidden behind that person.
HIDDEN_WITHIN_S = 1.0
# A pending track that would start a new identity while it looks like someone a decided track
# of the same frame holds waits at most this long for that track's next clear look (one of the
# two tracks has the wrong person: a swap, a box that held both).
HELD_WAIT_S = 1.0
# A sighting this much later than a departure is "since" (frames of one moment on several
# cameras carry timestamps a little apart).
SAME_MOMENT_S = 0.05
# People who walked out of one camera's view within this long of each other left together; a
# track coming in after them that resembles one of them by at least the floor (raw cosine of
# the track means) and by the margin more than everyone else who walked out is that person
# (``_one_of_together``), though under ``tracks.departure_threshold``.
TOGETHER_S = 1.0
TOGETHER_FLOOR = 0.3
TOGETHER_MARGIN = 0.2


@dataclass(slots=True)
class _FramePlan:
    """One frame's crops on their way to decisions (``Identities.observe``)."""

    crops: Sequence[Crop]
    raw: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]  # centred when centering is on
    fresh: list[bool]
    good: list[bool]
    over: list[bool]
    states: list[TrackState | None]
    video: bool
    split: set[int] = field(default_factory=set)
    settled_rows: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Ask:
    """A query for the matcher: a crop (``state`` None) or a pending track's aggregate."""

    index: int | None  # the crop's row in the frame; None: the track is out of sight
    state: TrackState | None
    query: npt.NDArray[np.float32]
    ripe: bool
    may_create: bool


def _clear_departure(
    scored: list[tuple[float, str, str]], threshold: float
) -> tuple[tuple[float, str, str] | None, bool]:
    """Of people who walked out, scored (similarity, person, camera) against a track: the one
    it is, if their looks reach ``threshold`` and beat everyone else's by ``DEPARTURE_MARGIN``
    (None otherwise), and whether someone else came that close (nobody is guessed)."""
    if not scored:
        return None, False
    ranked = sorted(scored, reverse=True)
    best = ranked[0]
    if best[0] < threshold:
        return None, False
    if any(other >= best[0] - DEPARTURE_MARGIN for other, who, _ in ranked[1:] if who != best[1]):
        return None, True
    return best, False


def _one_of_together(
    scored: Sequence[tuple[float, str, str, float]], threshold: float
) -> tuple[float, str, str] | None:
    """Of people who walked out, scored (similarity, person, camera, when) against a track
    that reaches nobody's ``threshold``: the one it is when they left their camera together
    with someone else (within ``TOGETHER_S``: a couple, a family) and the track's looks reach
    ``TOGETHER_FLOOR`` and beat everyone else's by ``TOGETHER_MARGIN``. Comparing the people
    who left together is a test an absolute bar cannot make: across a change of view one
    person's looks may score under the bar, while the one they walked with scores far lower."""
    if not scored:
        return None
    ranked = sorted(scored, reverse=True)
    similarity, person_id, camera, left_at = ranked[0]
    if similarity >= threshold or similarity < TOGETHER_FLOOR:
        return None
    others = [r for r in ranked[1:] if r[1] != person_id]
    if not others or others[0][0] > similarity - TOGETHER_MARGIN:
        return None
    if not any(r[2] == camera and abs(r[3] - left_at) <= TOGETHER_S for r in others):
        return None
    return similarity, person_id, camera


def _known_apart(transit: TransitTimes | None, a: str, b: str) -> bool:
    """Cameras ``a`` and ``b`` cannot both see one person at once: configured as unrelated,
    or a walk between them configured or learned to take time (views that do not overlap)."""
    if transit is None:
        return False
    window = transit.window(a, b)
    return window.kind is PairKind.NOT_ADJACENT or (
        window.kind is PairKind.KNOWN and not transit.overlapping(a, b)
    )


def _track_result(state: TrackState) -> MatchResult:
    """A decided track's decision, repeated for each of its sightings."""
    return MatchResult(
        state.person_id,
        state.similarity,
        state.status,
        state.candidate_id,
        state.candidate_similarity,
    )


@dataclass(frozen=True, slots=True)
class PersonView:
    """A person as the contract's "Person" object describes them."""

    person_id: str
    label: str
    known: bool
    first_seen: float
    last_seen: float
    visit_count: int
    cameras: list[str]
    present: bool
    camera: str | None
    visit_id: str | None
    exemplars: int
    thumbnail_url: str | None
    # A user chose the label (renamed, or merged with someone who had been named); false while
    # it is still the generated "Visitor N", whatever the label reads like.
    named: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "label": self.label,
            "named": self.named,
            "known": self.known,
            "first_seen": round(self.first_seen, 3),
            "last_seen": round(self.last_seen, 3),
            "visit_count": self.visit_count,
            "cameras": list(self.cameras),
            "present": self.present,
            "camera": self.camera,
            "visit_id": self.visit_id,
            "exemplars": self.exemplars,
            "thumbnail_url": self.thumbnail_url,
        }


@dataclass(slots=True)
class _SnapshotState:
    best: VisitSnapshot
    announced_rank: float
    announced_at: float


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One identity found by ``Identities.search``, best first.

    ``similarity``: the best cosine to the person's exemplars, in the matching space (centred
    when centering is on), judged with the gallery threshold into ``match`` ("matched",
    "uncertain" or "new"), exactly as a crop on a camera would be in tier 2. ``score`` orders
    the list (higher is closer): 1 - the re-ranked distance when the search re-ranked, else the
    similarity; it has no threshold.
    """

    person: PersonView
    similarity: float
    score: float
    match: MatchStatus

    def to_json(self) -> dict[str, Any]:
        return {
            **self.person.to_json(),
            "similarity": round(self.similarity, 4),
            "score": round(self.score, 4),
            "match": self.match.value,
        }


SEARCH_CANDIDATES = 100  # nearest exemplars re-ranked per search
# Re-ranking needs several views of each person to find mutual neighbours: with 1 exemplar a
# person it lost 12-18 rank-1 points against the cosine on CUHK03, with 3 it was even, with 5 it
# gained up to 5 (docs/quality.md). Below this median exemplar count the cosine orders the list.
SEARCH_RERANK_MIN_EXEMPLARS = 4


class Identities:
    """Facade over gallery, matcher, visits and store (see the module docstring)."""

    def __init__(
        self,
        store: IdentityStore,
        *,
        model_name: str,
        dim: int,
        threshold: float,
        uncertain_margin: float,
        max_exemplars: int,
        exemplar_min_distance: float,
        window_s: float,
        retention_days: int,
        uncertain_policy: UncertainPolicy = UncertainPolicy.ATTRIBUTE_IF_ACTIVE,
        active: ActiveTierConfig | None = DEFAULT_ACTIVE_TIER,
        centering: CameraCentering | None = None,
        tracks: TrackSettings | None = None,
        presence_s: float | None = None,
    ) -> None:
        self.store = store
        # Per-track decisions (``tracklets``): None decides every crop on its own.
        self.tracks = TrackBook(tracks) if tracks is not None and tracks.enabled else None
        # People seen in one frame of one camera together (never one person), by person.
        self._together: dict[str, set[str]] = {}
        self._thumbnail_at: dict[str, float] = {}  # frame time of each person's last new picture
        self._last_frame: dict[str, float] = {}  # camera -> latest frame time
        self._frame_gap: dict[str, float] = {}  # camera -> running mean frame interval
        # Per-camera centring (``match.camera_centering``): every query is centred with its
        # camera's running mean before both tiers, and what is learnt from it (exemplars, visit
        # bank) is stored centred, with the camera's mean at that moment.
        self.centering = centering
        self._next_means_save = 0.0
        self.model_name = model_name
        self.dim = dim
        self.retention_days = retention_days
        self.gallery = Gallery(
            dim, max_exemplars=max_exemplars, exemplar_min_distance=exemplar_min_distance
        )
        self.gallery.reserve_keys(store.max_exemplar_key())
        self.matcher = Matcher(self.gallery, threshold, uncertain_margin, policy=uncertain_policy)
        self.visits = VisitTracker(window_s, presence_s)
        self.active_tier = (
            ActiveTier(
                active,
                self.gallery,
                threshold,
                window_s,
                uncertain_margin=uncertain_margin,
                model=model_name,
                centered=centering is not None,
            )
            if active is not None and active.enabled
            else None
        )
        self._snapshots: dict[str, _SnapshotState] = {}
        self._ended_snapshots: OrderedDict[str, VisitSnapshot] = OrderedDict()

    @classmethod
    def from_settings(
        cls,
        store: IdentityStore,
        settings: Settings,
        *,
        model_name: str,
        dim: int,
        threshold: float,
    ) -> Identities:
        """As the server runs it: every ``match``/``visits`` setting applied, not yet loaded."""
        match_cfg = settings.section("match")
        centred = centering_enabled(match_cfg.get("camera_centering"), model_name)
        return cls(
            store,
            model_name=model_name,
            dim=dim,
            threshold=threshold,
            uncertain_margin=float(match_cfg["uncertain_margin"]),
            max_exemplars=int(match_cfg["max_exemplars"]),
            exemplar_min_distance=float(match_cfg["exemplar_min_distance"]),
            window_s=float(settings.section("visits")["window_s"]),
            retention_days=int(settings.raw["retention_days"]),
            active=ActiveTierConfig.from_config(match_cfg),
            centering=camera_centering_for(model_name, dim) if centred else None,
            tracks=TrackSettings.from_config(settings.raw.get("tracks")),
            presence_s=float(settings.section("visits")["presence_s"]),
        )

    # ------------------------------------------------------------- lifecycle
    def load(self) -> None:
        """Fill the gallery from the store (start-up)."""
        stored = self.store.load_exemplars(self.model_name, self.dim)
        vectors = stored.vectors
        if self.centering is not None:
            for camera, (crops, mean) in self.store.load_camera_means(
                self.model_name, self.dim
            ).items():
                self.centering.restore(camera, crops, mean)
            vectors = self._centre_stored(vectors, stored.cameras)
        self.gallery.load(stored.person_ids, vectors, stored.keys)
        self.gallery.reserve_keys(self.store.max_exemplar_key())
        _LOGGER.info(
            "loaded %d identities with %d exemplars (%s)",
            self.gallery.person_count,
            len(self.gallery),
            self.model_name,
        )

    def resume_visits(self, visit_ids: Sequence[str]) -> list[str]:
        """Take over the visits another matcher left open (``store.closed_at_start``, oldest
        first): each continues with its person's next sighting instead of starting a second
        visit (no second ``new_person``) and ends after the visit window as usual. Returns the
        ids resumed; the newest open visit of a person wins."""
        resumed: list[str] = []
        with self.store.transaction():
            for visit_id in reversed(visit_ids):
                record = self.store.visit(visit_id)
                if (
                    record is None
                    or record.person_id not in self.store
                    or self.visits.active_for(record.person_id) is not None
                ):
                    continue
                cameras = list(record.cameras) or (
                    [record.last_camera] if record.last_camera else []
                )
                visit = Visit(
                    visit_id=record.visit_id,
                    person_id=record.person_id,
                    started_at=record.started_at,
                    last_seen=record.last_seen,
                    is_new_identity=record.is_new_identity,
                    cameras=cameras,
                    # Per-camera times are not stored: the first sighting for every camera,
                    # the last one for the camera seen last.
                    camera_first_seen=dict.fromkeys(cameras, record.started_at),
                    camera_last_seen={
                        c: record.last_seen if c == record.last_camera else record.started_at
                        for c in cameras
                    },
                    sightings=record.sightings,
                )
                self.visits.resume(visit)
                self._save_visit(visit)  # open again in the store
                resumed.append(visit_id)
        if resumed:
            _LOGGER.info("resumed %d visit(s) the previous matcher left open", len(resumed))
        return resumed

    def _centre_stored(
        self, vectors: npt.NDArray[np.float32], cameras: Sequence[str | None]
    ) -> npt.NDArray[np.float32]:
        """Stored exemplars are raw model vectors: centre each with its camera's current mean
        (exemplars from before schema 2 have no camera: the model's prior, if any)."""
        assert self.centering is not None
        out = vectors.copy()
        for camera in set(cameras):
            rows = [i for i, c in enumerate(cameras) if c == camera]
            out[rows] = self.centering.centre(camera, out[rows])
        return out

    def _save_means(self) -> None:
        """Store the cameras' centering means (every ``MEANS_SAVE_S`` and at close: a mean moves
        slowly, and exemplars are stored raw, so a few lost updates after a crash do no harm)."""
        assert self.centering is not None
        self.store.save_camera_means(self.model_name, self.centering.take_changed())
        self._next_means_save = time.monotonic() + MEANS_SAVE_S

    def close(self) -> None:
        if self.centering is not None:
            try:
                self._save_means()
            except Exception as err:  # a closing store must not hide the original problem
                _LOGGER.warning("could not store the cameras' centering means: %s", err)
        self.store.close()

    # ------------------------------------------------------------- the pipeline step
    def observe(
        self,
        camera: str,
        timestamp: float,
        crops: Sequence[Crop],
        vectors: npt.ArrayLike,
        frame: Frame,
        fresh: Sequence[bool] | None = None,
    ) -> ObserveResult:
        """Identify the people of one frame, update visits, learn, persist; one transaction.

        ``fresh[i]`` says whether ``vectors[i]`` was embedded from crop ``i`` (False: the
        pipeline reused the track's earlier vector); default all fresh. Crops that carry a
        ``track_id`` on a camera sending video are decided per track (``tracklets``): a pending
        track's crops get no decision yet, and a decision may be made for a track that is out
        of sight in this frame. Raises ValueError (naming the problem) for embeddings that do
        not fit the crops or the model; nothing is changed then.
        """
        if not math.isfinite(timestamp):
            raise ValueError(f"frame timestamp must be a finite number, got {timestamp}")
        raw = unit_rows(vectors, self.dim) if len(crops) else np.zeros((0, self.dim), np.float32)
        if len(raw) != len(crops):
            raise ValueError(f"{len(crops)} crops but {len(raw)} embeddings; they must pair up")
        is_fresh = [True] * len(crops) if fresh is None else [bool(f) for f in fresh]
        if len(is_fresh) != len(crops):
            raise ValueError(f"{len(crops)} crops but {len(is_fresh)} fresh flags")
        self._note_frame(camera, timestamp)
        book = self.tracks
        video = book.continuous(camera, timestamp) if book is not None else False
        if not len(crops) and not video:
            return ObserveResult([])
        plan = self._plan(camera, timestamp, crops, raw, is_fresh, frame, video)
        out = ObserveResult([])
        try:
            self._repair(camera, timestamp, plan, out)
            with self.store.transaction():
                self._decide(camera, timestamp, plan, frame, out)
                if self.centering is not None and time.monotonic() >= self._next_means_save:
                    self._save_means()
        except Exception:
            self.resync()
            raise
        if book is not None:
            book.drop_stale(timestamp)
            # Fresh looks for tracks still pending, doubted, or to be checked once their crops
            # are good again (a poor crop, overlapped or cut off, would check nothing).
            out.look_again = {
                s.track_id
                for s, good in zip(plan.states, plan.good, strict=True)
                if s is not None and (not s.decided or s.suspects or (s.check and good))
            }
        return out

    # ------------------------------------------------------------- per-frame steps
    def _note_frame(self, camera: str, timestamp: float) -> None:
        """Keep a running mean of the camera's frame interval (for its presence window)."""
        previous = self._last_frame.get(camera)
        self._last_frame[camera] = max(timestamp, previous or timestamp)
        if previous is None:
            self._frame_gap.setdefault(camera, 0.0)
            return
        gap = min(max(timestamp - previous, 0.0), MAX_PRESENCE_GAP_S)
        mean = self._frame_gap.get(camera, 0.0)
        self._frame_gap[camera] = gap if mean == 0.0 else 0.8 * mean + 0.2 * gap

    def _plan(
        self,
        camera: str,
        timestamp: float,
        crops: Sequence[Crop],
        raw: npt.NDArray[np.float32],
        fresh: list[bool],
        frame: Frame,
        video: bool,
    ) -> _FramePlan:
        """Sort the frame's crops into tracks, record their looks, centre the vectors."""
        book = self.tracks
        boxes = [c.detection.box for c in crops]
        over = overlapped(boxes, book.settings.overlap_share if book is not None else 0.3)
        good = [
            c.quality.ok
            and not over[i]
            and not c.detection.group
            and not at_edge(boxes[i], frame.width, frame.height)
            for i, c in enumerate(crops)
        ]
        states: list[TrackState | None] = []
        learn_rows: list[int] = []
        for i, crop in enumerate(crops):
            track_id = crop.detection.track_id
            state = None
            if book is not None and track_id is not None:
                state = book.open(camera, track_id, timestamp)
                previous = state.last_seen
                state.last_seen = max(state.last_seen, timestamp)
                state.last_crop = crop
                if good[i]:
                    state.last_good_crop = crop
                if at_side(boxes[i], frame.width):
                    state.touched_side(timestamp, previous)
                if fresh[i] and not state.counted:
                    state.counted = True
                    learn_rows.append(i)
            elif fresh[i]:
                learn_rows.append(i)
            states.append(state)
        if self.centering is not None:
            if learn_rows:
                self.centering.update(camera, raw[learn_rows])
            queries = self.centering.centre(camera, raw) if len(raw) else raw
        else:
            queries = raw
        plan = _FramePlan(crops, raw, queries, fresh, good, over, states, video)
        crowd = crowded(boxes) if book is not None else []
        if book is not None and book.settings.crossing_margin > 0:
            self._note_crossings(camera, boxes, crops, states, book.settings.overlap_share)
        for i, state in enumerate(states):
            if state is None:
                continue
            if crops[i].detection.group or sliver(boxes[i], frame.width, frame.height):
                # Two or more people in one box, or a sliver of someone at the picture's edge:
                # no look of anyone. The track keeps its person meanwhile and starts over when
                # it leaves (trackers come out of such boxes on either person).
                state.grouped = True
                continue
            if state.grouped:
                _LOGGER.debug(
                    "camera %s track %s: out of a box of two people; it starts over as a new track",
                    camera,
                    state.track_id,
                )
                held = state.decided
                state.restart(timestamp)
                state.left_group_at = timestamp if held else None
                plan.split.add(i)
            if not over[i]:
                state.clear_seen = True
            if state.first_box is None:
                state.first_box = boxes[i]
                state.began_crowded = crowd[i]
            if crops[i].detection.weak_link and state.decided:
                state.check = True  # continued by position alone: this look must agree
            if fresh[i]:
                look = Look(raw[i], look_weight(crops[i]))
                if (
                    state.decided
                    and good[i]
                    and state.crossing is not None
                    and self._swapped(camera, state, queries[i], timestamp)
                ):
                    state.add(look, True)
                elif state.decided and good[i] and self._disagrees(camera, state, queries[i], look):
                    _LOGGER.debug(
                        "camera %s track %s: its fresh looks disagree with the track; it "
                        "starts over as a new track",
                        camera,
                        state.track_id,
                    )
                    suspects = list(state.suspects)  # this look is the last of them
                    state.restart(timestamp)
                    for earlier in suspects:
                        state.add(earlier, True)
                    plan.split.add(i)
                elif not (state.suspects and state.suspects[-1] is look):
                    # A look in doubt stays out of the track's mean until the track agrees
                    # again (then it was an odd look) or splits (then it starts the new part).
                    state.add(look, good[i])
                if state.decided and state.created and i not in plan.split:
                    self._measure_created(state, queries[i])
            if over[i] and state.decided:
                state.check = True
        return plan

    def _note_crossings(
        self,
        camera: str,
        boxes: Sequence[Box],
        crops: Sequence[Crop],
        states: Sequence[TrackState | None],
        share: float,
    ) -> None:
        """Two decided tracks of different people whose boxes overlap now, or a decided track
        whose box covers where another one, missing from this frame, was a moment ago (the
        nearer person hides the farther one, and the detector sees one box): remember, once
        per overlap, whom each held and how each looked before it (its good looks: crops under
        another box are never good ones), for the first clear look afterwards."""
        assert self.tracks is not None
        in_frame = {id(s) for s in states if s is not None}
        hidden = [
            s
            for s in self.tracks.on_camera(camera)
            if id(s) not in in_frame
            and s.person_id is not None
            and s.last_crop is not None
            and 0.0 <= self._last_frame.get(camera, s.last_seen) - s.last_seen <= HIDDEN_WITHIN_S
        ]
        for i, partners in enumerate(overlap_partners(boxes, share)):
            state = states[i]
            if state is None or state.person_id is None or crops[i].detection.group:
                continue
            others = [states[j] for j in partners if not crops[j].detection.group]
            others += [
                s
                for s in hidden
                if s.last_crop is not None
                and overlap_partners([boxes[i], s.last_crop.detection.box], share)[0]
            ]
            for other in others:
                if other is None or other.person_id is None or other.person_id == state.person_id:
                    continue
                mine, theirs = state.aggregate(good_only=True), other.aggregate(good_only=True)
                if mine is None or theirs is None:
                    continue
                if state.crossing is None:
                    state.crossing = Crossing(
                        (camera, other.track_id), state.person_id, other.person_id, mine, theirs
                    )
                if other.crossing is None and id(other) not in in_frame:
                    # The hidden one: its first clear look when it comes out is checked too.
                    other.crossing = Crossing(
                        (camera, state.track_id), other.person_id, state.person_id, theirs, mine
                    )
                break

    def _swapped(
        self, camera: str, state: TrackState, query: npt.NDArray[np.float32], timestamp: float
    ) -> bool:
        """The first clear look of a track after its box overlapped another decided track's:
        when it resembles the other track's person before the overlap clearly more than its
        own (``tracks.crossing_margin``), the tracker swapped them at the crossing, and the
        two tracks exchange their people (a relative test: it holds where an absolute bar
        cannot tell two look-alikes apart). If the other track has gone or holds someone else
        by now, this track takes the other person unless a track in view holds them."""
        book = self.tracks
        crossing = state.crossing
        assert book is not None and crossing is not None
        state.crossing = None
        if state.person_id != crossing.own_person:
            return False
        own = float(self._centred(camera, crossing.own_before) @ query)
        other = float(self._centred(camera, crossing.partner_before) @ query)
        if other < own + book.settings.crossing_margin:
            return False
        partner = book.get(*crossing.partner)
        if partner is not None and partner.person_id == crossing.partner_person:
            _LOGGER.debug(
                "camera %s: tracks %s and %s swapped people at a crossing (%.2f against %.2f); "
                "they exchange them",
                camera,
                state.track_id,
                partner.track_id,
                other,
                own,
            )
            state.exchange(partner)
            if partner.last_seen < timestamp:
                # Only this track was looked at: the other is out of this frame, and the look
                # may be its person's box lent to this track for a frame or two. The other
                # track's first clear look when it is back must bear the exchange out; showing
                # the person it gave away, it takes them back.
                partner.crossing = Crossing(
                    (camera, state.track_id),
                    crossing.own_person,
                    crossing.partner_person,
                    crossing.own_before,
                    crossing.partner_before,
                )
            return True
        if any(
            s is not state and s.camera == camera and s.last_seen >= timestamp
            for s in book.holding(crossing.partner_person)
        ):
            return False  # someone in view holds them
        _LOGGER.debug(
            "camera %s track %s: after a crossing it shows %s (%.2f against %.2f); it holds "
            "them now",
            camera,
            state.track_id,
            crossing.partner_person,
            other,
            own,
        )
        state.restart(state.first_seen)
        state.person_id = crossing.partner_person
        state.status = MatchStatus.UNCERTAIN
        state.candidate_id, state.candidate_similarity = crossing.partner_person, other
        state.similarity = other
        state.add(Look(crossing.partner_before, 1.0), True)
        return True

    def _measure_created(self, state: TrackState, query: npt.NDArray[np.float32]) -> None:
        """A later look of the track that created its identity: measured against the exemplars
        other looks gave, it is reported as matched to that identity (or uncertain, in the
        band below), labelled by the same thresholds as any match. A look below the band leaves
        the track's decision as it was (new, with its best similarity to anyone)."""
        assert state.person_id is not None
        exemplars = self.gallery.exemplars(state.person_id)
        if not len(exemplars):
            return
        similarities = exemplars @ query
        others = similarities[similarities < 0.9999]  # not the look itself
        if not len(others):
            return
        best = float(others.max())
        if best >= self.matcher.threshold:
            state.status = MatchStatus.MATCHED
            state.candidate_id, state.candidate_similarity = None, 0.0
        elif best >= self.matcher.uncertain_threshold:
            state.status = MatchStatus.UNCERTAIN
            state.candidate_id, state.candidate_similarity = state.person_id, best
        else:
            return
        state.similarity = best

    def _disagrees(
        self, camera: str, state: TrackState, query: npt.NDArray[np.float32], look: Look
    ) -> bool:
        """Whether a good fresh look shows someone else than the decided track: below
        ``split_threshold`` ``split_looks`` times in a row (3), or once right after the
        track's box overlapped another (a crossing, where trackers swap people). One odd look
        (a turn, an arm raised) is not enough: measured on real video, 19 % of single looks of
        the track's own person fall below 0.25, and two in a row still happen (docs/quality.md)."""
        assert self.tracks is not None
        agreement = self._agreement(camera, state, query)
        if agreement is None or agreement >= self.tracks.settings.split_threshold:
            state.suspects.clear()
            state.check = False
            return False
        state.suspects.append(look)
        split = state.check or len(state.suspects) >= self.tracks.settings.split_looks
        state.check = False
        return split

    def _agreement(
        self, camera: str, state: TrackState, query: npt.NDArray[np.float32]
    ) -> float | None:
        """Cosine between a centred look and the track's centred good-look aggregate."""
        aggregate = state.aggregate(good_only=True)
        if aggregate is None:
            return None
        centred = self._centred(camera, aggregate)
        return float(centred @ query)

    def _centred(self, camera: str, vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = vector.reshape(1, -1).astype(np.float32)
        if self.centering is not None:
            row = self.centering.centre(camera, row)
        out: npt.NDArray[np.float32] = row[0]
        return out

    def _decide(
        self, camera: str, timestamp: float, plan: _FramePlan, frame: Frame, out: ObserveResult
    ) -> None:
        """Match what needs a decision, then give every decided person in the frame theirs."""
        book = self.tracks
        # Tracks already decided hold their person in this frame: nobody else here can be them.
        holders: dict[str, int] = {}
        for i, state in enumerate(plan.states):
            if state is None or not state.decided:
                continue
            assert state.person_id is not None
            other = holders.get(state.person_id)
            if other is None:
                holders[state.person_id] = i
                continue
            # Two boxes of one frame hold one person: the younger track has to prove itself.
            older = plan.states[other]
            assert older is not None
            young = i if state.first_seen >= older.first_seen else other
            young_state = plan.states[young]
            assert young_state is not None
            young_state.restart(timestamp)
            if young == other:
                holders[state.person_id] = i
        # Who needs deciding: crops without a track (or on a camera that sends no video), and
        # pending tracks, in sight or (ripe) out of sight.
        asks: list[_Ask] = []
        for i, state in enumerate(plan.states):
            if state is None:
                asks.append(_Ask(i, None, plan.queries[i], ripe=True, may_create=True))
            elif not state.decided:
                aggregate = state.aggregate()
                if aggregate is None:
                    continue
                immediate = not plan.video
                asks.append(
                    _Ask(
                        i,
                        state,
                        self._centred(camera, aggregate),
                        ripe=immediate or (book is not None and book.ripe(state, timestamp)),
                        may_create=immediate
                        or (book is not None and book.may_create(state, timestamp)),
                    )
                )
        in_frame = {id(s) for s in plan.states if s is not None}
        if book is not None and plan.video:
            for state in book.on_camera(camera):
                if (
                    id(state) in in_frame
                    or state.decided
                    or state.last_crop is None
                    or not book.ripe(state, timestamp)
                ):
                    continue
                aggregate = state.aggregate()
                if aggregate is None:
                    continue
                asks.append(
                    _Ask(
                        None,
                        state,
                        self._centred(camera, aggregate),
                        ripe=True,
                        may_create=book.may_create(state, timestamp),
                    )
                )
        settled: dict[int, MatchResult] = {}
        absent: list[tuple[TrackState, MatchResult]] = []
        if asks:
            tracked = plan.video and all(a.state is not None for a in asks)
            results = self._match(
                camera, timestamp, np.stack([a.query for a in asks]), set(holders), tracked
            )
            claimed = set(holders) | {r.person_id for r in results if r.person_id is not None}
            for ask, result in zip(asks, results, strict=True):
                if (
                    ask.state is not None
                    and result.person_id is not None
                    and self._held_apart(camera, ask.state, result.person_id)
                ):
                    result = MatchResult(None, result.similarity, MatchStatus.NEW)
                if (
                    result.person_id is None
                    and ask.state is not None
                    and ask.ripe
                    and ask.may_create
                    and plan.video
                    and book is not None
                ):
                    handed = self._handover(camera, timestamp, ask.state, claimed)
                    if handed is not None:
                        result = handed
                        claimed.add(str(handed.person_id))
                    elif (
                        ask.state.contested_until is not None
                        and timestamp < ask.state.contested_until
                    ):
                        continue  # waits for the other one who walked out to come in
                    elif self._held_lookalike(
                        camera, timestamp, ask.state, ask.query, plan, holders
                    ):
                        continue  # waits for the holder's next clear look
                if result.person_id is not None:
                    on_visit = self.visits.is_active(result.person_id, timestamp)
                    if not ask.ripe and not (result.status is MatchStatus.MATCHED and on_visit):
                        continue
                elif not (ask.ripe and ask.may_create):
                    continue
                if ask.state is not None:
                    self._settle_track(ask.state, result)
                    if result.person_id is not None and book is not None:
                        ask.state.came_in_at = book.came_in(ask.state)
                if ask.index is None:
                    assert ask.state is not None
                    absent.append((ask.state, result))
                else:
                    settled[ask.index] = result
                    plan.settled_rows.add(ask.index)
        observations: list[tuple[Crop, Decision, VisitObservation, int | None]] = []
        for i, crop in enumerate(plan.crops):
            state = plan.states[i]
            if i in settled:
                result = settled[i]
            elif state is None or state.person_id is None:
                continue  # pending: no decision yet
            elif state.crossing is not None and plan.good[i] and not plan.fresh[i]:
                # Clear of the other person again after their boxes met, on a look from before:
                # the tracker may have swapped them. The box is nobody's until the track's next
                # fresh look (the tracker's own cadence: asking for one every frame re-embedded
                # more and moved nothing the right way) has been checked. The person is still
                # here, one of the two: their visit goes on (presence, walking times).
                if self.visits.is_active(state.person_id, timestamp):
                    self.visits.observe(state.person_id, camera, timestamp)
                continue
            else:
                result = _track_result(state)
            decision, observation = self._identify(
                camera, timestamp, crop, plan, i, state, result, frame, out
            )
            observations.append((crop, decision, observation, i))
        for state, result in absent:
            assert state.last_crop is not None
            decision, observation = self._identify(
                camera, state.last_seen, state.last_crop, plan, None, state, result, frame, out
            )
            observations.append((state.last_crop, decision, observation, None))
            good = state.last_good_crop  # whole and clear of others when it was seen
            if good is not None and self.store.require(decision.person_id).thumbnail_score is None:
                # Decided out of sight: its last good crop, only while there is no picture.
                score = thumbnail_score(good, frame.width, frame.height)
                self._keep_thumbnail(decision.person_id, good, score, timestamp, out)
        out.decisions.extend(decision for _, decision, _, _ in observations)
        for crop, decision, observation, row in observations:
            if row is None:
                continue  # a track decided out of sight: no snapshot from an earlier frame
            if plan.fresh[row]:  # a crop embedded now: its looks can be compared
                score = thumbnail_score(crop, frame.width, frame.height, overlapped=plan.over[row])
                score *= self._resemblance(decision.person_id, plan.queries[row])
                self._keep_thumbnail(decision.person_id, crop, score, timestamp, out)
            self._keep_snapshot(decision, crop, observation, frame, out)
        people = [d.person_id for _, d, _, row in observations if row is not None]
        for person_id in people:
            self._together.setdefault(person_id, set()).update(p for p in people if p != person_id)

    def _held_lookalike(
        self,
        camera: str,
        timestamp: float,
        state: TrackState,
        query: npt.NDArray[np.float32],
        plan: _FramePlan,
        holders: Mapping[str, int],
    ) -> bool:
        """Whether a track about to start a new identity waits: it looks like someone (at the
        gallery threshold) whom a decided track of this frame holds, so one of the two has the
        wrong person (the tracker swapped them, or a box on both people was decided). The
        holder's next clear look must agree with its person or it starts over (``check``),
        and this track waits for that, at most ``HELD_WAIT_S``; then it is decided as before,
        never as that person while the holder keeps them (``_held_apart``)."""
        if state.held_wait_until is not None:
            return timestamp < state.held_wait_until
        for person_id, row in holders.items():
            exemplars = self.gallery.exemplars(person_id)
            holder = plan.states[row]
            if holder is None or not len(exemplars):
                continue
            similarity = float((exemplars @ query).max())
            if similarity < self.matcher.threshold:
                continue
            _LOGGER.debug(
                "camera %s track %s: looks like %s (%.2f), whom track %s holds; it waits for "
                "that track's next clear look",
                camera,
                state.track_id,
                person_id,
                similarity,
                holder.track_id,
            )
            holder.check = True
            state.held_wait_until = timestamp + HELD_WAIT_S
            state.held_by = (holder.track_id, person_id)
            return True
        return False

    def _held_apart(self, camera: str, state: TrackState, person_id: str) -> bool:
        """Whether ``person_id`` is whom a track this one waited beside (``_held_lookalike``)
        holds still: its look agreed, so they were two people in one frame, and this track is
        not that person even once the other is out of sight."""
        if state.held_by is None or state.held_by[1] != person_id or self.tracks is None:
            return False
        holder = self.tracks.get(camera, state.held_by[0])
        return holder is not None and holder.person_id == person_id

    def _match(
        self,
        camera: str,
        timestamp: float,
        queries: npt.NDArray[np.float32],
        held: set[str],
        tracked: bool = False,
    ) -> list[MatchResult]:
        """Two-tier (or gallery-only) matching of ``queries``; ``held``: people already in this
        frame, whom none of them can be; ``tracked``: the queries are tracks of a camera sending
        video (a person lost there a moment ago may be picked up again: ``reacquire_s``)."""
        if self.active_tier is not None:
            live = self.visits.active()
            self.active_tier.keep_only(v.visit_id for v in live)
            on_visit = [
                v
                for v in live
                if self.visits.is_active(v.person_id, timestamp) and v.person_id not in held
            ]
            reacquire = (
                self.tracks.settings.reacquire_s if tracked and self.tracks is not None else 0.0
            )
            found = self.active_tier.candidates(
                queries, camera, timestamp, on_visit, reacquire_s=reacquire
            )
            threshold = self.active_tier.threshold
            if tracked and self.tracks is not None:
                configured = self.tracks.settings.active_threshold
                threshold = float(configured) if configured is not None else threshold
            return self.matcher.match_two_tier(queries, found, threshold, exclude=held)
        return self.matcher.match_many(
            queries, lambda person_id: self.visits.is_active(person_id, timestamp), exclude=held
        )

    def _handover(
        self, camera: str, timestamp: float, state: TrackState, claimed: set[str]
    ) -> MatchResult | None:
        """A track about to start a new identity that came in at its picture's side just as a
        decided track on another camera was at that camera's side (their views meet, or
        overlap at the edge): that track's person, if the two tracks' looks agree
        (``tracks.handover_threshold``, raw cosine of their means) and no other such track
        agrees as well. Decided as UNCERTAIN (the person as candidate): it teaches no
        exemplar and no walking time. Cameras configured as not adjacent never hand over.
        When no such track is at its side now, the hand-over after a gap is tried
        (``_after_departure``)."""
        book = self.tracks
        assert book is not None
        mine = state.aggregate()
        if mine is None:
            return None
        transit = self.active_tier.transit if self.active_tier is not None else None
        scored: list[tuple[float, str, str]] = []
        overlapping = transit.overlapping if transit is not None else None
        for other in book.handover_from(state, timestamp, overlapping):
            assert other.person_id is not None
            if other.person_id in claimed or not self.visits.is_active(other.person_id, timestamp):
                continue
            if transit is not None and transit.window(other.camera, camera).kind is (
                PairKind.NOT_ADJACENT
            ):
                continue
            theirs = other.aggregate()
            if theirs is None:
                continue
            scored.append((float(mine @ theirs), other.person_id, other.camera))
        if not scored:
            return self._after_departure(camera, timestamp, state, mine, claimed)
        scored.sort(reverse=True)
        similarity, person_id, source = scored[0]
        threshold = book.settings.handover_threshold
        if similarity < threshold or (
            len(scored) > 1 and scored[1][0] >= threshold and scored[1][1] != person_id
        ):
            return None
        _LOGGER.debug(
            "camera %s track %s: handed over from camera %s (%s, similarity %.2f)",
            camera,
            state.track_id,
            source,
            person_id,
            similarity,
        )
        return MatchResult(person_id, similarity, MatchStatus.UNCERTAIN, person_id, similarity)

    def _after_departure(
        self,
        camera: str,
        timestamp: float,
        state: TrackState,
        mine: npt.NDArray[np.float32],
        claimed: set[str],
    ) -> MatchResult | None:
        """The hand-over after a gap (``tracks.departure_s``): a track that came in at its
        picture's side a few seconds after someone walked out at another camera's side, whom
        nobody has seen since, is that person if their looks agree
        (``tracks.departure_threshold``, raw cosine of the track means) and clearly better than
        anyone else who walked out meanwhile (people leaving together are told apart by
        comparing both; one of them may be known that way under the bar, ``_one_of_together``).
        A walk quicker than the pair's learned or configured fastest, or between cameras
        configured as not adjacent, never hands over. UNCERTAIN, as above."""
        book = self.tracks
        assert book is not None
        transit = self.active_tier.transit if self.active_tier is not None else None
        scored: list[tuple[float, str, str, float]] = []
        for departure in book.departures(state, timestamp):
            person_id = departure.person_id
            if person_id in claimed or not self.visits.is_active(person_id, timestamp):
                continue
            visit = self.visits.active_for(person_id)
            if visit is not None and visit.last_seen > departure.at + SAME_MOMENT_S:
                continue  # seen since, on a track that has ended meanwhile (a third camera)
            if transit is not None and (
                transit.window(departure.camera, camera).kind is PairKind.NOT_ADJACENT
                or transit.impossible(departure.camera, camera, state.first_seen - departure.at)
            ):
                continue
            scored.append(
                (float(mine @ departure.looks), person_id, departure.camera, departure.at)
            )
        threshold = book.settings.departure_threshold
        best, contested = _clear_departure([r[:3] for r in scored], threshold)
        if contested and state.contested_until is None:
            state.contested_until = timestamp + DEPARTURE_WAIT_S
        if best is None and not contested:
            best = _one_of_together(scored, threshold)
        if best is None:
            return None
        similarity, person_id, source = best
        _LOGGER.debug(
            "camera %s track %s: %s walked out of camera %s before (similarity %.2f)",
            camera,
            state.track_id,
            person_id,
            source,
            similarity,
        )
        return MatchResult(person_id, similarity, MatchStatus.UNCERTAIN, person_id, similarity)

    @staticmethod
    def _settle_track(state: TrackState, result: MatchResult) -> None:
        state.person_id = result.person_id  # None: _identify creates the identity
        state.status = result.status
        state.similarity = result.similarity
        state.candidate_id = result.candidate_id
        state.candidate_similarity = result.candidate_similarity
        state.created = result.person_id is None

    def _repair(self, camera: str, timestamp: float, plan: _FramePlan, out: ObserveResult) -> None:
        """Merge an identity a track created into someone on a visit it clearly is."""
        book = self.tracks
        if book is None or self.active_tier is None:
            return
        threshold = (
            book.settings.merge_threshold
            if book.settings.merge_threshold is not None
            else self.matcher.threshold
        )
        within = book.settings.departure_s + DEPARTURE_WAIT_S
        for state in plan.states:
            if (
                state is not None
                and state.decided
                and not state.created
                and state.came_in_at is not None
                and timestamp - state.came_in_at <= within
            ):
                self._walked_out_new(camera, timestamp, state, out)
        for state in plan.states:
            if (
                state is None
                or not state.created
                or state.person_id is None
                or state.good_seen <= state.merge_checked_looks
            ):
                continue
            state.merge_checked_looks = state.good_seen
            aggregate = state.aggregate(good_only=True)
            if aggregate is None:
                continue
            mine = state.person_id
            visit = self.visits.active_for(mine)
            if visit is None or not visit.is_new_identity:
                continue
            apart = self._together.get(mine, set())
            others = [
                v
                for v in self.visits.active()
                if v.person_id != mine
                and v.person_id not in apart
                and v.started_at <= visit.started_at
            ]
            query = self._centred(camera, aggregate).reshape(1, -1)
            found = (
                self.active_tier.candidates(
                    query, camera, timestamp, others, reacquire_s=book.settings.reacquire_s
                )[0]
                if others
                else []
            )
            best = max(found, key=lambda c: c.appearance, default=None)
            if best is None or best.appearance < threshold + best.bar:
                if not self._walked_through(camera, timestamp, state, visit, aggregate, out):
                    self._recognise_late(camera, timestamp, state, visit, query, plan, out)
                continue
            if any(s.person_id == best.person_id for s in plan.states if s is not None):
                continue  # both are in this very frame: two people
            _LOGGER.info(
                "camera %s: %s is %s (similarity %.2f over %d looks); merged",
                camera,
                mine,
                best.person_id,
                best.appearance,
                len(state.good),
            )
            self._merge_duplicate(
                mine, best.person_id, visit, best.appearance, camera, timestamp, out
            )

    def _merge_duplicate(
        self,
        drop: str,
        keep: str,
        visit: Visit,
        similarity: float,
        camera: str,
        timestamp: float,
        out: ObserveResult,
    ) -> None:
        """Fold ``drop``, a new identity on its first visit (``visit``), into ``keep``, who is
        on a visit: one person, announced twice; the second notification is stale. The tracks
        that held ``drop`` hold ``keep`` now."""
        kept_visit = self.visits.active_for(keep)
        event = MergeEvent(
            kept=keep,
            dropped=drop,
            visit_id=kept_visit.visit_id if kept_visit is not None else "",
            dropped_visit_id=visit.visit_id,
            similarity=similarity,
            camera=camera,
            timestamp=timestamp,
        )
        self._fold(event, out)

    def _fold(self, event: MergeEvent, out: ObserveResult) -> None:
        """An automatic merge: ``event.dropped`` is folded into ``event.kept``, every track
        that held the dropped identity holds the kept person now, and the merge is reported."""
        holders = self.tracks.holding(event.dropped) if self.tracks is not None else []
        self.merge(event.kept, event.dropped)
        for holder in holders:
            self._relabel(holder, event)
        out.merges.append(event)
        out.changed_person_ids.add(event.kept)

    def _walked_through(
        self,
        camera: str,
        timestamp: float,
        state: TrackState,
        visit: Visit,
        aggregate: npt.NDArray[np.float32],
        out: ObserveResult,
    ) -> bool:
        """A track that came in at its picture's side and began a new identity, while
        someone on another camera walked out at that camera's side (views that overlap: the
        person crossed the part both cameras see, seen by both for a moment). That person,
        if nobody has seen them since, their looks agree (``tracks.departure_threshold``, raw
        cosine of the track means, as for the hand-over after a gap) clearly better than
        anyone else who walked out then, the two cameras are not known to be apart (configured
        as not adjacent, or a walk between them known to take longer), and they were never in
        one frame with this track's person: the new identity is theirs (merged,
        ``same_person``), unless they are marked known (a household member is merged into
        only at the strict bar, ``_repair``'s). Returns whether it merged."""
        book = self.tracks
        assert book is not None
        mine = state.person_id
        transit = self.active_tier.transit if self.active_tier is not None else None
        apart = self._together.get(mine, set()) if mine is not None else set()
        scored: list[tuple[float, str, str]] = []
        for departure in book.left_while_in_view(state):
            person_id = departure.person_id
            if person_id in apart or not self.visits.is_active(person_id, timestamp):
                continue
            theirs = self.visits.active_for(person_id)
            if theirs is None or theirs.started_at > visit.started_at:
                continue
            if theirs.last_seen > departure.at + SAME_MOMENT_S:
                continue  # seen since, on a track that has ended meanwhile (a third camera)
            if _known_apart(transit, departure.camera, camera):
                continue
            scored.append((float(aggregate @ departure.looks), person_id, departure.camera))
        best, _ = _clear_departure(scored, book.settings.departure_threshold)
        if best is None:
            return False
        similarity, person_id, source = best
        if self._household(person_id):
            return False  # a household member only at the strict bar (the repair's)
        _LOGGER.info(
            "camera %s: %s is %s, who walked out of camera %s while in view here "
            "(similarity %.2f over %d looks); merged",
            camera,
            mine,
            person_id,
            source,
            similarity,
            len(state.good),
        )
        assert mine is not None
        self._merge_duplicate(mine, person_id, visit, similarity, camera, timestamp, out)
        return True

    def _walked_out_new(
        self, camera: str, timestamp: float, state: TrackState, out: ObserveResult
    ) -> None:
        """The mirror of ``_walked_through``: ``state`` came in at its picture's side and was
        recognised (someone on a visit, or back from an earlier one), while on another camera
        the track that had just announced a new identity, on its first visit, walked out at
        its side. One person crossing the part both cameras see, whom the first camera did not
        recognise from its angle: the new identity is folded into ``state``'s person (merged,
        ``same_person``: its alert is withdrawn; their visits become one). The same conditions
        as ``_walked_through``: that person walked out while ``state`` was in view, at most
        ``tracks.departure_s`` after it came in, was clear of their side when ``state``
        appeared, nobody has seen them since, the cameras are not known to be apart, the two
        were never in one frame, and the looks agree (``tracks.departure_threshold``, raw
        track means) clearly better than anyone else's who walked out then. Neither may be
        marked known: a household member is merged into only at the strict bar (``_repair``)."""
        book = self.tracks
        assert book is not None
        mine = state.person_id
        departures = book.left_while_in_view(state)  # mostly none: checked before the mean
        mean = state.aggregate() if departures else None
        if mine is None or mean is None:
            return
        transit = self.active_tier.transit if self.active_tier is not None else None
        scored: list[tuple[float, str, str]] = []
        left_at: dict[str, float] = {}
        for departure in departures:
            if _known_apart(transit, departure.camera, camera):
                continue
            scored.append((float(mean @ departure.looks), departure.person_id, departure.camera))
            left_at[departure.person_id] = departure.at
        best, _ = _clear_departure(scored, book.settings.departure_threshold)
        if best is None:
            return
        similarity, person_id, source = best
        theirs = self.visits.active_for(person_id)
        if (
            person_id in self._together.get(mine, set())
            or self._household(mine)  # a household member only at the strict bar (the repair's)
            or not self.visits.is_active(mine, timestamp)
            or theirs is None
            or not theirs.is_new_identity  # announced as someone new, on their first visit
            or theirs.started_at > state.first_seen
            or self._household(person_id)
        ):
            return
        if theirs.last_seen > left_at[person_id] + SAME_MOMENT_S:
            return  # seen since, on a track that has ended meanwhile (a third camera)
        _LOGGER.info(
            "camera %s: %s, new on camera %s, is %s, who came in here while in view there "
            "(similarity %.2f); merged",
            camera,
            person_id,
            source,
            mine,
            similarity,
        )
        self._merge_duplicate(person_id, mine, theirs, similarity, camera, timestamp, out)

    def _household(self, person_id: str) -> bool:
        """Marked known by the household."""
        record = self.store.person(person_id)
        return record is not None and record.known

    def _recognise_late(
        self,
        camera: str,
        timestamp: float,
        state: TrackState,
        visit: Visit,
        query: npt.NDArray[np.float32],
        plan: _FramePlan,
        out: ObserveResult,
    ) -> None:
        """A track that began a new identity shows, with more looks, someone seen on an
        earlier visit: fold the new identity into theirs, and their visit goes on.

        The bar is the gallery's (a decision on these looks would have recognised them), on
        the track's good looks only, against people not on a visit (``_repair`` weighs those),
        last seen before this visit began and never in one frame with this track's person. The
        visit is kept (it is a new visit of a returning person); the merge event says so
        (``reason`` "returning") so the visit's notification is updated, not withdrawn."""
        mine = state.person_id
        assert mine is not None
        busy = {v.person_id for v in self.visits.active()}
        excluded = busy | self._together.get(mine, set()) | {mine}
        ranked = self.gallery.search_many(query, top_k=len(excluded) + 2)[0]
        best = next(((pid, sim) for pid, sim in ranked if pid not in excluded), None)
        if best is None or best[1] < self.matcher.threshold:
            return
        person_id, similarity = best
        record = self.store.person(person_id)
        if record is None or record.last_seen >= visit.started_at:
            return
        if any(s is not None and s.person_id == person_id for s in plan.states):
            return  # in this very frame under another box: two people
        _LOGGER.info(
            "camera %s: %s is %s, seen on an earlier visit (similarity %.2f over %d looks); merged",
            camera,
            mine,
            person_id,
            similarity,
            len(state.good),
        )
        event = MergeEvent(
            kept=person_id,
            dropped=mine,
            visit_id=visit.visit_id,
            dropped_visit_id=visit.visit_id,
            similarity=similarity,
            camera=camera,
            timestamp=timestamp,
            reason="returning",
        )
        self._fold(event, out)

    def _relabel(self, state: TrackState, event: MergeEvent) -> None:
        """A track that held the merged-away identity holds the kept person now (merge()
        renamed it), labelled by the gallery threshold (``tracks.merge_threshold`` may be set
        below it)."""
        state.created = False
        matched = event.similarity >= self.matcher.threshold
        state.status = MatchStatus.MATCHED if matched else MatchStatus.UNCERTAIN
        state.similarity = event.similarity
        state.candidate_id = None if matched else event.kept
        state.candidate_similarity = 0.0 if matched else event.similarity

    def search(
        self, vector: npt.ArrayLike, camera: str | None = None, limit: int = 5
    ) -> tuple[list[SearchHit], bool]:
        """Who in the gallery looks most like ``vector`` (a raw embedding of one person crop)?

        The vector is centred like a crop from ``camera`` (its current mean, without learning
        from it; no camera: the model's prior), its ``SEARCH_CANDIDATES`` nearest exemplars are
        re-ranked by k-reciprocal neighbourhoods (``rerank.rerank_candidates``) when the people
        among them have enough exemplars for that to help, and each person is ranked by their
        best exemplar. Returns (hits, whether it re-ranked). Nothing is stored or learnt.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = unit_rows(vector, self.dim)
        if self.centering is not None:
            query = self.centering.centre(camera, query)
        owners, similarities, vectors = self.gallery.nearest_exemplars(query, SEARCH_CANDIDATES)
        if not owners:
            return [], False
        counts = [self.gallery.exemplar_count(owner) for owner in set(owners)]
        reranked = float(np.median(counts)) >= SEARCH_RERANK_MIN_EXEMPLARS
        scores = 1.0 - rerank_candidates(query[0], vectors) if reranked else similarities
        best: dict[str, tuple[float, float]] = {}
        for owner, similarity, value in zip(owners, similarities, scores, strict=True):
            score, cosine = best.get(owner, (-np.inf, -np.inf))
            best[owner] = (max(score, float(value)), max(cosine, float(similarity)))
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], -item[1][1]))[:limit]
        threshold = self.matcher.threshold
        uncertain = threshold - self.matcher.uncertain_margin
        hits = []
        for person_id, (score, similarity) in ranked:
            record = self.store.person(person_id)
            if record is None:
                continue
            status = (
                MatchStatus.MATCHED
                if similarity >= threshold
                else MatchStatus.UNCERTAIN
                if similarity >= uncertain
                else MatchStatus.NEW
            )
            hits.append(SearchHit(self._view(record), similarity, score, status))
        return hits, reranked

    def resync(self, why: str = "a frame could not be stored") -> None:
        """After a failed (rolled back) frame or a store that was away: make memory agree with
        the store again, so no later frame trips over an identity that was never committed."""
        _LOGGER.warning("%s; reloading identities from %s", why, self.store.path)
        self.load()
        for visit in self.visits.active():
            if visit.person_id not in self.store:
                self.visits.forget(visit.person_id)
                self._snapshots.pop(visit.visit_id, None)

    def _identify(
        self,
        camera: str,
        timestamp: float,
        crop: Crop,
        plan: _FramePlan,
        index: int | None,
        state: TrackState | None,
        result: MatchResult,
        frame: Frame,
        out: ObserveResult,
    ) -> tuple[Decision, VisitObservation]:
        """One decision: ``index`` is the crop's row in ``plan`` (None: a track out of sight),
        ``state`` its track (None: a crop decided on its own)."""
        fresh_row = index is not None and plan.fresh[index]
        created = result.person_id is None
        if result.person_id is None:
            person_id = self._new_person_id()
            self.store.create_person(person_id, timestamp)
            for seed in self._seeds(camera, plan, index, state):
                self._learn(person_id, seed, camera, timestamp)
            out.changed_person_ids.add(person_id)
            if state is not None:
                state.person_id = person_id
                state.created = True
                state.came_in_at = self.tracks.came_in(state) if self.tracks is not None else None
        else:
            person_id = result.person_id
        before = self.visits.active_for(person_id)
        last_camera = before.last_camera if before is not None else None
        last_seen = before.last_seen if before is not None else timestamp
        observation = self.visits.observe(person_id, camera, timestamp, is_new_identity=created)
        visit = observation.visit
        if self.active_tier is not None:
            if (
                result.status is MatchStatus.MATCHED
                and not observation.is_new_visit
                and last_camera
                and last_camera != camera
            ):
                self.active_tier.transit.observe(last_camera, camera, timestamp - last_seen)
            if state is not None and state.decided and (created or index in plan.settled_rows):
                for look in list(state.good)[-3:] or list(state.poor)[-1:]:
                    self.active_tier.remember(visit.visit_id, self._centred(camera, look.vector))
            elif fresh_row:
                assert index is not None
                self.active_tier.remember(visit.visit_id, plan.queries[index])
        if observation.ended is not None:
            out.visit_events.append(self._finish(observation.ended))
        if observation.is_new_visit:
            self.store.start_visit(visit.visit_id, person_id, visit.started_at, created)
            out.changed_person_ids.add(person_id)
        elif observation.camera_added:
            out.visit_events.append(self._event(VisitEventReason.CAMERA_ADDED, camera, visit))
            out.changed_person_ids.add(person_id)
        elif visit.last_camera != last_camera:
            out.changed_person_ids.add(person_id)
        self._save_visit(visit)
        self.store.record_sighting(person_id, camera, timestamp)
        teaches = Matcher.teaches(result) or (state is not None and state.created)
        if (
            index is not None
            and not created
            and fresh_row
            and crop.quality.ok
            and teaches
            and (state is None or plan.good[index])
            and self._learn(person_id, (plan.queries[index], plan.raw[index]), camera, timestamp)
        ):
            out.changed_person_ids.add(person_id)
        person = self.store.require(person_id)
        decision = Decision(
            camera=camera,
            timestamp=timestamp,
            person_id=person_id,
            label=person.label,
            known=person.known,
            new_person=observation.is_new_visit,
            is_new_identity=visit.is_new_identity,
            match=result.status,
            similarity=result.similarity,
            visit_id=visit.visit_id,
            visit_cameras=list(visit.cameras),
            first_camera=visit.first_camera,
            box=crop.detection.box,
            detection_score=crop.detection.score,
            quality_ok=crop.quality.ok,
            frame_id=frame.frame_id,
            source=frame.source,
            candidate_id=result.candidate_id,
            candidate_similarity=result.candidate_similarity,
            extra=dict(frame.extra),
        )
        return decision, observation

    def _seeds(
        self, camera: str, plan: _FramePlan, index: int | None, state: TrackState | None
    ) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
        """What a new identity starts from: the track's good looks (else its poor ones), or the
        crop that created it. Always at least one: an identity without an exemplar could never
        be recognised again."""
        if state is not None:
            looks = list(state.good) or list(state.poor)
            if looks:
                return [(self._centred(camera, look.vector), look.vector) for look in looks]
        assert index is not None
        return [(plan.queries[index], plan.raw[index])]

    def _learn(
        self,
        person_id: str,
        vectors: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
        camera: str,
        timestamp: float,
    ) -> bool:
        """Offer the matching-space vector to the gallery; store the raw one with its camera,
        so a restart (or switching centering) can rebuild the matching space."""
        change = self.gallery.add_exemplar(person_id, vectors[0])
        if not change:
            return False
        assert change.key is not None
        if change.replaced_key is not None:
            self.store.delete_exemplars([change.replaced_key])
        self.store.add_exemplar(
            change.key, person_id, vectors[1], self.model_name, timestamp, camera=camera
        )
        return True

    def _resemblance(self, person_id: str, query: npt.NDArray[np.float32]) -> float:
        """How much a crop looks like the rest of the person (cosine of its vector to the mean
        of their exemplars, the crop itself left out; 1.0 with nothing to compare): a box that
        is mostly a signpost, or mostly someone else, shows little of the person and loses
        against their ordinary crops however sharp or big it is."""
        exemplars = self.gallery.exemplars(person_id)
        if len(exemplars):
            exemplars = exemplars[exemplars @ query < 0.9999]  # not the crop itself
        if not len(exemplars):
            return 1.0
        mean = exemplars.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm < 1e-9:
            return 1.0
        return max(0.0, float(mean @ query) / norm)

    def _keep_thumbnail(
        self, person_id: str, crop: Crop, score: float, timestamp: float, out: ObserveResult
    ) -> None:
        """Keep ``crop`` as the person's picture when it is their first usable one, or clearly
        better (``THUMBNAIL_GAIN``) than the one kept; within ``THUMBNAIL_INTERVAL_S`` of the
        last change only when much better (``THUMBNAIL_SOON_GAIN``)."""
        if score <= 0.0:
            return  # failed the quality gates: never a picture
        changed = self._thumbnail_at.get(person_id)
        soon = changed is not None and 0.0 <= timestamp - changed < THUMBNAIL_INTERVAL_S
        current = self.store.require(person_id).thumbnail_score
        if current is not None:
            needed = current * THUMBNAIL_GAIN + THUMBNAIL_MIN_STEP
            if soon:
                needed = max(needed, current * THUMBNAIL_SOON_GAIN)
            if score < needed:
                return
        ok, buffer = cv2.imencode(
            ".jpg", crop.image, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY]
        )
        if not ok:
            _LOGGER.warning("could not encode a thumbnail for %s; keeping the old one", person_id)
            return
        try:
            saved = self.store.save_thumbnail(person_id, buffer.tobytes(), score)
        except OSError as err:
            _LOGGER.warning(
                "cannot write the thumbnail of %s under %s (%s); identification goes on",
                person_id,
                self.store.thumbnails_dir,
                err,
            )
            return
        if saved:
            self._thumbnail_at[person_id] = timestamp
            out.changed_person_ids.add(person_id)

    def _keep_snapshot(
        self,
        decision: Decision,
        crop: Crop,
        observation: VisitObservation,
        frame: Frame,
        out: ObserveResult,
    ) -> None:
        visit = observation.visit
        rank = _snapshot_rank(crop.quality)
        state = self._snapshots.get(visit.visit_id)
        if state is None or rank > state.best.rank:
            best = VisitSnapshot(
                visit_id=visit.visit_id,
                person_id=visit.person_id,
                camera=decision.camera,
                timestamp=decision.timestamp,
                image=frame.image,
                decisions=tuple(out.decisions),
                rank=rank,
            )
            visit.best_snapshot_score = rank
            if state is None:
                self._snapshots[visit.visit_id] = _SnapshotState(best, rank, decision.timestamp)
                return
            state.best = best
        # Checked on every sighting, so an improvement seen during the quiet interval is
        # announced as soon as the interval is over.
        best_rank = state.best.rank
        clearly_better = (state.announced_rank < 0 <= best_rank) or (
            best_rank >= SNAPSHOT_ANNOUNCE_GAIN * state.announced_rank > 0
        )
        if clearly_better and (
            decision.timestamp - state.announced_at >= SNAPSHOT_ANNOUNCE_INTERVAL_S
        ):
            state.announced_rank = best_rank
            state.announced_at = decision.timestamp
            out.visit_events.append(
                self._event(VisitEventReason.BETTER_SNAPSHOT, state.best.camera, visit)
            )

    # ------------------------------------------------------------- time passing
    def expire(self, now: float) -> list[VisitEvent]:
        """End visits not seen for the window before ``now`` (frame clock); ENDED events."""
        ended = self.visits.expire(now)
        if not ended:
            return []
        for visit in ended:
            self._together.pop(visit.person_id, None)
            self._thumbnail_at.pop(visit.person_id, None)
        with self.store.transaction():
            return [self._finish(visit) for visit in ended]

    def _finish(self, visit: Visit) -> VisitEvent:
        self._save_visit(visit)
        if self.active_tier is not None:
            self.active_tier.forget(visit.visit_id)
        state = self._snapshots.pop(visit.visit_id, None)
        snapshot = state.best if state is not None else None
        if snapshot is not None:
            self._ended_snapshots[visit.visit_id] = snapshot
            while len(self._ended_snapshots) > _ENDED_SNAPSHOTS_KEPT:
                self._ended_snapshots.popitem(last=False)
        return self._event(VisitEventReason.ENDED, visit.last_camera, visit, snapshot)

    def _save_visit(self, visit: Visit) -> None:
        self.store.update_visit(
            visit.visit_id,
            person_id=visit.person_id,
            started_at=visit.started_at,
            last_seen=visit.last_seen,
            cameras=visit.cameras,
            last_camera=visit.last_camera,
            sightings=visit.sightings,
            ended_at=visit.ended_at,
        )

    def _event(
        self,
        reason: VisitEventReason,
        camera: str,
        visit: Visit,
        snapshot: VisitSnapshot | None = None,
    ) -> VisitEvent:
        person = self.store.require(visit.person_id)
        if snapshot is None and reason is not VisitEventReason.ENDED:
            state = self._snapshots.get(visit.visit_id)
            snapshot = state.best if state is not None else None
        return VisitEvent(
            reason=reason,
            camera=camera,
            visit=visit.copy(),
            label=person.label,
            known=person.known,
            thumbnail_url=self._thumbnail_url(person),
            snapshot=snapshot,
        )

    # ------------------------------------------------------------- queries
    def persons(
        self,
        camera: str | None = None,
        known: bool | None = None,
        present: bool | None = None,
    ) -> list[PersonView]:
        """People, most recently seen first; ``camera``: ever seen on that camera."""
        views = [self._view(record) for record in self.store.persons()]
        return [
            v
            for v in views
            if (camera is None or camera in v.cameras)
            and (known is None or v.known == known)
            and (present is None or v.present == present)
        ]

    def person(self, person_id: str) -> PersonView:
        return self._view(self.store.require(person_id))

    def visit(self, visit_id: str) -> dict[str, Any] | None:
        """The contract's Visit object for an active, recent or recorded visit; None if unknown."""
        visit = self.visits.visit(visit_id)
        if visit is None:
            record = self.store.visit(visit_id)
            if record is None:
                return None
            visit = Visit(
                visit_id=record.visit_id,
                person_id=record.person_id,
                started_at=record.started_at,
                last_seen=record.last_seen,
                is_new_identity=record.is_new_identity,
                cameras=list(record.cameras),
                camera_last_seen={record.last_camera: record.last_seen}
                if record.last_camera
                else {},
                sightings=record.sightings,
                ended_at=record.ended_at,
            )
        person = self.store.person(visit.person_id)
        if person is None:
            return None
        return visit.to_json(
            label=person.label, known=person.known, thumbnail_url=self._thumbnail_url(person)
        )

    def presence_window(self, camera: str) -> float:
        """How long someone counts as present on ``camera`` after being seen there:
        ``visits.presence_s``, or a few of the camera's frame intervals when its frames come
        further apart (snapshots), so presence does not flicker between two frames."""
        gap = self._frame_gap.get(camera, 0.0)
        return max(self.visits.presence_s, PRESENCE_FRAME_GAPS * gap)

    def camera_presence(self, camera: str, now: float | None = None) -> list[str]:
        """Person ids seen on ``camera`` within its presence window, most recent first."""
        return self.visits.present_on(camera, now, self.presence_window(camera))

    def camera_unidentified(self, camera: str, now: float | None = None) -> int:
        """People in view on ``camera`` (within its presence window) whose track is still
        gathering evidence: present, but not yet anyone."""
        if self.tracks is None:
            return 0
        now = self.visits.latest_timestamp if now is None else now
        return self.tracks.unidentified(camera, now, self.presence_window(camera))

    def unidentified(self, now: float | None = None) -> int:
        """``camera_unidentified`` over every camera."""
        return sum(self.camera_unidentified(camera, now) for camera in self._frame_gap)

    def presence(self, now: float | None = None) -> list[str]:
        """Person ids seen on any camera within that camera's presence window."""
        return self.visits.present(now, {c: self.presence_window(c) for c in self._frame_gap})

    def thumbnail_path(self, person_id: str) -> Path | None:
        self.store.require(person_id)
        return self.store.thumbnail_path(person_id)

    def visit_snapshot(self, visit_id: str) -> VisitSnapshot | None:
        """The best frame of an active or just-ended visit (not yet saved), for rendering."""
        state = self._snapshots.get(visit_id)
        if state is not None:
            return state.best
        return self._ended_snapshots.get(visit_id)

    def snapshot_path(self, visit_id: str) -> Path | None:
        return self.store.snapshot_path(visit_id)

    def save_visit_snapshot(self, visit_id: str, jpeg: bytes) -> Path:
        """Persist the rendered snapshot of an ended visit and drop its frame reference."""
        path = self.store.save_snapshot(visit_id, jpeg)
        self._ended_snapshots.pop(visit_id, None)
        return path

    def visit_stats(self, since: float) -> tuple[int, int]:
        """(visits started since ``since``, distinct people among them): "today" counters."""
        return self.store.visit_stats(since)

    def _view(self, record: PersonRecord) -> PersonView:
        visit = self.visits.active_for(record.person_id)
        return PersonView(
            person_id=record.person_id,
            label=record.label,
            known=record.known,
            first_seen=record.first_seen,
            last_seen=record.last_seen,
            visit_count=record.visit_count,
            cameras=record.camera_names,
            present=visit is not None,
            camera=visit.last_camera if visit is not None else None,
            visit_id=visit.visit_id if visit is not None else None,
            exemplars=self.gallery.exemplar_count(record.person_id),
            thumbnail_url=self._thumbnail_url(record),
            named=not record.auto_label,
        )

    def _thumbnail_url(self, record: PersonRecord) -> str | None:
        """The picture's URL only while there is a picture (a file removed by hand must not
        become an image that answers 404; the PostgreSQL store fetches its copy again)."""
        if record.thumbnail_score is None:
            return None
        path = self.store.thumbnail_path(record.person_id)
        try:
            picture = path.stat() if path is not None else None
        except OSError:
            picture = None
        if picture is None:
            return None
        return thumbnail_url(
            record.person_id, _picture_version(record.thumbnail_score, picture.st_mtime_ns)
        )

    # ------------------------------------------------------------- operations
    def rename(self, person_id: str, label: str) -> PersonView:
        return self._view(self.store.rename(person_id, check_label(label)))

    def set_known(self, person_id: str, known: bool) -> PersonView:
        return self._view(self.store.set_known(person_id, bool(known)))

    def merge(self, keep: str, drop: str) -> PersonView:
        """Fold ``drop`` into ``keep`` (same real person seen as two identities)."""
        if keep == drop:
            raise ValueError("cannot merge a person into themselves; pick two different ids")
        self.store.require(keep)
        self.store.require(drop)
        discarded = self.gallery.merge(keep, drop)
        absorbed = self.visits.merge(keep, drop)
        if self.tracks is not None:
            self.tracks.rename_person(drop, keep)
        self._thumbnail_at.pop(drop, None)
        apart = self._together.pop(drop, set())
        self._together.setdefault(keep, set()).update(apart - {keep})
        for others in self._together.values():
            if drop in others:
                others.discard(drop)
                others.add(keep)
        with self.store.transaction():
            record = self.store.merge(
                keep,
                drop,
                discarded_exemplars=discarded,
                absorbed_visit_id=absorbed.visit_id if absorbed is not None else None,
            )
            live = self.visits.active_for(keep)
            if live is not None:
                self._save_visit(live)
        if absorbed is not None:
            gone = self._snapshots.pop(absorbed.visit_id, None)
            live = self.visits.active_for(keep)
            if self.active_tier is not None and live is not None:
                self.active_tier.move(absorbed.visit_id, live.visit_id)
            kept = self._snapshots.get(live.visit_id) if live is not None else None
            if gone is not None and kept is not None and gone.best.rank > kept.best.rank:
                kept.best = gone.best
        return self._view(record)

    def forget(self, person_id: str) -> None:
        """Delete the identity, its embeddings, visits and images (no visit_ended is sent)."""
        self.store.require(person_id)
        self._drop_from_memory(person_id)
        self.store.forget(person_id)

    def reset(self, camera: str | None = None) -> list[str]:
        """Forget everyone, or (``camera``) the identities seen on that camera and no other.

        Known people are not spared: a reset is an explicit request. "Visitor N" numbers keep
        counting up from where they were.
        """
        ids = self.store.all_person_ids() if camera is None else self.store.persons_only_on(camera)
        for person_id in ids:
            self._drop_from_memory(person_id)
        return self.store.forget_many(ids)

    def purge_stale(self, now: float) -> list[str]:
        """Retention: forget people not seen for ``retention_days`` (never known ones or people
        present right now); returns their ids."""
        cutoff = now - self.retention_days * DAY_S
        present = [visit.person_id for visit in self.visits.active()]
        gone = self.store.purge(cutoff, keep=present)
        for person_id in gone:
            self._drop_from_memory(person_id)
        if gone:
            _LOGGER.info(
                "retention: forgot %d identities not seen for %d days",
                len(gone),
                self.retention_days,
            )
        return gone

    def end_tracks(self, keys: Sequence[tuple[str, str]]) -> None:
        """The tracker lost these (camera, track id) tracks: forget what was gathered."""
        if self.tracks is not None:
            self.tracks.end(keys)

    def _drop_from_memory(self, person_id: str) -> None:
        self.gallery.remove(person_id)
        if self.tracks is not None:
            self.tracks.forget_person(person_id)
        self._together.pop(person_id, None)
        self._thumbnail_at.pop(person_id, None)
        visit = self.visits.forget(person_id)
        if visit is not None:
            self._snapshots.pop(visit.visit_id, None)
            if self.active_tier is not None:
                self.active_tier.forget(visit.visit_id)
        for visit_id, snapshot in list(self._ended_snapshots.items()):
            if snapshot.person_id == person_id:
                del self._ended_snapshots[visit_id]

    def _new_person_id(self) -> str:
        while True:
            person_id = secrets.token_hex(6)
            if person_id not in self.gallery and person_id not in self.store:
                return person_id
