"""One rich console for the CLI, and the progress interface tasks report through.

Tasks never print: they call a `Reporter`. The CLI passes a rich one, tests and
library callers get the silent default.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class Reporter(Protocol):
    def start(self, description: str, total: float | None = None) -> None: ...

    def advance(self, amount: float = 1) -> None: ...

    def done(self) -> None: ...


class NullReporter:
    """Reports nothing; the default for library use and tests."""

    def start(self, description: str, total: float | None = None) -> None:
        pass

    def advance(self, amount: float = 1) -> None:
        pass

    def done(self) -> None:
        pass


class RichReporter:
    """A rich progress display with one line per step, each completed in turn."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress
        self._task: Any = None

    def start(self, description: str, total: float | None = None) -> None:
        self.done()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: float = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)

    def done(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[self._task]
            self._progress.update(self._task, total=task.total or max(task.completed, 1))
            self._progress.update(self._task, completed=task.total or max(task.completed, 1))
            self._task = None


@contextmanager
def rich_progress() -> Iterator[RichReporter]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        reporter = RichReporter(progress)
        try:
            yield reporter
        except BaseException:
            # A failed command leaves only its error line: the half-drawn bars are
            # erased instead of printed as a last frame above it.
            progress.live.transient = True
            raise
        reporter.done()


def esc(text: Any) -> str:
    """`text` printed as it is: square brackets in ids or paths are not rich markup."""
    return escape(str(text))


def kv_table(title: str, rows: Mapping[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in rows.items():
        table.add_row(key, _fmt(value))
    return table


def rows_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)
