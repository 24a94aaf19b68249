"""Known errors become one red line and a non-zero exit; `--debug` keeps the traceback."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer

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
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
