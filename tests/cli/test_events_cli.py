"""`recsys events export`: the service's event log as the input of `recsys ingest
--append --live-events`, pseudonyms and the key's fingerprint kept."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.data.sources.live_events import KEY_FINGERPRINT
from recsys_cli.serving.event_log import EventLog
from recsys_cli.serving.state import LiveEvent

runner = CliRunner()
FINGERPRINT = "0123456789abcdef"
PSEUDONYMS = ["a" * 20, "b" * 20]


def test_the_logged_events_are_exported_with_the_keys_fingerprint(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    log = EventLog(folder, fsync="never", key_fingerprint=FINGERPRINT)
    log.append([LiveEvent(PSEUDONYMS[i % 2], f"P{i}", "view", 1.8e9 + i) for i in range(3)])
    log.close()
    out = tmp_path / "live.parquet"
    result = runner.invoke(app, ["events", "export", str(out), f"serve.event_log.dir={folder}"])
    assert result.exit_code == 0, result.output
    assert "exported: 3 events" in result.output
    exported = pl.read_parquet(out)
    assert exported.height == 3 and set(exported["user_id"]) == set(PSEUDONYMS)
    assert pl.read_parquet_metadata(out)[KEY_FINGERPRINT] == FINGERPRINT


def test_a_missing_log_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "live.parquet"
    result = runner.invoke(app, ["events", "export", str(out), f"serve.event_log.dir={tmp_path / 'nothing'}"])
    assert result.exit_code == 1
    assert "no event log here" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "nothing").exists()
