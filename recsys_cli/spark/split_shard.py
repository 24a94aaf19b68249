"""What Spark's Python workers run for `recsys split` on one bucket of users:
the polars engine's `assign`, `part_counts` and `ground_truth`, unchanged.

A bucket holds all events of its users, so per-user rules (leave-last-N ranks,
a target's history and `cold` flag) see exactly what they see on the whole lake.
One pass per fold returns the bucket's three tables stacked, each row tagged with
its table: Spark sends every bucket to Python once per fold, not once per table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl
import pyarrow as pa

from recsys_cli.spark.arrow import from_arrow, grouped_map, to_spark
from recsys_cli.splits.base import PART, TEST, VAL, Fold, Splitter, part_counts
from recsys_cli.splits.targets import TargetSpec, ground_truth

BUCKET = "_bucket"
TABLE, COUNTS = "_table", "counts"
COUNT_COLUMNS: dict[str, pl.DataType] = {PART: pl.String(), "rows": pl.Int64(), "users": pl.Int64()}

Shard = Callable[[pa.Table], pa.Table]


def target_schema(events: Mapping[str, pl.DataType], splitter: Splitter, fold: Fold, spec: TargetSpec) -> pl.Schema:
    """The columns of a target table, from the query plan alone (no data read)."""
    return ground_truth(splitter.assign(pl.LazyFrame(schema=events), fold), spec, TEST).collect_schema()


def stacked_schema(targets: Mapping[str, pl.DataType]) -> dict[str, pl.DataType]:
    """The tag, a target table's columns and the counts' columns (null where another table's)."""
    return {TABLE: pl.String(), **targets, **COUNT_COLUMNS}


def fold_shard(schema: Mapping[str, pl.DataType], splitter: Splitter, fold: Fold, spec: TargetSpec) -> Shard:
    """`fold_rows` for one fold, as applyInArrow takes it; it carries only small
    values (schemas, the splitter, the fold, the target)."""
    stacked = stacked_schema(target_schema(schema, splitter, fold, spec))
    return grouped_map(fold_rows, schema, splitter, fold, spec, stacked)


def fold_rows(
    table: pa.Table,
    schema: Mapping[str, pl.DataType],
    splitter: Splitter,
    fold: Fold,
    spec: TargetSpec,
    stacked: Mapping[str, pl.DataType],
) -> pa.Table:
    """One bucket's part counts and val and test targets, stacked."""
    assigned = splitter.assign(from_arrow(table, schema).select(list(schema)).lazy(), fold)
    queries = [part_counts(assigned), ground_truth(assigned, spec, VAL), ground_truth(assigned, spec, TEST)]
    frames = pl.collect_all(queries)
    tagged = [f.with_columns(pl.lit(tag).alias(TABLE)) for f, tag in zip(frames, (COUNTS, VAL, TEST), strict=True)]
    return to_spark(pl.concat(tagged, how="diagonal_relaxed"), stacked)
