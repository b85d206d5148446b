"""Gallery search speed at 1k / 10k / 100k exemplars against a naive baseline, same process.

    .venv/bin/python bench/bench_gallery.py [--queries 300] [--sizes 1000 10000 100000]
    OPENBLAS_NUM_THREADS=2 .venv/bin/python bench/bench_gallery.py   # BLAS on both cores

256-d unit vectors, 8 exemplars per person (the default ``match.max_exemplars``), top_k=5.
Timing uses random vectors (speed does not depend on what they show); how many rows the int8
scan has to re-score does, so that part is also measured on real-ish vectors (below). Ways to get
the best persons, timed query by query in turn so load from other processes hits them alike:

- ``gallery``: the product's Gallery.search as configured (float32 below SCAN_MIN_ROWS exemplars,
  the int8 scan with exact re-score from there on);
- ``exact``: Gallery.search forced onto the float32 path (one BLAS matrix-vector product, then
  argpartition of the best top_k * 8 rows and a walk to the first top_k distinct owners);
- ``int8``: Gallery.search forced onto the int8 scan path, at every size;
- ``maximum.at``: the float32 product followed by a per-person ``np.maximum.at`` reduction;
- ``matvec``: the float32 product alone, the floor of every float32 strategy;
- ``naive``: a Python loop over exemplars, one ``np.dot`` each, keeping a per-person maximum in a
  dict; run on at most ``--naive-cap`` exemplars and a few queries, above that extrapolated
  linearly (it is linear in the number of exemplars) and marked with ``~``.

Every answer of ``gallery`` and ``int8`` is checked against ``maximum.at`` before times are
printed. Then a batch of 4 queries (one frame's crops, ``search_many``). Then, on real-ish data,
how often the int8 scan's first re-scored rows certified the exact answer, and how many persons
the int8 scores alone would have got right (the recall an approximate index without the exact
re-score would have). Real-ish vectors are built from real CUHK03 val embeddings
(retail-0277, via tests/server/_embeddings.py): each synthetic person's centre is a mix of two
real embeddings plus a little noise, their exemplars are noisy copies of it; that part is skipped
with a message when the model or the crops are missing.

OpenBLAS defaults to one thread here, as in the server (``python -m smart_reid_server``); the
load average is printed because other work on the box inflates wall times. ``cpu`` columns are
this thread's CPU time, which load affects much less.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addon" / "inference_server"))

from smart_reid_server.identity.gallery import SCAN_MIN_ROWS, Gallery, ScanStats, quantise  # noqa: E402

DIM = 256
PER_PERSON = 8
TOP_K = 5
BATCH = 4
NEVER = 1 << 62

type Vectors = npt.NDArray[np.float32]
type Search = Callable[[Vectors, int], object]


def unit(vectors: npt.NDArray[np.floating]) -> Vectors:
    out = np.array(vectors, dtype=np.float32)
    out /= np.linalg.norm(out, axis=-1, keepdims=True)
    return out


def random_units(rng: np.random.Generator, n: int) -> Vectors:
    return unit(rng.standard_normal((n, DIM), dtype=np.float32))


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def timed(fn: Search, queries: Vectors) -> list[float]:
    fn(queries[0], TOP_K)  # warm caches
    out = []
    for query in queries:
        start = time.perf_counter()
        fn(query, TOP_K)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def interleaved(
    fns: dict[str, Search], queries: Vectors
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and thread-CPU milliseconds of several strategies, timed query by query in turn."""
    for fn in fns.values():
        fn(queries[0], TOP_K)
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for query in queries:
        for name, fn in fns.items():
            cpu_start, start = time.thread_time(), time.perf_counter()
            fn(query, TOP_K)
            wall[name].append((time.perf_counter() - start) * 1e3)
            cpu[name].append((time.thread_time() - cpu_start) * 1e3)
    return wall, cpu


def matvec_only(vectors: Vectors) -> Search:
    def product(query: Vectors, _top_k: int) -> object:
        return vectors @ query

    return product


def maximum_at_search(
    vectors: Vectors, owners: npt.NDArray[np.int64], persons: int
) -> Callable[[Vectors, int], list[tuple[int, float]]]:
    best = np.empty(persons, dtype=np.float32)

    def search(query: Vectors, top_k: int = TOP_K) -> list[tuple[int, float]]:
        scores = vectors @ query
        best.fill(-np.inf)
        np.maximum.at(best, owners, scores)
        top = np.argpartition(best, persons - top_k)[persons - top_k :]
        top = top[np.argsort(-best[top])]
        return [(int(p), float(best[p])) for p in top]

    return search


