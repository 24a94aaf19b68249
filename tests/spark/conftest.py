"""One Spark session (local[2]) for every engine=spark test: starting one costs
5-15 s, so the commands under test find it running and use it (`spark_session`
never stops a session it did not start). Without pyspark or Java the tests skip,
except under CI ($RECSYS_CI, set by .ci/run, which installs both), where that
is a failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from recsys_cli.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINE = {"name": "spark", "master": "local[2]", "rows_per_task": 1000, "conf": {"spark.sql.shuffle.partitions": "4"}}
# Overrides that select the same engine in a composed config.
SPARK = ["engine=spark", "engine.master='local[2]'", "engine.rows_per_task=1000"]


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    from recsys_cli.spark.session import require_spark

    try:
        require_spark()
    except ConfigError as exc:
        if os.environ.get("RECSYS_CI"):
            pytest.fail(f"{exc} (.ci/run installs both; CI must not skip the engine parity tests)")
        pytest.skip(str(exc))
    from recsys_cli.spark.session import spark_session

    os.environ.pop("SPARK_HOME", None)  # the pip-installed pyspark's own jars, whatever the machine has
    with spark_session(ENGINE) as session:
        yield session
