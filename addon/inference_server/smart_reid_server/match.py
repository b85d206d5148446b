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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

import numpy.typing as npt

from .gallery import Candidates, Gallery, unit_rows
from .types import MatchResult, MatchStatus


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
        self, vectors: npt.ArrayLike, is_active: Callable[[str], bool] = _never_active
    ) -> list[MatchResult]:
        """Match the crops of one frame together: no two get the same identity."""
        queries = unit_rows(vectors, self.gallery.dim)
        top_k = len(queries) + 2  # enough for every crop to fall back past the others' picks
        return self.assign(self.gallery.search_many(queries, top_k=top_k), is_active)

    def assign(
        self, candidates: Sequence[Candidates], is_active: Callable[[str], bool] = _never_active
    ) -> list[MatchResult]:
        """Greedy one-to-one assignment of crops to identities, most similar pairs first."""
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
                # Similarity to the closest identity still free (those taken are someone else).
                free = [sim for pid, sim in candidates[crop] if pid not in taken]
                result = MatchResult(None, max(0.0, free[0]) if free else 0.0, MatchStatus.NEW)
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
