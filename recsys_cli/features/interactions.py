"""Implicit-feedback interactions: one weighted (user, item) row per pair.

Weights per event type say how much each signal means (a purchase is worth
more than a view); a rating can carry its own value; time decay lets recent
behaviour count more than old, measured back from the cutoff.

Each pair also says whether the target counts the item as already seen by the
user (`seen`): models never recommend those, and the ground truth never counts
them (`splits.targets.TargetSpec.excluded`), so both sides exclude the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import polars as pl

from recsys_cli.data.schema import EVENT_TYPES, Col, Timestamp
from recsys_cli.errors import ConfigError

VALUE = "value"  # a weight of "value" uses the event's own value (a rating)
SEEN = "seen"  # the column: the target excludes this item for this user
Dedup = Literal["sum", "max", "last"]


def event_weight(weights: Mapping[str, float | str]) -> pl.Expr:
    """Weight of each event from its type; unlisted types weigh 0."""
    unknown = sorted(set(weights) - set(EVENT_TYPES))
    if unknown:
        raise ConfigError(f"features.interactions.weights: unknown event types {unknown}")
    expr: pl.Expr = pl.lit(0.0)
    for event, weight in weights.items():
        value = pl.col(Col.VALUE).fill_null(0.0) if weight == VALUE else pl.lit(float(weight))
        expr = pl.when(pl.col(Col.EVENT) == event).then(value).otherwise(expr)
    return expr


def decay(cutoff: datetime, half_life_days: float | None) -> pl.Expr:
    """0.5 ** (age / half-life), age measured from the cutoff; 1 without decay."""
    if half_life_days is None:
        return pl.lit(1.0)
    age_days = (pl.lit(cutoff, dtype=Timestamp) - pl.col(Col.TS)).dt.total_microseconds() / 86_400e6
    return pl.lit(0.5).pow(age_days / half_life_days)


def interactions(
    history: pl.LazyFrame,
    cutoff: datetime,
    weights: Mapping[str, float | str],
    half_life_days: float | None = None,
    dedup: Dedup = "sum",
    seen: pl.Expr | None = None,
) -> pl.LazyFrame:
    """(user, item) -> weight, events, last_ts and, given `seen` (true for the events
    that make an item already seen), whether any event of the pair is one.

    Pairs whose weight is 0 are dropped, unless seen: an item the user removed
    from the cart (weight 0 by default) is still excluded when the target says so.
    `dedup` combines repeated events of a pair: sum them, keep the strongest, or
    keep the latest.
    """
    weighted = history.with_columns((event_weight(weights) * decay(cutoff, half_life_days)).alias("weight"))
    combine = {
        "sum": pl.col("weight").sum(),
        "max": pl.col("weight").max(),
        "last": pl.col("weight").sort_by(Col.TS).last(),
    }
    if dedup not in combine:
        raise ConfigError(f"features.interactions.dedup must be sum, max or last, got {dedup!r}")
    aggregates = [combine[dedup].alias("weight"), pl.len().alias("events"), pl.col(Col.TS).max().alias("last_ts")]
    keep = pl.col("weight") > 0
    if seen is not None:
        aggregates.append(seen.any().alias(SEEN))
        keep = keep | pl.col(SEEN)
    return weighted.group_by(Col.USER, Col.ITEM).agg(aggregates).filter(keep).sort(Col.USER, Col.ITEM)
