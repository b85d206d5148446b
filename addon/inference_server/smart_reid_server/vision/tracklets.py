"""Tracks as the unit of identity: what the server knows about each person its tracker follows.

On real video most duplicate alerts came from deciding crop by crop: a person on a continuing
track was re-decided at every fresh look, and a crop cut by the frame edge, two people in one box,
or a track that swapped people at a crossing then took (or created) the wrong identity. So:

- A **new track is pending** until it has ``decide_looks`` good looks or has been seen for
  ``decide_after_s`` (whichever first), then it is matched once, with the mean of its good looks,
  against the active visits and the gallery. A pending track whose looks already match someone on
  a visit strongly (the gallery threshold) joins that visit at once: no alert is at stake.
- A **decided track keeps its identity**. Its fresh looks update its aggregate, teach the
  person's gallery and never raise a new decision or ``new_person`` on their own.
- **Good looks** are crops that passed the quality gates, do not touch the frame's border and do
  not overlap another box. Poor looks never create an identity on their own: a track with only
  poor looks waits for a better one, or joins an active visit, and may create an identity only
  after ``poor_create_after_s`` (someone lingering at the edge of the picture is still someone);
  one seen only under other boxes must have been in view that long (a glimpse of part of the
  person in front and the one behind, then gone, is nobody new).
- A track on a **box of two or more people** (the tracker's ``group`` flag) or on a **sliver**
  at the picture's border keeps its person meanwhile, but those crops are no look of anyone,
  and once it leaves the group or the border it starts over as a new pending track: trackers
  come out of a merged box, or a strip at the edge, on either person. While the person it held
  still counts as present, the pending track is not counted a second time.
- **Presence** counts the people of decided tracks seen within the camera's presence window and
  one per pending track. A pending track that began alone where a decided track was lost a
  moment before is that person found again, not counted twice; one that began beside someone
  else is counted (people walking together: it may be the lost one's companion).
- After its box overlapped another (a crossing, a group), a track's next good look is **checked**
  against its aggregate; when it disagrees (below ``split_threshold``), the track is split: from
  that look on it is a new pending track, so a swapped tracker id cannot carry the wrong person.
- A track that created an identity is compared, as it gathers more looks, with the people on a
  visit; when it clearly is one of them (``merge_threshold``, never two people seen in one frame),
  the new identity is merged into theirs: the repair is announced (``merged``), not a second alert.
  So is a track that came in at its side while someone on another camera was in view and who then
  walked out there (views that overlap, nobody having said so): ``left_while_in_view``.

Cameras whose frames come sparsely (more than ``continuous_gap_s`` apart: snapshots, Frigate
events) cannot gather a track's evidence over frames: their crops are decided at once, as before.

This module holds the per-track state and the rules above; ``identities.Identities`` applies them
on its thread (nothing here locks anything).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..types import Box, Crop, MatchStatus

EDGE_MARGIN_PX = 2.0
OVERLAP_SHARE = 0.3  # a box with this much of its area under another box is "overlapped"
MAX_LOOKS = 8
SLIVER_ASPECT = 0.25  # a box at the border narrower than this share of its height: a sliver
# A person who walked out must resemble the new track by this much more than anyone else who
# walked out meanwhile (people leaving together: the pair is told apart by comparing both).
DEPARTURE_MARGIN = 0.1
# How long a track that could be either of two people who walked out waits for the other one to
# come in (pairs come in one after the other; the first is often the one that cannot be told).
DEPARTURE_WAIT_S = 1.5
# A track "walked out at the side" when it touched the side at most this long before its last
# sighting.
DEPARTED_AT_SIDE_S = 0.5
MAX_DEPARTURES = 64
STALE_TRACK_S = 30.0  # a track not seen for this long is forgotten, even if nobody said so

type Floats = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TrackSettings:
    """Config ``tracks`` (docs/server.md)."""

    enabled: bool = True
    decide_looks: int = 3
    decide_after_s: float = 1.0
    poor_create_after_s: float = 1.0
    continuous_gap_s: float = 2.0
    split_threshold: float = 0.25
    # Disagreeing looks in a row that split a track (one is enough right after an overlap).
    # On real video two in a row still split a man's own track (0.13 and 0.20 while he turned):
    # 3, chosen on the tuning half.
    split_looks: int = 3
    merge_threshold: float | None = None  # None: the gallery threshold
    reacquire_s: float = 6.0
    # Tier 1 for a track's aggregate (None: the crop threshold of the active tier). A track's
    # mean of good looks is surer than one crop, and strangers' means still reach 0.37 at the
    # 99th percentile on real video: 0.5 (centred, retail-0277), chosen on the tuning half.
    active_threshold: float | None = 0.5
    overlap_share: float = OVERLAP_SHARE
    # Hand-over between cameras whose views meet: a new track that comes in at its picture's
    # side within this long of a decided track on another camera touching that camera's side
    # is that track's person, if their looks (raw cosine of the track means) reach
    # ``handover_threshold`` and nobody else there does as well. 0: off.
    handover_s: float = 1.0
    handover_threshold: float = 0.5
    # The same, for a gap: a new track that comes in at its picture's side at most this long
    # after a decided track on another camera walked out at that camera's side (its person not
    # seen anywhere since) is that person, if their looks reach ``departure_threshold`` and no
    # other person who walked out meanwhile comes within ``DEPARTURE_MARGIN``. 0: off.
    departure_s: float = 8.0
    departure_threshold: float = 0.4
    # After two decided tracks' boxes overlapped, the first clear look of each is compared with
    # both people's looks before the overlap; resembling the other by this much more means the
    # tracker swapped them, and the tracks exchange their people. 0: off.
    crossing_margin: float = 0.1

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> TrackSettings:
        values = dict(section or {})
        defaults = cls()
        return cls(
            enabled=bool(values.get("identity", defaults.enabled)),
            decide_looks=int(values.get("decide_looks", defaults.decide_looks)),
            decide_after_s=float(values.get("decide_after_s", defaults.decide_after_s)),
            poor_create_after_s=float(
                values.get("poor_create_after_s", defaults.poor_create_after_s)
            ),
            continuous_gap_s=float(values.get("continuous_gap_s", defaults.continuous_gap_s)),
            split_threshold=float(values.get("split_threshold", defaults.split_threshold)),
            split_looks=max(1, int(values.get("split_looks", defaults.split_looks))),
            merge_threshold=values.get("merge_threshold", defaults.merge_threshold),
            reacquire_s=float(values.get("reacquire_s", defaults.reacquire_s)),
            active_threshold=values.get("active_threshold", defaults.active_threshold),
            overlap_share=float(values.get("overlap_share", defaults.overlap_share)),
            handover_s=float(values.get("handover_s", defaults.handover_s)),
            handover_threshold=float(values.get("handover_threshold", defaults.handover_threshold)),
            departure_s=float(values.get("departure_s", defaults.departure_s)),
            departure_threshold=float(
                values.get("departure_threshold", defaults.departure_threshold)
            ),
            crossing_margin=float(values.get("crossing_margin", defaults.crossing_margin)),
        )


@dataclass(slots=True)
class Look:
    """One fresh embedding of a track's crop: the raw unit vector and how much it counts."""

    vector: Floats
    weight: float


