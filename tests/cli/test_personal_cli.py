"""Personal data through `recsys ingest`: refusals are one line naming file and column,
weak keys are refused, and no raw identifier appears in any output or in the lake."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.data import ingest as ingest_mod
from recsys_cli.data.pseudonymise import DEVELOPMENT_KEY

runner = CliRunner()
STRONG_KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SECRET = "secret-user-4711"
HEADER = "user_id,item_id,event_type,ts\n"
GOOD = [f"u{i},i{i % 3},view,2026-01-0{1 + i % 3}T10:00:00Z" for i in range(30)]


def shop(tmp_path: Path, events: list[str], users: str | None = None) -> Path:
    raw = tmp_path / "raw" / "generic"
    raw.mkdir(parents=True)
    (raw / "events.csv").write_text(HEADER + "".join(r + "\n" for r in events))
    if users is not None:
        (raw / "users.csv").write_text(users)
    return tmp_path


def ingest(root: Path, *overrides: str, key: str | None = None) -> tuple[int, str]:
    env = {"RECSYS_PII_KEY": key} if key is not None else {}
    result = runner.invoke(app, ["ingest", "data=generic", f"paths.data_dir={root}", *overrides], env=env)
    return result.exit_code, result.output


def lake_text(root: Path) -> str:
    frames = [pl.read_parquet(p) for p in sorted((root / "lake").rglob("*.parquet"))]
    return "\n".join(f.cast({c: pl.String for c in f.columns}, strict=False).write_csv() for f in frames)


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_PII_KEY", raising=False)


def test_an_unterminated_quote_in_the_id_field_never_prints_the_id(tmp_path: Path) -> None:
    root = shop(tmp_path, [*GOOD[:3], f'"{SECRET},i1,view,2026-01-01T10:00:00Z', *GOOD[3:6]])
    code, output = ingest(root)  # one broken record in seven: above the 5% threshold
    assert code == 1 and "unterminated_quote" in output and SECRET not in output
    code, output = ingest(root, "validation.max_bad_fraction=0.5")
    assert code == 0, output
    assert SECRET not in output and SECRET not in lake_text(root)
    quarantined = pl.read_parquet(root / "lake" / "generic" / "quarantine")
    assert quarantined.select("_line", "reason").rows() == [(5, "unterminated_quote")]
    assert quarantined["user_id"].null_count() == 1  # a broken record keeps only where and why


def test_a_reader_error_is_summarised_never_quoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import polars.exceptions as ple

    def choke(*args: object, **kwargs: object) -> None:
        raise ple.ComputeError(f"could not parse `{SECRET}` as dtype i64 at column 'user_id' (column number 1)")

    monkeypatch.setattr(ingest_mod.ev, "stage_file", choke)
    code, output = ingest(shop(tmp_path, GOOD))
    assert code == 1 and "events.csv: cannot be parsed: a field could not be parsed" in output
    assert SECRET not in output and len(output.strip().splitlines()[-1:]) == 1


def test_an_unexpected_reader_error_anywhere_in_ingest_is_one_line_without_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polars.exceptions as ple

    def choke(*args: object, **kwargs: object) -> None:
        raise ple.InvalidOperationError(f"conversion from `str` to `i64` failed in column 'user_id' for value {SECRET}")

    monkeypatch.setattr(ingest_mod, "_user_table", choke)
    code, output = ingest(shop(tmp_path, GOOD))
    assert code == 1 and "cannot be read (InvalidOperationError)" in output and SECRET not in output
    assert "Traceback" not in output


def test_personal_user_columns_in_any_spelling_never_reach_the_lake(tmp_path: Path) -> None:
    users = (
        "user_id,Email,phone_number,E-Mail Address,Mobile,region\n"
        "u1,ann@private.example,+44-7700-900001,ann.w@private.example,07700900011,north\n"
        "u2,bob@private.example,+44-7700-900002,bob.w@private.example,07700900012,south\n"
    )
    root = shop(tmp_path, GOOD, users)
    code, output = ingest(root)
    assert code == 0, output
    assert pl.read_parquet(root / "lake" / "generic" / "users.parquet").columns == ["user_id", "region"]
    assert not [v for v in ("private.example", "7700") if v in lake_text(root)]


def test_production_refuses_an_undeclared_column_in_one_line(tmp_path: Path) -> None:
    root = shop(tmp_path, GOOD, "user_id,Email\nu1,ann@private.example\n")
    code, output = ingest(root, "pii=production", key=STRONG_KEY)
    lines = output.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "users.csv: users column(s) 'Email' not declared" in lines[0]
    assert "+pii.personal_columns.email=drop" in lines[0] and "private.example" not in output
    assert not (root / "lake" / "generic" / "manifest.json").exists()
    code, output = ingest(root, "pii=production", "+pii.personal_columns.email=drop", key=STRONG_KEY)
    assert code == 0, output


@pytest.mark.parametrize("key", ["a" * 40, "ab" * 20, "0123456789" * 4, DEVELOPMENT_KEY, "short"])
def test_production_refuses_weak_and_development_keys(tmp_path: Path, key: str) -> None:
    code, output = ingest(shop(tmp_path, GOOD), "pii=production", key=key)
    assert code == 1 and len(output.strip().splitlines()) == 1 and "RECSYS_PII_KEY" in output
    assert key not in output


def test_the_development_key_given_explicitly_is_recorded_as_such(tmp_path: Path) -> None:
    import json

    root = shop(tmp_path, GOOD)
    code, output = ingest(root, key=DEVELOPMENT_KEY)
    assert code == 0, output and "DEVELOPMENT key" in output
    manifest = json.loads((root / "lake" / "generic" / "manifest.json").read_text())
    assert manifest["pii"]["development_key"] is True
