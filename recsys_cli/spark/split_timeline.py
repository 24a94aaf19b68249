"""The events' timeline (`splits/base.py::Timeline`) answered by Spark aggregates.

Folds need the first and last timestamps, the number of events and, for cutoffs
given as fractions, the exact n-th timestamp in time order. A global sort of the
lake would answer that but costs a full shuffle; instead the timeline narrows in:
events per day (one aggregate, which also gives the bounds), then per minute of
the day that holds index n, then per instant of that minute. Each step brings at
most a few thousand counts to the driver, never the events.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.spark.arrow import from_arrow

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

DAY_US = 86_400_000_000
# The widths the n-th timestamp is narrowed through after its day, in microseconds.
NARROWING = (60_000_000, 1)
START, N = "start", "n"


def micros() -> Column:
    """Timestamps as integer microseconds since the epoch: exact and free of time zones."""
    from pyspark.sql import functions as F

    return F.unix_micros(F.col(Col.TS))


def window_start(width: int) -> Column:
    """The start, in microseconds, of the `width`-long window each event falls in."""
    from pyspark.sql import functions as F

    return (micros() - F.pmod(micros(), F.lit(width))).alias(START)


def locate(counts: pl.DataFrame, index: int) -> tuple[int, int]:
    """The window (of `start`, `n` sorted by start) holding the `index`-th event, and
    the event's index within it."""
    row = (
        counts.sort(START)
        .with_columns((pl.col(N).cum_sum() - pl.col(N)).alias("before"))
        .filter(pl.col("before") <= index)
        .tail(1)
    )
    start, before = row.select(START, "before").row(0)
    return start, index - before


def instant(us: int) -> datetime:
    """Microseconds since the epoch as the UTC datetime Polars gives for a lake timestamp."""
    value: datetime = pl.Series([us], dtype=pl.Int64).cast(Timestamp).item()
    return value


class SparkTimeline:
    """Runs on the driver; each question is one small Spark aggregate over `events`."""

    def __init__(self, events: DataFrame) -> None:
        self.events = events
        self._days: pl.DataFrame | None = None

    def days(self) -> pl.DataFrame:
        """Events per UTC day with the day's first and last timestamps (computed once)."""
        if self._days is None:
            from pyspark.sql import functions as F

            ts = F.col(Col.TS)
            agg = self.events.groupBy(window_start(DAY_US)).agg(
                F.count(F.lit(1)).alias(N), F.min(ts).alias("lo"), F.max(ts).alias("hi")
            )
            self._days = from_arrow(agg.toArrow(), {START: pl.Int64(), N: pl.Int64(), "lo": Timestamp, "hi": Timestamp})
        return self._days

    def bounds(self) -> tuple[datetime, datetime, int]:
        days = self.days()
        return days["lo"].min(), days["hi"].max(), int(days[N].sum())  # type: ignore[return-value]

    def nth(self, index: int) -> datetime:
        start, rest = locate(self.days(), index)
        width = DAY_US
        for narrower in NARROWING:
            start, rest = locate(self._counts(start, width, narrower), rest)
            width = narrower
        return instant(start)

    def _counts(self, start: int, width: int, narrower: int) -> pl.DataFrame:
        """Events per `narrower` window within [start, start + width)."""
        from pyspark.sql import functions as F

        ts = F.col(Col.TS)  # compared as timestamps, so Parquet's row-group statistics skip the rest
        inside = self.events.where((ts >= F.lit(instant(start))) & (ts < F.lit(instant(start + width))))
        agg = inside.groupBy(window_start(narrower)).agg(F.count(F.lit(1)).alias(N))
        return from_arrow(agg.toArrow(), {START: pl.Int64(), N: pl.Int64()})
