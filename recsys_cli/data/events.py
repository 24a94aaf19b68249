"""Events through ingest: parse and validate each raw file into a staging area,
then deduplicate a window of whole days at a time into the lake.

Why two passes: exact duplicates share a timestamp, hence a day, so deduplicating
per window of days is exact while memory stays bounded by the window (or the
largest day), not the input. The first pass is a single streaming scan of the
raw file that sinks valid rows and rejected rows (with their reason) together.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.data.expressions import (
    NUMERIC_EVENT_COLUMNS,
    event_reason,
    map_event_type,
    parse_number,
    parse_timestamp,
    trimmed,
)
from recsys_cli.data.personal import Personal, blank_broken_records, words
from recsys_cli.data.pseudonymise import PiiKey, pseudonym_table, pseudonymise
from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.data.sources.base import RAGGED, TableSpec

SRC = "_src"  # index of the raw file a staged row came from
P = "__p"  # suffix of parsed columns beside their raw text
STAGING_ROW_GROUP = 32_768


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
    """Raw text columns -> raw (trimmed) + parsed twins + a `reason` for invalid rows.

    Every text is trimmed first, and empty-after-trim is missing: ` 42 ` and `42`
    are one item, and an id of spaces is no id.
    """
    names = lf.collect_schema().names()
    raw = [c for c in names if c not in (Col.LINE, RAGGED)]
    lf = lf.with_columns(trimmed(c) for c in raw)
    parsed = [
        parse_timestamp(pl.col(Col.TS), spec.timestamp).alias(Col.TS + P) if Col.TS in raw else None,
        map_event_type(pl.col(Col.EVENT), spec.event_types).alias(Col.EVENT + P) if Col.EVENT in raw else None,
        *(parse_number(pl.col(c), t).alias(c + P) for c, t in NUMERIC_EVENT_COLUMNS.items() if c in raw),
    ]
    return lf.with_columns(e for e in parsed if e is not None).with_columns(
        event_reason(raw, min_ts, max_ts, P, spec.rating_scale).alias(Col.REASON)
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

    # A kept column that is personal is still dropped: `keep` says what is useful, not what is safe.
    kept = [c for c in names if c in keep and c not in EVENTS_SCHEMA and c not in personal.drop]
    extra = [c for c in names if c in personal.hash or c in kept]
    return lf.filter(pl.col(Col.REASON).is_null()).select(
        *(column(name, dtype) for name, dtype in EVENTS_SCHEMA.items()),
        *(pl.col(c) for c in extra),
        pl.lit(src, dtype=pl.UInt16).alias(SRC),
        pl.col(Col.LINE).cast(pl.UInt64),
        pl.col(Col.TS + P).dt.date().alias(Col.DATE),
    )


def rejected_rows(lf: pl.LazyFrame, path: Path, personal: Personal) -> pl.LazyFrame:
    """Rows that failed, with their raw text, reason, file and line. Personal
    columns are dropped here too: the quarantine is part of the lake. A record the
    reader could not split keeps no text at all (its values may be misplaced)."""
    names = lf.collect_schema().names()
    raw = [c for c in names if c not in (Col.LINE, RAGGED, Col.REASON) and not c.endswith(P)]
    raw = [c for c in raw if c not in personal.drop and c not in personal.hash]
    return lf.filter(pl.col(Col.REASON).is_not_null()).select(
        pl.lit(str(path)).alias(Col.FILE),
        pl.col(Col.LINE).cast(pl.UInt64),
        pl.col(Col.REASON),
        pl.lit("events").alias(Col.TABLE),
        *blank_broken_records(raw),
    )


def stage_file(
    lf: pl.LazyFrame,
    path: Path,
    src: int,
    staging: Path,
    personal: Personal,
    keep: Sequence[str],
) -> None:
    """One streaming pass over a raw file: valid rows to one staging file, rejected
    rows aside.

    Not partitioned by day here: Polars' partitioned sink keeps a buffer per open
    day, so its memory grows with the number of days (4 GiB for 900 days).
    Small row groups keep the later day-window reads selective.
    """
    good = valid_rows(lf, src, personal, keep).sink_parquet(
        staging / "events" / f"f{src:05d}.parquet",
        mkdir=True,
        lazy=True,
        compression="lz4",
        row_group_size=STAGING_ROW_GROUP,
    )
    # Rejected rows are sparse: with the default row group the sink keeps the source
    # chunks' buffers alive while it fills one, and memory grows with the input.
    bad = rejected_rows(lf, path, personal).sink_parquet(
        staging / "quarantine" / f"f{src:05d}.parquet", mkdir=True, lazy=True, compression="zstd", row_group_size=1024
    )
    pl.collect_all([good, bad], engine="streaming")


def staged_counts(staging: Path, src: int, path: Path, sha256: str) -> FileCounts:
    """What staging input file `src` (at `path`) gave: rows in, valid, and quarantined by reason."""
    good = pl.scan_parquet(staging / "events" / f"f{src:05d}.parquet").select(pl.len()).collect().item()
    bad = pl.read_parquet(staging / "quarantine" / f"f{src:05d}.parquet", columns=[Col.REASON])
    reasons = dict(bad.group_by(Col.REASON).len().sort(Col.REASON).iter_rows())
    return FileCounts(
        str(path),
        sha256,
        rows_in=good + bad.height,
        rows_written=good,
        rows_quarantined=bad.height,
        quarantine_by_reason=reasons,
    )


def staged_files(staging: Path) -> list[Path]:
    return sorted((staging / "events").glob("f*.parquet"))


def scan_staged(staging: Path) -> pl.LazyFrame:
    """Every staged event file as one frame with the union of their columns: a
    column that only a later input file has (a kept or hashed personal column)
    must reach the lake or its pseudonym table, not vanish because the first
    file set the schema."""
    return pl.concat([pl.scan_parquet(f) for f in staged_files(staging)], how="diagonal_relaxed")


def day_windows(staging: Path, max_rows: int) -> list[tuple[date, date]]:
    """Consecutive days grouped so each window holds at most `max_rows` rows (a
    larger single day gets a window of its own): the unit of the second pass,
    whose memory is therefore bounded by max(max_rows, largest day)."""
    if not staged_files(staging):
        return []
    days = scan_staged(staging).group_by(Col.DATE).len().sort(Col.DATE).collect(engine="streaming")
    windows: list[list[date]] = []
    rows = 0
    for day, n in days.iter_rows():  # one iteration per day, not per row
        if not windows or rows + n > max_rows:
            windows.append([day, day])
            rows = 0
        windows[-1][1] = day
        rows += n
    return [(first, last) for first, last in windows]


def dedupe_window(
    staging: Path,
    window: tuple[date, date],
    existing: list[Path],
    user_ids: pl.DataFrame,
    hash_tables: dict[str, pl.DataFrame],
    as_is: frozenset[int] = frozenset(),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A window's new rows (`dedupe_rows`), read from the staging files in file order."""
    frame = scan_staged(staging).filter(pl.col(Col.DATE).is_between(pl.lit(window[0]), pl.lit(window[1]))).collect()
    return dedupe_rows(in_time_order(frame), existing, user_ids, hash_tables, as_is)


