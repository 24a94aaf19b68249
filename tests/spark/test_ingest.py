"""engine=spark ingest writes the polars engine's lake: each case builds one lake
with each engine from the same raw files, at the same path in turn (the lake's
config records its path), and compares every file."""

from __future__ import annotations

import gzip
import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

from recsys_cli.config import build, compose
from recsys_cli.data.ingest import IngestResult
from recsys_cli.data.lake import open_lake, verify
from recsys_cli.data.pseudonymise import PiiKey, pseudonym
from recsys_cli.data.sources.live_events import write_live_events
from recsys_cli.errors import RecsysError, SourceError, ValidationThresholdError
from recsys_cli.serving.state import LiveEvent
from recsys_cli.spark.ingest import SparkEvents
from recsys_cli.tasks.ingest import run
from tests.spark.conftest import SPARK
from tests.spark.parity import assert_same_output

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SECRET = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
HEADER = "user_id,item_id,event_type,ts,price,quantity,email"
DAY1 = [
    "u1,i1,view,2026-01-01T10:00:00Z,,,a@x.org",
    "u1,i2,add_to_cart,2026-01-01T10:05:00Z,9.5,1,a@x.org",
    "u2,i1,purchase,2026-01-01T11:00:00Z,10.0,2,b@x.org",
    "u3,i1,view,2026-01-01T11:00:00Z,,,c@x.org",  # same instant, another user: kept
]
DAY2 = ["u2,i3,view,2026-01-02T09:00:00Z,,,b@x.org", "u4,i3,click,2026-01-02T09:30:00Z,,,d@x.org"]
DAY3 = ["u3,i2,view,2026-01-03T08:00:00Z,,,c@x.org", " u5 ,i4,view,2026-01-03T08:00:00Z,,,e@x.org"]
BAD = [
    ",i1,view,2026-01-01T10:00:00Z,,,",  # missing:user_id
    "u4,i1,teleport,2026-01-01T10:00:00Z,,,",  # unknown_event_type
    "u4,i1,view,31/12/2025,,,",  # bad_timestamp
    "u4,i1,purchase,2026-01-01T12:00:00Z,-3,1,",  # negative:price
    "u4,i1,view,2150-01-01T00:00:00Z,,,",  # timestamp_out_of_range
    "u4,i1,view,2026-01-01T10:00:00Z,,,,extra",  # ragged_row
]


def csv(rows: list[str], header: str = HEADER) -> str:
    return header + "\n" + "".join(r + "\n" for r in rows)


def both_engines(tmp_path: Path, scenario: Callable[[list[str]], Any]) -> Path:
    """Run `scenario` (given the engine's overrides) with polars, then Spark, into
    the same lake path; compare the two lakes, every table in its row order too;
    return the Spark one, checked as every command opens a lake."""
    lake = tmp_path / "lake" / "generic"
    scenario([])
    polars_lake = tmp_path / "polars-lake"
    lake.rename(polars_lake)
    scenario(SPARK)
    assert_same_output(polars_lake, lake, ordered=[str(p.relative_to(lake)) for p in lake.rglob("*.parquet")])
    assert verify(lake) == []
    assert open_lake(lake, full=True)["rows"]["events"] > 0
    return lake


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    path = tmp_path / "raw" / "generic"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def cfg(tmp_path: Path) -> Callable[..., Any]:
    def make(*overrides: str) -> Any:
        return compose("ingest", ["data=generic", f"paths.data_dir={tmp_path}", *overrides])

    return make


