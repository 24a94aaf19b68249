"""`recsys split` with engine=spark writes what the polars engine writes: every
strategy, two targets, cold users and same-instant ties, over a lake of ~3,000
events that makes three buckets of users (rows_per_task=1000)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pytest

from recsys_cli.config import compose
from recsys_cli.data.lake import scan_events
from recsys_cli.data.schema import Col
from recsys_cli.errors import SplitError
from recsys_cli.spark.split import spark_split
from recsys_cli.spark.split_shard import BUCKET
from recsys_cli.splits.base import PolarsTimeline
from recsys_cli.tasks import ingest
from recsys_cli.tasks import split as split_task
from tests.spark.conftest import ENGINE, SPARK
from tests.spark.parity import assert_same_output

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 45
EVENTS = np.array(["view", "click", "add_to_cart", "purchase"])


def shop(seed: int = 7) -> pl.DataFrame:
    """Bursts of 1-3 events sharing one instant (ties within a user), 250 users over 45
    days, and 20 users seen only in the last two days (cold in every time split)."""
    rng = np.random.default_rng(seed)
    n = 1150
    users = np.concatenate(
        [rng.integers(0, 250, n - 60).astype(str), np.char.add("c", rng.integers(0, 20, 60).astype(str))]
    )
    late = np.char.startswith(users, "c")
    minute = np.where(late, rng.integers((DAYS - 2) * 1440, DAYS * 1440, n), rng.integers(0, DAYS * 1440, n))
    size = rng.integers(1, 4, n)
    bursts = pl.DataFrame({"user_id": np.char.add("u", users), "minute": minute, "size": size})
    rows = bursts.select(pl.all().repeat_by("size").explode()).with_columns(
        item_id=pl.Series(np.char.add("i", rng.integers(0, 80, int(size.sum())).astype(str))),
        event_type=pl.Series(rng.choice(EVENTS, int(size.sum()), p=[0.5, 0.15, 0.2, 0.15])),
    )
    ts = pl.lit(START) + pl.duration(minutes=pl.col("minute"))
    return rows.select("user_id", "item_id", "event_type", ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("ts"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake written by the polars engine's ingest."""
    root = tmp_path_factory.mktemp("split")
    (root / "raw" / "generic").mkdir(parents=True)
    shop().write_csv(root / "raw" / "generic" / "events.csv")
    ingest.run(compose("ingest", ["data=generic", f"paths.data_dir={root}"]))
    return root


def split(root: Path, name: str, overrides: list[str], engine: list[str]) -> Path:
    out = root / "splits" / name
    given = ["data=generic", f"paths.data_dir={root}", f"split_dir={out}", *overrides, *engine]
    split_task.run(compose("split", given))
    return out


PURCHASES_KEEP_SEEN = ["target=purchases", "target.exclude_seen=false"]
CASES = {
    "global_fractions": ["split=global_temporal", "split.val_fraction=0.15", "split.test_fraction=0.1"],
    "global_cutoffs": [
        "split=global_temporal",
        "split.val_cutoff=2026-02-01T00:00:00",
        "split.test_cutoff=2026-02-08T12:00:00+00:00",
        "split.train_days=10",
        *PURCHASES_KEEP_SEEN,
    ],
    "rolling_origin": ["split=rolling_origin", "split.n_folds=3", "split.test_days=4", "split.val_days=3"],
    "leave_last_1": ["split=leave_last_n"],
    "leave_last_2": ["split=leave_last_n", "split.n=2", "split.val_n=2", *PURCHASES_KEEP_SEEN],
}


@pytest.mark.parametrize("case", list(CASES))
def test_both_engines_write_the_same_split(spark: SparkSession, root: Path, case: str) -> None:
    polars_dir = split(root, f"{case}-polars", CASES[case], [])
    spark_dir = split(root, f"{case}-spark", CASES[case], SPARK)
    targets = [str(p.relative_to(polars_dir)) for p in polars_dir.rglob("*_targets.parquet")]
    assert_same_output(polars_dir, spark_dir, ordered=targets, drop=("split_dir",))
    if case.startswith("global"):
        test = pl.read_parquet(spark_dir / "fold-0" / "test_targets.parquet")
        assert test["cold"].any() and not test["cold"].all()


def test_the_lake_has_ties_at_users_last_instants_and_three_buckets_of_users(spark: SparkSession, root: Path) -> None:
    events = scan_events(root / "lake" / "generic").collect()
    latest = events.filter(pl.col(Col.TS) == pl.col(Col.TS).max().over(Col.USER))
    assert latest[Col.USER].is_duplicated().any()  # several events at a last instant: leave-last-1 breaks a tie
    with spark_split(ENGINE, root / "lake" / "generic") as engine:
        bucketed = engine.bucketed()
        assert engine.n_buckets == 3
        assert bucketed.select(BUCKET).distinct().count() == 3


def test_the_nth_timestamp_is_the_polars_one(spark: SparkSession, root: Path) -> None:
    lake = root / "lake" / "generic"
    polars = PolarsTimeline(scan_events(lake))
    lo, hi, n = polars.bounds()
    with spark_split(ENGINE, lake) as engine:
        line = engine.timeline()
        assert line.bounds() == (lo, hi, n)
        for index in (0, n // 2, n - 301, n - 1):
            assert line.nth(index) == polars.nth(index), index


def test_an_empty_test_part_is_refused_in_the_same_line(spark: SparkSession, root: Path) -> None:
    after = (START + timedelta(days=DAYS + 5)).isoformat()
    overrides = ["split=global_temporal", "split.val_cutoff=2026-02-10T00:00:00", f"split.test_cutoff={after}"]
    messages = []
    for name, engine in (("empty-polars", []), ("empty-spark", SPARK)):
        with pytest.raises(SplitError) as caught:
            split(root, name, overrides, engine)
        messages.append(str(caught.value))
        assert not (root / "splits" / name).exists()
    assert messages[0] == messages[1]
    assert messages[0].startswith("fold-0: no events in the test part from 2026-02-20") and "\n" not in messages[0]
