"""Options shared by several commands, defined once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from recsys_cli.config import DEFAULT_CONF_DIR

if TYPE_CHECKING:
    from omegaconf import DictConfig

Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Config overrides, key=value or group=option, e.g. data=movielens100k runs_dir=/srv/runs.",
        show_default=False,
    ),
]
SharedOverrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="The chain's shared keys only (conf/chain.yaml), e.g. paths.data_dir=/srv/shop data=generic: "
        "each is checked, and used where the command says so above.",
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


# `key=value`, `group=option`, `+k=v`, `++k=v`, `~k`, `g@pkg=o`: a config override, not a path or a name.
_OVERRIDE = re.compile(r"^(\+{1,2}|~)?[A-Za-z_][\w.@/-]*(=|$)")


def is_override(arg: str) -> bool:
    """Whether a positional argument is a config override rather than a path or a
    name: `key=...` or `~key`, and not an existing file or folder."""
    match = _OVERRIDE.match(arg)
    if match is None or not (arg.startswith("~") or match.group(2) == "="):
        return False
    return not Path(arg).exists()


def split_overrides(args: list[str]) -> tuple[list[str], list[str]]:
    """(the arguments, the overrides) of a variadic argument followed by overrides."""
    return [a for a in args if not is_override(a)], [a for a in args if is_override(a)]


def shift_override(value: str | None, overrides: list[str] | None) -> tuple[str | None, list[str]]:
    """An optional positional argument that caught the first override gives it back."""
    if value is not None and is_override(value):
        return None, [value, *(overrides or [])]
    return value, list(overrides or [])


def chain_config(command: str, overrides: list[str] | None, config_dir: Path) -> DictConfig | None:
    """conf/chain.yaml composed with the overrides of a command that takes the chain's
    shared keys only (each checked; any other key refused); None without overrides."""
    from recsys_cli.config import compose_shared

    return compose_shared(command, overrides, config_dir) if overrides else None


def seed_of(chain: DictConfig | None, overrides: list[str] | None, default: int) -> int:
    """The `seed=` the overrides set (as `chain` composed it), else `default`: the
    chain's own default seed is train's, not this command's."""
    sets = any(o.lstrip("+").split("=")[0] == "seed" for o in overrides or [])
    return int(chain.seed) if chain is not None and sets else default
