"""PNG figures of the business KPIs: one per KPI over time, and the cohort retention.

Each KPI is drawn as its value per period with the interval as a band, and every
move of the production alias inside the plotted range as a vertical line labelled
with the version, so a change in the curve can be read against the model change
next to it. matplotlib is imported inside, with the Agg backend: nothing here needs
a display, and importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from recsys_cli.evaluation.plots import png, pyplot
from recsys_cli.monitoring.kpis import (
    COHORT,
    DEFINITIONS,
    HIGH,
    KPI,
    KPI_NAMES,
    LOW,
    PERIOD_START,
    RETENTION,
    STEP,
    VALUE,
    WEEK,
)
from recsys_cli.monitoring.promotions import Promotion, production_at


def _naive(at: datetime) -> datetime:
    """UTC without a zone, the form matplotlib's date axis takes from numpy too."""
    return at.astimezone(UTC).replace(tzinfo=None)


def _floats(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame[column].cast(pl.Float64).fill_null(np.nan).to_numpy()


def kpi_png(
    table: pl.DataFrame, kpi: str, promotions: Sequence[Promotion], period: str, confidence: float = 0.95
) -> bytes:
    """One KPI over time: the value per period (at the period's start), its interval
    as a band, a dashed line and label at each promotion inside the plotted range,
    and the version already in production when the range starts in the title."""
    plt = pyplot()
    rows = table.filter(pl.col(KPI) == kpi).sort(PERIOD_START)
    starts = [_naive(s) for s in rows[PERIOD_START].to_list()]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.fill_between(
        starts, _floats(rows, LOW), _floats(rows, HIGH), alpha=0.25, linewidth=0, label=f"{confidence:.0%} interval"
    )
    ax.plot(starts, _floats(rows, VALUE), marker="o", markersize=3, label=kpi.replace("_", " "))
    title = f"{kpi.replace('_', ' ')} per {period}"
    if starts:
        first, end = rows[PERIOD_START][0], rows[PERIOD_START][-1] + STEP[period]
        before = production_at(promotions, [first])[0]
        if before is not None:
            title += f" (in production at start: {before.name} v{before.version})"
        for move in promotions:
            if first <= move.at < end:
                _mark(ax, move)
    ax.set_title(title, fontsize="medium")
    ax.set_ylabel(DEFINITIONS[kpi]["of"] if len(DEFINITIONS[kpi]["of"]) < 40 else kpi.replace("_", " "))
    ax.legend(fontsize="small", frameon=False, loc="upper left")
    fig.autofmt_xdate()
    return png(fig)


def _mark(ax: Any, move: Promotion) -> None:
    at = _naive(move.at)
    ax.axvline(at, color="tab:red", linestyle="--", linewidth=1)
    label = f"{move.name} v{move.version}" + ("" if move.action == "promote" else f" ({move.action})")
    ax.text(at, 0.98, label, rotation=90, va="top", ha="right", fontsize="x-small", transform=ax.get_xaxis_transform())


def retention_png(retention: pl.DataFrame) -> bytes:
    """Share of each weekly cohort active k weeks after its first week, as a heat map."""
    plt = pyplot()
    cohorts = retention[COHORT].unique().sort()
    weeks = int(retention[WEEK].to_numpy().max()) if retention.height else 0
    grid = np.full((cohorts.len(), max(weeks, 1)), np.nan)
    if retention.height:
        index = retention.select(pl.col(COHORT).rank("dense").cast(pl.Int64) - 1)[COHORT].to_numpy()
        grid[index, retention[WEEK].to_numpy() - 1] = _floats(retention, VALUE)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.3 * max(cohorts.len(), 1)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(grid.shape[1]), [str(k + 1) for k in range(grid.shape[1])])
    ax.set_yticks(range(cohorts.len()), [c.strftime("%Y-%m-%d") for c in cohorts.to_list()])
    ax.set_xlabel("weeks after the cohort's first week")
    ax.set_ylabel("cohort (week of first event)")
    ax.set_title("Returning-user retention by weekly cohort")
    fig.colorbar(image, ax=ax, label="share active")
    return png(fig)


def kpi_pngs(
    table: pl.DataFrame,
    retention: pl.DataFrame,
    promotions: Sequence[Promotion],
    period: str,
    confidence: float = 0.95,
) -> dict[str, bytes]:
    """Every figure by name: one per KPI, and `retention`."""
    pngs = {kpi: kpi_png(table, kpi, promotions, period, confidence) for kpi in KPI_NAMES}
    pngs[RETENTION] = retention_png(retention)
    return pngs