@dataclass(slots=True)
class Crossing:
    """Two decided tracks of one camera whose boxes overlapped (people crossing, or one passing
    in front of another): whom each held and how each looked before, so that the first clear
    look afterwards can tell whether the tracker swapped them."""

    partner: tuple[str, str]  # (camera, track id) of the other track
    own_person: str
    partner_person: str
    own_before: Floats  # raw mean of the good looks before the overlap
    partner_before: Floats


@dataclass(frozen=True, slots=True)
class Departure:
    """Where a decided track's person walked out of its camera's view (its last sighting
    touched the picture's side): whom, when, and how they looked (raw mean of the track)."""

    camera: str
    person_id: str
    at: float
    looks: Floats
    side_from: float  # since when its box touched the side on the way out


@dataclass(slots=True)
class TrackState:
    """What is known about one track (one camera's tracker id, or a segment after a split)."""

    camera: str
    track_id: str
    first_seen: float
    last_seen: float
    good: deque[Look] = field(default_factory=lambda: deque(maxlen=MAX_LOOKS))
    poor: deque[Look] = field(default_factory=lambda: deque(maxlen=MAX_LOOKS))
    person_id: str | None = None
    status: MatchStatus = MatchStatus.NEW
    similarity: float = 0.0
    candidate_id: str | None = None
    candidate_similarity: float = 0.0
    created: bool = False  # this track created its identity (a repair may merge it)
    merge_checked_looks: int = 0  # good_seen when the repair last compared the track
    good_seen: int = 0  # good looks added since it began (``good`` keeps the latest only)
    check: bool = False  # the next good look must agree with the track (after an overlap)
    suspects: list[Look] = field(default_factory=list)  # disagreeing looks in a row
    counted: bool = False  # contributed to its camera's centering mean
    grouped: bool = False  # its box held two or more people: it starts over once it leaves
    # When it left a group holding a person: that person still counts as present here, so
    # for a presence window the track, pending again, is not counted a second time.
    left_group_at: float | None = None
    first_box: Box | None = None  # where the track (or its segment after a split) began
    # Another person's box was within reach of its first box: it may be a companion of
    # someone lost there, not that person found again (presence counts it).
    began_crowded: bool = False
    last_crop: Crop | None = None  # for a decision made while the track is out of sight
    last_good_crop: Crop | None = None
    # When its box last touched the picture's left or right side (kept across restarts: a
    # track that came in at the side as a sliver starts over once the person is in view).
    side_at: float | None = None
    # Since when it has touched the side without a break (the way out, or in), and when it
    # first touched it (kept across restarts too).
    side_from: float | None = None
    side_first: float | None = None
    # From an overlap with another decided track's box until its first clear look after it.
    crossing: Crossing | None = None
    # The hand-over after a gap found two people who walked out too alike to choose between:
    # the track stays pending until then, in case the other one comes in too and is decided.
    contested_until: float | None = None
    # It looked like someone another track of its frame holds: it waits for that track's
    # next clear look until then, before it starts a new identity.
    held_wait_until: float | None = None
    held_by: tuple[str, str] | None = None  # (that track's id, the person it held)
    # Seen at least once clear of other boxes (since it began or last started over).
    clear_seen: bool = False
    # When it came in at its picture's side (set as it is decided): someone who walks out of
    # another camera's view soon after, while this track is in view, may be this person
    # walking through the part both cameras see.
    came_in_at: float | None = None

    def touched_side(self, timestamp: float, previous: float) -> None:
        """Its box touches the picture's side now; ``previous``: when it was seen before."""
        if self.side_at is None or self.side_at < previous:
            self.side_from = timestamp  # not at the side when last seen: a new stretch
        if self.side_first is None:
            self.side_first = timestamp
        self.side_at = timestamp

    @property
    def decided(self) -> bool:
        return self.person_id is not None

    def add(self, look: Look, good: bool) -> None:
        (self.good if good else self.poor).append(look)
        self.good_seen += good

    def aggregate(self, *, good_only: bool = False) -> Floats | None:
        """Weighted mean of the good looks (of the poor ones when there is no good one)."""
        looks = list(self.good) or ([] if good_only else list(self.poor))
        if not looks:
            return None
        weights = np.array([look.weight for look in looks], dtype=np.float32)
        mean = (np.stack([look.vector for look in looks]) * weights[:, None]).sum(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm < 1e-9:
            return None
        out: Floats = (mean / norm).astype(np.float32)
        return out

    def restart(self, timestamp: float) -> None:
        """A split: from now on this is a new, pending track with no looks yet."""
        self.first_seen = timestamp
        self.good.clear()
        self.poor.clear()
        self.person_id = None
        self.status = MatchStatus.NEW
        self.similarity = 0.0
        self.candidate_id = None
        self.candidate_similarity = 0.0
        self.created = False
        self.merge_checked_looks = 0
        self.good_seen = 0
        self.check = False
        self.suspects = []
        self.grouped = False
        self.left_group_at = None
        self.first_box = None
        self.began_crowded = False
        self.crossing = None
        self.contested_until = None
        self.held_wait_until = None
        self.held_by = None
        self.clear_seen = False
        self.came_in_at = None

    def exchange(self, other: TrackState) -> None:
        """The tracker swapped two people: each track takes the other's person and looks."""
        for name in (
            "person_id",
            "status",
            "similarity",
            "candidate_id",
            "candidate_similarity",
            "created",
            "merge_checked_looks",
            "good_seen",
            "good",
            "poor",
        ):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, theirs)
            setattr(other, name, mine)
        for state in (self, other):
            state.crossing = None
            state.check = False
            state.suspects = []


