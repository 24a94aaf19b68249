"""Per-user recent sequences for sequential models (SASRec and kin)."""

from __future__ import annotations

import polars as pl

from recsys_cli.data.event_order import event_order
from recsys_cli.data.schema import Col


def sequences(history: pl.LazyFrame, max_len: int = 50) -> pl.LazyFrame:
    """Each user's `max_len` most recent events, oldest first: items, event
    types, timestamps and the gap in seconds since the previous kept event (0 for
    the first), in the order of `event_order` (the one the splits hold out by).

    Sorted within each user's group rather than globally: a global sort of the
    history would hold all of it in memory at once.
    """
    order = event_order(history.collect_schema().names())
    return (
        history.group_by(Col.USER)
        .agg(
            pl.col(Col.ITEM).sort_by(order).tail(max_len).alias("items"),
            pl.col(Col.EVENT).cast(pl.String).sort_by(order).tail(max_len).alias("event_types"),
            pl.col(Col.TS).sort_by(order).tail(max_len).alias("ts"),
            pl.len().alias("length_total"),
        )
        .with_columns(pl.col("ts").list.eval(pl.element().diff().dt.total_seconds().fill_null(0)).alias("gaps_s"))
        .select(Col.USER, "items", "event_types", "ts", "gaps_s", "length_total")
        .sort(Col.USER)
    )
