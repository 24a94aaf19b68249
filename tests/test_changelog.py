"""The changelog and the version number move together: the newest released heading
of CHANGELOG.md is the version the package reports, the one `recsys --version`
prints and the one pip installed."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import recsys_cli

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"
HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?\s*$", re.MULTILINE)


def _headings() -> list[tuple[str, str | None]]:
    return [(m["name"], m["date"]) for m in HEADING.finditer(CHANGELOG.read_text(encoding="utf-8"))]


def test_the_changelog_opens_with_unreleased_then_dated_versions() -> None:
    headings = _headings()
    assert headings[0] == ("Unreleased", None)
    released = headings[1:]
    assert released, "no released version"
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", name) and date for name, date in released)


def test_versions_and_dates_only_go_down() -> None:
    released = _headings()[1:]
    numbers = [tuple(int(x) for x in name.split(".")) for name, _ in released]
    dates = [date for _, date in released]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers)
    assert dates == sorted(dates, reverse=True)


def test_the_newest_release_is_the_package_version() -> None:
    newest = _headings()[1][0]
    assert recsys_cli.__version__ == newest
    assert version("recsys-cli") == newest


def test_recsys_version_prints_it() -> None:
    from typer.testing import CliRunner

    from recsys_cli.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"recsys {recsys_cli.__version__}"
