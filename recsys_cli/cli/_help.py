"""How every `recsys ... --help` reads, decided once for all commands.

Two things Typer does not do by itself:

- A docstring wrapped at 80-120 characters keeps its line breaks after the first
  paragraph, so help printed on a wider or narrower terminal shows ragged hard
  breaks. Each paragraph is joined into one line here and the terminal wraps it;
  a paragraph that starts with `\\b` is kept as written (a table, a list).
- A flag (`--verify/--no-verify`, `--json`, even `--help`) is shown with the
  type `<bool>`, as if it took a value. A flag's type column is left empty.
- Help is parsed as rich markup, so `[registry.uri of conf/registry/]` in an
  option's help vanished as an unknown style. Help text here is plain text: its
  square brackets are escaped and printed as written.

Every module builds its app with `Typer` below instead of `typer.Typer`, so a new
command gets both without asking.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup, TyperOption

NO_REFLOW = "\b"


def reflow(text: str | None) -> str | None:
    """`text` with each paragraph (blank-line separated) on one line, except those starting with `\\b`.

    >>> reflow("Split a lake\\n    by time.\\n\\n    Writes folds.")
    'Split a lake by time.\\n\\nWrites folds.'
    """
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith(NO_REFLOW) else " ".join(p.split("\n")) for p in paragraphs)


def _plain_help(command: TyperCommand | TyperGroup) -> None:
    # Once, when the command is built: escaping twice would show the backslashes.
    command.help = escape(reflow(command.help) or "")
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)  # type: ignore[attr-defined]


def _flags_without_type(params: list[Any]) -> list[Any]:
    # A flag takes no value: an empty metavar leaves its type column blank.
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class HelpCommand(TyperCommand):
    """A command whose help paragraphs flow and whose flags show no type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(super().get_params(ctx))


class HelpGroup(TyperGroup):
    """A command group whose help paragraphs flow and whose flags show no type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(super().get_params(ctx))


class Typer(typer.Typer):
    """`typer.Typer` whose groups and commands are `HelpGroup` and `HelpCommand` unless told otherwise."""

    def __init__(self, *, cls: type[TyperGroup] | None = HelpGroup, **kwargs: Any) -> None:
        super().__init__(cls=cls, **kwargs)

    def command(  # type: ignore[override]
        self, name: str | None = None, *, cls: type[TyperCommand] | None = HelpCommand, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(name, cls=cls, **kwargs)
