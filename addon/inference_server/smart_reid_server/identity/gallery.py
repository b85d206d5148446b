"""The global cross-camera gallery: every identity's exemplar embeddings, searchable at once.

One gallery serves all cameras, which is what lets a person first seen at the front door be
recognised in the garden. Exemplars live in one contiguous float32 matrix; the matrix grows
geometrically (doubling) so adding an exemplar is amortised O(dim), and removing one moves the last
row into the hole, so the matrix never has gaps.

A person's similarity to a query is the maximum over their exemplars. Only the best few persons
are needed, and a person owns at most ``per_person_bound`` rows, so the first ``top_k`` distinct
owners in descending similarity order all lie within the best ``top_k * per_person_bound`` rows:
an ``argpartition`` over the similarities finds them without a per-person reduction over the whole
gallery.

Large galleries are memory-bound: at 100k exemplars one float32 pass reads 100 MB. So from
``scan_min_rows`` exemplars on, a search first scans an int8 copy of the matrix (a quarter of the
bytes, onnxruntime's MatMulInteger kernel), then re-scores the best rows exactly in float32. The
answer stays exact, not approximate: quantisation error is bounded per row (Cauchy-Schwarz), and
rows are re-scored until no unscored row could still reach the k-th person's exact score
(``_certified_top``). bench/bench_gallery.py measures both paths against a naive loop.

Each exemplar carries an integer key so the store can mirror additions, replacements and removals
row for row. The gallery is not thread-safe: it is owned by the identities worker thread.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

_LOGGER = logging.getLogger(__name__)

type FloatMatrix = npt.NDArray[np.float32]
type Rows = npt.NDArray[np.intp]
type Candidates = list[tuple[str, float]]

_MIN_CAPACITY = 64
# Below this many exemplars the float32 product takes well under a millisecond and the int8
# scan's fixed costs (about 0.1 ms) are not worth paying; measured crossover 6k-8k rows.
SCAN_MIN_ROWS = 8192
# Rows re-scored beyond top_k * per_person_bound before the first certification attempt.
_SCAN_SPARE = 32
# Float32 rounding of scaled int32 dots and of the exact re-score; far below the int8 error.
_SCAN_SLACK = 1e-4
_LOAD_CHUNK = 8192


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


# --------------------------------------------------------------------- int8 scan
@dataclass(slots=True)
class ScanStats:
    """What the int8 scan path did since the gallery was made (benchmarks and tests read it).

    ``widened``: searches whose first re-scored rows could not certify the answer on their own;
    ``full``: searches that ended up scoring every row exactly.
    """

    searches: int = 0
    rescored: int = 0
    widened: int = 0
    full: int = 0


@dataclass(frozen=True, slots=True)
class Quantised:
    """Rows as symmetric int8 codes times a per-row scale, and how far that is from the rows.

    ``error[i]`` is the Euclidean norm of row i minus its reconstruction ``codes[i] * scale[i]``;
    ``norm[i]`` the norm of the reconstruction. For unit vectors q, x the exact similarity then
    lies within ``error_q + norm_q * error_x`` of the quantised one.
    """

    codes: npt.NDArray[np.int8]
    scale: npt.NDArray[np.float32]
    error: npt.NDArray[np.float64]
    norm: npt.NDArray[np.float64]


def quantise(units: FloatMatrix) -> Quantised:
    """Symmetric per-row int8 quantisation of unit rows, with its error bounds."""
    scale = (np.abs(units).max(axis=1) / 127.0).astype(np.float32)
    codes = np.clip(np.rint(units / scale[:, None]), -127, 127).astype(np.int8)
    rebuilt = codes * scale[:, None].astype(np.float64)
    error = np.linalg.norm(units - rebuilt, axis=1)
    return Quantised(codes, scale, error, np.linalg.norm(rebuilt, axis=1))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _msg(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _tensor_info(name: str, elem_type: int, dims: Sequence[int | str]) -> bytes:
    """ONNX ValueInfoProto{name=1, type=2: TypeProto{tensor_type=1: {elem_type=1, shape=2}}}."""
    shape = b"".join(_msg(1, _int(1, d) if isinstance(d, int) else _msg(2, d)) for d in dims)
    return _msg(1, name) + _msg(2, _msg(1, _int(1, elem_type) + _msg(2, shape)))


def _matmul_integer_model(dim: int) -> bytes:
    """A one-node ONNX model, ``dots = (gallery - zero) @ queries`` in int32, serialised by hand.

    The product depends on onnxruntime but not on the ``onnx`` package, so the few protobuf fields
    are written here directly (field numbers from onnx.proto; element types 2 uint8, 3 int8,
    6 int32). Inputs: gallery uint8 [n, dim] (int8 code + 128), queries int8 [dim, q], zero uint8
    scalar (128).
    """
    node = _msg(1, "gallery") + _msg(1, "queries") + _msg(1, "zero")
    node += _msg(2, "dots") + _msg(4, "MatMulInteger")
    graph = _msg(1, node) + _msg(2, "gallery_scan")
    graph += _msg(11, _tensor_info("gallery", 2, ["n", dim]))
    graph += _msg(11, _tensor_info("queries", 3, [dim, "q"]))
    graph += _msg(11, _tensor_info("zero", 2, []))
    graph += _msg(12, _tensor_info("dots", 6, ["n", "q"]))
    return _int(1, 7) + _msg(7, graph) + _msg(8, _msg(1, "") + _int(2, 13))


@functools.cache
def _scan_session(dim: int) -> Any:
    """The onnxruntime session for ``dim``-d scans, one per process; single-threaded so a search
    never competes with the detector and ReID inference for the other core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(
        _matmul_integer_model(dim), options, providers=["CPUExecutionProvider"]
    )