def test_bad_rows_and_duplicates_across_files_and_days(
    spark: SparkSession, raw: Path, cfg: Callable[..., Any], tmp_path: Path
) -> None:
    # File 2 repeats rows of file 1 on days 1 and 3, and one of its own on day 2.
    (raw / "events-1.csv").write_text(csv([*DAY1, DAY1[0], *BAD[:3], *DAY2, *DAY3]))
    (raw / "events-2.csv").write_text(csv([DAY1[1], *BAD[3:], DAY2[1], DAY2[1], DAY3[1], DAY1[2]]))
    results: list[IngestResult] = []
    lake = both_engines(tmp_path, lambda engine: results.append(run(cfg("validation.max_bad_fraction=0.5", *engine))))
    first, second = (
        {i["path"]: (i["rows_written"], i["duplicates_dropped"], i["rows_quarantined"]) for i in r.manifest["inputs"]}
        for r in results
    )
    assert first == second == {str(raw / "events-1.csv"): (8, 1, 3), str(raw / "events-2.csv"): (0, 5, 3)}
    assert len(results[1].manifest["quarantine_by_reason"]) == 6
    assert pl.read_parquet(lake / "events").height == 8


def test_append_drops_rows_the_lake_already_holds(
    spark: SparkSession, raw: Path, cfg: Callable[..., Any], tmp_path: Path
) -> None:
    new_day = "u6,i5,view,2026-01-04T08:00:00Z,,,f@x.org"

    def scenario(engine: list[str]) -> None:
        (raw / "events-2.csv").unlink(missing_ok=True)
        (raw / "events-1.csv").write_text(csv([*DAY1, *DAY2, *DAY3]))
        run(cfg(*engine))
        (raw / "events-2.csv").write_text(csv([DAY1[0], DAY3[1], new_day, new_day]))
        result = run(cfg(*engine), append=True)
        (entry,) = [i for i in result.manifest["inputs"] if i["path"].endswith("events-2.csv")]
        assert (entry["rows_written"], entry["duplicates_dropped"]) == (1, 3)
        assert run(cfg(*engine), append=True).no_op

    lake = both_engines(tmp_path, scenario)
    assert sorted(p.name for p in (lake / "events" / "date=2026-01-03").iterdir()) == ["part-00001.parquet"]
    assert sorted(p.name for p in (lake / "events" / "date=2026-01-04").iterdir()) == ["part-00002.parquet"]


def test_personal_columns_hashed_and_dropped_even_where_only_one_file_has_them(
    spark: SparkSession, raw: Path, cfg: Callable[..., Any], tmp_path: Path
) -> None:
    header = "user_id,item_id,event_type,ts,member,nickname"
    # The same event in both files with another member code: the first file's is kept.
    (raw / "events-1.csv").write_text(
        csv(["u1,i1,view,2026-01-01T10:00:00Z,m-1,ann", "u2,i1,view,2026-01-02T10:00:00Z,m-2,bob"], header)
    )
    (raw / "events-2.csv").write_text(
        csv(["u1,i1,view,2026-01-01T10:00:00Z,m-9,cat", "u3,i2,view,2026-01-02T11:00:00Z,m-3,dan"], header)
        + "u4,i2,view,2026-01-03T11:00:00Z,m-4,eve\n"
    )
    (raw / "events-3.csv").write_text(csv(["u5,i3,view,2026-01-03T12:00:00Z"], "user_id,item_id,event_type,ts"))
    pii = ["+pii.personal_columns.member=hash", "+pii.personal_columns.nickname=drop"]
    lake = both_engines(tmp_path, lambda engine: run(cfg(*pii, *engine)))
    events = pl.read_parquet(lake / "events", hive_partitioning=True).sort("ts")
    assert "nickname" not in events.columns and events["member"].null_count() == 1
    assert not {"m-1", "m-2", "m-3", "m-4", "m-9"} & set(events["member"].drop_nulls())


