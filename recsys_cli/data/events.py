"""Events through ingest: parse and validate one raw file into a staging area,
then deduplicate one day at a time into the lake.

Why two passes: exact duplicates share a timestamp, hence a day, so deduplicating
per day is exact while memory stays bounded by the largest day, not the input.
The first pass is a single streaming scan of the raw file that sinks valid rows
(partitioned by day) and rejected rows (with their reason) together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from recsys_cli.data.expressions import (
    NUMERIC_EVENT_COLUMNS,
    event_reason,
    map_event_type,
    parse_number,
    parse_timestamp,
)
from recsys_cli.data.pseudonymise import apply_pseudonyms
from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.data.sources.base import RAGGED, TableSpec

SRC = "_src"  # index of the raw file a staged row came from
P = "__p"  # suffix of parsed columns beside their raw text


@dataclass(frozen=True)
class Personal:
    """What to do with personal columns: drop them, or replace them by pseudonyms."""

    drop: frozenset[str] = frozenset()
    hash: frozenset[str] = frozenset()


@dataclass
class FileCounts:
    path: str
    sha256: str
    rows_in: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    duplicates_dropped: int = 0
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)

    def reconciles(self) -> bool:
        return self.rows_in == self.rows_written + self.rows_quarantined + self.duplicates_dropped


def parse_events(lf: pl.LazyFrame, spec: TableSpec, min_ts: datetime, max_ts: datetime) -> pl.LazyFrame:
    """Raw text columns -> raw (trimmed) + parsed twins + a `reason` for invalid rows."""
    names = lf.collect_schema().names()
    raw = [c for c in names if c not in (Col.LINE, RAGGED)]
    parsed = [
        parse_timestamp(pl.col(Col.TS), spec.timestamp).alias(Col.TS + P) if Col.TS in raw else None,
        map_event_type(pl.col(Col.EVENT), spec.event_types).alias(Col.EVENT + P) if Col.EVENT in raw else None,
        *(parse_number(pl.col(c), t).alias(c + P) for c, t in NUMERIC_EVENT_COLUMNS.items() if c in raw),
    ]
    return (
        lf.with_columns(e for e in parsed if e is not None)
        .with_columns(event_reason(raw, min_ts, max_ts, P).alias(Col.REASON))
    )


def valid_rows(lf: pl.LazyFrame, src: int, personal: Personal, keep: Sequence[str]) -> pl.LazyFrame:
    """Rows that passed, in contract columns (raw user ids still; pseudonymised per day)."""
    names = lf.collect_schema().names()

    def column(name: str, dtype: pl.DataType) -> pl.Expr:
        if name + P in names:
            return pl.col(name + P).cast(dtype).alias(name)
        if name in names:
            return pl.col(name).cast(dtype).alias(name)
        return pl.lit(None, dtype=dtype).alias(name)

    extra = [c for c in names if c in personal.hash or (c in keep and c not in EVENTS_SCHEMA)]
    return lf.filter(pl.col(Col.REASON).is_null()).select(
        *(column(name, dtype) for name, dtype in EVENTS_SCHEMA.items()),
        *(pl.col(c) for c in extra),
        pl.lit(src, dtype=pl.UInt16).alias(SRC),
        pl.col(Col.LINE).cast(pl.UInt64),
        pl.col(Col.TS + P).dt.date().alias(Col.DATE),
    )


def rejected_rows(lf: pl.LazyFrame, path: Path, personal: Personal) -> pl.LazyFrame:
    """Rows that failed, with their raw text, reason, file and line. Personal
    columns are dropped here too: the quarantine is part of the lake."""
    names = lf.collect_schema().names()
    raw = [c for c in names if c not in (Col.LINE, RAGGED, Col.REASON) and not c.endswith(P)]
    raw = [c for c in raw if c not in personal.drop and c not in personal.hash]
    return lf.filter(pl.col(Col.REASON).is_not_null()).select(
        pl.lit(str(path)).alias(Col.FILE),
        pl.col(Col.LINE).cast(pl.UInt64),
        pl.col(Col.REASON),
        pl.lit("events").alias(Col.TABLE),
        *(pl.col(c) for c in raw),
    )


def stage_file(
    lf: pl.LazyFrame,
    path: Path,
    src: int,
    staging: Path,
    personal: Personal,
    keep: Sequence[str],
) -> None:
    """One streaming pass over a raw file: valid rows by day, rejected rows aside."""
    good = valid_rows(lf, src, personal, keep).sink_parquet(
        pl.PartitionBy(staging / "events" / f"f{src:05d}", key=Col.DATE, include_key=False),
        mkdir=True,
        lazy=True,
        compression="lz4",
    )
    bad = rejected_rows(lf, path, personal).sink_parquet(
        staging / "quarantine" / f"f{src:05d}.parquet", mkdir=True, lazy=True, compression="zstd"
    )
    pl.collect_all([good, bad], engine="streaming")


def staged_days(staging: Path) -> list[str]:
    """Day partitions present in the staging area (`YYYY-MM-DD`), sorted."""
    return sorted({p.name.split("=", 1)[1] for p in (staging / "events").glob("f*/date=*")})


def dedupe_day(
    staging: Path,
    day: str,
    existing: list[Path],
    user_ids: pl.DataFrame,
    hash_tables: dict[str, pl.DataFrame],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One day's new rows, pseudonymised and without exact duplicates.

    A row is a duplicate when every contract column equals an earlier row's (in
    file, then line order) or a row already in the lake. Returns the rows to
    write and the duplicate count per source file.
    """
    day_files = sorted((staging / "events").glob(f"f*/date={day}/*.parquet"))
    frame = pl.concat([pl.scan_parquet(f) for f in day_files], how="diagonal_relaxed")
    frame = frame.sort(SRC, Col.LINE).with_columns(
        apply_pseudonyms(Col.USER, user_ids),
        *(apply_pseudonyms(c, t) for c, t in hash_tables.items()),
    )
    key = list(EVENTS_SCHEMA.names())
    frame = frame.with_columns((~pl.struct(key).is_first_distinct()).alias("_dup"))
    if existing:
        seen = pl.concat([pl.scan_parquet(p).select(key) for p in existing]).unique()
        seen = seen.with_columns(pl.lit(True).alias("_seen"))
        frame = frame.join(seen, on=key, how="left", nulls_equal=True, maintain_order="left")
        frame = frame.with_columns(pl.col("_dup") | pl.col("_seen").fill_null(False)).drop("_seen")
    marked = frame.collect()
    dups = marked.filter(pl.col("_dup")).group_by(SRC).len()
    rows = marked.filter(~pl.col("_dup")).drop("_dup", SRC, Col.LINE).sort(Col.TS, Col.USER, maintain_order=True)
    return rows, dups