def in_time_order(frame: pl.DataFrame) -> pl.DataFrame:
    """Staged rows in the order deduplication sees them: by time, and among equal
    times in file then line order. `frame` holds the staged files concatenated in
    file order (each file's rows in line order, as staged), so a stable sort by
    time is that order."""
    return frame.sort(Col.TS, maintain_order=True)


def dedupe_rows(
    frame: pl.DataFrame,
    existing: list[Path],
    user_ids: pl.DataFrame,
    hash_tables: dict[str, pl.DataFrame],
    as_is: frozenset[int] = frozenset(),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Whole days of staged rows (`in_time_order`) pseudonymised, without exact duplicates.

    Rows of the input files in `as_is` keep their user ids: those already are the
    lake's pseudonyms (a service's exported events).

    A row is a duplicate when every contract column equals an earlier row's (in
    file, then line order) or a row already in the lake (`existing` part files of
    these days). Duplicates share their timestamp, so deduplicating within whole
    days is exact, and after a stable sort by time only rows in runs of equal
    timestamps need comparing. Returns the rows to write (with their `date`) and
    duplicates per source file.
    """
    dup = duplicate_mask(frame)
    kept = frame.filter(~dup)
    dropped = [frame.filter(dup).select(SRC)]
    kept = _pseudonymise_users(kept, user_ids, as_is)
    for column, table in hash_tables.items():
        kept = pseudonymise(kept, column, table)
    if existing:
        key = list(EVENTS_SCHEMA.names())
        seen = pl.concat([pl.scan_parquet(p).select(key) for p in existing]).unique().collect()
        dropped.append(kept.join(seen, on=key, how="semi", nulls_equal=True).select(SRC))
        kept = kept.join(seen, on=key, how="anti", nulls_equal=True, maintain_order="left")
    dups = pl.concat(dropped).group_by(SRC).len()
    return kept.drop(SRC, Col.LINE), dups


def user_pseudonyms(values: pl.Series, key: PiiKey) -> pl.DataFrame:
    """Pseudonyms of raw user ids; HMAC per value, so a table over any subset of the
    ids holds the same entries for them as one over all."""
    return pseudonym_table(values, key, "user_id")


def column_pseudonyms(values: pl.Series, key: PiiKey, column: str) -> pl.DataFrame:
    """Pseudonyms of a hashed personal column's values (`IP` and `ip` hash alike)."""
    return pseudonym_table(values, key, words(column))