def naive_search(
    vectors: Vectors, owners: list[int]
) -> Callable[[Vectors, int], list[tuple[int, float]]]:
    rows = list(vectors)

    def search(query: Vectors, top_k: int = TOP_K) -> list[tuple[int, float]]:
        best: dict[int, float] = {}
        for owner, row in zip(owners, rows, strict=True):
            similarity = float(np.dot(row, query))
            if similarity > best.get(owner, -2.0):
                best[owner] = similarity
        return sorted(best.items(), key=lambda item: -item[1])[:top_k]

    return search


def loaded(vectors: Vectors, scan_min_rows: int) -> Gallery:
    gallery = Gallery(DIM, max_exemplars=PER_PERSON, scan_min_rows=scan_min_rows)
    gallery.load([f"p{i // PER_PERSON}" for i in range(len(vectors))], vectors)
    return gallery


def check(name: str, gallery: Gallery, reference: Search, queries: Vectors) -> None:
    """The answer must equal the reference answer before its time means anything."""
    for query in queries:
        ours = gallery.search(query, top_k=TOP_K)
        theirs = reference(query, TOP_K)
        assert isinstance(theirs, list)
        assert [p for p, _ in ours] == [f"p{p}" for p, _ in theirs], f"{name} disagrees"
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5), name


