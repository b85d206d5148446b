"""The short markdown report and its plots, written from the results dictionary.

Plots need matplotlib (an evaluation-only dependency, not the product's); without it the report
is still written and says how to get the plots.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

TARGETS = {
    "val": {"rank1": 0.72, "mAP": 0.78},
    "train": {"rank1": 0.50, "mAP": 0.50},
}
ACTIVE_TARGET = 0.92
CMC_PLOTTED = (
    "0277",
    "0277 flip",
    "0277 flip camcenter",
    "0277 flip rerank",
    "0277 flip camcenter rerank",
    "0277+0286 flip camcenter rerank",
)
CURVES_PLOTTED = ("0277", "0277 flip", "0286 flip", "0277+0286 flip", "0277 flip camcenter")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def plots(results: dict[str, Any], out: Path) -> list[str]:
    """PNG files next to the report; an empty list when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _LOGGER.warning("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    written = []
    for split, rows in results["retrieval"].items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for row in rows:
            if row["option"] in CMC_PLOTTED:
                ranks = range(1, len(row["cmc"]) + 1)
                ax.plot(ranks, [100 * v for v in row["cmc"]], marker=".", label=row["option"])
        ax.set(xlabel="rank", ylabel="matched within rank (%)", title=f"CMC, CUHK03 {split}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"cmc_{split}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    calibration = results["calibration"]
    for level in ("identity", "pair"):
        for split in [calibration["calibrated_on"], *calibration["checked_on"]]:
            fig, (hist, roc) = plt.subplots(1, 2, figsize=(11, 4))
            for option in ("0277", "0277 flip camcenter"):
                data = calibration["options"][option][level]["histograms"][split]
                centres = [
                    (a + b) / 2 for a, b in zip(data["bins"], data["bins"][1:], strict=False)
                ]
                hist.plot(centres, data["genuine"], label=f"{option}: same person")
                hist.plot(centres, data["impostor"], "--", label=f"{option}: different")
            hist.set(xlabel="cosine similarity", ylabel="share of comparisons")
            hist.set_title(f"{level} similarities, {split}")
            hist.legend(fontsize=7)
            for option in CURVES_PLOTTED:
                curve = calibration["options"][option][level]["curve"][split]
                roc.semilogx([p[0] for p in curve], [100 * p[1] for p in curve], label=option)
            roc.set(xlabel="false-match rate", ylabel="same-person match rate (%)")
            roc.set_title(f"{level} verification, {split}")
            roc.grid(alpha=0.3, which="both")
            roc.legend(fontsize=7)
            fig.tight_layout()
            name = f"similarity_{level}_{split}.png"
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
            written.append(name)
    return written


def markdown(results: dict[str, Any], images: list[str]) -> str:
    lines = [
        "# Identity quality report",
        "",
        f"Generated {results['generated']} by `python -m eval` (commit {results['commit']}).",
        "Protocol and discussion: docs/quality.md. Numbers in %, costs in ms on this machine "
        f"({results['machine']}).",
        "",
        "## Targets",
        "",
        "| target | needed | best measured | option |",
        "|---|---|---|---|",
    ]
    for split, target in TARGETS.items():
        rows = results["retrieval"].get(split)
        if not rows:
            continue
        best = max(rows, key=lambda r: r["rank1"] + r["mAP"])
        lines.append(
            f"| gallery search {split} rank-1 / mAP | {_pct(target['rank1'])} / "
            f"{_pct(target['mAP'])} | {_pct(best['rank1'])} / {_pct(best['mAP'])} | "
            f"{best['option']} |"
        )
    for split, rows in results["active"].items():
        best = max(rows, key=lambda r: r["match_rate"])
        lines.append(
            f"| active visit {split}, 1 of 3 at 1% false matches | {_pct(ACTIVE_TARGET)} | "
            f"{_pct(best['match_rate'])} | {best['experiment']} |"
        )
    for split, rows in results["retrieval"].items():
        lines += [
            "",
            f"## Gallery search, CUHK03 labeled {split} ({rows[0]['queries']} queries)",
            "",
            "| option | rank-1 | rank-5 | rank-10 | mAP | embed ms/crop | post ms/query |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['option']} | {_pct(r['rank1'])} | {_pct(r['rank5'])} | "
                f"{_pct(r['rank10'])} | {_pct(r['mAP'])} | {_ms(r['embed_ms_per_crop'])} | "
                f"{_ms(r['post_ms_per_query'])} |"
            )
        if f"cmc_{split}.png" in images:
            lines += ["", f"![CMC {split}](cmc_{split}.png)"]
    for split, rows in results.get("online", {}).items():
        lines += [
            "",
            f"## One crop at a time against a gallery, {split} "
            f"(gallery {rows[0]['gallery_size']} crops, {rows[0]['queries']} queries)",
            "",
            "| option | variant | rank-1 | mAP | ms/query | gallery build s |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['option']} | {r['variant']} | {_pct(r['rank1'])} | {_pct(r['mAP'])} | "
                f"{_ms(r['ms_per_query'])} | {_ms(r['build_s'])} |"
            )
    calibration = results["calibration"]
    calib, checks = calibration["calibrated_on"], calibration["checked_on"]
    for level, title in (
        ("identity", "crop vs one identity's exemplars (max), as the gallery scores"),
        ("pair", "crop vs crop"),
    ):
        lines += [
            "",
            f"## Open-set calibration: {title}",
            "",
            f"Thresholds chosen on {calib}; "
            + (f"checked on {', '.join(checks)}." if checks else "no held-out split in this run."),
            "",
        ]
        header = "| option | same / different mean | FAR | threshold | match rate " + calib
        rule = "|---|---|---|---|---"
        for n in checks:
            header += f" | {n} FAR | {n} match rate"
            rule += "|---|---"
        lines += [header + " |", rule + "|"]
        for name, entry in calibration["options"].items():
            data = entry[level]
            for p in data["operating_points"]:
                row = (
                    f"| {name} | {data['genuine_mean']:.3f} / {data['impostor_mean']:.3f} | "
                    f"{p['false_match_rate']:g} | {p['threshold']:.3f} | "
                    f"{_pct(p[f'{calib}_match_rate'])}"
                )
                for n in checks:
                    row += (
                        f" | {100 * p[f'{n}_false_match_rate']:.2f} | {_pct(p[f'{n}_match_rate'])}"
                    )
                lines.append(row + " |")
        for split in [calib, *checks]:
            image = f"similarity_{level}_{split}.png"
            if image in images:
                lines += ["", f"![{level} similarities {split}]({image})"]
    lines += [
        "",
        "## Recommended thresholds (eval/thresholds.json)",
        "",
        "| model | default_threshold | flip_tta_threshold |",
        "|---|---|---|",
    ]
    for model, entry in results["thresholds"]["models"].items():
        lines.append(
            f"| {model} | {entry['default_threshold']:.3f} | {entry['flip_tta_threshold']:.3f} |"
        )
    for split, rows in results["active"].items():
        lines += [
            "",
            f"## Active-visit matching, {split}",
            "",
            "The right person among 3 on site at the threshold giving 1% false matches.",
            "",
            "| experiment | matched | wrong person | threshold | trials | embed ms/crop |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['experiment']} | {_pct(r['match_rate'])} | {_pct(r['misidentified'])} | "
                f"{r['threshold']:.3f} | {r['trials']} | {_ms(r['embed_ms_per_crop'])} |"
            )
    timings = results.get("embedding_ms_per_crop", {})
    if timings:
        lines += [
            "",
            "## Embedding cost (product Embedder, 8 crops a call, best of 3)",
            "",
            "| model | ms/crop | with flip |",
            "|---|---|---|",
        ]
        for model in dict.fromkeys(key.split("|")[0] for key in timings):
            plain, flip = timings.get(f"{model}|plain"), timings.get(f"{model}|flip")
            lines.append(f"| {model} | {_ms(plain)} | {_ms(flip)} |")
    if not images:
        lines += ["", "(No plots: matplotlib is not installed in this environment.)"]
    return "\n".join(lines) + "\n"
