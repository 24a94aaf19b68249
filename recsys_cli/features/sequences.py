"""Per-user recent sequences for sequential models (SASRec and kin)."""

from __future__ import annotations

import polars as pl

from recsys_cli.data.schema import Col


def sequences(history: pl.LazyFrame, max_len: int = 50) -> pl.LazyFrame:
    """Each user's `max_len` most recent events, oldest first: items, event
    types, timestamps and the gap in seconds since the previous event (0 first)."""
    ordered = history.sort(Col.USER, Col.TS, Col.ITEM)
    gap = (pl.col(Col.TS) - pl.col(Col.TS).shift(1).over(Col.USER)).dt.total_seconds().fill_null(0)
    return (
        ordered.with_columns(gap.alias("gap_s"))
        .group_by(Col.USER, maintain_order=True)
        .agg(
            pl.col(Col.ITEM).tail(max_len).alias("items"),
            pl.col(Col.EVENT).cast(pl.String).tail(max_len).alias("event_types"),
            pl.col(Col.TS).tail(max_len).alias("ts"),
            pl.col("gap_s").tail(max_len).alias("gaps_s"),
            pl.len().alias("length_total"),
        )
    )
