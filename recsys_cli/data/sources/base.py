"""Reading raw tables and mapping their columns onto the contract.

A source hands the ingest pipeline one lazy frame per raw event file, with the
contract's column names but every value still a string, plus the file line of
each row. Parsing and validation happen once, in `data/expressions.py`, so every
source gets the same rules and the same quarantine reasons.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from recsys_cli.data.read_errors import polars_error_summary
from recsys_cli.data.schema import Col
from recsys_cli.data.sources.csv_reader import READ_ERROR, Dialect, refuse_lineage_names, scan_records, sniff_eol
from recsys_cli.data.sources.jsonl_reader import is_json_container, scan_jsonl
from recsys_cli.errors import SourceError

Format = Literal["csv", "jsonl", "parquet"]
RAGGED = READ_ERROR  # why the reader could not split a record (ragged_row, unterminated_quote...); null if it could
ID_COLUMNS = (Col.USER, Col.ITEM)
RESERVED = frozenset([Col.LINE, Col.FILE, Col.TABLE, RAGGED])  # lineage columns that travel beside the raw ones


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
    `rating_scale` (low, high), where set, bounds the value of rating events.
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
    rating_scale: Sequence[float] | None = None

    def resolve(self, root: Path) -> list[Path]:
        found: list[Path] = []
        for pattern in self.files:
            found.extend(Path(p) for p in sorted(glob.glob(str(root / pattern))))
        folders = [p for p in found if p.is_dir()]
        if folders:
            raise SourceError(f"{folders[0]}: is a folder, but matches the file pattern {list(self.files)}")
        for path in found:
            try:
                str(path).encode()
            except UnicodeEncodeError:  # bytes that are not UTF-8, escaped by the OS layer
                shown = str(path).encode("utf-8", errors="backslashreplace").decode()
                raise SourceError(f"{shown}: the file name is not UTF-8 text; rename the file") from None
        return found


@dataclass(frozen=True)
class TableReport:
    """What a source read for a table it derives from other records (RetailRocket
    builds items from property snapshots): records per input file, and the records
    it set aside, as quarantine rows (`Col.FILE`, `Col.LINE`, `Col.REASON`, `Col.TABLE`, text)."""

    records: Mapping[str, int]
    rejected: pl.DataFrame


def scan_raw(path: Path, spec: TableSpec) -> pl.LazyFrame:
    """Scan one raw file with every column as text, the 1-based physical line
    `Col.LINE` of each record, and `RAGGED`, the reader's reason a record is broken.

    Empty fields are missing (null). CSV and JSON lines go through our own streaming
    readers (broken records are set aside, not fatal; see `csv_reader`), Parquet
    through Polars.
    """
    _check_readable(path)
    if spec.format == "csv":
        eol = sniff_eol(path)
        dialect = Dialect(spec.separator, spec.quote_char, spec.has_header, eol)
        return scan_records(path, dialect, list(spec.raw_columns) if spec.raw_columns else None)
    if spec.format == "jsonl":
        return scan_jsonl(path)
    if spec.format == "parquet":
        return _scan_parquet(path)
    raise SourceError(f"{path}: unknown format '{spec.format}' (expected csv, jsonl or parquet)")


def _scan_parquet(path: Path) -> pl.LazyFrame:
    """Parquet columns as text; lists and structs as JSON text, so they can be shown, never as ids."""
    lf = pl.scan_parquet(path)
    schema = _parquet_schema(path, lf)
    refuse_lineage_names(path, schema.names())
    text = [
        pl.struct(c).struct.json_encode().str.json_path_match("$.*").alias(c)
        if t.is_nested()
        else pl.col(c).cast(pl.String, strict=False)
        for c, t in schema.items()
    ]
    return (
        lf.select(*text)
        .with_row_index(Col.LINE, offset=1)
        .with_columns(pl.col(Col.LINE).cast(pl.UInt64), pl.lit(None, dtype=pl.String).alias(RAGGED))
    )


def _parquet_schema(path: Path, lf: pl.LazyFrame) -> pl.Schema:
    try:
        return lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(f"{path}: cannot be read as parquet: {polars_error_summary(exc)}") from exc


def raw_schema(path: Path, spec: TableSpec) -> list[str]:
    """Column names of a raw file; a clear `SourceError` when it cannot be read at all."""
    try:
        return [c for c in scan_raw(path, spec).collect_schema().names() if c not in (Col.LINE, RAGGED)]
    except pl.exceptions.NoDataError as exc:
        raise SourceError(f"{path}: file is empty (no header, no rows)") from exc
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(f"{path}: cannot be read as {spec.format}: {polars_error_summary(exc)}") from exc


def map_columns(lf: pl.LazyFrame, spec: TableSpec, path: Path, required: Sequence[str]) -> pl.LazyFrame:
    """Rename raw columns to contract names and add constants; raise naming what is missing."""
    names = raw_schema(path, spec)
    _refuse_reserved(path, names)
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
    if spec.format == "parquet":
        _refuse_nested_ids(path, {**mapping, **{c: c for c in ID_COLUMNS if c not in mapping}})
    exprs = [pl.col(raw).alias(contract) for contract, raw in mapping.items() if raw in names]
    exprs += [pl.col(c) for c in names if c not in mapping and c not in mapping.values()]
    consts = [pl.lit(str(v) if v is not None else None, dtype=pl.String).alias(k) for k, v in spec.constants.items()]
    lf = lf.select(pl.col(Col.LINE), pl.col(RAGGED), *exprs)
    if spec.format == "jsonl":
        ids = [is_json_container(pl.col(c)) for c in ID_COLUMNS if c in mapping or c in names]
        lf = lf.with_columns(pl.col(RAGGED).fill_null(pl.when(pl.any_horizontal(ids)).then(pl.lit("bad_id"))))
    return lf.with_columns(*consts) if consts else lf


def _refuse_reserved(path: Path, names: Sequence[str]) -> None:
    """A raw column named like a column ingest adds beside the raw ones (lineage, parsed twins)."""
    taken = sorted(c for c in names if c in RESERVED or c.endswith("__p"))
    if taken:
        raise SourceError(f"{path}: column '{taken[0]}' has a name ingest uses itself; rename it in the file")


def _refuse_nested_ids(path: Path, mapping: Mapping[str, str]) -> None:
    """A Parquet id column of lists or structs holds no id in any row: refuse the file."""
    schema = pl.read_parquet_schema(path)
    for contract in ID_COLUMNS:
        raw = mapping.get(contract, contract)
        if raw in schema and schema[raw].is_nested():
            raise SourceError(
                f"{path}: column '{raw}' ({contract}) holds {schema[raw]} values; ids must be text or numbers"
            )


def read_small_table(path: Path, spec: TableSpec) -> pl.DataFrame:
    """Items and users tables are small: read eagerly, typed later by the caller.

    Keeps `Col.LINE` and `RAGGED` (the reader's reason a record is broken) and adds
    `Col.FILE`, so every row can be quarantined and counted against its own file.
    """
    lf = scan_raw(path, spec)
    names = raw_schema(path, spec)
    _refuse_reserved(path, names)
    renames = {raw: contract for contract, raw in spec.columns.items() if raw in names}
    try:
        df = lf.collect().rename(renames)
    except pl.exceptions.PolarsError as exc:
        raise SourceError(f"{path}: cannot be read as {spec.format}: {polars_error_summary(exc)}") from exc
    for key, value in spec.constants.items():
        df = df.with_columns(pl.lit(value).alias(key))
    return df.with_columns(pl.col(pl.String).replace("", None), pl.lit(str(path)).alias(Col.FILE))


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty (no header, no rows)")
