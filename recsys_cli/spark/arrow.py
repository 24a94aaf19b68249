"""Polars frames to and from the Arrow batches Spark's Python workers exchange.

Spark knows fewer types than Polars: no unsigned integers, no enums, no
`large_string`. On the way out each frame is cast to the Spark schema declared
for the step (`spark_schema` of its Polars schema); on the way in `from_arrow`
restores the Polars schema, so the shared Polars code sees exactly the frames it
sees under the polars engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

if TYPE_CHECKING:
    from polars._typing import PolarsDataType as PolarsType
    from pyspark.sql.types import DataType, StructType


def spark_type(dtype: PolarsType) -> DataType:
    """The Spark type that carries a Polars column without loss."""
    from pyspark.sql import types as T

    simple: dict[Any, DataType] = {
        pl.String: T.StringType(),
        pl.Enum: T.StringType(),
        pl.Categorical: T.StringType(),
        pl.Boolean: T.BooleanType(),
        pl.Int8: T.ByteType(),
        pl.Int16: T.ShortType(),
        pl.Int32: T.IntegerType(),
        pl.Int64: T.LongType(),
        pl.UInt8: T.ShortType(),
        pl.UInt16: T.IntegerType(),
        pl.UInt32: T.LongType(),
        pl.UInt64: T.LongType(),
        pl.Float32: T.FloatType(),
        pl.Float64: T.DoubleType(),
        pl.Date: T.DateType(),
        pl.Null: T.StringType(),
    }
    base = dtype.base_type()
    if base in simple:
        return simple[base]
    if isinstance(dtype, pl.Datetime):
        return T.TimestampType() if dtype.time_zone else T.TimestampNTZType()
    if isinstance(dtype, pl.List | pl.Array):
        return T.ArrayType(spark_type(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return T.StructType([T.StructField(f.name, spark_type(f.dtype), True) for f in dtype.fields])
    raise TypeError(f"no Spark type for Polars {dtype}")


def spark_schema(schema: Mapping[str, pl.DataType]) -> StructType:
    from pyspark.sql import types as T

    return T.StructType([T.StructField(name, spark_type(dtype), True) for name, dtype in schema.items()])


def _carried(dtype: PolarsType) -> pl.DataType:
    """The Polars type whose Arrow form is `spark_type(dtype)`."""
    casts: dict[Any, pl.DataType] = {
        pl.Enum: pl.String(),
        pl.Categorical: pl.String(),
        pl.Null: pl.String(),
        pl.UInt8: pl.Int16(),
        pl.UInt16: pl.Int32(),
        pl.UInt32: pl.Int64(),
        pl.UInt64: pl.Int64(),
    }
    if isinstance(dtype, pl.List | pl.Array):
        return pl.List(_carried(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: _carried(f.dtype) for f in dtype.fields})
    kept = casts.get(dtype.base_type(), dtype)
    return kept if isinstance(kept, pl.DataType) else kept()


def to_spark(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pa.Table:
    """`frame` in the column order and Arrow types of `spark_schema(schema)`; a
    column of `schema` that `frame` lacks is all null (a file without that column)."""
    cols = [
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(_carried(dtype)).alias(name)
        for name, dtype in schema.items()
    ]
    table = frame.select(cols).to_arrow(compat_level=pl.CompatLevel.oldest())
    # Polars 2 exports `large_string` and `large_list` even at its oldest compat level;
    # `applyInArrow` refuses them (createDataFrame converts them silently).
    return table.cast(pa.schema([pa.field(f.name, _small(f.type)) for f in table.schema]))


def _small(kind: pa.DataType) -> pa.DataType:
    """`kind` with 32-bit offsets, as Spark's Arrow reader expects."""
    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.binary()
    if pa.types.is_large_list(kind) or pa.types.is_list(kind):
        return pa.list_(_small(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _small(f.type)) for f in kind])
    return kind


def batches(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> Iterator[pa.RecordBatch]:
    """`to_spark` as record batches, for `mapInArrow`."""
    yield from to_spark(frame, schema).to_batches()


def from_arrow(data: pa.Table | Iterable[pa.RecordBatch], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Spark's Arrow data as the Polars frame the shared code expects: its columns
    cast back to `schema` (enums, unsigned integers), any others as they come."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches(list(data))
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col(n).cast(d) for n, d in schema.items() if n in frame.columns)


def grouped_map(fn: Callable[..., pa.Table], *args: Any) -> Callable[[pa.Table], pa.Table]:
    """`fn(table, *args)` as a function `groupBy(...).applyInArrow` accepts: pyspark
    4.3 picks its calling convention from the function's type hints, and a
    functools.partial has none (it then fails with an UnboundLocalError)."""

    def call(table: pa.Table) -> pa.Table:
        return fn(table, *args)

    return call
