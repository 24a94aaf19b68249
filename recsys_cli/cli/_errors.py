"""Known errors become one red line and a non-zero exit; `--debug` keeps the traceback."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.markup import escape

from recsys_cli.console import err_console
from recsys_cli.errors import RecsysError

F = TypeVar("F", bound=Callable[..., Any])


def debug_from_env() -> bool:
    return os.environ.get("RECSYS_DEBUG", "") not in ("", "0")


state = {"debug": debug_from_env()}


def friendly_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecsysError as exc:
            if state["debug"]:
                raise
            # Escaped: a message may show config syntax (`pii.safe_columns.users=[a,b]`), not markup.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def usage_error(exc: Exception) -> int:
    """Print a usage error as one line (`recsys sweep run: Invalid value for
    '--trials': ...`) and return its exit code; help already printed for a bare
    command needs no more."""
    code = int(getattr(exc, "exit_code", 2))
    if type(exc).__name__ == "NoArgsIsHelpError":
        return code
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    from rich.markup import escape

    line = escape(" ".join(f"{where}{message}".split()))
    err_console.print(f"[bold red]error:[/] {line} (see --help)", highlight=False, soft_wrap=True)
    return code
