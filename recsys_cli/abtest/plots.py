"""PNG plots of an experiment: the primary metric's lift day by day against the
sequential boundary, and every effect with its interval (simulated beside
model-free), where a reader sees at a glance what a table makes them read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from recsys_cli.abtest.sequential import Looks, SequentialResult


@dataclass(frozen=True)
class Effect:
    label: str
    group: str  # "simulated" or "off-policy"
    relative: float
    low: float
    high: float


def cumulative_lift(
    path: Path, looks: Looks, result: SequentialResult, metric: str, target_lift: float, alpha: float
) -> None:
    """Relative lift of `metric` over the users arrived by each day, with the band
    the analysis allows reading it against (naive daily interval for a fixed
    horizon, the always-valid confidence sequence for mSPRT). The y-axis spans the
    naive intervals: a confidence sequence far wider than that is cut at the edge."""
    plt = _pyplot()
    days = np.arange(1, looks.control.size + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.where(looks.control > 0, looks.control, np.nan)
        lift, low, high = 100 * looks.difference / base, 100 * result.low / base, 100 * result.high / base
        half = 100 * stats.norm.ppf(1 - alpha / 2) * np.sqrt(looks.variance) / base
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    band = "always-valid confidence sequence" if result.method == "msprt" else f"naive daily {1 - alpha:.0%} interval"
    ax.fill_between(days, low, high, color="tab:blue", alpha=0.18, label=band, step="mid")
    ax.plot(days, lift, marker="o", color="tab:blue", label="cumulative lift")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(100 * target_lift, color="tab:green", linestyle="--", linewidth=1, label="target lift")
    if result.decision_day is not None:
        what = "horizon" if result.method == "fixed_horizon" else "stopped"
        ax.axvline(result.decision_day, color="tab:red", linestyle=":", label=f"{what}: {result.decision}")
    if result.method == "fixed_horizon" and result.naive_stop_day is not None:
        ax.axvline(result.naive_stop_day, color="tab:orange", linestyle="--", label="a daily peek would stop")
    span = np.concatenate([lift - half, lift + half, [0.0, 100 * target_lift]])
    span = span[np.isfinite(span)]
    if span.size:
        pad = 0.1 * max(float(np.ptp(span)), 1.0)
        ax.set_ylim(float(span.min()) - pad, float(span.max()) + pad)
    ax.set_xlim(0.5, days.size + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(
        xlabel="day of the experiment", ylabel=f"relative lift of {metric} (%)", title=f"{metric}: treatment vs control"
    )
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def effects(path: Path, rows: Sequence[Effect], confidence: float) -> None:
    """Forest plot of relative lifts: the simulator's metrics and the off-policy
    estimates on one axis, so agreement or disagreement is visible."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    colours = {"simulated": "tab:blue", "off-policy": "tab:purple"}
    for yi, row in zip(y, rows, strict=True):
        colour = colours.get(row.group, "tab:gray")
        if np.isfinite(row.low) and np.isfinite(row.high):
            ax.plot([100 * row.low, 100 * row.high], [yi, yi], color=colour, linewidth=2)
        if np.isfinite(row.relative):
            ax.plot(100 * row.relative, yi, "o", color=colour)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [f"{r.label} ({r.group})" for r in rows], fontsize=8)
    ax.set(xlabel=f"relative lift, treatment vs control (%), {confidence:.0%} intervals", title="Effects")
    _save(fig, path)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
