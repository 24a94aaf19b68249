"""A streaming CSV reader that sets broken records aside instead of failing the file.

Polars' CSV reader stops at the first malformed record (more fields than the
header, a quote that never closes) and its row index counts records, not lines.
This reader hands Polars chunks of whole lines through an IO plugin: a chunk that
Polars parses is used as it is (the common case, at Polars' speed); a chunk it
refuses is cut around its broken records and the clean pieces go back to Polars,
so only the broken records are parsed by Python's `csv` module, which marks each
one and resumes at the line after its first line.

A record is one line, or several where a quoted field holds line breaks; a blank
line is a record with every field missing. Every row carries the physical line
(1-based, header = line 1) where its record starts, so `rows_in` counts records
and quarantine lines point into the file. `READ_ERROR` names what was wrong:

- `ragged_row`: more fields than the header (the first fields are kept as text);
- `unterminated_quote`: a quoted field that no line end closes (or that closes on
  a later line into more text): its first line is the record, the next line starts anew;
- `bad_quote`: a quoted field followed by more text on the same line (`"ab"c`);
- `too_few_fields`: the file's last line, cut short (no final line break and
  fewer fields than the header): a truncated copy, not a short record.

Other short rows are padded with nulls, as Polars does. Line breaks are `\\n`
(with or without `\\r`), or `\\r` alone in files that have no `\\n` (classic Mac).
A UTF-8 byte order mark is skipped; gzip, bzip2 and xz files are decompressed
while they are read (whatever their name), so memory stays bounded by a chunk.
"""

from __future__ import annotations

import atexit
import bz2
import csv
import gzip
import lzma
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import polars as pl
from polars.io.plugins import register_io_source

from recsys_cli.data.schema import Col
from recsys_cli.errors import SourceError

READ_ERROR = "_ragged"  # why the reader could not split a record into fields; null when it could
CHUNK_BYTES = 4 << 20
MAX_CHUNK_BYTES = 16 << 20  # a quoted field may span lines, but not past this
SMALL_PART = 64 << 10  # a refused part this small is parsed by `csv`, not cut again
QUOTE_ERRORS = ("unterminated_quote", "bad_quote")
SNIFF_BYTES = 1 << 16
HEADER_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"
SENTINEL = "\uf8ff"  # stands in for a stray CR/LF inside a line while `csv` parses it
OPENERS: dict[bytes, Callable[[Path], IO[bytes]]] = {
    b"\x1f\x8b": lambda p: cast(IO[bytes], gzip.open(p, "rb")),
    b"BZh": lambda p: cast(IO[bytes], bz2.open(p, "rb")),
    b"\xfd7zXZ\x00": lambda p: cast(IO[bytes], lzma.open(p, "rb")),
}
REFUSED = {
    b"PK\x03\x04": "a zip archive; extract the CSV file from it",
    b"\x28\xb5\x2f\xfd": "zstd-compressed; decompress it first (gzip, bzip2 and xz are read directly)",
    b"\xff\xfe": "UTF-16 text; save it as UTF-8",
    b"\xfe\xff": "UTF-16 text; save it as UTF-8",
}