def _departed(state: TrackState) -> Departure | None:
    """The track's person walked out at its picture's side: its last sighting touched it."""
    if (
        state.person_id is None
        or state.side_at is None
        or state.last_seen - state.side_at > DEPARTED_AT_SIDE_S
    ):
        return None
    looks = state.aggregate()
    if looks is None:
        return None
    side_from = state.side_from if state.side_from is not None else state.side_at
    return Departure(state.camera, state.person_id, state.last_seen, looks, side_from)


def at_edge(box: Box, width: int, height: int) -> bool:
    """Whether the box touches the picture's border (the person is probably cut off)."""
    return (
        box.x1 <= EDGE_MARGIN_PX
        or box.y1 <= EDGE_MARGIN_PX
        or box.x2 >= width - EDGE_MARGIN_PX
        or box.y2 >= height - EDGE_MARGIN_PX
    )


def at_side(box: Box, width: int) -> bool:
    """Whether the box touches the picture's left or right side (where people walk in from,
    or out to, a neighbouring camera's view)."""
    return box.x1 <= EDGE_MARGIN_PX or box.x2 >= width - EDGE_MARGIN_PX


def sliver(box: Box, width: int, height: int) -> bool:
    """Whether the box is a narrow strip at the picture's border: someone mostly out of view
    (on real video such strips at a camera's side held whoever crossed there, one after the
    other, on one track)."""
    return box.width < SLIVER_ASPECT * box.height and at_edge(box, width, height)


