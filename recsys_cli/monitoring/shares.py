"""How the shares of events over one key moved between two windows: item
popularity (each item's share of the events) and the category mix.

PSI and JS are computed as for a categorical feature (`drift.py`) on the
`distribution_bins` busiest keys plus one pooled bin, which keeps sampling noise
small. They are flagged on effect size alone: the events are clustered by user, so
a test that treated them as independent draws would be overconfident. The movers
are the keys whose share changed most, over every key.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.monitoring.drift import _SIDE, DistributionDrift, DriftThresholds, effects


def share_drift(
    reference: pl.LazyFrame | pl.DataFrame,
    current: pl.LazyFrame | pl.DataFrame,
    key: str,
    name: str,
    thresholds: DriftThresholds | None = None,
) -> DistributionDrift:
    """How the shares of events per `key` moved between two windows of events (one
    row per event). PSI and JS over the `distribution_bins` busiest keys plus the
    rest, flagged on effect size alone (see the module docstring). The movers are
    the `top_movers` keys whose share changed most, over every key."""
    t = thresholds or DriftThresholds()
    side = pl.col(_SIDE)
    counts = (
        pl.concat(
            [frame.lazy().select(key, pl.lit(s).alias(_SIDE)) for s, frame in ((False, reference), (True, current))]
        )
        .group_by(key)
        .agg((~side).sum().cast(pl.Int64).alias("events_reference"), side.sum().cast(pl.Int64).alias("events_current"))
        .sort(pl.col("events_reference") + pl.col("events_current"), pl.col(key), descending=[True, False])
        .collect()
    )
    n_ref, n_cur = (int(counts.get_column(c).sum()) for c in ("events_reference", "events_current"))
    table = counts.select("events_reference", "events_current").to_numpy().T
    if table.shape[1] > t.distribution_bins:
        keep = t.distribution_bins - 1
        table = np.column_stack([table[:, :keep], table[:, keep:].sum(axis=1)])
    psi_, js = effects(table)
    enough = min(n_ref, n_cur) >= t.min_samples
    large = any(v is not None and e is not None and e >= v for e, v in ((psi_, t.psi_threshold), (js, t.js_threshold)))
    return DistributionDrift(
        name,
        key,
        n_ref,
        n_cur,
        psi_,
        js,
        enough and large,
        _share_reason(enough, large, psi_, js, t),
        _movers(counts, key, n_ref, n_cur, t.top_movers),
    )


def _share_reason(enough: bool, large: bool, psi_: float | None, js: float | None, t: DriftThresholds) -> str:
    if not enough or psi_ is None or js is None:
        return f"too few events to judge (fewer than {t.min_samples} in a window)"
    sizes = f"psi {psi_:.3f}, js {js:.3f}"
    return f"shifted: {sizes}" if large else f"small: {sizes}"


def _movers(counts: pl.DataFrame, key: str, n_ref: int, n_cur: int, top: int) -> pl.DataFrame:
    return (
        counts.with_columns(
            (pl.col("events_reference") / max(n_ref, 1)).alias("share_reference"),
            (pl.col("events_current") / max(n_cur, 1)).alias("share_current"),
        )
        .with_columns((pl.col("share_current") - pl.col("share_reference")).alias("change"))
        .sort(pl.col("change").abs(), pl.col(key), descending=[True, False], nulls_last=True)
        .head(top)
        .select(key, "events_reference", "share_reference", "events_current", "share_current", "change")
    )


def popularity_drift(
    reference_events: pl.LazyFrame | pl.DataFrame,
    current_events: pl.LazyFrame | pl.DataFrame,
    thresholds: DriftThresholds | None = None,
) -> DistributionDrift:
    """Item popularity: each item's share of the window's events."""
    return share_drift(reference_events, current_events, Col.ITEM, "item popularity", thresholds)


def category_mix_drift(
    reference_events: pl.LazyFrame | pl.DataFrame,
    current_events: pl.LazyFrame | pl.DataFrame,
    items: pl.LazyFrame | pl.DataFrame,
    thresholds: DriftThresholds | None = None,
) -> DistributionDrift:
    """Category mix: each category's share of the window's events, by the items
    table's category of the item (null for items it does not know)."""
    catalog = items.lazy().select(Col.ITEM, Col.CATEGORY)

    def categories(events: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
        return events.lazy().select(Col.ITEM).join(catalog, on=Col.ITEM, how="left")

    return share_drift(
        categories(reference_events), categories(current_events), Col.CATEGORY, "category mix", thresholds
    )