class _InFlight:
    """Batches being parsed on Polars' threads.

    Python must not run on another thread while the interpreter shuts down (the
    process aborts): after a failed query Polars may still be finishing a batch,
    so exit waits for it, and no batch starts once exit has begun.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.stopping = False

    @contextmanager
    def step(self) -> Iterator[bool]:
        with self.lock:
            self.running += 1
        try:
            yield not self.stopping
        finally:
            with self.lock:
                self.running -= 1

    def drain(self, timeout: float = 60.0) -> None:
        self.stopping = True
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            time.sleep(0.01)


IN_FLIGHT = _InFlight()
atexit.register(IN_FLIGHT.drain)
# `csv` refuses fields over 128 KiB by default; a chunk bounds them anyway. Raised once,
# for the process, rather than set and restored around each parse on Polars' threads.
csv.field_size_limit(max(csv.field_size_limit(), MAX_CHUNK_BYTES))


@dataclass(frozen=True)
class Dialect:
    """How a CSV file is written, as far as splitting it into records goes."""

    separator: str = ","
    quote_char: str | None = '"'
    has_header: bool = True
    eol: bytes = b"\n"


def open_raw(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip/bzip2/xz; a one-line error for what we cannot read."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    for prefix, why in REFUSED.items():
        if magic.startswith(prefix):
            raise SourceError(f"{path}: {why}")
    for prefix, opener in OPENERS.items():
        if magic.startswith(prefix):
            return opener(path)
    return open(path, "rb")


def sniff_eol(path: Path) -> bytes:
    """`\\r` for files whose line breaks are CR only, else `\\n`."""
    head = read_head(path, SNIFF_BYTES)
    return b"\r" if b"\r" in head and b"\n" not in head else b"\n"


def read_head(path: Path, size: int) -> bytes:
    """The first `size` bytes of the (decompressed) file."""
    try:
        with open_raw(path) as fh:
            return fh.read(size)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise SourceError(f"{path}: cannot be read or decompressed: {type(exc).__name__}") from exc


def header(path: Path, dialect: Dialect, names: list[str] | None) -> tuple[list[str], int]:
    """Column names and the number of lines the header takes (0 without one).

    Names are parsed by Polars itself, so duplicates and blanks are named as
    `pl.scan_csv` names them.
    """
    head = read_head(path, HEADER_BYTES).removeprefix(BOM)
    if not head.strip():
        raise SourceError(f"{path}: file is empty (no header, no rows)")
    first = _first_record(head, dialect)
    try:
        found = pl.read_csv(
            first if first.endswith(dialect.eol) else first + dialect.eol,
            has_header=dialect.has_header,
            separator=dialect.separator,
            quote_char=dialect.quote_char,
            eol_char=dialect.eol.decode(),
            n_rows=0 if dialect.has_header else 1,
            infer_schema=False,
            encoding="utf8-lossy",
        ).columns
    except pl.exceptions.PolarsError as exc:
        raise SourceError(f"{path}: the header line cannot be read as CSV") from exc
    found = [c.strip() for c in found]  # "user_id, item_id": spaces after the separator are no part of a name
    refuse_lineage_names(path, names or found)
    if not dialect.has_header:
        return names or found, 0
    if not names:
        _refuse_repeated_names(path, first, dialect)
    return (names or found), 1 + first.count(dialect.eol, 0, len(first) - 1)


def refuse_lineage_names(path: Path, names: list[str]) -> None:
    """A raw column named like the line or verdict column this reader adds beside it."""
    taken = [c for c in names if c in (Col.LINE, READ_ERROR)]
    if taken:
        raise SourceError(f"{path}: column '{taken[0]}' has a name ingest uses itself; rename it in the file")


def _refuse_repeated_names(path: Path, first: bytes, dialect: Dialect) -> None:
    """Two columns of one name: which one is the user id? (Polars would rename the second.)"""
    text = first.decode("utf-8", errors="replace").replace("\r", " ").replace("\n", " ")
    raw = next(_reader([text], dialect, strict=False), [])
    seen: set[str] = set()
    for name in (n.strip() for n in raw):
        if name and name in seen:
            raise SourceError(f"{path}: column '{name}' appears more than once in the header (line 1)")
        seen.add(name)


def _first_record(head: bytes, dialect: Dialect) -> bytes:
    """The header's bytes: its first line, extended while a quoted name spans lines."""
    quote = dialect.quote_char.encode() if dialect.quote_char else None
    end = head.find(dialect.eol) + 1
    while end and quote and head.count(quote, 0, end) % 2:
        end = head.find(dialect.eol, end) + 1
    return head[:end] if end else head


def scan_records(path: Path, dialect: Dialect, names: list[str] | None = None) -> pl.LazyFrame:
    """Every record of `path` as text columns, with `Col.LINE` (its first physical line) and `READ_ERROR`."""
    columns, header_lines = header(path, dialect, names)
    schema = {**{c: pl.String() for c in columns}, Col.LINE: pl.UInt64(), READ_ERROR: pl.String()}
    return register_batches(lambda: _batches(path, dialect, columns, header_lines), schema, f"csv {path}")