def _near(a: Box, b: Box) -> bool:
    """Whether two boxes are about one person's height apart or closer."""
    ax, ay = (a.x1 + a.x2) / 2.0, (a.y1 + a.y2) / 2.0
    bx, by = (b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0
    return math.hypot(ax - bx, ay - by) <= max(a.height, b.height, 1.0)


def crowded(boxes: Sequence[Box]) -> list[bool]:
    """For each box, whether another box of the frame is about one person's height away or
    closer: someone walking with others, whom a tracker may mix up with them."""
    return [any(_near(a, b) for j, b in enumerate(boxes) if j != i) for i, a in enumerate(boxes)]


def overlapped(boxes: Sequence[Box], share: float = OVERLAP_SHARE) -> list[bool]:
    """For each box, whether another box of the frame covers ``share`` of it or more."""
    out = [False] * len(boxes)
    for i, a in enumerate(boxes):
        if a.area <= 0:
            continue
        for j, b in enumerate(boxes):
            if i == j:
                continue
            w = min(a.x2, b.x2) - max(a.x1, b.x1)
            h = min(a.y2, b.y2) - max(a.y1, b.y1)
            if w > 0 and h > 0 and w * h >= share * a.area:
                out[i] = True
                break
    return out


def overlap_partners(boxes: Sequence[Box], share: float = OVERLAP_SHARE) -> list[list[int]]:
    """For each box, the other boxes of the frame it overlaps either way (one covers ``share``
    of the other or more)."""
    out: list[list[int]] = [[] for _ in boxes]
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            w = min(a.x2, b.x2) - max(a.x1, b.x1)
            h = min(a.y2, b.y2) - max(a.y1, b.y1)
            if w <= 0 or h <= 0:
                continue
            inter = w * h
            if inter >= share * min(a.area, b.area) and min(a.area, b.area) > 0:
                out[i].append(j)
                out[j].append(i)
    return out


def look_weight(crop: Crop) -> float:
    """Taller crops show more of a person: weight by height, saturating at 128 px."""
    return float(min(1.0, max(crop.detection.box.height, 1.0) / 128.0))


class TrackBook:
    """Every live track's state, by (camera, track id)."""

    def __init__(self, settings: TrackSettings) -> None:
        self.settings = settings
        self._tracks: dict[tuple[str, str], TrackState] = {}
        self._last_frame: dict[str, float] = {}
        self._departures: deque[Departure] = deque(maxlen=MAX_DEPARTURES)

    def __len__(self) -> int:
        return len(self._tracks)

    def continuous(self, camera: str, timestamp: float) -> bool:
        """Whether ``camera`` sends video (its previous frame came at most the gap before);
        records this frame's time."""
        previous = self._last_frame.get(camera)
        self._last_frame[camera] = max(timestamp, previous or timestamp)
        return (
            previous is not None and 0.0 <= timestamp - previous <= self.settings.continuous_gap_s
        )

    def get(self, camera: str, track_id: str) -> TrackState | None:
        return self._tracks.get((camera, track_id))

    def open(self, camera: str, track_id: str, timestamp: float) -> TrackState:
        state = self._tracks.get((camera, track_id))
        if state is None:
            state = TrackState(camera, track_id, timestamp, timestamp)
            self._tracks[(camera, track_id)] = state
        return state

    def on_camera(self, camera: str) -> list[TrackState]:
        return [s for (c, _), s in self._tracks.items() if c == camera]

    def handover_from(
        self,
        state: TrackState,
        now: float,
        overlapping: Callable[[str, str], bool] | None = None,
    ) -> list[TrackState]:
        """Decided tracks on other cameras that ``state`` may continue: ``state`` touched its
        picture's side at most ``handover_s`` before it began (or since), and each of them
        touched its own picture's side within ``handover_s`` of that (views that meet) or, on
        a camera ``overlapping`` ``state``'s, was in view then anywhere (views that overlap);
        and its person is not on ``state``'s camera now (another track there holds them)."""
        within = self.settings.handover_s
        if within <= 0 or state.side_at is None or state.side_at < state.first_seen - within:
            return []
        found = []
        for other in self._tracks.values():
            if other.camera == state.camera or other.person_id is None:
                continue
            meets = other.side_at is not None and abs(other.side_at - state.side_at) <= within
            overlaps = (
                overlapping is not None
                and overlapping(other.camera, state.camera)
                and other.last_seen >= state.side_at - within
            )
            if not (meets or overlaps):
                continue
            person_id = other.person_id
            if any(
                s.camera == state.camera and s is not state and now - s.last_seen <= within
                for s in self.holding(person_id)
            ):
                continue
            found.append(other)
        return found

    def holding(self, person_id: str) -> list[TrackState]:
        return [s for s in self._tracks.values() if s.person_id == person_id]

    def came_in(self, state: TrackState) -> float | None:
        """When ``state`` came in at its picture's side (it touched the side at most
        ``handover_s`` before it began, or since), or None."""
        within = self.settings.handover_s
        if state.side_at is None or state.side_at < state.first_seen - within:
            return None
        return state.side_at

    def left_while_in_view(self, state: TrackState) -> list[Departure]:
        """People who walked out of another camera's view at its side while ``state`` was in
        view, at most ``departure_s`` after ``state`` came in at its own picture's side, who
        were still clear of their picture's side when ``state`` appeared (a part of the scene
        both cameras see; views that merely meet are the hand-over's), and whom no other track
        has seen since: whom ``state`` may be (the mirror of ``departures``)."""
        within = self.settings.departure_s
        entered = state.came_in_at
        if within <= 0 or entered is None:
            return []
        appeared = state.first_seen
        if state.side_first is not None:
            appeared = min(appeared, state.side_first)
        return self._unseen_since(
            state,
            lambda d: (
                d.person_id != state.person_id
                and state.first_seen < d.at <= min(entered + within, state.last_seen)
                and d.side_from > appeared
            ),
        )

    def departures(self, state: TrackState, now: float) -> list[Departure]:
        """People who walked out of another camera's view at its side at most ``departure_s``
        before ``state`` began, when ``state`` came in at its own picture's side, and whom no
        track has seen since (on any camera): whom ``state`` may be after a gap."""
        within = self.settings.departure_s
        if within <= 0 or self.came_in(state) is None:
            return []
        return self._unseen_since(state, lambda d: 0.0 < state.first_seen - d.at <= within)

    def _unseen_since(
        self, state: TrackState, keep: Callable[[Departure], bool]
    ) -> list[Departure]:
        """The latest departure of each person from another camera than ``state``'s that
        ``keep`` accepts and whom no track but ``state`` has seen since."""
        found: dict[tuple[str, str], Departure] = {}
        ended = list(self._departures)
        live = [d for s in self._tracks.values() if (d := _departed(s)) is not None]
        for departure in ended + live:
            if departure.camera == state.camera or not keep(departure):
                continue
            if any(
                s is not state and s.last_seen > departure.at
                for s in self.holding(departure.person_id)
            ):
                continue  # seen again since (or still in view elsewhere)
            key = (departure.camera, departure.person_id)
            if key not in found or found[key].at < departure.at:
                found[key] = departure
        return list(found.values())

    def end(self, keys: Sequence[tuple[str, str]]) -> None:
        for key in keys:
            state = self._tracks.pop(key, None)
            if state is not None and self.settings.departure_s > 0:
                departure = _departed(state)
                if departure is not None:
                    self._departures.append(departure)

    def forget_person(self, person_id: str) -> None:
        """The identity is gone (forgotten, reset): its tracks start over as pending."""
        for state in self.holding(person_id):
            state.restart(state.last_seen)
        self._departures = deque(
            (d for d in self._departures if d.person_id != person_id), maxlen=MAX_DEPARTURES
        )

    def rename_person(self, old: str, new: str) -> None:
        """``old`` was merged into ``new``."""
        for state in self.holding(old):
            state.person_id = new
        self._departures = deque(
            (
                dataclasses.replace(d, person_id=new) if d.person_id == old else d
                for d in self._departures
            ),
            maxlen=MAX_DEPARTURES,
        )

    def unidentified(self, camera: str | None, now: float, within_s: float) -> int:
        """Tracks on ``camera`` (None: any) seen within ``within_s`` that have no person yet:
        people in view whom the server is still looking at. A pending track that began alone
        where a person's track was lost a moment ago (not in the camera's latest frame, still
        counted present) is most likely that person, found again on a new track: not counted
        twice. One that began beside someone else is counted: people walking together lose
        and regain tracks among themselves, and the new track may be the lost one's companion."""
        pending = [
            s
            for (c, _), s in self._tracks.items()
            if (camera is None or c == camera)
            and not s.decided
            and (s.good or s.poor)
            and 0.0 <= now - s.last_seen < within_s
            and (s.left_group_at is None or now - s.left_group_at >= within_s)
        ]
        if not pending:
            return 0
        lost = [
            (s, s.last_crop.detection.box)
            for (c, _), s in self._tracks.items()
            if (camera is None or c == camera)
            and s.decided
            and s.last_crop is not None
            and 0.0 <= now - s.last_seen < within_s
            and s.last_seen < self._last_frame.get(c, now)
        ]
        count = 0
        for state in pending:
            start = state.first_box
            if state.began_crowded:
                count += 1  # began beside someone: one of a group, maybe not the lost one
                continue
            near = next(
                (
                    n
                    for n, (other, box) in enumerate(lost)
                    if other.camera == state.camera
                    and other.last_seen <= state.first_seen
                    and start is not None
                    and _near(box, start)
                ),
                None,
            )
            if near is None:
                count += 1
            else:
                del lost[near]
        return count

    def drop_stale(self, now: float) -> None:
        stale = [k for k, s in self._tracks.items() if now - s.last_seen > STALE_TRACK_S]
        for key in stale:
            del self._tracks[key]

    def ripe(self, state: TrackState, timestamp: float) -> bool:
        """Whether a pending track has gathered enough to be decided now."""
        if len(state.good) >= self.settings.decide_looks:
            return True
        return timestamp - state.first_seen >= self.settings.decide_after_s and bool(
            state.good or state.poor
        )

    def may_create(self, state: TrackState, timestamp: float) -> bool:
        """Whether the track may start a new identity: a good look, or poor looks over
        ``poor_create_after_s`` (someone lingering at the edge of the picture is still
        someone). A glimpse seen only under other boxes, shorter than that and gone, is part of
        someone else (a box over a person and the one behind): it creates nobody."""
        if state.good:
            return True
        within = self.settings.poor_create_after_s
        if not state.poor or timestamp - state.first_seen < within:
            return False
        return state.clear_seen or state.last_seen - state.first_seen >= within