def test_a_small_synthetic_shop(spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = [
        f"paths.data_dir={tmp_path}",
        "data=synth",
        "data.generator.n_events=3000",
        "data.generator.n_days=6",
        "lake_dir=${paths.lake_dir}/generic",  # where `both_engines` looks
    ]
    build(compose("ingest", shop).data).generate()
    shards: list[int] = []
    real = SparkEvents.write_events

    def spy(self: SparkEvents, *args: Any, **kwargs: Any) -> Any:
        out = real(self, *args, **kwargs)
        shards.append(self.shards)
        return out

    monkeypatch.setattr(SparkEvents, "write_events", spy)
    lake = both_engines(tmp_path, lambda engine: run(compose("ingest", [*shop, *engine])))
    assert shards == [3]  # ~2,900 valid rows at 1,000 a task: several shards of days
    manifest = open_lake(lake, full=True)
    assert manifest["rows"]["users"] > 0 and manifest["rows"]["items"] > 0 and manifest["rows"]["quarantine"] > 0
    assert len(list((lake / "events").iterdir())) == 6


def test_the_bad_fraction_refusal_is_the_same_line_and_writes_nothing(
    spark: SparkSession, raw: Path, cfg: Callable[..., Any], tmp_path: Path
) -> None:
    (raw / "events.csv").write_text(csv([*DAY1, *BAD[:2]]))
    assert_same_refusal(ValidationThresholdError, lambda engine: run(cfg(*engine)), tmp_path)


def test_a_file_that_breaks_while_staging_is_the_same_line(
    spark: SparkSession, raw: Path, cfg: Callable[..., Any], tmp_path: Path
) -> None:
    """A gzip file cut short after its first MiB: its header reads (on the driver), its body breaks in the executor."""
    rng = random.Random(0)
    rows = [f"u{rng.getrandbits(64):x},i{rng.getrandbits(32):x},view,2026-01-01T10:00:00Z,,," for _ in range(40_000)]
    packed = gzip.compress(csv(rows).encode())
    (raw / "events-1.csv").write_text(csv(DAY1))
    (raw / "events-2.csv").write_bytes(packed[: len(packed) * 3 // 4])
    message = assert_same_refusal(SourceError, lambda engine: run(cfg(*engine)), tmp_path)
    assert message == f"{raw / 'events-2.csv'}: cannot be decompressed: EOFError"


def assert_same_refusal(kind: type[RecsysError], scenario: Callable[[list[str]], Any], tmp_path: Path) -> str:
    lake = tmp_path / "lake" / "generic"
    messages = []
    for engine in ([], SPARK):
        with pytest.raises(kind) as caught:
            scenario(engine)
        messages.append(str(caught.value))
        assert not lake.exists() and not list(lake.parent.glob(".*"))
    assert messages[0] == messages[1] and "\n" not in messages[0]
    return messages[0]


def test_a_lake_built_by_one_engine_is_up_to_date_for_the_other(
    spark: SparkSession, raw: Path, cfg: Callable[..., Any]
) -> None:
    (raw / "events.csv").write_text(csv(DAY1))
    run(cfg())
    result = run(cfg(*SPARK))
    assert result.no_op and "unchanged" in result.message
    shutil.rmtree(raw.parent.parent / "lake")
    run(cfg(*SPARK))
    assert run(cfg()).no_op


def test_a_services_export_keeps_its_pseudonyms_beside_raw_ids(
    spark: SparkSession, raw: Path, cfg: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Days that hold both raw ids and a live-events export's pseudonyms: only the raw ones are hashed."""
    key = PiiKey(SECRET.encode(), is_development=False)
    monkeypatch.setenv("RECSYS_PII_KEY", SECRET)
    (raw / "events.csv").write_text(csv([*DAY1, *DAY2]))
    at = datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()
    live = [
        LiveEvent(pseudonym("u1", key, "user_id"), "i1", "view", at),  # u1's first raw event, in the lake's form
        LiveEvent(pseudonym("u7", key, "user_id"), "i9", "purchase", at + 3600, {"price": 3.0, "quantity": 1}),
        LiveEvent(pseudonym("u2", key, "user_id"), "i3", "view", at + 86400),
    ]
    export = tmp_path / "exports" / "live-1.parquet"
    write_live_events((e.to_dict() for e in live), export, key.fingerprint)
    lake = both_engines(tmp_path, lambda engine: run(cfg(*engine), live_events=[export]))
    users = set(pl.read_parquet(lake / "events")["user_id"])
    assert users == {pseudonym(u, key, "user_id") for u in ("u1", "u2", "u3", "u4", "u7")}
