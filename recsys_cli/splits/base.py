"""What every splitter provides: folds with their cutoffs, and a pure expression
that labels each event `train`, `val` or `test` (or leaves it out).

Labels depend only on the event's own timestamp and the fold's cutoffs (or, for
leave-last-N, on the user's own event order), so a split can always be
recomputed from the lake and the manifest, by us or by any other tool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.errors import SplitError

PART = "part"
TRAIN, VAL, TEST = "train", "val", "test"
PARTS = (TRAIN, VAL, TEST)


@dataclass(frozen=True)
class Fold:
    """One train | val | test arrangement. Windows are half-open: [start, end).

    `train_start` None means "from the first event"; cutoffs are None only for
    per-user protocols (leave-last-N), which have no global cutoff.
    """

    name: str
    train_start: datetime | None = None
    val_start: datetime | None = None
    test_start: datetime | None = None
    test_end: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


def time_part(fold: Fold) -> pl.Expr:
    """The part of each event from its timestamp alone; null outside every window."""
    ts = pl.col(Col.TS)

    def lit(t: datetime) -> pl.Expr:
        return pl.lit(t, dtype=Timestamp)

    assert fold.val_start is not None and fold.test_start is not None and fold.test_end is not None
    in_train = ts < lit(fold.val_start)
    if fold.train_start is not None:
        in_train = in_train & (ts >= lit(fold.train_start))
    return (
        pl.when(in_train)
        .then(pl.lit(TRAIN))
        .when(ts.is_between(lit(fold.val_start), lit(fold.test_start), closed="left"))
        .then(pl.lit(VAL))
        .when(ts.is_between(lit(fold.test_start), lit(fold.test_end), closed="left"))
        .then(pl.lit(TEST))
        .alias(PART)
    )


class Timeline(Protocol):
    """What `folds` may ask of the events: an engine answers it without handing
    the events over (Polars here; Spark in recsys_cli/spark/split_timeline.py)."""

    def bounds(self) -> tuple[datetime, datetime, int]:
        """First and last timestamps (None without events) and the number of events."""
        ...

    def nth(self, index: int) -> datetime:
        """The timestamp at `index` (0-based) of all timestamps in ascending order."""
        ...


class PolarsTimeline:
    """The timeline of a lazy frame of events (the polars engine's)."""

    def __init__(self, events: pl.LazyFrame) -> None:
        self.events = events

    def bounds(self) -> tuple[datetime, datetime, int]:
        row = self.events.select(
            pl.col(Col.TS).min().alias("lo"), pl.col(Col.TS).max().alias("hi"), pl.len().alias("n")
        ).collect(engine="streaming")
        lo, hi, n = row.row(0)
        return lo, hi, n

    def nth(self, index: int) -> datetime:
        return self.events.select(pl.col(Col.TS).sort().get(index)).collect(engine="streaming").item()


Events = pl.LazyFrame | Timeline


def timeline(events: Events) -> Timeline:
    """`events` as a timeline: a lazy frame is read by Polars, a timeline asked directly."""
    return PolarsTimeline(events) if isinstance(events, pl.LazyFrame) else events


class Splitter(ABC):
    """A split protocol: `folds` reads what it needs from the events' timeline (first
    and last timestamps, quantiles), `assign` labels the events of one fold."""

    # True when `assign` depends on the order of same-instant events (data/event_order.py),
    # so features built later must order them as the split did.
    orders_ties = False

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def folds(self, events: Events) -> list[Fold]: ...

    def assign(self, events: pl.LazyFrame, fold: Fold) -> pl.LazyFrame:
        """Events with a `part` column; events outside every window are dropped."""
        return events.with_columns(time_part(fold)).filter(pl.col(PART).is_not_null())

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def part_counts(assigned: pl.LazyFrame) -> pl.LazyFrame:
    """Rows and distinct users per part. Per shard of users under engine=spark: the
    shards hold disjoint users, so their counts add up to the whole's."""
    return assigned.group_by(PART).agg(pl.len().alias("rows"), pl.col(Col.USER).n_unique().alias("users"))


def time_bounds(events: Events) -> tuple[datetime, datetime, int]:
    """First and last event timestamps and the number of events."""
    lo, hi, n = timeline(events).bounds()
    if n == 0:
        raise SplitError("the lake has no events to split")
    return lo, hi, n