def register_batches(
    make: Callable[[], Iterator[pl.DataFrame]], schema: dict[str, pl.DataType], name: str
) -> pl.LazyFrame:
    """A lazy frame over batches that Python produces, streamed by Polars."""

    def source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _batch: int | None
    ) -> Iterator[pl.DataFrame]:
        batches, left = make(), n_rows
        while left is None or left > 0:
            with IN_FLIGHT.step() as go:
                df = next(batches, None) if go else None
                if df is None:
                    return
                df = df.select(with_columns) if with_columns is not None else df
                df = df.filter(predicate) if predicate is not None else df
                if left is not None:
                    df, left = df.head(left), left - min(left, df.height)
            yield df

    shown = name.encode("utf-8", errors="backslashreplace").decode()  # a file name need not be UTF-8
    return register_io_source(source, schema=schema, is_pure=True, explain_name=shown)


def _batches(path: Path, dialect: Dialect, columns: list[str], header_lines: int) -> Iterator[pl.DataFrame]:
    """Parsed chunks of the file after its header, each with physical line numbers."""
    line = 1
    with open_raw(path) as fh:
        chunks = split_chunks(read_blocks(fh, path), dialect.eol, dialect.quote_char, path)
        for i, (chunk, last) in enumerate(mark_last(chunks)):
            if i == 0:
                chunk = _drop_lines(chunk.removeprefix(BOM), dialect.eol, header_lines)
                line += header_lines
            if chunk:
                yield parse_chunk(chunk, line, dialect, columns, truncated=last and not chunk.endswith(dialect.eol))
            line += chunk.count(dialect.eol)


def read_blocks(fh: IO[bytes], path: Path) -> Iterator[bytes]:
    try:
        while block := fh.read(CHUNK_BYTES):
            yield block
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise SourceError(f"{path}: cannot be decompressed: {type(exc).__name__}") from exc


