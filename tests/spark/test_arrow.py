"""Frames cross between Polars and Spark's Arrow batches without changing: the
types Spark lacks (enums, unsigned integers) are carried and restored."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from polars.testing import assert_frame_equal

from recsys_cli.data.schema import EventType
from recsys_cli.spark.arrow import from_arrow, spark_schema, to_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SCHEMA = {
    "user_id": pl.String(),
    "event_type": EventType,
    "ts": pl.Datetime("us", "UTC"),
    "date": pl.Date(),
    "_src": pl.UInt16(),
    "n": pl.UInt32(),
    "value": pl.Float64(),
    "items": pl.List(pl.String()),
}


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": ["u1", None],
            "event_type": ["view", "purchase"],
            "ts": [datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 2, 23, 59, tzinfo=UTC)],
            "date": [date(2026, 1, 1), date(2026, 1, 2)],
            "_src": [0, 65535],
            "n": [1, 2**32 - 1],
            "value": [0.1, None],
            "items": [["a", "b"], []],
        },
        schema=SCHEMA,
    )


def test_a_frame_survives_the_round_trip_through_spark(spark: SparkSession) -> None:
    sdf = spark.createDataFrame(to_spark(frame(), SCHEMA), schema=spark_schema(SCHEMA))
    back = from_arrow(sdf.toArrow(), SCHEMA)
    assert_frame_equal(back, frame())


def test_columns_a_shard_lacks_are_null_and_the_declared_order_is_kept() -> None:
    table = to_spark(frame().drop("value").select("n", "user_id"), {"user_id": pl.String(), "value": pl.Float64()})
    assert table.column_names == ["user_id", "value"]
    assert table.column("value").null_count == 2


def test_the_arrow_types_are_the_ones_spark_workers_accept() -> None:
    """32-bit offsets: a grouped-map function returning `large_string` is refused by Spark."""
    import pyarrow as pa

    table = to_spark(frame(), SCHEMA)
    assert table.schema.field("user_id").type == pa.string()
    assert table.schema.field("items").type == pa.list_(pa.string())


def test_a_grouped_map_shard_returns_through_to_spark(spark: SparkSession) -> None:
    import pyarrow as pa

    def shard(table: pa.Table) -> pa.Table:
        got = from_arrow(table, SCHEMA)
        return to_spark(got.with_columns(pl.col("user_id").fill_null("none")), SCHEMA)

    sdf = spark.createDataFrame(to_spark(frame(), SCHEMA), schema=spark_schema(SCHEMA))
    out = from_arrow(sdf.groupBy("date").applyInArrow(shard, spark_schema(SCHEMA)).toArrow(), SCHEMA)
    assert sorted(out["user_id"].to_list()) == ["none", "u1"]


def test_a_result_gathered_through_parquet_is_the_frame_and_leaves_no_scratch(
    spark: SparkSession, tmp_path: Path
) -> None:
    from recsys_cli.spark.gather import gather

    sdf = spark.createDataFrame(to_spark(frame(), SCHEMA), schema=spark_schema(SCHEMA)).repartition(3)
    got = gather(sdf, SCHEMA, tmp_path)
    assert_frame_equal(got.sort("_src"), frame().sort("_src"))
    assert gather(sdf.limit(0), SCHEMA, tmp_path).schema == pl.Schema(SCHEMA)
    assert not list(tmp_path.iterdir())
