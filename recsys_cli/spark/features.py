"""`recsys features` with engine=spark: Spark reads the lake and shuffles it, by
user once for the whole command and by item once per part; each shard's rows come
from the polars engine's own functions (spark/features_shards.py, run in Spark's
Python workers); the driver puts one table at a time back together, adds the
users and items tables, orders it as the polars engine does and writes it with
the same call (features/build.py). The folder and its manifest are the polars
engine's: the same files and rows, floats equal but for the last bits of sums
taken in another order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from recsys_cli import errors
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
from recsys_cli.spark.arrow import grouped_map, spark_schema, to_spark
from recsys_cli.spark.features_shards import (
    BUCKET,
    VIEW,
    Compute,
    View,
    has,
    item_frames,
    output_schema,
    part_history,
    run_shard,
    user_frames,
)
from recsys_cli.spark.gather import gather
from recsys_cli.spark.session import buckets, spark_session
from recsys_cli.splits.base import Fold

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from recsys_cli.tasks.features import Inputs, PartWriter

TICK = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How a worker's traceback, carried in Spark's error, ends when our code raised.
WORKER_ERROR = re.compile(r"^recsys_cli\.errors\.(\w+): (.*)$", re.MULTILINE)


class SparkJobError(OSError):
    """A Spark job failed. An OSError, so that `data.lake.decoding` re-hashes the
    inputs and names a damaged file, as it does for a Polars read error."""


@contextmanager
def spark_features(engine: Mapping[str, Any], inputs: Inputs, lake: Path) -> Iterator[PartWriter]:
    """The spark engine's part writer, with its session and its shuffle by user,
    for the length of the command (driver)."""
    with spark_session(engine) as spark, spark_failures():
        features = SparkFeatures(spark, engine, inputs, lake)
        try:
            yield features.write_part
        finally:
            features.by_user.unpersist()


@contextmanager
def spark_failures() -> Iterator[None]:
    """A Spark failure as the polars engine would report it: a RecsysError raised
    in a worker is raised again here, the same class with the same one line;
    anything else is a SparkJobError chained to Spark's own."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JJavaError) as exc:
        text = str(exc)
        raised = WORKER_ERROR.findall(text)
        known = getattr(errors, raised[-1][0], None) if raised else None
        if isinstance(known, type) and issubclass(known, errors.RecsysError):
            raise known(raised[-1][1]) from exc
        first = (text.strip().splitlines() or [type(exc).__name__])[0]
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
        # The row count from the Parquet footers (Polars reads no data for it), not a Spark job.
        self.buckets = buckets(inputs.events.select(pl.len()).collect().item(), engine)
        items = catalogue(inputs.items).collect()
        broadcast = F.broadcast(spark.createDataFrame(to_spark(items, items.schema), spark_schema(items.schema)))
        self.shard_schema = pl.Schema({**self.events_schema, **items.drop(Col.ITEM).schema})
        self.by_user = sharded(events.join(broadcast, on=Col.ITEM, how="left"), Col.USER, self.buckets).persist()

    def write_part(self, fold: Fold, part: str, fold_cutoff: datetime | None, folder: Path) -> Written:
        """Every table of one part into `folder`, one table on the driver at a time.

        The part's history is sharded by item (one shuffle); each kind of table is
        one pass over the user or item shards for the part and all its ranker
        windows at once, persisted while its views are fetched one by one."""
        columns = list(self.events_schema.names())
        split = partial(part_history, splitter=self.inputs.splitter, fold=fold, part=part, columns=columns)
        history, _ = self.apply(self.by_user, self.shard_schema, split)
        by_item = sharded(history, Col.ITEM, self.buckets).persist()
        try:
            cutoff = fold_cutoff or self.last_ts(by_item) + TICK
            view = View(self.inputs.splitter, fold, part, cutoff, self.inputs.features, self.inputs.target)
            views = (view, *(replace(view, window=j) for j in range(view.cfg.ranker_windows)))
            rows: dict[str, int] = {}
            attributes: dict[str, pl.DataFrame] = {}
            for name in (*TABLES, LABELS):
                rows |= self.write_tables(name, views, by_item, folder, attributes)
            counts = {c: self.counts(by_item, c, folder) for c in (Col.USER, Col.ITEM)}
        finally:
            by_item.unpersist()
        vocab = vocabularies(counts, attributes, self.inputs.features)
        write_vocab(folder, vocab)
        order = [_path(v, n) for v in views for n in (TABLES if v.window is None else (*TABLES, LABELS))]
        return Written(cutoff, {path: rows[path] for path in order}, {k: len(v) for k, v in vocab.items()})

    def write_tables(
        self, name: str, views: tuple[View, ...], by_item: DataFrame, folder: Path, attributes: dict[str, pl.DataFrame]
    ) -> dict[str, int]:
        """Table `name` of every view that has one, ordered as the polars engine orders
        it; keeps the vocabulary columns of the part's own user_features and item_features."""
        if not has(views, name):
            return {}  # labels without ranker windows
        if name == "item_features":
            tagged, schema = self.apply(by_item, self.events_schema, partial(item_frames, views=views))
        else:
            tagged, schema = self.apply(self.by_user, self.shard_schema, partial(user_frames, views=views, table=name))
        tagged = tagged.persist()
        rows = {}
        try:
            for k, view in has(views, name):
                frame = self.finish(name, view, gather(tagged.filter(tagged[VIEW] == k), schema, folder))
                write_table(folder, _path(view, name), frame)
                rows[_path(view, name)] = frame.height
                if view.window is None:
                    attributes[name] = frame.select(c for c in view.cfg.vocab_columns if c in frame.columns)
        finally:
            tagged.unpersist()
        return rows

    def finish(self, name: str, view: View, shards: pl.DataFrame) -> pl.DataFrame:
        """One whole table on the driver: the shards' rows, with the users or items
        table where it has them, in the polars engine's order."""
        rows = shards.drop(VIEW).lazy()
        if name == "item_features":
            rows = with_catalogue(rows, self.inputs.items, view.as_of())
        elif name == "user_features":
            rows = user_table(rows, self.inputs.users, view.as_of())
        return rows.collect().sort(KEYS[name])

    def apply(
        self, frame: DataFrame, schema_in: Mapping[str, pl.DataType], compute: Compute
    ) -> tuple[DataFrame, pl.Schema]:
        """`compute` over every bucket of `frame` (executors), and its Polars schema."""
        out = output_schema(compute, schema_in)
        shard = grouped_map(run_shard, compute, dict(schema_in), dict(out))
        return frame.groupBy(BUCKET).applyInArrow(shard, spark_schema(out)), out

    @staticmethod
    def last_ts(history: DataFrame) -> datetime:
        """The last history event's time: the cutoff of a per-user split's part (a Spark aggregate)."""
        from pyspark.sql import functions as F

        row = history.agg(F.unix_micros(F.max(Col.TS))).first()
        assert row is not None  # an aggregate without grouping has one row
        return EPOCH + timedelta(microseconds=int(row[0]))

    @staticmethod
    def counts(history: DataFrame, column: str, folder: Path) -> pl.DataFrame:
        """Events per id (a Spark group-by), for the id vocabularies."""
        return gather(history.groupBy(column).count(), {column: pl.String(), "count": pl.Int64()}, folder)


def _path(view: View, name: str) -> str:
    """Where a view's table goes in the part's folder."""
    return name if view.window is None else f"ranker/{view.window}/{name}"
