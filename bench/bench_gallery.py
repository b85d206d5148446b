"""Gallery search speed at 1k / 10k / 100k exemplars against a naive baseline, same process.

    .venv/bin/python bench/bench_gallery.py [--queries 300] [--sizes 1000 10000 100000]

Vectors are random 256-d unit vectors (timing does not depend on what they show), 8 exemplars
per person, as with the default ``match.max_exemplars``. Three ways to get the best persons:

- ``gallery``: the product's Gallery.search (one BLAS matrix-vector product, then argpartition
  of the best top_k * 8 rows and a walk to the first top_k distinct owners);
- ``maximum.at``: the same product followed by a per-person ``np.maximum.at`` reduction and an
  argpartition over persons (the alternative the design considered);
- ``naive``: a Python loop over exemplars, one ``np.dot`` each, keeping a per-person maximum in a
  dict. It is run on at most ``--naive-cap`` exemplars and a few queries; above that its time is
  extrapolated linearly (it is linear in the number of exemplars) and marked with ``~``.

The first two strategies and the bare matrix-vector product are timed query by query in turn, so
load from other processes hits them alike. Prints p50/p99 in milliseconds and the naive/gallery
ratio, then the galleries' memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from smart_reid_server.gallery import Gallery

DIM = 256
PER_PERSON = 8
TOP_K = 5

type Vectors = npt.NDArray[np.float32]


def random_units(rng: np.random.Generator, n: int) -> Vectors:
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def timed(fn: Callable[[Vectors, int], object], queries: Vectors) -> list[float]:
    fn(queries[0], TOP_K)  # warm caches and BLAS threads
    out = []
    for query in queries:
        start = time.perf_counter()
        fn(query, TOP_K)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def interleaved(
    fns: dict[str, Callable[[Vectors, int], object]], queries: Vectors
) -> dict[str, list[float]]:
    """Time several strategies query by query, so load from other processes hits them alike."""
    for fn in fns.values():
        fn(queries[0], TOP_K)
    out: dict[str, list[float]] = {name: [] for name in fns}
    for query in queries:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(query, TOP_K)
            out[name].append((time.perf_counter() - start) * 1e3)
    return out


def matvec_only(vectors: Vectors) -> Callable[[Vectors, int], object]:
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
        f"gallery search, {DIM}-d float32, {PER_PERSON} exemplars/person, top_k={TOP_K}, "
        f"{args.queries} queries; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.1f} (other work on the box inflates the times)"
    )
    header = (
        f"{'exemplars':>10} {'gallery p50':>12} {'p99':>8} {'maximum.at p50':>15} {'p99':>8} "
        f"{'matvec p50':>11} {'p99':>8} {'naive p50':>11} {'naive/gallery':>14}"
    )
    print(header)
    print("-" * len(header))
    sizes_memory: dict[int, tuple[int, int]] = {}
    for size in args.sizes:
        vectors = random_units(rng, size)
        owner_ids = np.arange(size, dtype=np.int64) // PER_PERSON
        owner_list = [i // PER_PERSON for i in range(size)]
        gallery = Gallery(DIM, max_exemplars=PER_PERSON)
        gallery.load([f"p{o}" for o in owner_list], vectors)
        sizes_memory[size] = (gallery.nbytes, size * (DIM * 4 + 4 + 8))

        times = interleaved(
            {
                "gallery": gallery.search,
                "maximum.at": maximum_at_search(vectors, owner_ids, int(owner_ids[-1]) + 1),
                "matvec": matvec_only(vectors),
            },
            queries,
        )
        naive_n = min(size, args.naive_cap)
        naive = timed(
            naive_search(vectors[:naive_n], owner_list[:naive_n]),
            queries[: args.naive_queries],
        )
        naive_p50 = statistics.median(naive) * size / naive_n
        mark = "~" if naive_n < size else " "

        # The product answer must equal the reference answer before its time means anything.
        check = queries[0]
        ours = [p for p, _ in gallery.search(check, top_k=TOP_K)]
        reference_search = maximum_at_search(vectors, owner_ids, int(owner_ids[-1]) + 1)
        reference = [f"p{p}" for p, _ in reference_search(check, TOP_K)]
        assert ours == reference, f"gallery search disagrees with the reference at {size}"

        g50, g99 = percentiles(times["gallery"])
        a50, a99 = percentiles(times["maximum.at"])
        m50, m99 = percentiles(times["matvec"])
        print(
            f"{size:>10,} {g50:>10.3f}ms {g99:>6.3f}ms {a50:>13.3f}ms {a99:>6.3f}ms "
            f"{m50:>9.3f}ms {m99:>6.3f}ms {mark}{naive_p50:>9.1f}ms {naive_p50 / g50:>13.0f}x"
        )
    print("~ naive time extrapolated linearly from", args.naive_cap, "exemplars")
    print("matvec: the similarity product alone, the floor every strategy pays")
    for size, (allocated, used) in sizes_memory.items():
        print(
            f"memory at {size:,} exemplars: {used / 2**20:.1f} MiB used, "
            f"{allocated / 2**20:.1f} MiB allocated (matrix + owners + keys; capacity doubles)"
        )


if __name__ == "__main__":
    main()
