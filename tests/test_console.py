"""The progress display: finished steps stay visible, a failed command leaves only its
error. Tables printed off a terminal come out whole and without colour codes."""

import io
import re
from typing import Any

import pytest

from recsys_cli.console import console, err_console, kv_table, make_console, rich_progress, rows_table
from recsys_cli.errors import LakeError


def test_finished_steps_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with rich_progress() as reporter:
        reporter.start("hashing inputs", total=2)
        reporter.advance(2)
    assert "hashing inputs" in capsys.readouterr().err


def test_a_failure_erases_the_half_drawn_bars(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(LakeError), rich_progress() as reporter:
        reporter.start("hashing inputs", total=3)
        reporter.advance()
        raise LakeError("damaged lake")
    assert capsys.readouterr().err.strip() == ""


WIDE_ROWS = [(f"user-{i}-with-a-long-pseudonymous-identifier", 169_000_123 * i, "x" * 40, 0.5) for i in range(1, 4)]


def _table_text(**console_kwargs: Any) -> str:
    out = io.StringIO()
    console = make_console(file=out, **console_kwargs)
    console.print("[bold]Metrics[/]", rows_table("Fold 1", ["user", "events", "note", "ndcg@10"], WIDE_ROWS))
    return out.getvalue()


def test_off_a_terminal_a_table_is_as_wide_as_its_content(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    text = _table_text()
    for user, events, note, _ in WIDE_ROWS:
        row = next(line for line in text.splitlines() if user in line)
        assert f"{events:,}" in row and note in row
    assert "…" not in text and "\x1b[" not in text
    assert max(len(line) for line in text.splitlines()) > 80


def test_off_a_terminal_a_long_line_of_text_stays_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    line = "run written: " + "/".join(["runs", "ease", *(["a-long-folder-name"] * 12), "20260301T090000000000Z"])
    make_console(file=out).print(f"[green]{line}[/]")
    assert out.getvalue() == line + "\n"


def test_a_title_longer_than_its_table_is_printed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich wraps a title to its table's width: `datasets synth` printed its path as
    "/tmp/xx/raw/synt" and "h" above a two-column table of counts."""
    monkeypatch.delenv("COLUMNS", raising=False)
    path = "/tmp/" + "/".join(["a-long-folder-name"] * 6) + "/raw/synth"
    for terminal in ({}, {"force_terminal": True, "width": 200}):
        out = io.StringIO()
        make_console(file=out, **terminal).print(kv_table(f"Synthetic shop written to {path}", {"users": 200}))
        assert _plain(out.getvalue()).splitlines()[0].rstrip() == f"Synthetic shop written to {path}"
    out = io.StringIO()
    make_console(file=out, force_terminal=True, width=40).print(kv_table(f"written to {path}", {"users": 200}))
    assert max(len(_plain(line)) for line in out.getvalue().splitlines()) <= 40  # a narrow terminal still wraps it


def test_an_explicit_columns_still_sets_the_width_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    assert max(len(line) for line in _table_text().splitlines()) <= 60


def test_no_color_leaves_out_colour_codes_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = io.StringIO()
    make_console(file=out, force_terminal=True, width=200).print("[red]refused[/]")
    assert "\x1b[31m" not in out.getvalue()


def test_on_a_terminal_tables_fit_its_width_as_rich_draws_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    text = _table_text(force_terminal=True, width=40)
    assert "\x1b[" in text and "…" in text
    assert max(len(_plain(line)) for line in text.splitlines()) <= 40


def test_the_command_consoles_come_from_the_factory() -> None:
    assert type(console) is type(err_console) is type(make_console())


def _plain(line: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", line)
