"""`recsys features` with engine=spark: Spark reads the lake and shuffles it, by
user once for the whole command and by item once per part; each shard's rows come
from the polars engine's own functions (spark/features_shards.py, run in Spark's
Python workers); the driver puts one table at a time back together, adds the
users and items tables, orders it as the polars engine does and writes it with
the same call (features/build.py). The folder and its manifest are the polars
engine's, byte for byte where the bytes encode no run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.features.aggregates import catalogue, with_catalogue
from recsys_cli.features.build import (
    KEYS,
    LABELS,
    TABLES,
    Written,
    user_table,
    vocabularies,
    write_table,
    write_vocab,
)
from recsys_cli.spark.arrow import from_arrow, spark_schema, to_spark
from recsys_cli.spark.features_shards import (
    BUCKET,
    Compute,
    View,
    item_frame,
    output_schema,
    part_history,
    shard_function,
    user_frame,
)
from recsys_cli.spark.session import buckets, spark_session
from recsys_cli.splits.base import Fold

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from recsys_cli.tasks.features import Inputs, PartWriter

TICK = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SparkJobError(OSError):
    """A Spark job failed. An OSError, so that `data.lake.decoding` re-hashes the
    inputs and names a damaged file, as it does for a Polars read error."""


@contextmanager
def spark_features(engine: Mapping[str, Any], inputs: Inputs, lake: Path) -> Iterator[PartWriter]:
    """The spark engine's part writer, with its session and its shuffle by user,
    for the length of the command (driver)."""
    with spark_session(engine) as spark, _failures():
        features = SparkFeatures(spark, engine, inputs, lake)
        try:
            yield features.write_part
        finally:
            features.by_user.unpersist()


@contextmanager
def _failures() -> Iterator[None]:
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JJavaError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SparkJobError(f"a Spark job failed: {first}") from exc


def sharded(frame: DataFrame, key: str, n: int) -> DataFrame:
    """`frame` in `n` buckets of `key` (one shuffle), a bucket per group."""
    from pyspark.sql import functions as F

    return frame.withColumn(BUCKET, F.pmod(F.xxhash64(F.col(key)), F.lit(n))).repartition(n, BUCKET)


class SparkFeatures:
    """The lake read by Spark, joined with the items' catalogue columns (a broadcast
    table) and sharded by user, persisted while the command runs (driver)."""

    def __init__(self, spark: SparkSession, engine: Mapping[str, Any], inputs: Inputs, lake: Path) -> None:
        from pyspark.sql import functions as F

        self.spark, self.inputs = spark, inputs
        self.events_schema = inputs.events.collect_schema()
        files = sorted(str(p) for p in (lake / "events").glob(f"{Col.DATE}=*/*.parquet"))
        events = spark.read.option("basePath", str(lake / "events")).parquet(*files).drop(Col.DATE)
        self.buckets = buckets(events.count(), engine)
        items = catalogue(inputs.items).collect()
        broadcast = F.broadcast(spark.createDataFrame(to_spark(items, items.schema), spark_schema(items.schema)))
        self.shard_schema = pl.Schema({**self.events_schema, **items.drop(Col.ITEM).schema})
        self.by_user = sharded(events.join(broadcast, on=Col.ITEM, how="left"), Col.USER, self.buckets).persist()

    def write_part(self, fold: Fold, part: str, fold_cutoff: datetime | None, folder: Path) -> Written:
        """Every table of one part into `folder`, one table on the driver at a time."""
        columns = list(self.events_schema.names())
        split = partial(part_history, splitter=self.inputs.splitter, fold=fold, part=part, columns=columns)
        history, _ = self.apply(self.by_user, self.shard_schema, split)
        by_item = sharded(history, Col.ITEM, self.buckets).persist()
        try:
            cutoff = fold_cutoff or self.last_ts(by_item) + TICK
            view = View(self.inputs.splitter, fold, part, cutoff, self.inputs.features, self.inputs.target)
            rows, attributes = self.write_view(view, by_item, folder, "")
            for j in range(self.inputs.features.ranker_windows):
                window = replace(view, window=j)
                rows |= self.write_view(window, by_item, folder, f"ranker/{j}/")[0]
            counts = {c: self.counts(by_item, c) for c in (Col.USER, Col.ITEM)}
        finally:
            by_item.unpersist()
        vocab = vocabularies(counts, attributes, self.inputs.features)
        write_vocab(folder, vocab)
        return Written(cutoff, rows, {k: len(v) for k, v in vocab.items()})

    def write_view(
        self, view: View, by_item: DataFrame, folder: Path, prefix: str
    ) -> tuple[dict[str, int], dict[str, pl.DataFrame]]:
        """The view's tables, in the polars engine's order; returns their row counts
        and the vocabulary columns of user_features and item_features."""
        rows, attributes = {}, {}
        names = TABLES if view.window is None else (*TABLES, LABELS)
        for name in names:
            frame = self.table(view, by_item, name).sort(KEYS[name])
            write_table(folder, prefix + name, frame)
            rows[prefix + name] = frame.height
            attributes[name] = frame.select(c for c in view.cfg.vocab_columns if c in frame.columns)
            del frame
        return rows, attributes

    def table(self, view: View, by_item: DataFrame, name: str) -> pl.DataFrame:
        """One whole table on the driver: the shards' rows, with the users or items table where it has them."""
        if name == "item_features":
            counts = self.collect(*self.apply(by_item, self.events_schema, partial(item_frame, view=view)))
            return with_catalogue(counts.lazy(), self.inputs.items, view.as_of()).collect()
        rows = self.collect(*self.apply(self.by_user, self.shard_schema, partial(user_frame, view=view, table=name)))
        if name == "user_features":
            return user_table(rows.lazy(), self.inputs.users, view.as_of()).collect()
        return rows

    def apply(
        self, frame: DataFrame, schema_in: Mapping[str, pl.DataType], compute: Compute
    ) -> tuple[DataFrame, pl.Schema]:
        """`compute` over every bucket of `frame` (executors), and its Polars schema."""
        out = output_schema(compute, schema_in)
        shard = shard_function(compute, dict(schema_in), dict(out))
        return frame.groupBy(BUCKET).applyInArrow(shard, spark_schema(out)), out

    @staticmethod
    def collect(frame: DataFrame, schema: pl.Schema) -> pl.DataFrame:
        return from_arrow(frame.toArrow(), schema)

    @staticmethod
    def last_ts(history: DataFrame) -> datetime:
        """The last history event's time: the cutoff of a per-user split's part (a Spark aggregate)."""
        from pyspark.sql import functions as F

        row = history.agg(F.unix_micros(F.max(Col.TS))).first()
        assert row is not None  # an aggregate without grouping has one row
        return EPOCH + timedelta(microseconds=int(row[0]))

    @staticmethod
    def counts(history: DataFrame, column: str) -> pl.DataFrame:
        """Events per id (a Spark group-by), for the id vocabularies."""
        return from_arrow(history.groupBy(column).count().toArrow(), {column: pl.String()})
