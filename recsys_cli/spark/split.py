"""`recsys split` with engine=spark: the same folds, targets and counts as the
polars engine (tasks/split.py keeps the orchestration, manifest and sealing).

Driver: reads the lake's schema, asks the timeline (spark/split_timeline.py) for
the folds' cutoffs, and brings back per fold the part counts and then each target
table, which it sorts and writes as the polars engine does.
Executors: the lake's events are shuffled once into buckets of users (every user's
events in one bucket, as leave-last-N and the targets' history need) and kept;
each fold runs on every bucket the polars engine's own `assign`, `part_counts`
and `ground_truth` (spark/split_shard.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from recsys_cli.data.lake import scan_events
from recsys_cli.data.schema import Col
from recsys_cli.spark.arrow import spark_schema
from recsys_cli.spark.gather import gather
from recsys_cli.spark.session import buckets, spark_session
from recsys_cli.spark.split_shard import BUCKET, COUNT_COLUMNS, COUNTS, TABLE, fold_shard, stacked_schema, target_schema
from recsys_cli.spark.split_timeline import SparkTimeline
from recsys_cli.splits.base import PART, TEST, VAL, Fold, Splitter
from recsys_cli.splits.targets import TargetSpec
from recsys_cli.tasks.split import FoldTables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def read_events(spark: SparkSession, lake: Path) -> DataFrame:
    """The lake's events as scan_events reads them: Parquet files only, no `date` column."""
    root = str(lake / "events")
    frame = spark.read.option("basePath", root).option("pathGlobFilter", "*.parquet").parquet(root)
    return frame.drop(Col.DATE)


class SparkSplit:
    """The split engine (tasks/split.py::SplitEngine) over a Spark session."""

    def __init__(self, events: DataFrame, schema: Mapping[str, pl.DataType], engine: Mapping[str, Any]) -> None:
        self.events = events
        self.schema = dict(schema)
        self.engine = engine
        self._timeline = SparkTimeline(events)
        self._bucketed: DataFrame | None = None
        self.n_buckets = 0

    def timeline(self) -> SparkTimeline:
        return self._timeline

    def bucketed(self) -> DataFrame:
        """The events shuffled by user bucket, once for every fold, and kept."""
        if self._bucketed is None:
            from pyspark.sql import functions as F

            self.n_buckets = buckets(self._timeline.bounds()[2], self.engine)
            bucket = F.pmod(F.xxhash64(F.col(Col.USER)), F.lit(self.n_buckets))
            self._bucketed = self.events.withColumn(BUCKET, bucket).repartition(self.n_buckets, BUCKET).persist()
        return self._bucketed

    def fold(self, splitter: Splitter, fold: Fold, spec: TargetSpec, scratch: Path) -> FoldTables:
        """One pass over the buckets; the driver then holds the fold's counts and its
        two target tables, as the polars engine's `collect_all` does."""
        targets = target_schema(self.schema, splitter, fold, spec)
        stacked = stacked_schema(targets)
        shard = fold_shard(self.schema, splitter, fold, spec)
        result = self.bucketed().groupBy(BUCKET).applyInArrow(shard, spark_schema(stacked))
        tables = gather(result, stacked, scratch)

        def table(tag: str, columns: Mapping[str, pl.DataType]) -> pl.DataFrame:
            return tables.filter(pl.col(TABLE) == tag).select(list(columns))

        counts = table(COUNTS, COUNT_COLUMNS).group_by(PART).agg(pl.col("rows").sum(), pl.col("users").sum())
        return FoldTables(counts, [(part, table(part, targets).sort(Col.USER, Col.ITEM)) for part in (VAL, TEST)])

    def release(self) -> None:
        if self._bucketed is not None:
            self._bucketed.unpersist()


@contextmanager
def spark_split(engine: Mapping[str, Any], lake: Path) -> Iterator[SparkSplit]:
    """A Spark split engine over `lake` for the length of the block."""
    schema = scan_events(lake).collect_schema()  # the types workers restore; an empty lake is refused here
    with spark_session(engine) as spark:
        split = SparkSplit(read_events(spark, lake), schema, engine)
        try:
            yield split
        finally:
            split.release()
