"""Deciding who a crop is: matched, uncertain (probably someone), or new.

Three bands of cosine similarity to the best identity in the gallery:

- ``>= threshold``: MATCHED. The crop is that person and may teach the gallery a new exemplar.
- ``>= threshold - uncertain_margin``: UNCERTAIN, "probably the same person". The candidate is
  always reported (``candidate_id``) so a user can merge the two identities later; the matcher never
  merges silently. What the pipeline does with it is the ``UncertainPolicy``:

  * ``ATTRIBUTE_IF_ACTIVE`` (default): the sighting counts for the candidate only while the
    candidate has an active visit, so someone already announced is not announced again a few
    seconds later because one crop looked a bit different. Otherwise a new identity is created
    (seeded with this crop), and the decision says ``uncertain`` with the candidate named.
  * ``NEW_IDENTITY``: always a new identity (fewer wrong merges, more duplicate alerts).
  * ``ATTRIBUTE``: always the candidate (fewer alerts, more wrong attributions).

  Under every policy an uncertain crop never becomes an exemplar of the candidate: a wrong
  exemplar would pull more strangers into that identity with every later match.
- below: NEW, nobody is close; the caller creates an identity.

Several crops of one frame are resolved together: two people in the same picture cannot be the
same person, so pairs (crop, identity) are taken greedily from the most similar down, each
identity at most once; a crop whose best identity was taken falls back to its next candidate, or
becomes new.

Two tiers (``ActiveTier``, on by default). Deciding whether a crop continues a visit does not
need to pick one person out of the whole gallery, only out of the few people on a visit right
now, and for those more is known than their looks: where and when they were last seen. Tier 1
scores each crop against every active visit with a fused score: appearance (best cosine to the
person's exemplars and to the visit's own recent crops, which show today's clothes from today's
cameras), plus ``place_weight`` times the plausibility of walking from the visit's last camera to
this one in the time since (``visits.TransitTimes``), minus ``time_weight`` times the share of the
visit window that has passed. Someone seen on another camera less than ``veto_within_s`` ago,
where the walk between the two takes longer (the cameras do not overlap), is still there: that
closes the fused route, leaving only an appearance match at the gallery threshold. A
crop on the camera the person was last seen on is no hand-over:
it must score ``uncertain_margin`` above the active threshold. A crop is attributed to an active
visit when its fused score reaches the active threshold (per model, ``DEFAULT_ACTIVE_THRESHOLDS``;
looser than the gallery threshold because the candidate set is tiny), or its appearance alone
reaches the gallery threshold; it is MATCHED when appearance reaches the gallery threshold and
UNCERTAIN otherwise (``candidate_id`` names the person; it teaches no exemplar). Only crops that tier 1 leaves alone go to tier 2: the gallery
without the active people (tier 1 has decided about them), with the strict threshold and the
uncertain band as above, for returning and known people; else a new identity.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from ..models.priors import prior_mean
from ..types import MatchResult, MatchStatus
from .gallery import Candidates, Gallery, unit_rows
from .visits import Adjacency, TransitRange, TransitTimes, Visit

_LOGGER = logging.getLogger(__name__)


class UncertainPolicy(StrEnum):
    """What an UNCERTAIN crop is attributed to (see the module docstring)."""

    ATTRIBUTE_IF_ACTIVE = "attribute_if_active"
    NEW_IDENTITY = "new_identity"
    ATTRIBUTE = "attribute"

    def attributes(self, candidate_is_active: bool) -> bool:
        if self is UncertainPolicy.ATTRIBUTE:
            return True
        if self is UncertainPolicy.NEW_IDENTITY:
            return False
        return candidate_is_active


def _never_active(_person_id: str) -> bool:
    return False


def _best_similarity(ranked: Candidates) -> float:
    """The best similarity in a ranked list (the contract's "best similarity to anyone" of a
    NEW decision): 0.0 for an empty gallery (a cosine, so it may be below 0.0 otherwise)."""
    return max((float(sim) for _, sim in ranked), default=0.0)


def _best_similarities(ranked: Sequence[Candidates]) -> list[float]:
    return [_best_similarity(r) for r in ranked]


class Matcher:
    """Turns gallery similarities into MatchResults.

    Results name ``person_id`` when the crop is attributed to an existing identity (MATCHED, or
    UNCERTAIN accepted by the policy); ``person_id`` is None when the caller must create a new
    identity (NEW, or UNCERTAIN not attributed: ``candidate_id`` then says who it resembled).
    """

    def __init__(
        self,
        gallery: Gallery,
        threshold: float,
        uncertain_margin: float,
        *,
        policy: UncertainPolicy = UncertainPolicy.ATTRIBUTE_IF_ACTIVE,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"match threshold must be in (0, 1], got {threshold}")
        if not 0.0 <= uncertain_margin < threshold:
            raise ValueError(
                f"uncertain_margin must be in [0, threshold={threshold}), got {uncertain_margin}"
            )
        self.gallery = gallery
        self.threshold = float(threshold)
        self.uncertain_margin = float(uncertain_margin)
        self.policy = policy

    @property
    def uncertain_threshold(self) -> float:
        return self.threshold - self.uncertain_margin

    @staticmethod
    def teaches(result: MatchResult) -> bool:
        """Whether the crop may become an exemplar of ``result.person_id`` (MATCHED only).

        A NEW identity is seeded separately by the caller with the crop that created it.
        """
        return result.status is MatchStatus.MATCHED and result.person_id is not None

    def match(
        self, vector: npt.ArrayLike, is_active: Callable[[str], bool] = _never_active
    ) -> MatchResult:
        """Match one embedding against the gallery."""
        return self.match_many(vector, is_active)[0]

    def match_many(
        self,
        vectors: npt.ArrayLike,
        is_active: Callable[[str], bool] = _never_active,
        *,
        exclude: Iterable[str] = (),
    ) -> list[MatchResult]:
        """Match the crops of one frame together: no two get the same identity, and nobody in
        ``exclude`` (people another box of the frame already is)."""
        queries = unit_rows(vectors, self.gallery.dim)
        skip = set(exclude)
        top_k = len(queries) + 2 + len(skip)  # enough to fall back past the others' picks
        ranked = self.gallery.search_many(queries, top_k=top_k)
        best = _best_similarities(ranked)
        if skip:
            ranked = [[(pid, sim) for pid, sim in r if pid not in skip] for r in ranked]
        return self.assign(ranked, is_active, best=best)

    def match_two_tier(
        self,
        vectors: npt.ArrayLike,
        active: Sequence[Sequence[ActiveCandidate]],
        active_threshold: float,
        *,
        exclude: Iterable[str] = (),
    ) -> list[MatchResult]:
        """Tier 1 against the active visits' candidates, then tier 2 against the rest of the
        gallery for the crops tier 1 did not attribute (see the module docstring). Nobody in
        ``exclude`` is considered (people another box of the frame already is)."""
        queries = unit_rows(vectors, self.gallery.dim)
        if len(active) != len(queries):
            raise ValueError(f"{len(queries)} crops but active candidates for {len(active)}")
        skip = set(exclude)
        if skip:
            active = [[c for c in found if c.person_id not in skip] for found in active]
        pairs = sorted(
            (
                (c.score, c.appearance, crop, c.person_id)
                for crop, found in enumerate(active)
                for c in found
                if c.appearance >= self.threshold + c.bar or c.score >= active_threshold
            ),
            key=lambda pair: (-pair[0], -pair[1], pair[2]),
        )
        results: list[MatchResult | None] = [None] * len(queries)
        taken: set[str] = set()
        for _, appearance, crop, person_id in pairs:
            if results[crop] is not None or person_id in taken:
                continue
            taken.add(person_id)
            if appearance >= self.threshold:
                runner = max(
                    (
                        (c.appearance, c.person_id)
                        for c in active[crop]
                        if c.person_id not in taken and c.appearance >= self.uncertain_threshold
                    ),
                    default=(0.0, None),
                )
                results[crop] = MatchResult(
                    person_id, appearance, MatchStatus.MATCHED, runner[1], runner[0]
                )
            else:
                results[crop] = MatchResult(
                    person_id, appearance, MatchStatus.UNCERTAIN, person_id, appearance
                )
        rest = [crop for crop, result in enumerate(results) if result is None]
        if rest:
            decided = taken | skip | {c.person_id for found in active for c in found}
            ranked = self.gallery.search_many(queries[rest], top_k=len(rest) + 2 + len(decided))
            others = [[(pid, sim) for pid, sim in r if pid not in decided] for r in ranked]
            best = _best_similarities(ranked)
            for crop, result in zip(rest, self.assign(others, best=best), strict=True):
                results[crop] = result
        return [result for result in results if result is not None]

    def assign(
        self,
        candidates: Sequence[Candidates],
        is_active: Callable[[str], bool] = _never_active,
        *,
        best: Sequence[float] | None = None,
    ) -> list[MatchResult]:
        """Greedy one-to-one assignment of crops to identities, most similar pairs first.

        A crop nobody is close to is NEW, with ``best[crop]`` as its similarity: the best
        similarity to anyone in the gallery, including people left out of ``candidates``
        (another box of the frame, someone tier 1 already ruled on); by default the best in
        ``candidates``."""
        pairs = sorted(
            (
                (similarity, crop, rank, person_id)
                for crop, ranked in enumerate(candidates)
                for rank, (person_id, similarity) in enumerate(ranked)
                if similarity >= self.uncertain_threshold
            ),
            key=lambda pair: (-pair[0], pair[1], pair[2]),
        )
        results: list[MatchResult | None] = [None] * len(candidates)
        taken: set[str] = set()
        for similarity, crop, rank, person_id in pairs:
            if results[crop] is not None or person_id in taken:
                continue
            if similarity >= self.threshold:
                taken.add(person_id)
                runner_id, runner_sim = self._runner_up(candidates[crop], rank, taken)
                results[crop] = MatchResult(
                    person_id, similarity, MatchStatus.MATCHED, runner_id, runner_sim
                )
            elif self.policy.attributes(is_active(person_id)):
                taken.add(person_id)
                results[crop] = MatchResult(
                    person_id, similarity, MatchStatus.UNCERTAIN, person_id, similarity
                )
            else:
                results[crop] = MatchResult(
                    None, similarity, MatchStatus.UNCERTAIN, person_id, similarity
                )
        final: list[MatchResult] = []
        for crop, result in enumerate(results):
            if result is None:
                closest = best[crop] if best is not None else _best_similarity(candidates[crop])
                result = MatchResult(None, closest, MatchStatus.NEW)
            final.append(result)
        return final

    def _runner_up(
        self, ranked: Candidates, chosen_rank: int, taken: set[str]
    ) -> tuple[str | None, float]:
        """The next free identity close enough to make the decision ambiguous, for reporting."""
        for rank, (person_id, similarity) in enumerate(ranked):
            if similarity < self.uncertain_threshold:
                break
            if rank != chosen_rank and person_id not in taken:
                return person_id, similarity
        return None, 0.0


def parse_adjacency(raw: Mapping[str, Any] | None) -> dict[str, dict[str, TransitRange]]:
    """``match.adjacency`` as validated by the config schema -> camera -> neighbour -> range.

    Each camera lists its neighbours either as a list of names, or as a mapping of name to
    ``null`` (time unknown), ``seconds`` (at most that long; the fastest is ``min_transit_s``) or
    ``[fastest, slowest]`` seconds.
    """
    out: dict[str, dict[str, TransitRange]] = {}
    for camera, others in (raw or {}).items():
        entries: dict[str, TransitRange] = {}
        if isinstance(others, Mapping):
            for other, transit in others.items():
                if transit is None:
                    entries[str(other)] = None
                elif isinstance(transit, int | float):
                    entries[str(other)] = (None, float(transit))
                else:
                    low, high = (float(v) for v in transit)
                    entries[str(other)] = (low, high)
        else:
            entries = {str(other): None for other in others}
        out[str(camera)] = entries
    return out


# Tier-1 threshold per ReID model when ``match.active_threshold`` is not set: the cosine at which
# 1% of crop-vs-stranger identity comparisons match (eval/thresholds.json "identity_far_0.01",
# calibrated on CUHK03 train; the dedup scenario tuned 0.42 for retail-0277 independently). It
# does not follow the gallery threshold: loosening the gallery must not loosen the active tier.
DEFAULT_ACTIVE_THRESHOLDS: dict[str, float] = {
    "person-reidentification-retail-0277": 0.416,
    "person-reidentification-retail-0286": 0.366,
    "person-reidentification-retail-0287": 0.349,
    "person-reidentification-retail-0288": 0.410,
    "person-reidentification-retail-0267": 0.365,
    "osnet_x0_25_msmt17": 0.674,
}


# With ``match.camera_centering`` the scores live in another space (per-camera centred vectors) and
# need their own thresholds: (gallery, tier 1) per model. For retail-0277 the centred cosines at
# 1% / 0.1% / 0.01% false matches per identity comparison on CUHK03 train are 0.280 / 0.389 /
# 0.508 (docs/quality.md); the dedup scenario on train (eval.scenario) chose tier 1 at 0.30 and
# the gallery at 0.55: at 0.389 the gallery merged strangers (identity purity 0.89). Models
# without an entry keep their uncentred thresholds.
CENTERED_THRESHOLDS: dict[str, tuple[float, float]] = {
    "person-reidentification-retail-0277": (0.55, 0.30),
}


def gallery_threshold(
    configured: float | None, model: str, default: float, *, centered: bool = False
) -> float:
    """The tier-2 threshold: ``match.threshold`` if set, else the model's (centred) default."""
    if configured is not None:
        return float(configured)
    if centered and model in CENTERED_THRESHOLDS:
        return CENTERED_THRESHOLDS[model][0]
    return float(default)


