"""The session recsys starts for engine=spark: UTC always, and prerequisites
refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_cli.errors import ConfigError
from recsys_cli.spark.session import buckets, java_major, settings


def fake_java(tmp_path: Path, version_line: str) -> str:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return str(java)


@pytest.mark.parametrize(
    ("line", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
    ],
)
def test_the_java_major_version_is_read_from_java_version(tmp_path: Path, line: str, major: int) -> None:
    assert java_major(fake_java(tmp_path, line)) == major


def test_no_java_is_none(tmp_path: Path) -> None:
    assert java_major(str(tmp_path / "absent")) is None


def test_sessions_run_in_utc_and_take_further_settings_from_the_config() -> None:
    conf = settings({"conf": {"spark.driver.memory": "8g"}})
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.driver.memory"] == "8g"
    with pytest.raises(ConfigError, match="spark.sql.session.timeZone = Europe/Paris: recsys sessions run in UTC"):
        settings({"conf": {"spark.sql.session.timeZone": "Europe/Paris"}})


def test_shards_hold_at_most_rows_per_task_rows() -> None:
    assert buckets(0, {"rows_per_task": 1000}) == 1
    assert buckets(1000, {"rows_per_task": 1000}) == 1
    assert buckets(1001, {"rows_per_task": 1000}) == 2


def test_the_engine_group_names_spark_or_nothing() -> None:
    from omegaconf import OmegaConf

    from recsys_cli.spark.session import spark_settings

    assert spark_settings(OmegaConf.create({}), "split") is None
    assert spark_settings(OmegaConf.create({"engine": {"name": "polars"}}), "split") is None
    spark = {"name": "spark", "master": "local[2]", "conf": {}}
    assert spark_settings(OmegaConf.create({"engine": spark}), "split") == spark
    with pytest.raises(ConfigError, match="engine = dask: recsys split runs on polars or spark"):
        spark_settings(OmegaConf.create({"engine": {"name": "dask"}}), "split")
