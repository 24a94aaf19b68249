"""Every `recsys ... --help`, as a user reads it at 100 columns, kept under
tests/cli/help_snapshots/ (one file per command, `recsys_registry_list.txt` for
`recsys registry list --help`) and compared exactly.

The commands are read from the Typer app itself, so a new command fails here until
its snapshot exists. After a deliberate change to a help text, regenerate them all
and review the diff:

    RECSYS_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -q tests/cli/test_help_snapshots.py

Besides the snapshots, every help text is checked for what makes it read well: no
`<bool>` on flags, exactly one example that parses as a real invocation and whose
overrides compose, and each paragraph of its docstring flowing as one paragraph.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.config import compose

SNAPSHOTS = Path(__file__).parent / "help_snapshots"
UPDATE = os.environ.get("RECSYS_UPDATE_SNAPSHOTS") == "1"
WIDTH = 100
UNWRAPPED = 2000  # wide enough that no paragraph of any help wraps
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # a CI that forces colour (GITHUB_ACTIONS) still compares plain text
# The primary config each command composes its overrides with (the shorthand
# `recsys sweep ...` runs `recsys sweep run`).
CONFIG_OF = {
    "ingest": "ingest",
    "split": "split",
    "features": "features",
    "check-leakage": "features",
    "train": "train",
    "evaluate": "evaluate",
    "abtest": "abtest",
    "export": "export",
    "serve": "serve",
    "monitor": "monitor",
    "retrain": "retrain",
    "datasets list": "ingest",
    "datasets synth": "ingest",
    "events export": "serve",
    "sweep run": "sweep",
}
DEFAULT_SUBCOMMAND = {"sweep": "run"}

ROOT = get_command(app)


def _walk(command: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _walk(sub, (*path, name))
    return found


PATHS = _walk(ROOT, ())


def _command(path: tuple[str, ...]) -> Any:
    command: Any = ROOT
    for name in path:
        command = command.commands[name]
    return command


def _source_help(path: tuple[str, ...]) -> str:
    """The help as written: a command's docstring, a group's `help=`."""
    callback = _command(path).callback
    if callback is not None and callback.__doc__:
        return inspect.getdoc(callback) or ""
    group: typer.Typer = app
    for name in path:
        group = next(g.typer_instance for g in group.registered_groups if g.name == name and g.typer_instance)
    return str(group.info.help)


def _snapshot_name(path: tuple[str, ...]) -> str:
    return "_".join(("recsys", *path)) + ".txt"


@functools.cache
def _help(path: tuple[str, ...], width: int) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return "\n".join(ANSI.sub("", line).rstrip() for line in result.output.splitlines()) + "\n"


def _example(path: tuple[str, ...]) -> str:
    lines = [line.strip() for line in _help(path, UNWRAPPED).splitlines() if "Example:" in line]
    assert len(lines) == 1, f"recsys {' '.join(path)} --help: {len(lines)} examples, want exactly one"
    return lines[0].removeprefix("Example:").strip()


@pytest.mark.parametrize("path", PATHS, ids=_snapshot_name)
def test_help_matches_its_snapshot(path: tuple[str, ...]) -> None:
    text = _help(path, WIDTH)
    snapshot = SNAPSHOTS / _snapshot_name(path)
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        snapshot.write_text(text)
    assert snapshot.is_file(), (
        f"no snapshot of `recsys {' '.join(path)} --help`: RECSYS_UPDATE_SNAPSHOTS=1 pytest {__file__}"
    )
    assert text == snapshot.read_text()


def test_every_snapshot_is_a_command() -> None:
    names = {_snapshot_name(path) for path in PATHS}
    stale = sorted(p for p in SNAPSHOTS.glob("*.txt") if p.name not in names)
    if UPDATE:
        for p in stale:
            p.unlink()
        stale = []
    assert not stale, f"snapshots of commands that no longer exist: {[p.name for p in stale]}"


@pytest.mark.parametrize("path", PATHS, ids=_snapshot_name)
def test_flags_show_no_type(path: tuple[str, ...]) -> None:
    text = _help(path, WIDTH)
    assert "<bool>" not in text
    command = _command(path)
    ctx = command.make_context(path[-1] if path else "recsys", [], resilient_parsing=True)
    flags = [p for p in command.get_params(ctx) if getattr(p, "is_flag", False)]
    assert flags, "every command has at least --help"
    for flag in flags:
        row = next(line for line in text.splitlines() if f" {flag.opts[0]} " in line)
        for name in (*flag.opts, *flag.secondary_opts):
            row = row.replace(name, "")
        assert not row.strip("│ ").startswith("<"), f"{flag.opts[0]} shows a type: {row}"


@pytest.mark.parametrize("path", PATHS, ids=_snapshot_name)
def test_docstring_paragraphs_flow(path: tuple[str, ...]) -> None:
    """A paragraph wrapped in the source prints as one paragraph: at a width where
    nothing needs wrapping, each is a single line (square brackets included)."""
    lines = _help(path, UNWRAPPED).splitlines()
    for paragraph in _source_help(path).split("\n\n"):
        flowed = " ".join(line.strip() for line in paragraph.splitlines())
        assert any(flowed in line for line in lines), flowed


@pytest.mark.parametrize("path", PATHS, ids=_snapshot_name)
def test_the_example_is_a_real_invocation(path: tuple[str, ...]) -> None:
    """The example names real commands, options and arguments, and its overrides
    compose with the command's config as they are today."""
    words = shlex.split(_example(path))
    assert words[0] == "recsys"
    command, args, names = ROOT, words[1:], list[str]()
    while hasattr(command, "commands"):
        default = DEFAULT_SUBCOMMAND.get(names[-1] if names else "")
        assert (args and args[0] in command.commands) or default, f"`recsys {' '.join(names)}` needs a subcommand"
        name = args.pop(0) if args and args[0] in command.commands else str(default)
        command, names = command.commands[name], [*names, name]
    assert tuple(names[: len(path)]) == path, (
        f"the example of `recsys {' '.join(path)}` runs `recsys {' '.join(names)}`"
    )
    ctx = command.make_context(" ".join(names), args)
    overrides = ctx.params.get("overrides")
    if overrides:
        compose(CONFIG_OF[" ".join(names)], list(overrides))
