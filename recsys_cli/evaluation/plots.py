"""PNG figures of an evaluation summary, for the HTML report.

Each function takes the JSON-ready summary of `evaluation.suite` and returns a
PNG as bytes, or None when the summary has nothing to draw (no probabilities,
no user attributes). matplotlib is imported inside, with the Agg backend, so
nothing here needs a display and `recsys --help` never pays for it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from recsys_cli.evaluation.metrics import RANKING_METRICS

_DPI = 110


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig: Any) -> bytes:
    """The figure as PNG bytes, closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    pyplot().close(fig)
    return buffer.getvalue()


def _errors(values: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> np.ndarray:
    """Asymmetric error bar lengths; an undefined bound draws no bar."""
    v, lo, hi = (np.asarray(x, dtype=np.float64) for x in (values, lows, highs))
    return np.nan_to_num(np.vstack([v - lo, hi - v]), nan=0.0).clip(min=0)


def metric_bars(summary: dict[str, Any]) -> bytes:
    """Every ranking metric at every k, with its bootstrap interval."""
    plt = pyplot()
    ks, headline = summary["ks"], summary["headline"]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(ks)
    x = np.arange(len(RANKING_METRICS))
    for j, k in enumerate(ks):
        cells = [headline[f"{m}@{k}"] for m in RANKING_METRICS]
        values = [c["value"] for c in cells]
        errors = _errors(values, [c["low"] for c in cells], [c["high"] for c in cells])
        ax.bar(x + (j - (len(ks) - 1) / 2) * width, values, width, yerr=errors, capsize=2, label=f"@{k}")
    ax.set_xticks(x, [m.upper() if m in ("ndcg", "mrr", "map") else m for m in RANKING_METRICS])
    ax.set_ylabel("mean over users")
    level = summary["bootstrap"]["confidence"]
    ax.set_title(f"Ranking metrics with {level:.0%} intervals ({summary['bootstrap']['resamples']:,} user resamples)")
    ax.legend(ncol=len(ks), fontsize="small", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def reliability_diagram(summary: dict[str, Any], unit: str = "slots") -> bytes | None:
    """Observed engagement rate against mean predicted probability per bin; the
    diagonal is perfect calibration, marker area follows the bin's size. `unit`
    names what was scored (recommended slots; `recsys explain`'s candidate pairs)."""
    cal = summary["calibration"]
    if not cal.get("available"):
        return None
    plt = pyplot()
    rel = cal["reliability"]
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    counts = np.asarray(rel["count"], dtype=np.float64)
    sizes = 20 + 200 * counts / max(counts.max(), 1) if counts.size else 20
    ax.plot(rel["predicted"], rel["observed"], color="tab:blue", linewidth=1)
    ax.scatter(rel["predicted"], rel["observed"], s=sizes, color="tab:blue", alpha=0.7, label="bins")
    # Engagement probabilities are often all small: zoom on the occupied corner.
    top = max([*rel["predicted"], *rel["observed"], 0.0])
    limit = min(1.0, max(0.05, 1.1 * top))
    ax.set_xlim(0, limit)
    ax.set_ylim(0, limit)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed engagement rate")
    ax.set_title(f"Reliability (ECE {cal['ece']:.4f}, {cal['pairs']:,} {unit})")
    ax.legend(loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    return png(fig)


def exposure_by_tier(summary: dict[str, Any]) -> bytes:
    """Share of training interactions, of the window's positives and of the
    recommendation slots per popularity tier, at the primary k."""
    plt = pyplot()
    k = int(summary["primary"].partition("@")[2])
    rows = summary["segments"]["items"]["popularity_tier"]
    series = [
        ("training interactions", "interaction_share"),
        ("window positives", "positive_share"),
        (f"recommended slots @{k}", f"exposure@{k}"),
    ]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(rows))
    width = 0.8 / len(series)
    for j, (label, key) in enumerate(series):
        ax.bar(x + (j - 1) * width, [r[key] for r in rows], width, label=label)
    ax.set_xticks(x, [r["group"] for r in rows])
    ax.set_ylabel("share")
    ax.set_title("Exposure by popularity tier")
    ax.legend(frameon=False, fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def segment_gaps(summary: dict[str, Any]) -> bytes | None:
    """The primary metric per group of every user attribute, with intervals, against
    the overall mean: where the gaps between groups are."""
    tables = summary["segments"]["users"]
    if not tables:
        return None
    plt = pyplot()
    metric = summary["primary"]
    overall = summary["headline"][metric]["value"]
    heights = [max(sum(r["users"] > 0 for r in rows), 1) for rows in tables.values()]
    fig, axes = plt.subplots(
        len(tables),
        1,
        figsize=(7, 0.9 + 0.32 * sum(heights) + 0.5 * len(tables)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (name, rows) in zip(axes[:, 0], tables.items(), strict=True):
        rows = [r for r in rows if r["users"] > 0]
        values = [r[metric] for r in rows]
        errors = _errors(values, [r[f"{metric}_low"] for r in rows], [r[f"{metric}_high"] for r in rows])
        y = np.arange(len(rows))
        ax.barh(y, np.nan_to_num(values), xerr=errors, capsize=2, color="tab:green", alpha=0.8)
        ax.axvline(overall, color="black", linewidth=1, linestyle=":")
        ax.set_yticks(y, [f"{r['group']} ({r['users']:,})" for r in rows], fontsize="small")
        ax.invert_yaxis()
        ax.set_title(name, fontsize="medium", loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel(f"{metric} (dotted: all users)")
    fig.tight_layout()
    return png(fig)


def all_plots(summary: dict[str, Any]) -> dict[str, bytes]:
    """Every figure the summary supports, by file name stem."""
    figures = {
        "metrics": metric_bars(summary),
        "reliability": reliability_diagram(summary),
        "exposure_by_tier": exposure_by_tier(summary),
        "segment_gaps": segment_gaps(summary),
    }
    return {name: png for name, png in figures.items() if png is not None}
