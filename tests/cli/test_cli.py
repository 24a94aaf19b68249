"""The CLI end to end through Typer's CliRunner, plus the promises that need a
real process: a fast, lazy `--help` and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app

runner = CliRunner()


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    result = invoke(
        "datasets", "synth", f"paths.data_dir={tmp_path}", "data.generator.n_events=3000", "data.generator.n_days=7"
    )
    assert result.exit_code == 0, result.output
    return tmp_path


def test_synth_ingest_describe(shop: Path) -> None:
    result = invoke("ingest", f"paths.data_dir={shop}")
    assert result.exit_code == 0, result.output
    assert "Events by type" in result.output and "Quarantined by reason" in result.output
    manifest = json.loads((shop / "lake" / "synth" / "manifest.json").read_text())
    inputs = {Path(i["path"]).name: i for i in manifest["inputs"]}
    e = inputs["events.csv"]
    assert e["rows_in"] == 3000 == e["rows_written"] + e["rows_quarantined"] + e["duplicates_dropped"]
    assert e["duplicates_dropped"] > 0 and e["rows_quarantined"] > 0

    again = invoke("ingest", f"paths.data_dir={shop}")
    assert again.exit_code == 0 and "no-op" in again.output

    described = invoke("lake", "describe", str(shop / "lake" / "synth"), "--verify")
    assert described.exit_code == 0 and "verified:" in described.output


def test_datasets_list_shows_every_source(tmp_path: Path) -> None:
    result = invoke("datasets", "list", f"paths.data_dir={tmp_path}")
    assert result.exit_code == 0
    for name in ("synth", "movielens100k", "retailrocket", "generic"):
        assert name in result.output


def test_known_errors_are_one_red_line_and_exit_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", f"paths.data_dir={tmp_path}"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and "data folder not found" in result.output
    assert "Traceback" not in result.output


def test_debug_keeps_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "ingest", f"paths.data_dir={tmp_path}"])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "SourceError"


def test_bad_override_is_a_config_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "data=nope"])
    assert result.exit_code == 1 and "config 'ingest'" in result.output


def test_production_pii_refuses_without_key(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_PII_KEY", raising=False)
    result = runner.invoke(app, ["ingest", f"paths.data_dir={shop}", "pii=production"])
    assert result.exit_code == 1 and "RECSYS_PII_KEY is not set" in result.output
    assert not (shop / "lake").exists()


def test_describe_detects_tampering(shop: Path) -> None:
    invoke("ingest", f"paths.data_dir={shop}")
    lake = shop / "lake" / "synth"
    victim = next((lake / "events").rglob("*.parquet"))
    victim.write_bytes(victim.read_bytes() + b"x")
    result = runner.invoke(app, ["lake", "describe", str(lake), "--verify"])
    assert result.exit_code == 1 and "changed size: events/" in result.output


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from recsys_cli.cli import app; "
        "r = CliRunner().invoke(app, ['ingest', '--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('polars', 'torch', 'lightning', 'sklearn', 'optuna', 'hydra', 'recsys_cli.schemas') "
        "if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "recsys"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("recsys ")
