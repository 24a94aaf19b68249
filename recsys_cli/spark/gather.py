"""A Spark result brought to the driver as a Polars frame, without passing
through the driver's JVM.

`DataFrame.toArrow()` collects every partition into the driver's JVM first
(refused past `spark.driver.maxResultSize`, 1 GiB by default: the interactions of
a 50M-event lake are more) and then copies it into Python. Here the executors
write the result as Parquet into a scratch folder inside the output being built,
which driver and executors share already (`conf/engine/spark.yaml`), and the
driver reads it with Polars and deletes it: the driver holds the table once, as
the polars engine does.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SCRATCH = ".gather-"


def gather(frame: DataFrame, schema: Mapping[str, pl.DataType], near: Path) -> pl.DataFrame:
    """`frame`'s rows as a Polars frame of `schema` (its column order and types);
    the scratch folder is made beside `near` (a folder of the output being built)
    and is gone when this returns, whatever happens."""
    target = near / f"{SCRATCH}{uuid.uuid4().hex}"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        frame.write.parquet(str(target))
        files = sorted(target.glob("*.parquet"))
        if not files:
            return pl.DataFrame(schema=dict(schema))
        read = pl.read_parquet(files)
        return read.select(
            (pl.col(n) if n in read.columns else pl.lit(None)).cast(d).alias(n) for n, d in schema.items()
        )
    finally:
        shutil.rmtree(target, ignore_errors=True)
