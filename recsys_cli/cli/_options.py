"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from recsys_cli.config import DEFAULT_CONF_DIR

Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Config overrides, key=value or group=option, e.g. data=movielens100k runs_dir=/srv/runs.",
        show_default=False,
    ),
]
ConfigDir = Annotated[Path, typer.Option("--config-dir", help="Folder of Hydra configs.", show_default=False)]
Verify = Annotated[
    bool,
    typer.Option(
        "--verify/--no-verify",
        help="Re-hash every input file against its manifest; --no-verify checks names and sizes only.",
    ),
]
DEFAULT_CONFIG_DIR = DEFAULT_CONF_DIR
F = TypeVar("F", bound=Callable[..., Any])


def config_choices(group: str, config_dir: Path = DEFAULT_CONFIG_DIR) -> str:
    """`a | b | c`: every config a Hydra group offers, read from its folder so --help
    never lags behind a new YAML (spaced, so it wraps between names, never inside one)."""
    return " | ".join(sorted(path.stem for path in (config_dir / group).glob("*.yaml")))


def help_choices(*groups: str) -> Callable[[F], F]:
    """A decorator that fills a command docstring's `{group}` placeholders (its
    --help) with the group's choices."""

    def fill(command: F) -> F:
        doc = command.__doc__ or ""
        for group in groups:
            doc = doc.replace("{" + group + "}", config_choices(group))
        command.__doc__ = doc
        return command

    return fill