def speed_table(args: argparse.Namespace, rng: np.random.Generator, queries: Vectors) -> None:
    header = (
        f"{'exemplars':>10} | {'gallery p50':>11} {'p99':>7} {'cpu':>7} | {'exact p50':>9} "
        f"{'p99':>7} {'cpu':>7} | {'int8 p50':>8} {'p99':>7} | {'max.at p50':>10} {'p99':>7} | "
        f"{'matvec p50':>10} {'p99':>7} | {'naive p50':>10} | {'naive/gal':>9} {'exact/gal':>9}"
    )
    print(header)
    print("-" * len(header))
    batch_lines = []
    memory = []
    for size in args.sizes:
        vectors = random_units(rng, size)
        owner_ids = np.arange(size, dtype=np.int64) // PER_PERSON
        persons = int(owner_ids[-1]) + 1
        product = loaded(vectors, SCAN_MIN_ROWS)
        exact = loaded(vectors, NEVER)
        int8 = loaded(vectors, 0)
        reference = maximum_at_search(vectors, owner_ids, persons)
        check("gallery", product, reference, queries[:20])
        check("int8", int8, reference, queries[:20])
        assert int8.scanning, "the int8 scan is unavailable (see the warning above)"
        memory.append((size, product.nbytes, exact.nbytes - exact.capacity * (DIM + 4)))

        wall, cpu = interleaved(
            {
                "gallery": product.search,
                "exact": exact.search,
                "int8": int8.search,
                "maximum.at": reference,
                "matvec": matvec_only(vectors),
            },
            queries,
        )
        naive_n = min(size, args.naive_cap)
        naive = timed(
            naive_search(vectors[:naive_n], [int(o) for o in owner_ids[:naive_n]]),
            queries[: args.naive_queries],
        )
        naive_p50 = statistics.median(naive) * size / naive_n
        mark = "~" if naive_n < size else " "
        g50, g99 = percentiles(wall["gallery"])
        e50, e99 = percentiles(wall["exact"])
        i50, i99 = percentiles(wall["int8"])
        a50, a99 = percentiles(wall["maximum.at"])
        m50, m99 = percentiles(wall["matvec"])
        gc, ec = statistics.median(cpu["gallery"]), statistics.median(cpu["exact"])
        print(
            f"{size:>10,} | {g50:>9.3f}ms {g99:>7.3f} {gc:>7.3f} | {e50:>7.3f}ms {e99:>7.3f} "
            f"{ec:>7.3f} | {i50:>6.3f}ms {i99:>7.3f} | {a50:>8.3f}ms {a99:>7.3f} | "
            f"{m50:>8.3f}ms {m99:>7.3f} | {mark}{naive_p50:>7.1f}ms | {naive_p50 / g50:>8.0f}x "
            f"{e50 / g50:>8.1f}x"
        )

        batches = queries[: len(queries) // BATCH * BATCH].reshape(-1, BATCH, DIM)
        bwall, _ = interleaved(
            {"gallery": product.search_many, "exact": exact.search_many}, batches
        )
        bg50, bg99 = percentiles(bwall["gallery"])
        be50, be99 = percentiles(bwall["exact"])
        batch_lines.append(
            f"{size:>10,} | {bg50:>9.3f}ms {bg99:>7.3f} | {be50:>7.3f}ms {be99:>7.3f} | "
            f"{be50 / bg50:>5.1f}x"
        )
    print(f"~ naive time extrapolated linearly from {args.naive_cap:,} exemplars")
    print(f"gallery takes the int8 path from {SCAN_MIN_ROWS:,} exemplars on; cpu = thread CPU p50")
    print(f"\nsearch_many, {BATCH} queries at once (one frame's crops), all times in ms")
    print(
        f"{'exemplars':>10} | {'gallery p50':>11} {'p99':>7} | {'exact p50':>9} {'p99':>7} | ratio"
    )
    print("\n".join(batch_lines))
    print()
    for size, allocated, float_only in memory:
        print(
            f"memory at {size:,} exemplars: {allocated / 2**20:.1f} MiB allocated with the int8 "
            f"copy, {float_only / 2**20:.1f} MiB without it (capacity doubles)"
        )


def realish_vectors(rng: np.random.Generator, n: int) -> Vectors | None:
    sys.path.insert(0, str(ROOT / "tests" / "server"))
    try:
        import _embeddings
    except ImportError as err:
        print(f"real-ish data skipped: {err}")
        return None
    reason = _embeddings.missing_reason()
    if reason is not None:
        print(f"real-ish data skipped: {reason}")
        return None
    real = np.stack([s.vector for crops in _embeddings.samples().values() for s in crops])
    persons = n // PER_PERSON
    mix = (
        real[rng.integers(0, len(real), persons)] + 0.6 * real[rng.integers(0, len(real), persons)]
    )
    centres = unit(mix + rng.normal(0, 0.03, mix.shape))
    exemplars = np.repeat(centres, PER_PERSON, axis=0)
    return unit(exemplars + rng.normal(0, 0.045, exemplars.shape))


def person_best(vectors: Vectors, queries: Vectors) -> npt.NDArray[np.float32]:
    """Per-person maximum similarity, queries x persons (rows are stored person by person)."""
    scores = (vectors @ queries.T).reshape(-1, PER_PERSON, len(queries))
    return np.ascontiguousarray(scores.max(axis=1).T)


def certification(args: argparse.Namespace, rng: np.random.Generator) -> None:
    size = max(args.sizes)
    print(f"\nint8 scan at {size:,} exemplars, {args.queries} queries near stored people:")
    print(
        f"{'data':>9} {'top_k':>5} | {'exact':>5} {'widened':>8} {'full':>5} {'rows':>6} | "
        f"{'int8-only recall':>16}"
    )
    datasets = {"random": random_units(rng, size), "real-ish": realish_vectors(rng, size)}
    for name, vectors in datasets.items():
        if vectors is None:
            continue
        gallery = loaded(vectors, 0)
        picks = rng.integers(0, size, args.queries)
        queries = unit(vectors[picks] + rng.normal(0, 0.05, (args.queries, DIM)))
        exact = person_best(vectors, queries)
        # What the int8 codes alone say: both sides reconstructed from their codes.
        rows, probes = quantise(vectors), quantise(queries)
        coarse = person_best(
            (rows.codes * rows.scale[:, None]).astype(np.float32),
            (probes.codes * probes.scale[:, None]).astype(np.float32),
        )
        for top_k in (1, 3, 5):
            gallery.scan_stats = ScanStats()
            agree = hits = 0
            for query, truth, approx in zip(queries, exact, coarse, strict=True):
                want = np.argsort(-truth)[:top_k]
                got = gallery.search(query, top_k=top_k)
                agree += [p for p, _ in got] == [f"p{p}" for p in want]
                hits += len({int(p) for p in np.argsort(-approx)[:top_k]} & {int(p) for p in want})
            stats = gallery.scan_stats
            print(
                f"{name:>9} {top_k:>5} | {agree / len(queries):>5.0%} "
                f"{stats.widened / stats.searches:>8.1%} {stats.full:>5} "
                f"{stats.rescored / stats.searches:>6.0f} | {hits / (top_k * len(queries)):>16.2%}"
            )
    print("exact: answers equal to the brute-force per-person maximum; widened: searches whose")
    print("first rows did not certify; rows: rows re-scored in float32 per search (mean)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--naive-cap", type=int, default=10_000)
    parser.add_argument("--naive-queries", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    queries = random_units(rng, args.queries)
    print(
        f"gallery search, {DIM}-d, {PER_PERSON} exemplars/person, top_k={TOP_K}, "
        f"{args.queries} queries; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, "
        f"load average {os.getloadavg()[0]:.1f} (other work on the box inflates the times)"
    )
    speed_table(args, rng, queries)
    certification(args, rng)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
