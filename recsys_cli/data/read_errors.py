"""Reader errors (Polars, OS, Rust panics) in our own words.

Why: a reader's message can quote the cell it choked on (Polars prints the field
it "could not parse"), and a cell may hold a user id or an e-mail. Messages name
the file and what kind of problem it was; `--debug` still shows the original.
"""

from __future__ import annotations

# What a reader's error was about, by a phrase of its text, in our own words: the text
# itself can quote cell values (Polars prints the field it "could not parse").
_READ_ERRORS = (
    ("more fields than defined", "a record has more fields than the header"),
    ("could not parse", "a field could not be parsed; an unbalanced quote?"),
    ("unterminated", "a quoted field never closes"),
    ("utf-8", "the bytes are not UTF-8 text"),
    ("utf8", "the bytes are not UTF-8 text"),
    ("magic", "not a Parquet file"),
    ("parquet", "a damaged or foreign Parquet file"),
    ("json", "not valid JSON lines"),
    ("schema", "its columns or types do not match"),
    ("no data", "no data"),
    ("empty", "no data"),
)


def polars_error_summary(exc: BaseException) -> str:
    """A reader error (Polars, OS, a Rust panic) summarised without any of its text.

    >>> polars_error_summary(ValueError("could not parse `alice@example.org` as dtype i64 at column 'x'"))
    'a field could not be parsed; an unbalanced quote?'
    """
    text = str(exc).lower()
    for phrase, summary in _READ_ERRORS:
        if phrase in text:
            return summary
    return type(exc).__name__
