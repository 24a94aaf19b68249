"""Context of a moment: when the user is asked (hour of day, day of week)."""

from __future__ import annotations

import polars as pl

from recsys_cli.data.schema import Col


def context(ts: str = Col.TS) -> list[pl.Expr]:
    """Hour of day (0-23) and ISO day of week (1 = Monday) in UTC."""
    return [pl.col(ts).dt.hour().alias("hour_of_day"), pl.col(ts).dt.weekday().alias("day_of_week")]