class CameraCentering:
    """Per-camera running mean of raw embeddings, subtracted from each camera's crops.

    ``apply(camera, vectors)`` first folds the raw unit vectors into that camera's mean, then
    returns the vectors minus the mean, re-normalised. With a ``prior`` (the model's mean on
    ordinary street video, ``models.priors``) every camera starts from it as if it had already
    seen ``prior_weight`` crops, so centering applies from the first crop and the camera's own
    people take over gradually; a camera's mean is a cumulative mean up to ``horizon`` crops, then
    exponential with weight 1/horizon, so it follows slow changes such as day and night. Without a
    prior a camera's vectors pass unchanged until it has seen ``warmup`` crops.

    ``state()``/``restore()`` give the means to the store, so a restart continues in the same
    centred space as the stored exemplars.
    """

    def __init__(
        self,
        warmup: int = 50,
        horizon: int = 2000,
        *,
        prior: npt.ArrayLike | None = None,
        prior_weight: int = 5,
    ) -> None:
        if warmup < 0 or horizon < 1 or prior_weight < 1:
            raise ValueError(
                "warmup must be >= 0, horizon and prior_weight >= 1, got "
                f"{warmup}, {horizon}, {prior_weight}"
            )
        self.warmup = int(warmup)
        self.horizon = int(horizon)
        self.prior = None if prior is None else np.asarray(prior, dtype=np.float64).ravel()
        self.prior_weight = int(prior_weight)
        self._means: dict[str, npt.NDArray[np.float64]] = {}
        self._counts: dict[str, int] = {}
        self._changed: set[str] = set()

    def seen(self, camera: str) -> int:
        """How many crops ``camera`` contributed to its mean."""
        return self._counts.get(camera, 0)

    def mean(self, camera: str) -> npt.NDArray[np.float32] | None:
        """The camera's current mean, or None while it is warming up (no prior)."""
        mean = self._means.get(camera)
        if mean is None:
            return None if self.prior is None else self.prior.astype(np.float32)
        if self.prior is None and self.seen(camera) < max(1, self.warmup):
            return None
        return mean.astype(np.float32)

    def update(self, camera: str, vectors: npt.NDArray[np.float32]) -> None:
        mean = self._means.get(camera)
        count = self._counts.get(camera, 0)
        offset = 0 if self.prior is None else self.prior_weight
        if mean is None and self.prior is not None:
            if self.prior.shape != (vectors.shape[1],):
                raise ValueError(
                    f"centering prior has {self.prior.size} values, embeddings {vectors.shape[1]}"
                )
            mean = self.prior.copy()
        for row in vectors.astype(np.float64):
            count += 1
            if mean is None:
                mean = row.copy()
            else:
                mean += (row - mean) / min(count + offset, self.horizon)
        if mean is not None and count:
            self._means[camera] = mean
            self._counts[camera] = count
            self._changed.add(camera)

    def apply(self, camera: str, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Fold ``vectors`` (unit rows) into the camera's mean and return them centred."""
        self.update(camera, vectors)
        return self.centre(camera, vectors)

    def centre(
        self, camera: str | None, vectors: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """``vectors`` centred with the camera's current mean (the prior for ``camera=None``),
        without learning from them; unchanged while there is no mean."""
        mean: npt.NDArray[np.float32] | None
        if camera is None:
            mean = None if self.prior is None else self.prior.astype(np.float32)
        else:
            mean = self.mean(camera)
        if mean is None:
            return vectors
        centred: npt.NDArray[np.float32] = (vectors - mean).astype(np.float32)
        norms = np.linalg.norm(centred, axis=1, keepdims=True)
        out: npt.NDArray[np.float32] = (centred / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    def take_changed(self) -> dict[str, tuple[int, npt.NDArray[np.float32]]]:
        """The cameras whose mean moved since the last call: (crops seen, mean), for storing."""
        out = {c: (self._counts[c], self._means[c].astype(np.float32)) for c in self._changed}
        self._changed.clear()
        return out

    def restore(self, camera: str, count: int, mean: npt.ArrayLike) -> None:
        """Continue ``camera`` from a stored state (after a restart)."""
        values = np.asarray(mean, dtype=np.float64).ravel()
        if count < 1 or not np.all(np.isfinite(values)):
            raise ValueError(f"stored centering state for {camera} is unusable")
        self._means[camera] = values
        self._counts[camera] = int(count)

    def forget(self, camera: str) -> None:
        """Start ``camera`` over (it was removed or moved)."""
        self._means.pop(camera, None)
        self._counts.pop(camera, None)
        self._changed.discard(camera)


def camera_centering_for(model: str, dim: int) -> CameraCentering:
    """Centering for ``model``: cameras start from its shipped prior mean when there is one."""
    prior = prior_mean(model, dim)
    if prior is None:
        _LOGGER.info(
            "no centering prior for %s: each camera is centred once it has seen 50 people", model
        )
    return CameraCentering(prior=prior)


def centering_enabled(setting: bool | None, model: str) -> bool:
    """``match.camera_centering``: true/false as set; unset (auto) is on for the models whose
    centred thresholds were calibrated (``CENTERED_THRESHOLDS``) and off for the rest."""
    if setting is not None:
        return bool(setting)
    return model in CENTERED_THRESHOLDS


@dataclass(frozen=True, slots=True)
class ActiveTierConfig:
    """Settings of tier 1 (config ``match:``); ``enabled=False`` is the single-tier matcher."""

    enabled: bool = True
    threshold: float | None = None  # None: the model's DEFAULT_ACTIVE_THRESHOLDS entry, or ...
    margin: float = 0.2  # ... for models without one (custom), the gallery threshold - margin
    visit_bank: int = 12  # recent crops kept per active visit (0: exemplars only)
    time_weight: float = 0.05
    place_weight: float = 0.05
    min_transit_s: float = 2.0
    learn_transit: bool = True
    # A person seen on another camera less than this long ago, where the walk between the two
    # takes longer (they do not overlap), is still there: the fused score is vetoed, and only an
    # appearance match at the gallery threshold can still attribute the crop. Walks that are
    # merely faster than usual only lose ``place_weight``. 0: never vetoed.
    veto_within_s: float = 1.0
    adjacency: Adjacency = field(default_factory=dict)

    @classmethod
    def from_config(cls, match_cfg: Mapping[str, Any]) -> ActiveTierConfig:
        """From the validated ``match`` section (keys missing there keep the defaults)."""
        defaults = cls()
        return cls(
            enabled=bool(match_cfg.get("active_tier", defaults.enabled)),
            threshold=match_cfg.get("active_threshold", defaults.threshold),
            margin=float(match_cfg.get("active_margin", defaults.margin)),
            visit_bank=int(match_cfg.get("visit_bank", defaults.visit_bank)),
            time_weight=float(match_cfg.get("time_weight", defaults.time_weight)),
            place_weight=float(match_cfg.get("place_weight", defaults.place_weight)),
            min_transit_s=float(match_cfg.get("min_transit_s", defaults.min_transit_s)),
            learn_transit=bool(match_cfg.get("learn_transit", defaults.learn_transit)),
            veto_within_s=float(match_cfg.get("veto_within_s", defaults.veto_within_s)),
            adjacency=parse_adjacency(match_cfg.get("adjacency")),
        )

    def threshold_for(
        self, gallery_threshold: float, model: str | None = None, *, centered: bool = False
    ) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        if centered and model in CENTERED_THRESHOLDS:
            return CENTERED_THRESHOLDS[model][1]
        if model in DEFAULT_ACTIVE_THRESHOLDS:
            return DEFAULT_ACTIVE_THRESHOLDS[model]
        return max(0.0, gallery_threshold - self.margin)


# Subtracted from the fused score of an impossible walk (``veto_within_s``): more than any
# cosine can make up, so the fused route cannot attribute the crop.
IMPOSSIBLE_PENALTY = 2.0


@dataclass(frozen=True, slots=True)
class ActiveCandidate:
    """One active visit's person as a candidate for one crop."""

    person_id: str
    appearance: float  # best cosine to the person's exemplars and the visit's recent crops
    score: float  # appearance fused with time and place
    # How far above the gallery threshold appearance alone must reach to attribute the crop
    # (the stay penalty: the camera the person was last seen on, not a moment ago).
    bar: float = 0.0


class ActiveTier:
    """Tier 1: the active visits' recent appearance, transit times, and the fused score.

    Owned by ``Identities`` on its thread: it tells the tier which crop joined which visit
    (``remember``), which hand-overs were sure (``transit.observe``) and which visits are gone.
    """

    def __init__(
        self,
        config: ActiveTierConfig,
        gallery: Gallery,
        gallery_threshold: float,
        window_s: float,
        *,
        uncertain_margin: float = 0.1,
        model: str | None = None,
        centered: bool = False,
    ) -> None:
        self.config = config
        self.gallery = gallery
        self.threshold = config.threshold_for(gallery_threshold, model, centered=centered)
        # Staying on the camera a person was last seen on is no hand-over: their crops from
        # there look like them, so a faint resemblance is someone else. Such a crop must score
        # the width of the uncertain band above the active threshold.
        self.stay_penalty = float(uncertain_margin)
        self.window_s = float(window_s)
        self.transit = TransitTimes(
            config.adjacency,
            min_transit_s=config.min_transit_s,
            window_s=window_s,
            learn=config.learn_transit,
        )
        self._banks: dict[str, deque[npt.NDArray[np.float32]]] = {}

    def remember(self, visit_id: str, vector: npt.NDArray[np.float32]) -> None:
        """A crop that was attributed to ``visit_id`` (kept while the visit is active)."""
        if self.config.visit_bank <= 0:
            return
        bank = self._banks.get(visit_id)
        if bank is None:
            bank = self._banks[visit_id] = deque(maxlen=self.config.visit_bank)
        bank.append(vector)

    def move(self, from_visit: str, to_visit: str) -> None:
        """Two visits became one (identities merged): keep the absorbed visit's crops."""
        moved = self._banks.pop(from_visit, None)
        if moved is not None:
            for vector in moved:
                self.remember(to_visit, vector)

    def forget(self, visit_id: str) -> None:
        self._banks.pop(visit_id, None)

    def keep_only(self, visit_ids: Iterable[str]) -> None:
        """Drop the crops of every visit not in ``visit_ids`` (ended or forgotten ones)."""
        keep = set(visit_ids)
        for visit_id in [v for v in self._banks if v not in keep]:
            del self._banks[visit_id]

    def candidates(
        self,
        queries: npt.NDArray[np.float32],
        camera: str,
        timestamp: float,
        visits: Sequence[Visit],
        *,
        reacquire_s: float = 0.0,
    ) -> list[list[ActiveCandidate]]:
        """For each query row, every active visit's person with appearance and fused score.

        The stay penalty is waived for a person seen on this camera at most ``reacquire_s``
        ago: with per-track decisions, a new track there so soon is most often the same person
        picked up again after an occlusion (their old track, if still in the frame, already
        holds them and is not offered). Later, for tracks (``reacquire_s`` > 0), it applies to
        the appearance route too (``ActiveCandidate.bar``)."""
        out: list[list[ActiveCandidate]] = [[] for _ in range(len(queries))]
        for visit in visits:
            bank = self.gallery.exemplars(visit.person_id)
            recent = self._banks.get(visit.visit_id)
            if recent:
                bank = (
                    np.concatenate([bank, np.stack(list(recent))])
                    if len(bank)
                    else np.stack(list(recent))
                )
            if len(bank) == 0:
                continue
            appearance = (queries @ bank.T).max(axis=1)
            elapsed = timestamp - visit.last_seen
            prior = self.config.place_weight * self.transit.plausibility(
                visit.last_camera, camera, elapsed
            ) - self.config.time_weight * min(1.0, abs(elapsed) / self.window_s)
            if abs(elapsed) < self.config.veto_within_s and self.transit.impossible(
                visit.last_camera, camera, elapsed
            ):
                prior -= IMPOSSIBLE_PENALTY
            bar = 0.0
            if visit.last_camera == camera and (reacquire_s <= 0 or elapsed > reacquire_s):
                prior -= self.stay_penalty
                # A new track (video) on the camera the person left a while ago: appearance
                # alone must clear the same margin (stills keep the gallery threshold).
                bar = self.stay_penalty if reacquire_s > 0 else 0.0
            for row, similarity in enumerate(appearance):
                out[row].append(
                    ActiveCandidate(
                        visit.person_id, float(similarity), float(similarity) + prior, bar
                    )
                )
        return out