_ZERO_POINT = np.array(128, dtype=np.uint8)


def _best_rows(scores: FloatMatrix, count: int) -> Rows:
    n = len(scores)
    if count >= n:
        return np.arange(n)
    return np.argpartition(scores, n - count)[n - count :]


class Gallery:
    """Exemplar embeddings of every known identity, with diversity-preserving updates.

    ``len(gallery)`` is the number of exemplars (rows); ``person_count`` the number of identities.
    ``scan_min_rows``: from this many exemplars on, searches scan int8 codes first (same results).
    """

    def __init__(
        self,
        dim: int,
        *,
        max_exemplars: int = 8,
        exemplar_min_distance: float = 0.08,
        initial_capacity: int = 1024,
        scan_min_rows: int = SCAN_MIN_ROWS,
    ) -> None:
        if dim < 1:
            raise GalleryError(f"embedding dimension must be positive, got {dim}")
        if max_exemplars < 1:
            raise GalleryError(f"max_exemplars must be at least 1, got {max_exemplars}")
        self.dim = dim
        self.max_exemplars = max_exemplars
        self.exemplar_min_distance = float(exemplar_min_distance)
        self.scan_min_rows = scan_min_rows
        capacity = max(_MIN_CAPACITY, initial_capacity)
        self._vectors: FloatMatrix = np.zeros((capacity, dim), dtype=np.float32)
        self._owners: npt.NDArray[np.int32] = np.zeros(capacity, dtype=np.int32)
        self._keys: npt.NDArray[np.int64] = np.zeros(capacity, dtype=np.int64)
        # int8 codes stored as uint8 (code + 128): the layout MatMulInteger is fastest with.
        self._codes: npt.NDArray[np.uint8] = np.zeros((capacity, dim), dtype=np.uint8)
        self._code_scale: npt.NDArray[np.float32] = np.zeros(capacity, dtype=np.float32)
        # Largest quantisation error of any row since the last load (never lowered in between:
        # a stale, larger bound only means re-scoring a few more rows).
        self._code_error = 0.0
        self._scan_failed = False
        self.scan_stats = ScanStats()
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
        """Memory held by the matrix, its int8 copy and the parallel arrays (allocated capacity)."""
        return sum(array.nbytes for array in self._row_arrays())

    @property
    def scanning(self) -> bool:
        """Whether searches currently take the int8 scan path."""
        return self._size >= self.scan_min_rows and not self._scan_failed

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

    def nearest_exemplars(
        self, vector: npt.ArrayLike, count: int
    ) -> tuple[list[str], FloatMatrix, FloatMatrix]:
        """The ``count`` exemplars closest to ``vector`` (exact float32 scan), best first: their
        owners, cosine similarities and vectors. For on-demand search, not per-crop matching."""
        query = unit_rows(vector, self.dim)[0]
        if self._size == 0 or count < 1:
            empty = np.zeros((0, self.dim), dtype=np.float32)
            return [], np.zeros(0, dtype=np.float32), empty
        scores = self._vectors[: self._size] @ query
        rows = _best_rows(scores, count)
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        owners = [self._ids[int(self._owners[r])] for r in rows]
        return (
            [o for o in owners if o is not None],
            scores[rows].astype(np.float32),
            self._vectors[rows].copy(),
        )

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
        return self._search(unit_rows(vector, self.dim), top_k)[0]

    def search_many(self, vectors: npt.ArrayLike, top_k: int = 5) -> list[Candidates]:
        """``search`` for several queries (one frame's crops) with one pass over the gallery."""
        return self._search(unit_rows(vectors, self.dim), top_k)

    def _search(self, queries: FloatMatrix, top_k: int) -> list[Candidates]:
        if self._size == 0 or top_k < 1:
            return [[] for _ in range(len(queries))]
        if self.scanning:
            try:
                return self._scan_search(queries, top_k)
            except Exception as err:  # onnxruntime missing or refusing: exact search still works
                self._scan_failed = True
                _LOGGER.warning(
                    "int8 gallery scan unavailable (%s); searching the float32 matrix instead, "
                    "which is exact but slower with many exemplars (check that onnxruntime "
                    "imports in this environment)",
                    err,
                )
        active = self._vectors[: self._size]
        # One query: a matrix-vector product (gemv) is faster than a one-column gemm.
        single = len(queries) == 1
        scores = (active @ queries[0]).reshape(-1, 1) if single else active @ queries.T
        return [self._top_persons(scores[:, column], top_k) for column in range(len(queries))]

    def _top_persons(self, scores: FloatMatrix, top_k: int) -> Candidates:
        """Exact path: every row has its exact score."""
        rows = _best_rows(scores, top_k * self.per_person_bound)
        return self._first_persons(rows, scores[rows], top_k)

    def _first_persons(self, rows: Rows, scores: FloatMatrix, top_k: int) -> Candidates:
        """The first ``top_k`` distinct owners of ``rows`` by descending exact ``scores``."""
        result: Candidates = []
        seen: set[int] = set()
        owners = self._owners
        for i in np.argsort(-scores, kind="stable"):
            owner = int(owners[rows[i]])
            if owner in seen:
                continue
            seen.add(owner)
            person_id = self._ids[owner]
            assert person_id is not None
            result.append((person_id, float(scores[i])))
            if len(result) == top_k:
                break
        return result

    def _scan_search(self, queries: FloatMatrix, top_k: int) -> list[Candidates]:
        n = self._size
        quantised = quantise(queries)
        dots = _scan_session(self.dim).run(
            None,
            {
                "gallery": self._codes[:n],
                "queries": np.ascontiguousarray(quantised.codes.T),
                "zero": _ZERO_POINT,
            },
        )[0]
        approx = np.array(dots.T, dtype=np.float32, order="C")
        approx *= self._code_scale[:n]
        approx *= quantised.scale[:, None]
        bounds = quantised.error + quantised.norm * self._code_error + _SCAN_SLACK
        top_k = min(top_k, self.person_count)  # so the k-th person always exists
        first = top_k * self.per_person_bound + _SCAN_SPARE
        return [
            self._certified_top(approx[j], float(bounds[j]), queries[j], top_k, first)
            for j in range(len(queries))
        ]

    def _certified_top(
        self, approx: FloatMatrix, bound: float, query: FloatMatrix, top_k: int, first: int
    ) -> Candidates:
        """Exact top persons from approximate scores that are each within ``bound`` of the truth.

        Re-scores the best ``first`` rows exactly (at least top_k * per_person_bound, so they hold
        ``top_k`` persons). Every row left out has an approximate score at most ``ceiling``, so
        an exact one below ``ceiling + bound``; once that cannot reach the k-th person's exact
        score, no left-out row could enter the answer or raise a listed person's maximum.
        Otherwise every row that still could is re-scored: the ceiling is then the old k-th
        score minus ``bound``, and the k-th score can only have grown, so the check holds.
        """
        n = len(approx)
        stats = self.scan_stats
        stats.searches += 1
        rows = _best_rows(approx, first)
        ceiling = float(approx[rows].min())
        while 4 * len(rows) <= n:
            found = self._first_persons(rows, self._vectors[rows] @ query, top_k)
            stats.rescored += len(rows)
            if len(found) < top_k:
                break  # only if per_person_bound were wrong; the full product is always right
            kth = found[-1][1]
            if ceiling + bound <= kth:
                return found
            stats.widened += 1
            rows = np.flatnonzero(approx >= kth - bound)
            ceiling = kth - bound
        # Most of the gallery is in doubt (small gallery or look-alike data): score it all.
        stats.full += 1
        stats.rescored += n
        return self._top_persons(self._vectors[:n] @ query, top_k)

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
                self._write_vectors(row, unit[None, :])
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
        self._code_error = 0.0
        self._ensure_capacity(len(matrix))
        owner_list = [self._owner_for(pid) for pid in person_ids]
        n = len(matrix)
        for start in range(0, n, _LOAD_CHUNK):
            self._write_vectors(start, matrix[start : start + _LOAD_CHUNK])
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
    def _row_arrays(self) -> tuple[npt.NDArray[Any], ...]:
        """Every per-row array; a row is moved or grown in all of them together."""
        return (self._vectors, self._owners, self._keys, self._codes, self._code_scale)

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
        self._vectors = self._grown(self._vectors, capacity)
        self._owners = self._grown(self._owners, capacity)
        self._keys = self._grown(self._keys, capacity)
        self._codes = self._grown(self._codes, capacity)
        self._code_scale = self._grown(self._code_scale, capacity)
        _LOGGER.debug("gallery grown to %d rows", capacity)

    def _grown[T: np.generic](self, array: npt.NDArray[T], capacity: int) -> npt.NDArray[T]:
        bigger = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
        bigger[: self._size] = array[: self._size]
        return bigger

    def _write_vectors(self, start: int, units: FloatMatrix) -> None:
        """Store unit rows at ``start`` together with their int8 codes."""
        end = start + len(units)
        self._vectors[start:end] = units
        quantised = quantise(units)
        self._codes[start:end] = quantised.codes.view(np.uint8) ^ np.uint8(0x80)  # code + 128
        self._code_scale[start:end] = quantised.scale
        self._code_error = max(self._code_error, float(quantised.error.max()))

    def _append(self, owner: int, unit: FloatMatrix, key: int) -> None:
        self._ensure_capacity(self._size + 1)
        row = self._size
        self._write_vectors(row, unit[None, :])
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
                for array in self._row_arrays():
                    array[row] = array[last]
                owner_rows = self._rows[moved_owner]
                owner_rows[owner_rows.index(last)] = row
            self._size -= 1