def shard_pseudonyms(
    frame: pl.DataFrame, key: PiiKey, hash_columns: frozenset[str], as_is: frozenset[int] = frozenset()
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """The pseudonym tables `dedupe_rows` needs for one shard of staged rows: its
    own distinct values only (user ids of the files not in `as_is`), which is all a
    shard looks up."""
    own = frame.filter(~pl.col(SRC).is_in(sorted(as_is)))[Col.USER].unique()
    hashed = {c: column_pseudonyms(frame[c].unique(), key, c) for c in sorted(hash_columns & set(frame.columns))}
    return user_pseudonyms(own, key), hashed


def day_parts(events: Path, day: date, run: int) -> list[Path]:
    """The part files earlier runs wrote for `day` under the `events` folder (a
    retried writer of this `run` must not take its own file for the lake's rows)."""
    folder = events / f"date={day}"
    mine = f"part-{run:05d}.parquet"
    return [f for f in sorted(folder.glob("*.parquet")) if f.name != mine] if folder.exists() else []


def write_day(rows: pl.DataFrame, events: Path, day: date, run: int) -> None:
    """Write one day's new rows (without `date`) as `date=DAY/part-RUN.parquet`.

    Through a temporary name and a rename: a retried or duplicated writer (Spark
    retries tasks) replaces the whole file, and no reader sees half of one."""
    folder = events / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"part-{run:05d}.parquet"
    tmp = folder / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    rows.write_parquet(tmp, compression="zstd", statistics=True)
    os.replace(tmp, target)


def _pseudonymise_users(frame: pl.DataFrame, user_ids: pl.DataFrame, as_is: frozenset[int]) -> pl.DataFrame:
    """User ids replaced by their pseudonyms, except in rows of the `as_is` input files."""
    if not as_is:
        return pseudonymise(frame, Col.USER, user_ids)
    given = frame[Col.USER]  # `pseudonymise` keeps the row order
    out = pseudonymise(frame, Col.USER, user_ids)
    keep = pl.col(SRC).is_in(sorted(as_is))
    return out.with_columns(pl.when(keep).then(given).otherwise(pl.col(Col.USER)).alias(Col.USER))


def duplicate_mask(frame: pl.DataFrame) -> pl.Series:
    """True for rows equal on every contract column to an earlier row; `frame` is
    sorted by time (stably, so "earlier" keeps file order among equal times)."""
    ts = pl.col(Col.TS)
    shared = (ts == ts.shift(1)) | (ts == ts.shift(-1))
    candidates = frame.with_row_index("__i").filter(shared.fill_null(False))
    later = candidates.filter(~pl.struct(list(EVENTS_SCHEMA.names())).is_first_distinct())["__i"]
    mask = np.zeros(frame.height, dtype=bool)
    mask[later.to_numpy()] = True
    return pl.Series("dup", mask)
