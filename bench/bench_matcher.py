"""Matcher headroom: identity decisions per second for many simulated cameras on one thread.

    .venv/bin/python bench/bench_matcher.py [--cameras 32] [--fps 5] [--seconds 30] [--json FILE]

Feeds the product's identity layer (``Identities.from_settings`` with the default settings, a
SQLite store in a temp dir, exactly what the matcher role runs per observation) with
observations built from real embeddings of real people: CUHK03 val crops embedded by the
product's Embedder (cached by ``eval.embeddings``; the first run embeds about 940 crops).

Each camera shows 1-4 people at a time; a person stays 3-15 s (one tracker track, one
``track_id``) and is then replaced by a random identity, so people come back, also on other
cameras. Camera ``i`` shows view A (even) or view B (odd) of every identity. Frames come at
``--fps`` per camera, interleaved across cameras in frame-time order. As in the pipeline, a
track's vector is embedded afresh on its first frame and every 5th frame after, and reused
(``fresh=False``) in between. Every frame has people (the worst case: a real worker sends no
observation for an empty frame).

Printed: observations/s and persons/s on one thread, per-observation cost p50/p95/p99, the
gallery size reached, and the headroom: cameras at ``--fps`` one matcher thread serves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from smart_reid_server.config import load
from smart_reid_server.identity.identities import Identities
from smart_reid_server.identity.match import centering_enabled, gallery_threshold
from smart_reid_server.identity.store import Store
from smart_reid_server.types import Box, Crop, Detection, Frame, QualityReport
from smart_reid_server.vision.crops import sharpness

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from eval.data import load_split
from eval.embeddings import embed_images, make_embedder

T0 = 1_765_000_000.0
CANVAS_W, CANVAS_H = 640, 360
FRESH_EVERY = 5


@dataclass
class Track:
    track_id: str
    identity: int
    until: float
    frames: int = 0
    vector: npt.NDArray[np.float32] | None = None


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the simulation described in the module docstring; the figures as a dict."""

    with tempfile.TemporaryDirectory(prefix="bench-matcher-") as tmp:
        settings = load(None, environ={}, overrides={"data_dir": tmp})
        models = settings.section("models")
        model_name, flip = str(models["reid"]), bool(models.get("flip_tta", False))
        split = load_split("val")
        vectors = embed_images(model_name, list(split.paths), flip)
        embedder = make_embedder(model_name, flip)
        match_cfg = settings.section("match")
        centred = centering_enabled(match_cfg.get("camera_centering"), model_name)
        threshold = gallery_threshold(
            match_cfg["threshold"], model_name, embedder.default_threshold, centered=centred
        )
        identities = Identities.from_settings(
            Store(Path(tmp)), settings, model_name=model_name, dim=embedder.dim, threshold=threshold
        )
        identities.load()
        del embedder

        images = [np.asarray(cv2.imread(str(p), cv2.IMREAD_COLOR), np.uint8) for p in split.paths]
        quality = [QualityReport(True, sharpness(img), ()) for img in images]
        by_view: dict[tuple[int, int], list[int]] = {}
        for i, (pid, cam) in enumerate(zip(split.pids, split.cams, strict=True)):
            by_view.setdefault((int(pid), int(cam)), []).append(i)
        people = sorted({pid for pid, _ in by_view if (pid, 0) in by_view and (pid, 1) in by_view})

        rng = np.random.default_rng(args.seed)
        canvas = np.full((CANVAS_H, CANVAS_W, 3), 96, np.uint8)
        cams = [f"cam{c:02d}" for c in range(args.cameras)]
        tracks: dict[str, list[Track]] = {c: [] for c in cams}
        counter = 0

        def new_track(cam: str, t: float) -> Track:
            nonlocal counter
            counter += 1
            return Track(f"{cam}-{counter}", int(rng.choice(people)), t + float(rng.uniform(3, 15)))

        for cam in cams:
            tracks[cam] = [new_track(cam, T0) for _ in range(int(rng.integers(1, 5)))]

        step = 1.0 / args.fps
        frames = int(args.seconds * args.fps)
        costs: list[float] = []
        persons = 0
        decisions = 0
        started = time.perf_counter()
        for k in range(frames):
            for ci, cam in enumerate(cams):
                t = T0 + k * step + ci * step / len(cams)
                live = [tr for tr in tracks[cam] if tr.until > t]
                while len(live) < 1 or (len(live) < 4 and len(live) < len(tracks[cam])):
                    live.append(new_track(cam, t))
                tracks[cam] = live
                crops: list[Crop] = []
                vecs: list[npt.NDArray[np.float32]] = []
                fresh: list[bool] = []
                x = 8
                view = ci % 2
                for tr in live:
                    pool = by_view[(tr.identity, view)]
                    idx = pool[tr.frames % len(pool)]
                    img = images[idx]
                    h, w = img.shape[:2]
                    box = Box(float(x), 20.0, float(x + w), float(20 + h))
                    x += w + 8
                    is_fresh = tr.frames % FRESH_EVERY == 0 or tr.vector is None
                    if is_fresh:
                        tr.vector = vectors[idx]
                    assert tr.vector is not None
                    det = Detection(box, 0.9, track_id=tr.track_id)
                    crops.append(Crop(det, img, quality[idx]))
                    vecs.append(tr.vector)
                    fresh.append(is_fresh)
                    tr.frames += 1
                frame = Frame(camera=cam, image=canvas, timestamp=t, frame_id=f"{cam}-{k}")
                t0 = time.perf_counter()
                result = identities.observe(cam, t, crops, np.stack(vecs), frame, fresh)
                costs.append((time.perf_counter() - t0) * 1000.0)
                persons += len(crops)
                decisions += len(result.decisions)
        wall = time.perf_counter() - started
        busy = sum(costs) / 1000.0
        gallery_people, gallery_rows = identities.gallery.person_count, len(identities.gallery)
        # rows the store inserted/updated/deleted: the write load a shared database would take
        db = identities.store._db  # a benchmark may look inside
        rows_written = int(db.total_changes) if db is not None else -1
        identities.close()

    obs_s = len(costs) / busy
    out = {
        "cameras": args.cameras,
        "fps": args.fps,
        "simulated_s": args.seconds,
        "observations": len(costs),
        "persons": persons,
        "decisions": decisions,
        "observe_busy_s": round(busy, 2),
        "wall_s": round(wall, 2),
        "observations_per_s": round(obs_s, 1),
        "persons_per_s": round(persons / busy, 1),
        "cost_ms_p50": round(float(np.percentile(costs, 50)), 2),
        "cost_ms_p95": round(float(np.percentile(costs, 95)), 2),
        "cost_ms_p99": round(float(np.percentile(costs, 99)), 2),
        "cost_ms_mean": round(float(np.mean(costs)), 2),
        "gallery_people": gallery_people,
        "gallery_exemplars": gallery_rows,
        "headroom_cameras": int(obs_s / args.fps),
        "realtime_factor": round(args.seconds / busy, 2),
        "store_rows_written": rows_written,
        "store_rows_per_simulated_s": round(rows_written / args.seconds, 1),
        "load_avg": round(os.getloadavg()[0], 1),
        "model": model_name,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, default=32)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=30.0, help="simulated seconds of video")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--pg",
        help="also probe PostgreSQL commit rate at this conninfo (e.g. 'host=127.0.0.1 user=postgres')",
    )
    args = ap.parse_args()
    out = simulate(args)
    print(
        f"{args.cameras} cameras x {args.fps:g} fps, {args.seconds:g} s simulated: "
        f"{out['observations']} observations, {out['persons']} persons, gallery "
        f"{out['gallery_people']} people / {out['gallery_exemplars']} exemplars "
        f"({out['model']}, load {out['load_avg']})"
    )
    print(
        f"observe(): {out['observations_per_s']} observations/s, {out['persons_per_s']} persons/s "
        f"on one thread; cost p50 {out['cost_ms_p50']} ms, p95 {out['cost_ms_p95']} ms, "
        f"p99 {out['cost_ms_p99']} ms, mean {out['cost_ms_mean']} ms"
    )
    print(
        f"headroom: one matcher thread serves about {out['headroom_cameras']} cameras at "
        f"{args.fps:g} fps ({out['realtime_factor']}x real time for {args.cameras})"
    )
    print(
        f"store: {out['store_rows_written']} rows written, {out['store_rows_per_simulated_s']} rows/s of video "
        f"for {args.cameras} cameras (one transaction per observation)"
    )
    if args.pg:
        rows_per_tx = max(1, round(out["store_rows_written"] / max(1, out["observations"])))
        out["pg_probe"] = pg_probe(args.pg, rows_per_tx)
        p = out["pg_probe"]
        print(
            f"PostgreSQL probe (one connection, {rows_per_tx} rows a transaction, temp table, "
            f"synchronous_commit={p['synchronous_commit']}): {p['tx_per_s']} transactions/s, "
            f"commit p50 {p['commit_ms_p50']} ms, p95 {p['commit_ms_p95']} ms"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


def pg_probe(conninfo: str, rows_per_tx: int, seconds: float = 5.0) -> dict[str, object]:
    """Commit rate of one connection writing ``rows_per_tx`` small rows a transaction.

    Not the product's schema (that is the store's business): a TEMP table of rows about the
    size of a sighting row, so the figure is the engine's commit cost, nothing is left behind.
    """
    import psycopg

    blob = bytes(200)
    commits: list[float] = []
    with psycopg.connect(conninfo) as conn:
        setting = conn.execute("SHOW synchronous_commit").fetchone()
        conn.execute("CREATE TEMP TABLE probe (cam text, t float8, person text, data bytea)")
        conn.commit()
        end = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO probe VALUES (%s, %s, %s, %s)",
                    [(f"cam{k % 32:02d}", float(k), f"p{i}", blob) for i in range(rows_per_tx)],
                )
            conn.commit()
            commits.append((time.perf_counter() - t0) * 1000.0)
            k += 1
    return {
        "rows_per_tx": rows_per_tx,
        "synchronous_commit": setting[0] if setting else "?",
        "tx_per_s": round(len(commits) / (sum(commits) / 1000.0), 1),
        "commit_ms_p50": round(float(np.percentile(commits, 50)), 2),
        "commit_ms_p95": round(float(np.percentile(commits, 95)), 2),
    }


if __name__ == "__main__":
    main()
