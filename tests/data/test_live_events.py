"""A service's exported event log goes back into the lake it came from: its user ids
are the lake's pseudonyms already, so they are kept as they are, never hashed again,
and a file that is not such an export of this lake's key is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from omegaconf import DictConfig
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.data.lake import read_manifest, verify
from recsys_cli.data.pseudonymise import PiiKey, pseudonym
from recsys_cli.data.sources.live_events import write_live_events
from recsys_cli.errors import PiiKeyError, SourceError
from recsys_cli.serving.event_log import EventLog
from recsys_cli.serving.state import LiveEvent
from recsys_cli.tasks.ingest import run
from tests.conftest import GOOD_ROWS

Cfg = Callable[..., DictConfig]
Writer = Callable[..., Path]
SECRET = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
KEY = PiiKey(SECRET.encode(), is_development=False)


def p(user: str, key: PiiKey = KEY) -> str:
    """The lake pseudonym of a raw user id, as the service computes it."""
    return pseudonym(user, key, "user_id")


def ts(day: int, hour: int) -> float:
    return datetime(2026, 1, day, hour, tzinfo=UTC).timestamp()


def events(lake: Path) -> pl.DataFrame:
    return pl.read_parquet(lake / "events", hive_partitioning=True).sort("ts")


@pytest.fixture
def lake(write_events: Writer, ingest_cfg: Cfg, lake_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lake of the five hand-written events of u1, u2, u3 (days 1 to 3)."""
    monkeypatch.setenv("RECSYS_PII_KEY", SECRET)
    write_events(GOOD_ROWS, name="events-1.csv")
    run(ingest_cfg())
    return lake_dir


def export(tmp_path: Path, batch: list[LiveEvent], key: PiiKey = KEY) -> Path:
    log = EventLog(tmp_path / "service-log", key_fingerprint=key.fingerprint)
    log.append(batch)
    out = tmp_path / "exports" / "live-1.parquet"
    log.export(out)
    log.close()
    return out


LIVE = [
    LiveEvent(p("u1"), "i3", "purchase", ts(4, 9), {"price": 12.0, "quantity": 1}),
    LiveEvent(p("u2"), "i2", "view", ts(4, 10)),
    LiveEvent(p("u7"), "i1", "add_to_cart", ts(4, 11)),  # a new customer: the service pseudonymised it alike
]


def test_an_exported_log_appends_with_the_lakes_own_pseudonyms(lake: Path, tmp_path: Path, ingest_cfg: Cfg) -> None:
    before = events(lake)
    assert set(before["user_id"]) == {p("u1"), p("u2"), p("u3")}

    result = run(ingest_cfg(), append=True, live_events=[export(tmp_path, LIVE)])

    after = events(lake)
    assert result.manifest["rows"]["events"] == before.height + 3
    appended = after.filter(pl.col("date") == datetime(2026, 1, 4).date())
    assert appended.select("user_id", "item_id", "event_type").rows() == [
        (p("u1"), "i3", "purchase"),
        (p("u2"), "i2", "view"),
        (p("u7"), "i1", "add_to_cart"),
    ]
    # The same pseudonym as the lake's existing rows of u1 and u2: they join.
    assert set(appended["user_id"]) & set(before["user_id"]) == {p("u1"), p("u2")}
    assert appended["price"].to_list() == [12.0, None, None]
    assert result.manifest["distinct"]["users_in_events"] == 4
    assert verify(lake) == []


def test_appending_the_same_export_again_is_a_no_op(lake: Path, tmp_path: Path, ingest_cfg: Cfg) -> None:
    out = export(tmp_path, LIVE)
    run(ingest_cfg(), append=True, live_events=[out])
    assert run(ingest_cfg(), append=True, live_events=[out]).no_op


def test_an_overlapping_later_export_adds_only_the_new_events(lake: Path, tmp_path: Path, ingest_cfg: Cfg) -> None:
    run(ingest_cfg(), append=True, live_events=[export(tmp_path, LIVE[:2])])
    later = tmp_path / "exports" / "live-2.parquet"
    write_live_events((e.to_dict() for e in LIVE), later, KEY.fingerprint)  # the whole log, exported again
    result = run(ingest_cfg(), append=True, live_events=[later])
    (entry,) = [i for i in result.manifest["inputs"] if i["path"] == str(later)]
    assert (entry["rows_written"], entry["duplicates_dropped"]) == (1, 2)
    assert result.manifest["rows"]["events"] == 8


def test_an_export_appends_when_the_raw_files_are_gone(lake: Path, tmp_path: Path, ingest_cfg: Cfg) -> None:
    for f in (tmp_path / "raw" / "generic").iterdir():
        f.unlink()
    result = run(ingest_cfg(), append=True, live_events=[export(tmp_path, LIVE)])
    assert result.manifest["rows"]["events"] == 8


def test_a_bad_row_of_an_export_is_quarantined_with_its_pseudonym(lake: Path, tmp_path: Path, ingest_cfg: Cfg) -> None:
    bad = LiveEvent(p("u1"), "i1", "teleport", ts(4, 12))
    run(ingest_cfg("validation.max_bad_fraction=0.5"), append=True, live_events=[export(tmp_path, [*LIVE, bad])])
    q = pl.read_parquet(lake / "quarantine").filter(pl.col("reason") == "unknown_event_type")
    assert q["user_id"].to_list() == [p("u1")]


def test_an_export_of_another_key_is_refused_and_nothing_written(lake: Path, tmp_path: Path, ingest_cfg: Cfg) -> None:
    other = PiiKey(b"another-key-with-enough-entropy-0123456789abcdef", is_development=False)
    out = export(tmp_path, [LiveEvent(p("u1", other), "i1", "view", ts(4, 9))], key=other)
    manifest = read_manifest(lake)
    with pytest.raises(PiiKeyError, match="made with another key"):
        run(ingest_cfg(), append=True, live_events=[out])
    assert read_manifest(lake) == manifest


def test_an_export_holding_a_raw_id_is_refused_without_quoting_it(lake: Path, tmp_path: Path, ingest_cfg: Cfg) -> None:
    out = tmp_path / "leaky.parquet"
    write_live_events(
        [{"user": "alice@example.org", "item": "i1", "event_type": "view", "ts": ts(4, 9)}], out, KEY.fingerprint
    )
    with pytest.raises(SourceError, match="1 user id") as raised:
        run(ingest_cfg(), append=True, live_events=[out])
    assert "alice" not in str(raised.value)


def test_a_file_that_is_no_export_is_refused(lake: Path, tmp_path: Path, ingest_cfg: Cfg) -> None:
    out = tmp_path / "plain.parquet"
    pl.DataFrame({"user_id": [p("u1")], "item_id": ["i1"], "event_type": ["view"], "ts": [0]}).write_parquet(out)
    with pytest.raises(SourceError, match="not a live-events export"):
        run(ingest_cfg(), append=True, live_events=[out])


def test_recsys_ingest_takes_exports_with_live_events(lake: Path, tmp_path: Path) -> None:
    out = export(tmp_path, LIVE)
    result = CliRunner().invoke(
        app,
        ["ingest", "--append", "--live-events", str(out), "data=generic", f"paths.data_dir={tmp_path}"],
        env={"RECSYS_PII_KEY": SECRET},
    )
    assert result.exit_code == 0, result.output
    assert read_manifest(lake)["rows"]["events"] == 8
