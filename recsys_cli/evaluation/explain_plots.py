"""PNG figures of a ranker explanation (`evaluation.explain`'s summary), drawn
the way `evaluation.plots` draws an evaluation's: matplotlib on Agg, imported
only when a figure is drawn, bytes out."""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_cli.evaluation.plots import png, pyplot, reliability_diagram

_SHARES = (
    ("gain_share", "gain"),
    ("split_share", "splits"),
    ("contribution_share", "mean |contribution|"),
)


def importance_bars(summary: dict[str, Any], top: int) -> bytes | None:
    """The top features' shares of gain, splits and contributions (LightGBM), or
    the drop of candidate-list NDCG@10 when each is shuffled (any backend)."""
    rows = summary["importance"][:top]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.42 * len(rows)))
    y = np.arange(len(rows))
    series = [s for s in _SHARES if s[0] in rows[0]] or [("permutation_ndcg_drop", "NDCG@10 drop when shuffled")]
    height = 0.8 / len(series)
    for j, (key, label) in enumerate(series):
        ax.barh(y + (j - (len(series) - 1) / 2) * height, [r[key] for r in rows], height, label=label)
    ax.set_yticks(y, [r["feature"] for r in rows], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("share of the total" if series[0][0].endswith("share") else "drop")
    ax.set_title(f"Top {len(rows)} features by {summary['ranked_by'].replace('_', ' ')}")
    ax.legend(frameon=False, fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def dependence_grid(summary: dict[str, Any]) -> bytes | None:
    """Mean calibrated probability against each top feature's value, with the band
    where 80% of the individual curves lie."""
    curves = [c for c in summary["partial_dependence"] if c["grid"]]
    if not curves:
        return None
    plt = pyplot()
    columns = 2 if len(curves) > 1 else 1
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.0 * rows), squeeze=False)
    for ax, c in zip(axes.ravel(), curves, strict=False):
        style = {"marker": "o", "linestyle": ":"} if c["categorical"] or len(c["grid"]) < 3 else {}
        ax.fill_between(c["grid"], c["ice_low"], c["ice_high"], color="tab:blue", alpha=0.15, step=None)
        ax.plot(c["grid"], c["mean_probability"], color="tab:blue", **style)
        ax.set_title(c["feature"] + (" (code)" if c["categorical"] else ""), fontsize="medium", loc="left")
        ax.set_ylabel("mean probability")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(curves) :]:
        ax.set_visible(False)
    fig.suptitle(f"Partial dependence of the calibrated probability ({curves[0]['rows']:,} pairs; band: ICE 10-90%)")
    fig.tight_layout()
    return png(fig)


def precision_recall_plot(summary: dict[str, Any]) -> bytes | None:
    pr = summary["precision_recall"]
    if not pr.get("available"):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot(pr["recall"], pr["precision"], color="tab:blue", drawstyle="steps-post", label="ranker")
    ax.axhline(pr["base_rate"], color="grey", linestyle="--", linewidth=1, label=f"base rate {pr['base_rate']:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision-recall (AP {pr['average_precision']:.4f}, {summary['pairs']['pairs']:,} pairs)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return png(fig)


def all_plots(summary: dict[str, Any], top: int) -> dict[str, bytes]:
    """Every figure the summary supports, by file name stem."""
    figures = {
        "importance": importance_bars(summary, top),
        "partial_dependence": dependence_grid(summary),
        "precision_recall": precision_recall_plot(summary),
        "reliability": reliability_diagram(summary, unit="pairs"),
    }
    return {name: image for name, image in figures.items() if image is not None}
