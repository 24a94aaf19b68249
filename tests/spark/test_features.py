"""`recsys features` with engine=spark writes the polars engine's feature folder:
the default and ranker feature sets, on a split by time and on a per-user split
(leave-last-N, with ties in time within users), with users and items tables
(attribute vocabularies) holding users and items that have no events."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pytest

from recsys_cli.config import build, compose
from recsys_cli.errors import ConfigError, LakeError
from recsys_cli.spark.session import buckets
from recsys_cli.tasks import features, ingest, split
from tests.spark.conftest import ENGINE, SPARK
from tests.spark.parity import assert_same_output

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The tables whose row order is part of the format: every one (each sorted by its key).
TABLES = ("interactions", "sequences", "user_features", "item_features")
RANKER = ["features=ranker", "features.ranker_windows=2"]
# Float sums in another order change a Parquet file's last bits, so its size; the
# folders differ in their own path only.
RUN_SPECIFIC = ("bytes", "features_dir")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 events of the synthetic shop with times cut to the hour (many users
    act several times within an hour: ties in time), ingested and split by both
    protocols with the polars engine."""
    root = tmp_path_factory.mktemp("shop")
    cfg = compose("ingest", [f"paths.data_dir={root}", "data.generator.n_events=3000", "data.generator.n_days=60"])
    source = build(cfg.data)
    source.generate()
    for csv in Path(cfg.data.path).glob("events*.csv"):
        hourly = pl.read_csv(csv, infer_schema=False).with_columns(
            pl.col("event_time").str.slice(0, 13) + ":00:00.000Z"
        )
        # Events equal in all that orders a user's events (time, item, type) but not
        # in the rest (price, quantity) have no defined order under either engine.
        order = ["event_time", "customer_id", "sku", "event"]
        hourly.unique(subset=order, keep="first", maintain_order=True).write_csv(csv)
    ingest.run(cfg)
    for protocol in ("global_temporal", "leave_last_n"):
        split.run(compose("split", [f"paths.data_dir={root}", f"split={protocol}"]))
    return root


def run_both(shop: Path, name: str, overrides: list[str]) -> tuple[Path, Path]:
    common = [f"paths.data_dir={shop}", *overrides]
    polars = features.run(compose("features", [*common, f"features_dir={shop}/{name}-polars"]))
    spark = features.run(compose("features", [*common, *SPARK, f"features_dir={shop}/{name}-spark"]))
    return polars.path, spark.path


def ordered(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob("*.parquet")]


def test_the_shop_has_what_the_parity_cases_need(shop: Path, spark: SparkSession) -> None:
    lake = shop / "lake" / "synth"
    events = pl.scan_parquet(lake / "events" / "**" / "*.parquet").collect()
    assert buckets(events.height, ENGINE) > 1  # several user and item shards
    assert events.select(pl.struct("user_id", "ts").is_duplicated().any()).item()  # ties in time within users
    users, items = pl.read_parquet(lake / "users.parquet"), pl.read_parquet(lake / "items.parquet")
    assert users.join(events, on="user_id", how="anti").height > 0  # users without events
    assert items.join(events, on="item_id", how="anti").height > 0  # items without events


@pytest.mark.parametrize("protocol", ["global_temporal", "leave_last_n"])
@pytest.mark.parametrize("feature_set", ["default", "ranker"])
def test_spark_features_equal_polars_features(shop: Path, spark: SparkSession, protocol: str, feature_set: str) -> None:
    overrides = [f"split={protocol}", *(RANKER if feature_set == "ranker" else [])]
    polars, spark_dir = run_both(shop, f"{protocol}-{feature_set}", overrides)
    tables = ordered(polars)
    assert any("ranker/1/labels" in t for t in tables) == (feature_set == "ranker")
    assert_same_output(polars, spark_dir, ordered=tables, drop=RUN_SPECIFIC)


@pytest.mark.parametrize("engine", [[], SPARK], ids=["polars", "spark"])
def test_a_damaged_lake_is_named_by_both_engines(
    shop: Path, spark: SparkSession, tmp_path: Path, engine: list[str]
) -> None:
    """Unverified (names and sizes only), a flipped byte surfaces inside a Spark job;
    the command still names the damaged lake in one line, as the polars engine does."""
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(shop, copy, ignore=shutil.ignore_patterns("*-polars", "*-spark"))
    victim = next((copy / "lake" / "synth" / "events").glob("*/*.parquet"))
    data = bytearray(victim.read_bytes())
    data[-6] ^= 0xFF  # the footer length: unreadable by any Parquet reader
    victim.write_bytes(bytes(data))
    cfg = compose("features", [f"paths.data_dir={copy}", *engine])
    with pytest.raises(LakeError, match="damaged lake"):
        features.run(cfg, verify=False)


def test_a_recsys_error_in_a_worker_is_the_same_one_line_error(spark: SparkSession) -> None:
    from pyspark.errors import PySparkException

    from recsys_cli.spark.features import SparkJobError, spark_failures

    traceback = (
        "An exception was thrown from the Python worker:\n  File ...\nrecsys_cli.errors.ConfigError: features.x: bad\n"
    )
    with pytest.raises(ConfigError, match=r"^features.x: bad$"), spark_failures():
        raise PySparkException(message=traceback)
    with pytest.raises(SparkJobError, match="a Spark job failed: lost an executor"), spark_failures():
        raise PySparkException(message="lost an executor\nat ...")
