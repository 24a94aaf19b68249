"""One rich console for the CLI, and the progress interface tasks report through.

Tasks never print: they call a `Reporter`. The CLI passes a rich one, tests and
library callers get the silent default.

Off a terminal (a file, a pipe, a CI log) there is no width to fit: a table is
printed as wide as its content, so no cell is cropped to "169,0…", a line of text
stays one line, and there are no colour codes (rich leaves them out when the stream
is not a terminal, and always under NO_COLOR). An explicit COLUMNS still sets the
width, as it does on a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table
from rich.text import Text

_UNBOUNDED = 1_000_000  # the width a table is measured at to find its natural width


class _Console(Console):
    """A rich `Console` that prints tables whole when its stream is not a terminal."""

    def __init__(self, *, width: int | None = None, **kwargs: Any) -> None:
        self._fixed_width = width is not None
        self._natural_width: int | None = None
        super().__init__(width=width, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._natural_width is not None and self._natural_width > size.width:
            return ConsoleDimensions(self._natural_width, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self.width, self.height = new_size

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self._fits_a_width():
            tables = [t for t in objects if isinstance(t, Table)]
            if tables:
                self._natural_width = self._widest(tables)
            else:
                kwargs.setdefault("soft_wrap", True)  # text is not wrapped at a width nobody sees
        try:
            super().print(*objects, **kwargs)
        finally:
            self._natural_width = None

    def _fits_a_width(self) -> bool:
        """A terminal, a width given to the console or an explicit COLUMNS: output fits that width."""
        return self.is_terminal or self._fixed_width or os.environ.get("COLUMNS", "").isdigit()

    def _widest(self, tables: Sequence[Table]) -> int | None:
        """The natural width of the widest table (one that expands to any width does not count)."""
        options = self.options.update_width(_UNBOUNDED)
        return max((self.measure(t, options=options).maximum for t in tables if not t.expand), default=None)


def make_console(*, stderr: bool = False, **kwargs: Any) -> Console:
    """The console every command prints through: rich's, except that off a terminal a
    table is as wide as its content. `kwargs` go to `rich.console.Console`."""
    return _Console(stderr=stderr, **kwargs)


console = make_console()
err_console = make_console(stderr=True)


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


def titled_table(title: str, caption: str | None = None, **kwargs: Any) -> Table:
    """A table at least as wide as its title and caption: rich wraps both to the
    table's width, so a path in a title came out cut in two ("/tmp/xx/raw/synt",
    "h") above a narrow table. A terminal narrower than that still wraps them."""
    longest = max((_cell_width(t) for t in (title, caption) if t), default=0)
    return Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        min_width=longest or None,
        **kwargs,
    )


def _cell_width(markup: str) -> int:
    return max((line.cell_len for line in Text.from_markup(markup).split()), default=0)


def kv_table(title: str, rows: Mapping[str, Any]) -> Table:
    table = titled_table(title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in rows.items():
        table.add_row(key, _fmt(value))
    return table


def rows_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = titled_table(title)
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
