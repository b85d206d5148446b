"""The global cross-camera gallery: every identity's exemplar embeddings, searchable at once.

One gallery serves all cameras, which is what lets a person first seen at the front door be
recognised in the garden. Exemplars live in one contiguous float32 matrix so a search is a single
BLAS matrix-vector product; the matrix grows geometrically (doubling) so adding an exemplar is
amortised O(dim), and removing one moves the last row into the hole, so the matrix never has gaps.

A person's similarity to a query is the maximum over their exemplars. Only the best few persons
are needed, and a person owns at most ``per_person_bound`` rows, so the first ``top_k`` distinct
owners in descending similarity order all lie within the best ``top_k * per_person_bound`` rows:
an ``argpartition`` over the similarities finds them without a per-person reduction over the whole
gallery (bench/bench_gallery.py measures this against ``np.maximum.at`` and a Python loop).

Each exemplar carries an integer key so the store can mirror additions, replacements and removals
row for row. The gallery is not thread-safe: it is owned by the identities worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_LOGGER = logging.getLogger(__name__)

type FloatMatrix = npt.NDArray[np.float32]
type Candidates = list[tuple[str, float]]

_MIN_CAPACITY = 64


class GalleryError(ValueError):
    """A vector or request the gallery cannot use (wrong size, not finite, unknown person)."""


@dataclass(frozen=True, slots=True)
class ExemplarChange:
    """What ``add_exemplar`` did; true when the vector was stored.

    ``replaced_key`` names the exemplar that made room for it when the person's set was full.
    """

    added: bool
    key: int | None = None
    replaced_key: int | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.added


def unit_rows(vectors: npt.ArrayLike, dim: int) -> FloatMatrix:
    """Rows as float32 unit vectors; raises GalleryError naming what is wrong with the input."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != dim:
        raise GalleryError(f"expected {dim}-d embeddings, got an array of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise GalleryError("embedding contains NaN or infinite values; check the ReID model output")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms < 1e-12):
        raise GalleryError("embedding is all zeros; the ReID model produced no signal")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def _most_redundant(vectors: FloatMatrix) -> int:
    """Index of the row whose removal keeps the set most diverse.

    That is one end of the closest pair; of the two, the one closer on average to the rest.
    """
    gram = vectors @ vectors.T
    np.fill_diagonal(gram, -np.inf)
    nearest = gram.max(axis=1)
    np.fill_diagonal(gram, 0.0)
    mean = gram.sum(axis=1) / max(1, len(vectors) - 1)
    order = np.lexsort((mean, nearest))
    return int(order[-1])


class Gallery:
    """Exemplar embeddings of every known identity, with diversity-preserving updates.

    ``len(gallery)`` is the number of exemplars (rows); ``person_count`` the number of identities.
    """

    def __init__(
        self,
        dim: int,
        *,
        max_exemplars: int = 8,
        exemplar_min_distance: float = 0.08,
        initial_capacity: int = 1024,
    ) -> None:
        if dim < 1:
            raise GalleryError(f"embedding dimension must be positive, got {dim}")
        if max_exemplars < 1:
            raise GalleryError(f"max_exemplars must be at least 1, got {max_exemplars}")
        self.dim = dim
        self.max_exemplars = max_exemplars
        self.exemplar_min_distance = float(exemplar_min_distance)
        capacity = max(_MIN_CAPACITY, initial_capacity)
        self._vectors: FloatMatrix = np.zeros((capacity, dim), dtype=np.float32)
        self._owners = np.zeros(capacity, dtype=np.int32)
        self._keys = np.zeros(capacity, dtype=np.int64)
        self._size = 0
        self._ids: list[str | None] = []  # owner index -> person id
        self._index: dict[str, int] = {}  # person id -> owner index
        self._rows: dict[int, list[int]] = {}  # owner index -> rows it owns
        self._free_owners: list[int] = []
        self._next_key = 1
        # Upper bound on rows per person (loaded data may exceed max_exemplars).
        self.per_person_bound = max_exemplars

    # ----------------------------------------------------------------- inspection
    def __len__(self) -> int:
        return self._size

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._index

    @property
    def person_count(self) -> int:
        return len(self._index)

    @property
    def capacity(self) -> int:
        return int(self._vectors.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the matrix and its parallel arrays (allocated capacity)."""
        return int(self._vectors.nbytes + self._owners.nbytes + self._keys.nbytes)

    def person_ids(self) -> list[str]:
        return list(self._index)

    def exemplar_count(self, person_id: str) -> int:
        owner = self._index.get(person_id)
        return 0 if owner is None else len(self._rows[owner])

    def exemplar_counts(self) -> dict[str, int]:
        return {pid: len(self._rows[owner]) for pid, owner in self._index.items()}

    def exemplars(self, person_id: str) -> FloatMatrix:
        """A copy of the person's exemplars (empty when unknown)."""
        owner = self._index.get(person_id)
        if owner is None:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._vectors[self._rows[owner]].copy()

    def exemplar_keys(self, person_id: str) -> list[int]:
        owner = self._index.get(person_id)
        return [] if owner is None else [int(self._keys[r]) for r in self._rows[owner]]

    @property
    def next_key(self) -> int:
        return self._next_key

    def reserve_keys(self, above: int) -> None:
        """Make sure new exemplar keys are larger than ``above`` (keys already used in the store)."""
        self._next_key = max(self._next_key, int(above) + 1)

    # ----------------------------------------------------------------- search
    def search(self, vector: npt.ArrayLike, top_k: int = 5) -> Candidates:
        """The ``top_k`` most similar persons, best first, as (person_id, cosine similarity)."""
        return self.search_many(unit_rows(vector, self.dim), top_k)[0]

    def search_many(self, vectors: npt.ArrayLike, top_k: int = 5) -> list[Candidates]:
        """``search`` for several queries (one frame's crops) with one matrix product."""
        queries = unit_rows(vectors, self.dim)
        if self._size == 0 or top_k < 1:
            return [[] for _ in range(len(queries))]
        active = self._vectors[: self._size]
        # One query: a matrix-vector product (gemv) is faster than a one-column gemm.
        single = len(queries) == 1
        scores = (active @ queries[0]).reshape(-1, 1) if single else active @ queries.T
        return [self._top_persons(scores[:, column], top_k) for column in range(len(queries))]

    def _top_persons(self, scores: FloatMatrix, top_k: int) -> Candidates:
        n = len(scores)
        wanted = min(n, top_k * self.per_person_bound)
        if wanted < n:
            rows = np.argpartition(scores, n - wanted)[n - wanted :]
            rows = rows[np.argsort(-scores[rows], kind="stable")]
        else:
            rows = np.argsort(-scores, kind="stable")
        result: Candidates = []
        seen: set[int] = set()
        owners = self._owners
        for row in rows:
            owner = int(owners[row])
            if owner in seen:
                continue
            seen.add(owner)
            person_id = self._ids[owner]
            assert person_id is not None
            result.append((person_id, float(scores[row])))
            if len(result) == top_k:
                break
        return result

    # ----------------------------------------------------------------- updates
    def add_exemplar(
        self, person_id: str, vector: npt.ArrayLike, *, key: int | None = None
    ) -> ExemplarChange:
        """Offer an exemplar; stored only if it adds diversity to the person's set.

        Rejected when it is within ``exemplar_min_distance`` (cosine distance) of a stored one.
        When the set is full, the most redundant member of (set + new) is dropped; if that is the
        new vector itself, nothing changes. An unknown ``person_id`` becomes a new identity.
        """
        unit = unit_rows(vector, self.dim)[0]
        owner = self._index.get(person_id)
        if owner is not None:
            rows = self._rows[owner]
            stored = self._vectors[rows]
            closest = float(np.max(stored @ unit))
            if 1.0 - closest < self.exemplar_min_distance:
                return ExemplarChange(False, reason="near-duplicate of a stored exemplar")
            if len(rows) >= self.max_exemplars:
                victim = _most_redundant(np.vstack([stored, unit[None, :]]))
                if victim == len(rows):
                    return ExemplarChange(False, reason="would make the exemplar set less diverse")
                row = rows[victim]
                replaced = int(self._keys[row])
                new_key = self._take_key(key)
                self._vectors[row] = unit
                self._keys[row] = new_key
                return ExemplarChange(True, new_key, replaced)
        new_key = self._take_key(key)
        self._append(self._owner_for(person_id), unit, new_key)
        return ExemplarChange(True, new_key)

    def remove(self, person_id: str) -> list[int]:
        """Forget a person; returns the keys of the exemplars that were dropped."""
        owner = self._index.pop(person_id, None)
        if owner is None:
            return []
        rows = self._rows.pop(owner)
        keys = [int(self._keys[r]) for r in rows]
        self._delete_rows(rows)
        self._ids[owner] = None
        self._free_owners.append(owner)
        return keys

    def merge(self, keep: str, drop: str) -> list[int]:
        """Fold ``drop``'s exemplars into ``keep``, trimming back to ``max_exemplars``.

        Returns the keys of the exemplars that were discarded to stay within the limit; every
        other exemplar of ``drop`` now belongs to ``keep`` under its old key.
        """
        if keep == drop:
            raise GalleryError("cannot merge a person into themselves")
        if drop not in self._index:
            return []
        keep_owner = self._owner_for(keep)
        drop_owner = self._index.pop(drop)
        moved = self._rows.pop(drop_owner)
        self._owners[moved] = keep_owner
        self._rows[keep_owner].extend(moved)
        self._ids[drop_owner] = None
        self._free_owners.append(drop_owner)
        discarded: list[int] = []
        rows = self._rows[keep_owner]
        while len(rows) > self.max_exemplars:
            victim_row = rows[_most_redundant(self._vectors[rows])]
            discarded.append(int(self._keys[victim_row]))
            self._delete_rows([victim_row], keep_owner)
            rows = self._rows[keep_owner]
        return discarded

    def load(
        self,
        person_ids: Sequence[str],
        vectors: npt.ArrayLike,
        keys: Sequence[int] | None = None,
    ) -> None:
        """Replace the whole content (start-up from the store): row i belongs to person_ids[i].

        Sets are taken as stored even when larger than ``max_exemplars`` (the limit may have been
        lowered); later additions then replace members one at a time.
        """
        if len(person_ids):
            matrix = unit_rows(vectors, self.dim)
        else:
            matrix = np.zeros((0, self.dim), dtype=np.float32)
        if len(matrix) != len(person_ids) or (keys is not None and len(keys) != len(person_ids)):
            raise GalleryError(
                f"load got {len(person_ids)} owners, {len(matrix)} vectors and "
                f"{'no' if keys is None else len(keys)} keys; they must be the same length"
            )
        self._ids, self._index, self._rows, self._free_owners = [], {}, {}, []
        self._size = 0
        self._ensure_capacity(len(matrix))
        owner_list = [self._owner_for(pid) for pid in person_ids]
        n = len(matrix)
        self._vectors[:n] = matrix
        self._owners[:n] = np.asarray(owner_list, dtype=np.int32)
        if keys is None:
            self._keys[:n] = np.arange(self._next_key, self._next_key + n, dtype=np.int64)
        else:
            self._keys[:n] = np.asarray(keys, dtype=np.int64)
        self._size = n
        for row, owner in enumerate(owner_list):
            self._rows[owner].append(row)
        if n:
            self._next_key = max(self._next_key, int(self._keys[:n].max()) + 1)
        largest = max((len(rows) for rows in self._rows.values()), default=0)
        self.per_person_bound = max(self.max_exemplars, largest)

    # ----------------------------------------------------------------- internals
    def _take_key(self, key: int | None) -> int:
        if key is None:
            key = self._next_key
        self._next_key = max(self._next_key, key + 1)
        return key

    def _owner_for(self, person_id: str) -> int:
        owner = self._index.get(person_id)
        if owner is not None:
            return owner
        if self._free_owners:
            owner = self._free_owners.pop()
            self._ids[owner] = person_id
        else:
            owner = len(self._ids)
            self._ids.append(person_id)
        self._index[person_id] = owner
        self._rows[owner] = []
        return owner

    def _ensure_capacity(self, needed: int) -> None:
        capacity = self.capacity
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        vectors = np.zeros((capacity, self.dim), dtype=np.float32)
        vectors[: self._size] = self._vectors[: self._size]
        owners = np.zeros(capacity, dtype=np.int32)
        owners[: self._size] = self._owners[: self._size]
        keys = np.zeros(capacity, dtype=np.int64)
        keys[: self._size] = self._keys[: self._size]
        self._vectors, self._owners, self._keys = vectors, owners, keys
        _LOGGER.debug("gallery grown to %d rows", capacity)

    def _append(self, owner: int, unit: FloatMatrix, key: int) -> None:
        self._ensure_capacity(self._size + 1)
        row = self._size
        self._vectors[row] = unit
        self._owners[row] = owner
        self._keys[row] = key
        self._rows[owner].append(row)
        self._size += 1

    def _delete_rows(self, rows: Sequence[int], owner: int | None = None) -> None:
        """Drop rows by moving the last row into each hole (highest first, so holes never move).

        ``owner``: whose row lists still mention ``rows`` (None when already detached).
        """
        doomed = set(rows)
        if owner is not None:
            self._rows[owner] = [r for r in self._rows[owner] if r not in doomed]
        for row in sorted(doomed, reverse=True):
            last = self._size - 1
            if row != last:
                moved_owner = int(self._owners[last])
                self._vectors[row] = self._vectors[last]
                self._owners[row] = moved_owner
                self._keys[row] = self._keys[last]
                owner_rows = self._rows[moved_owner]
                owner_rows[owner_rows.index(last)] = row
            self._size -= 1