def mark_last(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    previous = next(chunks, None)
    for chunk in chunks:
        yield previous or b"", False
        previous = chunk
    if previous is not None:
        yield previous, True


def split_chunks(blocks: Iterator[bytes], eol: bytes, quote_char: str | None, path: Path) -> Iterator[bytes]:
    """Cut a byte stream into chunks of whole lines, extending a chunk while its
    quotes are unbalanced (a quoted field spans the cut), up to MAX_CHUNK_BYTES.
    A line longer than that is no record: the file is refused (memory stays bounded)."""
    quote = quote_char.encode() if quote_char else None
    pending = b""
    for block in blocks:
        pending += block
        cut = pending.rfind(eol) + 1
        if cut == 0 and len(pending) > MAX_CHUNK_BYTES:
            raise SourceError(f"{path}: a line is longer than {MAX_CHUNK_BYTES >> 20} MiB: not a table of records")
        if cut == 0 or (quote and pending.count(quote, 0, cut) % 2 and len(pending) < MAX_CHUNK_BYTES):
            continue
        yield pending[:cut]
        pending = pending[cut:]
    if pending:
        yield pending


def _drop_lines(chunk: bytes, eol: bytes, n: int) -> bytes:
    if n == 0:
        return chunk
    start = 0
    for _ in range(n):
        start = chunk.find(eol, start) + 1
        if start == 0:
            return b""
    return chunk[start:]


def parse_chunk(chunk: bytes, first_line: int, dialect: Dialect, columns: list[str], truncated: bool) -> pl.DataFrame:
    """Records of one chunk of whole lines: by Polars where it can, else by `csv`.

    A part Polars refuses is cut at record ends (`_cut_points`) and each piece tried
    again, down to SMALL_PART bytes: a few bad records cost a few small pieces of
    Python parsing, not the file. After a record `csv` cannot split (a quote), the
    rest of the part goes back to Polars. `truncated`: the chunk ends the file
    without a line break; its last record is parsed by `csv`, which can tell a short
    record from a full one.
    """
    frames: list[pl.DataFrame] = []
    todo = [(chunk, first_line)]  # a stack: the next part last
    while todo:
        part, line = todo.pop()
        ends_file = truncated and not part.endswith(dialect.eol)
        fast = None if ends_file else _parse_fast(part, line, dialect, columns)
        if fast is not None:
            frames.append(fast)
            continue
        cuts = _cut_points(part, dialect, ends_file, len(columns))
        if cuts:
            todo += reversed(_pieces(part, line, [0, *cuts, len(part)], dialect.eol))
            continue
        frame, rest = _parse_careful(part, line, dialect, columns, ends_file)
        frames.append(frame)
        todo += [rest] if rest is not None else []
    return pl.concat(frames) if len(frames) > 1 else frames[0]


def _pieces(part: bytes, line: int, bounds: list[int], eol: bytes) -> list[tuple[bytes, int]]:
    """`part` cut at `bounds`, each piece with the physical line it starts on."""
    out = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        out.append((part[a:b], line))
        line += part.count(eol, a, b)
    return out


def _cut_points(part: bytes, dialect: Dialect, ends_file: bool, n_columns: int) -> list[int]:
    """Where to cut a part Polars refused, at line ends outside quotes (record ends).

    Around every record with more separators than columns allow, so Polars reads the
    rest in a few pieces; else nearest the middle, to halve the search; the last one
    when the part ends the file (its final record goes to `csv`). With no record end
    inside the part, its first line opens a quote that never closes where a record
    could end: that line is cut off alone, as the broken record. None: parse by `csv`.
    """
    data = np.frombuffer(part, dtype=np.uint8)
    ends = np.flatnonzero(data == dialect.eol[0]) + 1
    if not len(ends) or (not ends_file and len(part) <= SMALL_PART):
        return []
    separators = data == ord(dialect.separator)
    records = ends
    if dialect.quote_char and dialect.quote_char.encode() in part:
        inside = np.bitwise_xor.accumulate((data == ord(dialect.quote_char)).view(np.uint8))
        records = ends[inside[ends - 1] == 0]
        separators &= inside == 0
    inner = records[records < len(part)]
    if not len(inner):
        return [int(ends[0])] if ends[0] < len(part) else []
    if ends_file:
        return [int(inner[-1])]
    starts = np.concatenate([[0], records[:-1]])
    before = np.searchsorted(np.flatnonzero(separators), np.concatenate([starts, records[-1:]]))
    ragged = np.flatnonzero(np.diff(before) + 1 > n_columns)
    cuts = {int(c) for i in ragged for c in (starts[i], records[i])} - {0, len(part)}
    return sorted(cuts) or [int(inner[np.argmin(np.abs(inner - len(part) // 2))])]


# Polars decompresses bytes that start like a gzip, zlib or zstd stream. A chunk here
# is already plain text of the file (the reader decompressed the file itself), so one
# that starts so (a line `x^2,...`, or a gzip stream pasted into a row) goes to `csv`.
_COMPRESSION_MAGIC = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def _parse_fast(chunk: bytes, first_line: int, dialect: Dialect, columns: list[str]) -> pl.DataFrame | None:
    if chunk.startswith(_COMPRESSION_MAGIC):
        return None
    try:
        df = pl.read_csv(
            chunk,
            has_header=False,
            schema={f"c{i}": pl.String() for i in range(len(columns))},
            separator=dialect.separator,
            quote_char=dialect.quote_char,
            eol_char=dialect.eol.decode(),
            encoding="utf8-lossy",
            empty_string_is_null=True,
            truncate_ragged_lines=False,
        )
    except (pl.exceptions.PolarsError, OSError):
        return None
    eol = dialect.eol.decode()
    breaks = pl.sum_horizontal(pl.all().str.count_matches(eol, literal=True).fill_null(0))
    line = pl.int_range(pl.len(), dtype=pl.UInt64) + first_line + breaks.cum_sum() - breaks
    return df.select(
        *(pl.col(f"c{i}").alias(c) for i, c in enumerate(columns)),
        line.cast(pl.UInt64).alias(Col.LINE),
        pl.lit(None, dtype=pl.String).alias(READ_ERROR),
    )


def _parse_careful(
    part: bytes, first_line: int, dialect: Dialect, columns: list[str], truncated: bool
) -> tuple[pl.DataFrame, tuple[bytes, int] | None]:
    """Record by record up to the first one `csv` cannot split, which is set aside at
    its first line; returns the rows and the part after that line, if any."""
    raw = part.split(dialect.eol)
    lines = _lines(raw, dialect.eol, part.endswith(dialect.eol))
    rows: list[list[str | None]] = []
    numbers: list[int] = []
    errors: list[str | None] = []
    rest = None
    for start, fields, error in _records(lines, dialect):
        if error is None and len(fields) > len(columns):
            error = "ragged_row"
        elif error is None and truncated and start + 1 == len(lines) and 0 < len(fields) < len(columns):
            error = "too_few_fields"
        rows.append(_fit(fields, len(columns)))
        numbers.append(first_line + start)
        errors.append(error)
        if error in QUOTE_ERRORS:
            after = dialect.eol.join(raw[start + 1 :])
            rest = (after, first_line + start + 1) if after else None
            break
    frame = pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String()), orient="row")
    frame = frame.with_columns(
        pl.Series(Col.LINE, numbers, dtype=pl.UInt64), pl.Series(READ_ERROR, errors, dtype=pl.String)
    )
    return frame, rest


def _lines(raw_lines: list[bytes], eol: bytes, ends_with_eol: bool) -> list[str]:
    """Physical lines with their break, decoded as `utf8-lossy` does; a stray CR
    (or LF in a CR file) inside a line becomes SENTINEL, since `csv` would end the
    record there while Polars keeps it as text."""
    stray = "\n" if eol == b"\r" else "\r"
    out = []
    for raw in raw_lines:
        text = raw.decode("utf-8", errors="replace")
        body = text.removesuffix("\r") if eol == b"\n" else text
        if stray in body:
            text = body.replace(stray, SENTINEL) + text[len(body) :]
        out.append(text + eol.decode())
    if ends_with_eol:
        out.pop()
    else:
        out[-1] = out[-1][: -len(eol)]
    return out


def _records(lines: list[str], dialect: Dialect) -> Iterator[tuple[int, list[str], str | None]]:
    """(index of the record's first line, fields, error) for each record in `lines`, up
    to and with the first one `csv` cannot split (its fields as far as they go)."""
    feeder = _Feeder(lines)
    reader = _reader(feeder, dialect, strict=True)
    while True:
        start = feeder.pos
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:
            error = "bad_quote" if feeder.pos == start + 1 and feeder.pos < len(lines) else "unterminated_quote"
            yield start, _lenient(lines[start], dialect), error
            return
        yield start, [f.replace(SENTINEL, "\r") if SENTINEL in f else f for f in fields], None


class _Feeder:
    """An iterator over lines that tells how far `csv` has read."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.pos = 0

    def __iter__(self) -> _Feeder:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _reader(lines: Any, dialect: Dialect, strict: bool) -> Iterator[list[str]]:
    if dialect.quote_char is None:
        return csv.reader(lines, delimiter=dialect.separator, quoting=csv.QUOTE_NONE, strict=strict)
    return csv.reader(lines, delimiter=dialect.separator, quotechar=dialect.quote_char, strict=strict)


def _lenient(line: str, dialect: Dialect) -> list[str]:
    """Fields of one bad line as far as they go, for the quarantine."""
    line = line.rstrip("\r\n").replace(SENTINEL, "\r")
    try:
        return next(_reader([line.replace("\r", " ").replace("\n", " ")], dialect, strict=False), [])
    except csv.Error:
        return [line]


def _fit(fields: list[str], n: int) -> list[str | None]:
    out: list[str | None] = [f if f else None for f in fields[:n]]
    return out + [None] * (n - len(out))
