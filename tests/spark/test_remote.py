"""engine=spark with the data on an S3 server (`paths.data_dir=s3://...`): the
driver works on verified local mirrors, as the polars engine does, and the store
ends up holding the tables the polars engine writes to a local folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig

from tests.data.test_remote import FOLDERS, Store, chain, local_tables, small_shop, stored_tables
from tests.s3 import new_bucket, s3_server
from tests.spark.conftest import SPARK
from tests.spark.parity import assert_same_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    yield from s3_server()


def jobs_run(spark: SparkSession, group: str, steps: list[str]) -> DictConfig:
    """`chain(steps)` with its Spark jobs tagged, so the test can tell Spark did the work."""
    spark.sparkContext.setJobGroup(group, "recsys test")
    try:
        return chain(steps)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]


def test_the_chain_on_s3_with_spark_stores_the_tables_polars_writes_locally(
    spark: SparkSession, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = small_shop(tmp_path / "shop")
    bucket = new_bucket(s3_endpoint, monkeypatch, "spark")
    store = Store(f"s3://{bucket}/data", s3_endpoint, raw, tmp_path / "cache")
    local = chain([f"paths.data_dir={tmp_path / 'local'}", f"paths.raw_dir={raw}"])
    remote = jobs_run(spark, "remote-chain", store.overrides(*SPARK))
    assert spark.sparkContext.statusTracker().getJobIdsForGroup("remote-chain"), "no Spark job ran"
    for key in FOLDERS:
        stored, written = stored_tables(store.folder(remote, key)), local_tables(Path(str(local[key])))
        assert stored.keys() == written.keys() and stored
        for rel, table in written.items():
            assert_same_table(table, stored[rel], rel)
