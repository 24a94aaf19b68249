"""Reading raw tables and mapping their columns onto the contract.

A source hands the ingest pipeline one lazy frame per raw event file, with the
contract's column names but every value still a string, plus the file line of
each row. Parsing and validation happen once, in `data/expressions.py`, so every
source gets the same rules and the same quarantine reasons.
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from recsys_cli.data.read_errors import polars_error_summary
from recsys_cli.data.schema import Col
from recsys_cli.errors import SourceError

Format = Literal["csv", "jsonl", "parquet"]
RAGGED = "_ragged"  # set on a last row cut short by a truncated file


@dataclass(frozen=True)
class TimestampSpec:
    """How a raw timestamp is written: epoch `s`/`ms`/`us`, or `iso` text with an optional strftime format."""

    unit: Literal["s", "ms", "us", "iso"] = "iso"
    format: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """Where one raw table lives and how its columns map onto the contract.

    `columns` maps contract name -> raw name; `constants` fills contract columns
    the raw table lacks (MovieLens has no event type: every row is a rating).
    """

    files: Sequence[str] = ()
    format: Format = "csv"
    separator: str = ","
    quote_char: str | None = '"'
    has_header: bool = True
    raw_columns: Sequence[str] | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)
    event_types: Mapping[str, str] | None = None
    timestamp: TimestampSpec = field(default_factory=TimestampSpec)
    keep: Sequence[str] = ()

    def resolve(self, root: Path) -> list[Path]:
        found: list[Path] = []
        for pattern in self.files:
            found.extend(Path(p) for p in sorted(glob.glob(str(root / pattern))))
        return found


def scan_raw(path: Path, spec: TableSpec) -> pl.LazyFrame:
    """Scan one raw file with every column as a string and a 1-based `_line`.

    Empty fields are missing (null).
    """
    _check_readable(path)
    if spec.format == "csv":
        lf = pl.scan_csv(
            path,
            separator=spec.separator,
            has_header=spec.has_header,
            new_columns=list(spec.raw_columns) if spec.raw_columns else None,
            infer_schema=False,
            encoding="utf8-lossy",
            empty_string_is_null=True,
            row_index_name=Col.LINE,
            row_index_offset=2 if spec.has_header else 1,
            quote_char=spec.quote_char,
        )
    elif spec.format == "jsonl":
        lf = pl.scan_ndjson(path, infer_schema_length=1000, row_index_name=Col.LINE, row_index_offset=1)
        lf = lf.with_columns(pl.all().exclude(Col.LINE).cast(pl.String))
    elif spec.format == "parquet":
        lf = pl.scan_parquet(path).with_row_index(Col.LINE, offset=1)
        lf = lf.with_columns(pl.all().exclude(Col.LINE).cast(pl.String))
    else:
        raise SourceError(f"{path}: unknown format '{spec.format}' (expected csv, jsonl or parquet)")
    return lf


def raw_schema(path: Path, spec: TableSpec) -> list[str]:
    """Column names of a raw file; a clear `SourceError` when it cannot be read at all."""
    try:
        return [c for c in scan_raw(path, spec).collect_schema().names() if c != Col.LINE]
    except pl.exceptions.NoDataError as exc:
        raise SourceError(f"{path}: file is empty (no header, no rows)") from exc
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise SourceError(f"{path}: cannot be read as {spec.format}: {_first_line(exc)}") from exc


def map_columns(lf: pl.LazyFrame, spec: TableSpec, path: Path, required: Sequence[str]) -> pl.LazyFrame:
    """Rename raw columns to contract names and add constants; raise naming what is missing."""
    names = raw_schema(path, spec)
    mapping = {contract: spec.columns.get(contract, contract) for contract in spec.columns}
    missing = [
        f"{contract} (raw '{raw}')" if raw != contract else contract
        for contract, raw in mapping.items()
        if raw not in names and contract in required
    ]
    missing += [c for c in required if c not in mapping and c not in spec.constants and c not in names]
    if missing:
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        hint = " (wrong delimiter?)" if len(names) == 1 and spec.format == "csv" else ""
        raise SourceError(f"{path}: missing required column(s) {', '.join(missing)}; found [{shown}]{hint}")
    exprs = [pl.col(raw).alias(contract) for contract, raw in mapping.items() if raw in names]
    exprs += [pl.col(c) for c in names if c not in mapping and c not in mapping.values()]
    consts = [pl.lit(str(v) if v is not None else None, dtype=pl.String).alias(k) for k, v in spec.constants.items()]
    lf = lf.select(pl.col(Col.LINE), *exprs)
    truncated = _truncated_last_line(path, spec, len(names)) if spec.format == "csv" else None
    lf = lf.with_columns((pl.col(Col.LINE) == truncated if truncated else pl.lit(False)).alias(RAGGED))
    return lf.with_columns(*consts) if consts else lf


def _truncated_last_line(path: Path, spec: TableSpec, n_columns: int) -> int | None:
    """Line number of the file's last line when it was cut short (no final newline
    and fewer fields than the header), else None.

    Polars pads short rows with empty fields, so a file truncated mid-row would
    otherwise load its last row with silently shortened values.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 65_536))
        tail = fh.read()
    if not tail or tail.endswith(b"\n"):
        return None
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    fields = next(csv.reader([last], delimiter=spec.separator, quotechar=spec.quote_char or '"'), [])
    if len(fields) >= n_columns:
        return None
    newlines = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            newlines += chunk.count(b"\n")
    return newlines + 1


def read_small_table(path: Path, spec: TableSpec) -> pl.DataFrame:
    """Items and users tables are small: read eagerly, typed later by the caller."""
    lf = scan_raw(path, spec)
    names = raw_schema(path, spec)
    renames = {raw: contract for contract, raw in spec.columns.items() if raw in names}
    df = lf.collect().rename(renames)
    for key, value in spec.constants.items():
        df = df.with_columns(pl.lit(value).alias(key))
    return df.with_columns(pl.col(pl.String).replace("", None))


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty (no header, no rows)")


def _first_line(exc: BaseException) -> str:
    """The reader's error in our words: its own text can quote a cell (a user id, an e-mail)."""
    return polars_error_summary(exc)
