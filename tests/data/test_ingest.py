"""Ingest as a specification: exact counts on hand-written logs, every bad-input
case with its exact error or quarantine reason, and nothing lost on failure."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from omegaconf import DictConfig

from recsys_cli.data import ingest as ingest_mod
from recsys_cli.data.lake import read_manifest, verify
from recsys_cli.errors import PiiKeyError, RecsysError, SourceError, ValidationThresholdError
from recsys_cli.tasks.ingest import run
from tests.conftest import GOOD_ROWS

Cfg = Callable[..., DictConfig]
Writer = Callable[..., Path]


def quarantine(lake: Path) -> pl.DataFrame:
    return pl.read_parquet(lake / "quarantine").sort("_line")


def events(lake: Path) -> pl.DataFrame:
    return pl.read_parquet(lake / "events", hive_partitioning=True).sort("ts")


def test_valid_log_lands_partitioned_with_exact_counts(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    write_events(GOOD_ROWS)
    result = run(ingest_cfg())
    m = result.manifest
    assert m["rows"]["events"] == 5
    assert m["events_by_type"] == {"view": 3, "add_to_cart": 1, "purchase": 1}
    assert sorted(p.name for p in (lake_dir / "events").iterdir()) == [
        "date=2026-01-01",
        "date=2026-01-02",
        "date=2026-01-03",
    ]
    df = events(lake_dir)
    assert df["item_id"].to_list() == ["i1", "i2", "i1", "i3", "i2"]
    assert df.schema["ts"] == pl.Datetime("us", "UTC")
    assert df["price"].to_list() == [None, 9.5, 10.0, None, None]
    assert "email" not in df.columns  # personal column dropped
    assert verify(lake_dir) == []


def test_bad_rows_are_quarantined_with_reason_file_and_line(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path
) -> None:
    rows = [
        *GOOD_ROWS,
        ",i1,view,2026-01-01T10:00:00Z,,,",
        "u4,i1,teleport,2026-01-01T10:00:00Z,,,",
        "u4,i1,view,31/12/2025,,,",
        "u4,i1,purchase,2026-01-01T12:00:00Z,-3,1,",
        "u4,i1,view,2150-01-01T00:00:00Z,,,",
    ]
    path = write_events(rows)
    m = run(ingest_cfg("validation.max_bad_fraction=0.6")).manifest
    q = quarantine(lake_dir)
    assert q.select("_line", "reason").rows() == [
        (7, "missing:user_id"),
        (8, "unknown_event_type"),
        (9, "bad_timestamp"),
        (10, "negative:price"),
        (11, "timestamp_out_of_range"),
    ]
    assert set(q["_file"]) == {str(path)}
    assert "email" not in q.columns
    (entry,) = [i for i in m["inputs"] if i["table"] == "events"]
    assert (entry["rows_in"], entry["rows_written"], entry["rows_quarantined"]) == (10, 5, 5)


def test_exact_duplicates_are_dropped_and_reconciled(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    write_events([*GOOD_ROWS, GOOD_ROWS[1], GOOD_ROWS[3], GOOD_ROWS[3]])
    m = run(ingest_cfg()).manifest
    (entry,) = m["inputs"]
    assert entry["duplicates_dropped"] == 3
    assert entry["rows_in"] == entry["rows_written"] + entry["rows_quarantined"] + entry["duplicates_dropped"] == 8
    assert events(lake_dir).height == 5


def test_pseudonyms_replace_user_ids_deterministically(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", "x" * 32)
    write_events(GOOD_ROWS)
    run(ingest_cfg())
    first = events(lake_dir)["user_id"].to_list()
    assert not {"u1", "u2", "u3"} & set(first)
    assert len(set(first)) == 3 and all(len(u) == 20 for u in first)
    run(ingest_cfg(f"paths.lake_dir={tmp_path / 'again'}"))
    assert events(tmp_path / "again" / "generic")["user_id"].to_list() == first


def test_reingest_is_a_no_op(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    write_events(GOOD_ROWS)
    run(ingest_cfg())
    before = {p: p.stat().st_mtime_ns for p in lake_dir.rglob("*")}
    result = run(ingest_cfg())
    assert result.no_op and "unchanged" in result.message
    assert {p: p.stat().st_mtime_ns for p in lake_dir.rglob("*")} == before


def test_append_adds_a_day_without_rewriting_old_partitions(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path
) -> None:
    write_events(GOOD_ROWS, name="events-1.csv")
    run(ingest_cfg())
    old = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (lake_dir / "events").rglob("*.parquet")}
    # Day 4 is new; the repeated day-3 row is a duplicate of what the lake holds.
    write_events(
        [GOOD_ROWS[4], "u9,i9,view,2026-01-04T08:00:00Z,,,", "u9,i3,view,2026-01-03T09:00:00Z,,,"], name="events-2.csv"
    )
    result = run(ingest_cfg(), append=True)
    m = result.manifest
    assert m["run"] == 2 and m["rows"]["events"] == 7
    for path, stamp in old.items():
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp
    assert sorted(p.name for p in (lake_dir / "events" / "date=2026-01-03").iterdir()) == [
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    new = [i for i in m["inputs"] if i["path"].endswith("events-2.csv")][0]
    assert (new["rows_in"], new["rows_written"], new["duplicates_dropped"]) == (3, 2, 1)
    assert run(ingest_cfg(), append=True).no_op
    assert verify(lake_dir) == []


def test_too_many_bad_rows_fail_and_write_nothing(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    write_events([*GOOD_ROWS, ",i1,view,2026-01-01T10:00:00Z,,,", ",i2,view,2026-01-01T10:00:00Z,,,"])
    with pytest.raises(
        ValidationThresholdError, match=r"2 of 7 rows \(28.6%\).*missing:user_id x2.*nothing was written"
    ):
        run(ingest_cfg("validation.max_bad_fraction=0.1"))
    assert not lake_dir.exists()
    assert not list(lake_dir.parent.glob(".*"))


def test_empty_file_is_a_clear_error(write_events: Writer, ingest_cfg: Cfg) -> None:
    path = write_events("")
    with pytest.raises(SourceError, match=f"{path}: file is empty"):
        run(ingest_cfg())


def test_header_only_file_gives_an_empty_lake(write_events: Writer, ingest_cfg: Cfg) -> None:
    write_events([])
    assert run(ingest_cfg()).manifest["rows"]["events"] == 0


def test_missing_column_is_named(write_events: Writer, ingest_cfg: Cfg) -> None:
    path = write_events(["u1,i1,2026-01-01T10:00:00Z"], header="user_id,item_id,ts\n")
    with pytest.raises(SourceError, match=f"{path}: missing required column\\(s\\) event_type; found"):
        run(ingest_cfg())


def test_wrong_delimiter_is_a_clear_error(write_events: Writer, ingest_cfg: Cfg) -> None:
    path = write_events("user_id;item_id;event_type;ts\nu1;i1;view;2026-01-01T10:00:00Z\n")
    with pytest.raises(SourceError, match=f"{path}: missing required column.*wrong delimiter\\?"):
        run(ingest_cfg())


def test_truncated_last_line_is_quarantined(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    text = "".join(r + "\n" for r in GOOD_ROWS)
    write_events("user_id,item_id,event_type,ts,price,quantity,email\n" + text + "u3,i2,vi")
    run(ingest_cfg("validation.max_bad_fraction=0.5"))
    assert quarantine(lake_dir).select("_line", "reason").rows() == [(7, "too_few_fields")]
    assert events(lake_dir).height == 5


def test_a_row_with_too_many_fields_is_quarantined_alone(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    write_events([GOOD_ROWS[0], "u1,i1,view,2026-01-01T10:00:00Z,,,,extra,extra", *GOOD_ROWS[1:]])
    m = run(ingest_cfg("validation.max_bad_fraction=0.5")).manifest
    assert quarantine(lake_dir).select("_line", "reason").rows() == [(3, "ragged_row")]
    assert events(lake_dir).height == 5
    (entry,) = m["inputs"]
    assert (entry["rows_in"], entry["rows_written"], entry["rows_quarantined"]) == (6, 5, 1)


def test_non_utf8_bytes_are_quarantined(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    body = ("user_id,item_id,event_type,ts,price,quantity,email\n" + "".join(r + "\n" for r in GOOD_ROWS)).encode()
    write_events(body + b"u5,caf\xe9,view,2026-01-01T10:00:00Z,,,\n")
    run(ingest_cfg("validation.max_bad_fraction=0.5"))
    assert quarantine(lake_dir).select("_line", "reason").rows() == [(7, "invalid_utf8")]


def test_crash_mid_write_keeps_the_previous_lake(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_events(GOOD_ROWS)
    run(ingest_cfg())
    before = {p.relative_to(lake_dir): p.read_bytes() for p in lake_dir.rglob("*") if p.is_file()}
    write_events([*GOOD_ROWS, "u7,i7,view,2026-01-05T10:00:00Z,,,"])
    calls = {"n": 0}
    real = ingest_mod.ev.dedupe_window

    def crash_on_second_window(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_mod.ev, "dedupe_window", crash_on_second_window)
    with pytest.raises(RuntimeError, match="simulated"):
        run(ingest_cfg("validation.window_rows=2"))
    assert calls["n"] >= 2
    after = {p.relative_to(lake_dir): p.read_bytes() for p in lake_dir.rglob("*") if p.is_file()}
    assert after == before
    assert not list(lake_dir.parent.glob(".generic.*"))


def test_interrupted_swap_is_recovered(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    write_events(GOOD_ROWS)
    run(ingest_cfg())
    # A crash between the two renames of a publish leaves only the old version aside.
    os.replace(lake_dir, lake_dir.parent / ".generic.old-deadbeef")
    assert run(ingest_cfg()).no_op
    assert read_manifest(lake_dir)["rows"]["events"] == 5


def test_manifest_records_lineage(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path) -> None:
    write_events(GOOD_ROWS)
    run(ingest_cfg())
    m = json.loads((lake_dir / "manifest.json").read_text())
    assert m["inputs"][0]["sha256"] and len(m["inputs"][0]["sha256"]) == 64
    assert {o["path"] for o in m["outputs"]} >= {"events/date=2026-01-01/part-00001.parquet"}
    assert m["time_range"] == {"min_ts": "2026-01-01 10:00:00+00:00", "max_ts": "2026-01-03 08:00:00+00:00"}
    assert m["versions"]["polars"] == pl.__version__
    assert m["pii"]["development_key"] in (True, False)
    assert m["config"]["validation"]["max_bad_fraction"] == 0.05


def test_same_input_same_lake_bytes(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, tmp_path: Path) -> None:
    write_events([*GOOD_ROWS, GOOD_ROWS[0], ",i1,view,2026-01-01T10:00:00Z,,,"])
    a = run(ingest_cfg("validation.max_bad_fraction=0.5")).manifest["outputs"]
    b = run(ingest_cfg("validation.max_bad_fraction=0.5", f"paths.lake_dir={tmp_path / 'b'}")).manifest["outputs"]
    assert a == b


def test_day_windows_do_not_change_the_result(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, tmp_path: Path
) -> None:
    write_events([*GOOD_ROWS, GOOD_ROWS[0], GOOD_ROWS[4], GOOD_ROWS[4]])
    whole = run(ingest_cfg()).manifest
    split = run(ingest_cfg("validation.window_rows=1", f"paths.lake_dir={tmp_path / 'w'}")).manifest
    assert whole["outputs"] == split["outputs"]
    assert whole["inputs"][0]["duplicates_dropped"] == split["inputs"][0]["duplicates_dropped"] == 3


def test_binary_file_is_a_clear_error_naming_the_file(write_events: Writer, ingest_cfg: Cfg) -> None:
    path = write_events(bytes(range(256)) * 40)
    with pytest.raises(SourceError, match=f"{path}: "):
        run(ingest_cfg())


def test_parquet_source(tmp_path: Path, ingest_cfg: Cfg, lake_dir: Path) -> None:
    raw = tmp_path / "raw" / "generic"
    raw.mkdir(parents=True)
    pl.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "item_id": ["i1", None],
            "event_type": ["view", "view"],
            "ts": [1767261600, 1767261601],
        }
    ).write_parquet(raw / "events.parquet")
    m = run(
        ingest_cfg(
            "data.events.format=parquet",
            "data.events.files=[events.parquet]",
            "data.events.timestamp.unit=s",
            "validation.max_bad_fraction=0.5",
        )
    ).manifest
    assert m["rows"]["events"] == 1
    assert m["quarantine_by_reason"] == {"missing:item_id": 1}


def test_append_refuses_a_different_key(write_events: Writer, ingest_cfg: Cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", "a" * 32)
    write_events(GOOD_ROWS, name="events-1.csv")
    run(ingest_cfg())
    write_events(["u9,i9,view,2026-01-04T08:00:00Z,,,"], name="events-2.csv")
    monkeypatch.setenv("RECSYS_PII_KEY", "b" * 32)
    with pytest.raises(PiiKeyError, match="written with another pseudonymisation key"):
        run(ingest_cfg(), append=True)


def test_every_user_in_the_users_table_gets_a_pseudonym(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path
) -> None:
    write_events(GOOD_ROWS)
    (raw_dir / "users.csv").write_text("user_id,region\n u1 ,north\nu2,south\n")
    run(ingest_cfg())
    users = pl.read_parquet(lake_dir / "users.parquet")
    assert users.height == 2 and users["user_id"].null_count() == 0


def test_ids_are_trimmed_and_blank_ids_are_missing(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path
) -> None:
    write_events([*GOOD_ROWS, " u1 , i1 ,view,2026-01-03T09:00:00Z,,,", "  ,i2,view,2026-01-03T09:00:00Z,,,"])
    (raw_dir / "items.csv").write_text("item_id,price\n i1 ,3\ni2,4\n")
    run(ingest_cfg("validation.max_bad_fraction=0.5"))
    df = events(lake_dir)
    assert set(df["item_id"]) == {"i1", "i2", "i3"}
    by_time = dict(zip(df["ts"].dt.to_string("%d %H"), df["user_id"], strict=True))
    assert by_time["03 09"] == by_time["01 10"]  # " u1 " is u1: one pseudonym
    assert quarantine(lake_dir).select("_line", "reason").rows() == [(8, "missing:user_id")]
    assert sorted(pl.read_parquet(lake_dir / "items.parquet")["item_id"]) == ["i1", "i2"]


@pytest.mark.parametrize("price", ["inf", "-inf", "NaN", "1e300", "-2"])
def test_item_prices_that_are_no_prices_are_quarantined(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path, price: str
) -> None:
    write_events(GOOD_ROWS)
    (raw_dir / "items.csv").write_text(f"item_id,price\ni1,9.5\ni2,{price}\n")
    m = run(ingest_cfg()).manifest
    assert pl.read_parquet(lake_dir / "items.parquet")["item_id"].to_list() == ["i1"]
    reason = "negative:price" if price == "-2" else "bad_number:price"
    assert quarantine(lake_dir).filter(pl.col("table") == "items").select("_line", "reason").rows() == [(3, reason)]
    (entry,) = [i for i in m["inputs"] if i["table"] == "items"]
    assert (entry["rows_in"], entry["rows_written"], entry["rows_quarantined"]) == (2, 1, 1)


def test_each_items_file_reconciles_on_its_own_rows(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path
) -> None:
    write_events(GOOD_ROWS)
    (raw_dir / "items-a.csv").write_text("item_id,price\ni1,1\ni2,x\n")
    (raw_dir / "items-b.csv").write_text("item_id,price\ni3,2\ni1,5\ni4,1,extra\ni5,3\n")
    m = run(ingest_cfg("validation.max_bad_fraction=0.5")).manifest
    counts = {
        Path(i["path"]).name: (i["rows_in"], i["rows_written"], i["rows_quarantined"], i["quarantine_by_reason"])
        for i in m["inputs"]
        if i["table"] == "items"
    }
    assert counts == {
        "items-a.csv": (2, 1, 1, {"bad_number:price": 1}),
        "items-b.csv": (4, 2, 2, {"duplicate:item_id": 1, "ragged_row": 1}),
    }
    q = quarantine(lake_dir).filter(pl.col("table") == "items").sort("_file", "_line")
    assert [(Path(f).name, line) for f, line in q.select("_file", "_line").rows()] == [
        ("items-a.csv", 3),
        ("items-b.csv", 3),
        ("items-b.csv", 4),
    ]


def test_append_rebuilds_a_changed_items_table_and_records_it(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path
) -> None:
    write_events(GOOD_ROWS, name="events-1.csv")
    (raw_dir / "items.csv").write_text("item_id,price\ni1,1\ni2,bad\n")
    run(ingest_cfg("validation.max_bad_fraction=0.5"))
    (raw_dir / "items.csv").write_text("item_id,price\ni1,1.5\ni2,2\ni3,bad\n")
    result = run(ingest_cfg("validation.max_bad_fraction=0.5"), append=True)
    assert not result.no_op and "rebuilt items" in result.message
    items = pl.read_parquet(lake_dir / "items.parquet").sort("item_id")
    assert items.select("item_id", "price").rows() == [("i1", 1.5), ("i2", 2.0)]
    (entry,) = [i for i in result.manifest["inputs"] if i["table"] == "items"]
    assert (entry["run"], entry["rows_in"], entry["rows_quarantined"]) == (2, 3, 1)
    assert result.manifest["quarantine_by_reason"] == {"bad_number:price": 1}  # the old items row is gone
    assert verify(lake_dir) == []
    # New events, same items: the table is kept as it is, not rebuilt or counted twice.
    write_events(["u9,i9,view,2026-01-04T08:00:00Z,,,"], name="events-2.csv")
    again = run(ingest_cfg("validation.max_bad_fraction=0.5"), append=True)
    assert "rebuilt" not in again.message
    assert [i["run"] for i in again.manifest["inputs"] if i["table"] == "items"] == [2]
    assert again.manifest["quarantine_by_reason"] == {"bad_number:price": 1}


def test_append_into_another_sources_lake_is_refused(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, tmp_path: Path
) -> None:
    write_events(GOOD_ROWS)
    run(ingest_cfg())
    ml = tmp_path / "raw" / "ml-100k"
    ml.mkdir(parents=True)
    (ml / "u.data").write_text("196\t242\t3\t881250949\n")
    before = {p: p.stat().st_mtime_ns for p in lake_dir.rglob("*")}
    cfg = ingest_cfg("data=movielens100k", f"lake_dir={lake_dir}")
    with pytest.raises(RecsysError, match="generic"):
        run(cfg, append=True)
    assert {p: p.stat().st_mtime_ns for p in lake_dir.rglob("*")} == before


def test_append_with_only_a_changed_users_table_rebuilds_it(
    write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, raw_dir: Path
) -> None:
    write_events(GOOD_ROWS)
    (raw_dir / "users.csv").write_text("user_id,region\nu1,north\n")
    run(ingest_cfg())
    (raw_dir / "users.csv").write_text("user_id,region\nu1,north\nu2,south\n")
    result = run(ingest_cfg(), append=True)
    assert "rebuilt users" in result.message and result.manifest["rows"]["users"] == 2
    assert result.manifest["rows"]["events"] == 5 and verify(lake_dir) == []


def test_the_engine_is_not_part_of_the_lakes_fingerprint() -> None:
    """Both engines write the same lake: one built by either is up to date for the other."""
    key = ingest_mod.PiiKey(b"k" * 32, is_development=False)
    digests = {"events.csv": "ab" * 32}
    config = {"data": {"name": "generic"}, "validation": {"max_bad_fraction": 0.05}}
    plain = ingest_mod._fingerprint(digests, config, key)
    assert ingest_mod._fingerprint(digests, {**config, "engine": {"name": "spark", "master": "local[2]"}}, key) == plain
    assert ingest_mod._fingerprint(digests, {**config, "validation": {"max_bad_fraction": 0.1}}, key) != plain
