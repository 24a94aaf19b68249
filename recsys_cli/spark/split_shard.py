"""What Spark's Python workers run for `recsys split` on one bucket of users:
the polars engine's `assign`, `part_counts` and `ground_truth`, unchanged.

A bucket holds all events of its users, so per-user rules (leave-last-N ranks,
a target's history and `cold` flag) see exactly what they see on the whole lake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl
import pyarrow as pa

from recsys_cli.spark.arrow import from_arrow, to_spark
from recsys_cli.splits.base import PART, Fold, Splitter, part_counts
from recsys_cli.splits.targets import TargetSpec, ground_truth

BUCKET = "_bucket"
COUNTS: dict[str, pl.DataType] = {PART: pl.String(), "rows": pl.Int64(), "users": pl.Int64()}


Shard = Callable[[pa.Table], pa.Table]


def _out(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pa.Table:
    """`to_spark`, with `large_string` (which applyInArrow's result check refuses) as `string`."""
    table = to_spark(frame, schema)
    fields = [f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


def _assigned(table: pa.Table, schema: Mapping[str, pl.DataType], splitter: Splitter, fold: Fold) -> pl.LazyFrame:
    events = from_arrow(table, schema).select(list(schema))
    return splitter.assign(events.lazy(), fold)


# Closures rather than functools.partial: Spark reads the shard's type hints to pick
# its calling convention, and a partial has none. They capture only small values.
def counts_shard(schema: Mapping[str, pl.DataType], splitter: Splitter, fold: Fold) -> Shard:
    """Rows and distinct users per part of one bucket."""

    def shard(table: pa.Table) -> pa.Table:
        return _out(part_counts(_assigned(table, schema, splitter, fold)).collect(), COUNTS)

    return shard


def targets_shard(
    schema: Mapping[str, pl.DataType],
    splitter: Splitter,
    fold: Fold,
    spec: TargetSpec,
    part: str,
    out: Mapping[str, pl.DataType],
) -> Shard:
    """The `part` targets of one bucket's users, in the `out` schema."""

    def shard(table: pa.Table) -> pa.Table:
        return _out(ground_truth(_assigned(table, schema, splitter, fold), spec, part).collect(), out)

    return shard
