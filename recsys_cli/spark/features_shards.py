"""What Spark's Python workers run for `recsys features` (engine=spark): one shard,
a bucket of users or of items, through the same Polars functions the polars
engine runs over the whole history (features/build.py, features/aggregates.py).

Every function here is per key: a shard holding all events of some users (or
items) gives exactly those users' (items') rows, so the driver only concatenates
the shards' rows and sorts them. Nothing here is global: the parts that are (the
users and items tables, vocabularies, the cutoff of per-user splits) stay on the
driver (spark/features.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import pyarrow as pa

from recsys_cli.features.aggregates import item_behaviour
from recsys_cli.features.build import (
    LABELS,
    FeatureConfig,
    history_of,
    user_tables,
    window_bounds,
    window_events,
    window_labels,
)
from recsys_cli.spark.arrow import from_arrow, to_spark
from recsys_cli.splits.base import VAL, Fold, Splitter
from recsys_cli.splits.targets import TargetSpec

BUCKET = "_bucket"  # the shard of a row: pmod(xxhash64(key), buckets)
VIEW = "_view"  # which view (the part, or a ranker window) a row of a table belongs to
Compute = Callable[[pl.LazyFrame], pl.LazyFrame]


@dataclass(frozen=True)
class View:
    """The history one table is computed from: `part`'s history in `fold`, as of
    `cutoff`, or (with `window`) that ranker window's history as of its own cutoff."""

    splitter: Splitter
    fold: Fold
    part: str
    cutoff: datetime
    cfg: FeatureConfig
    target: TargetSpec
    window: int | None = None

    def as_of(self) -> datetime:
        return self.cutoff if self.window is None else window_bounds(self.cutoff, self.cfg, self.window)[0]

    def before(self, history: pl.LazyFrame) -> pl.LazyFrame:
        """The events the view's tables are computed from (per event)."""
        return history if self.window is None else history_of(self.inner(history), VAL)

    def inner(self, history: pl.LazyFrame) -> pl.LazyFrame:
        assert self.window is not None
        return window_events(history, *window_bounds(self.cutoff, self.cfg, self.window))


def part_history(events: pl.LazyFrame, splitter: Splitter, fold: Fold, part: str, columns: list[str]) -> pl.LazyFrame:
    """A user shard's history events for `part` (the splitter's own `assign`: per
    user for leave-last-N, per event for time splits), in the lake's `columns`."""
    return history_of(splitter.assign(events, fold), part).select(columns)


def user_frames(events: pl.LazyFrame, views: tuple[View, ...], table: str) -> pl.LazyFrame:
    """`table` (interactions, sequences, the behaviour part of user_features, or
    labels) of every view that has one, for the users of a shard whose events carry
    the items' catalogue columns; each row tagged with its view's index. One pass
    over the shard for all views: the split's `assign` runs once."""
    first = views[0]
    history = history_of(first.splitter.assign(events, first.fold), first.part)
    return pl.concat(
        [
            _user_table(history, view, table).with_columns(pl.lit(k, pl.Int32).alias(VIEW))
            for k, view in has(views, table)
        ]
    )


def _user_table(history: pl.LazyFrame, view: View, table: str) -> pl.LazyFrame:
    if table == LABELS:
        return window_labels(view.inner(history), view.target)
    before = view.before(history)
    return user_tables(before, before, view.as_of(), view.cfg, view.target)[table]


def item_frames(history: pl.LazyFrame, views: tuple[View, ...]) -> pl.LazyFrame:
    """The event-based part of item_features of every view for the items of a shard
    of the part's history, tagged with the view's index."""
    windows = views[0].cfg.windows_days
    return pl.concat([tagged(item_behaviour(v.before(history), v.as_of(), windows), k) for k, v in enumerate(views)])


def tagged(frame: pl.LazyFrame, k: int) -> pl.LazyFrame:
    return frame.with_columns(pl.lit(k, pl.Int32).alias(VIEW))


def has(views: tuple[View, ...], table: str) -> list[tuple[int, View]]:
    """The views that have `table` (labels: the ranker windows only), with their indices."""
    return [(k, view) for k, view in enumerate(views) if table != LABELS or view.window is not None]


def output_schema(compute: Compute, schema_in: Mapping[str, pl.DataType]) -> pl.Schema:
    """What `compute` returns for a shard: resolved on an empty frame, on the driver,
    so a configuration error is raised there, as under the polars engine."""
    return compute(pl.LazyFrame(schema=dict(schema_in))).collect_schema()


def run_shard(
    table: pa.Table, compute: Compute, schema_in: Mapping[str, pl.DataType], schema_out: Mapping[str, pl.DataType]
) -> pa.Table:
    """One `applyInArrow` call (executor): a shard in Spark's types to its rows in Spark's types."""
    frame = from_arrow(table, schema_in).drop(BUCKET, strict=False).lazy()
    return to_spark(compute(frame).collect(), schema_out)
