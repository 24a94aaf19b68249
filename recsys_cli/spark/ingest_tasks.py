"""What Spark's Python workers run for `recsys ingest` (see `spark/ingest.py`):
one input file staged per task, one day deduplicated and written per group.

Each function calls the polars engine's own per-file and per-day code
(`StageJob.stage_one`, `events.dedupe_rows`, `events.write_day`), so the rules,
pseudonyms and file names are the same. Both write into the version folder the
driver is building: executors must see it at the same path (local[N], or a
shared file system). A retried task rewrites the same files.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from recsys_cli.data import events as ev
from recsys_cli.data.schema import Col
from recsys_cli.errors import RecsysError
from recsys_cli.spark.arrow import from_arrow, to_spark

if TYPE_CHECKING:
    from recsys_cli.data.ingest import DaysJob, StageJob

# One row per staged file: its counts (FileCounts as JSON), or the error that stopped it.
STAGED = "src long, counts string, error binary"
_STAGED_ARROW = pa.schema([("src", pa.int64()), ("counts", pa.string()), ("error", pa.binary())])
# One row per (day, input file) with duplicates dropped.
DUPLICATES = pl.Schema({ev.SRC: pl.Int64(), "duplicates": pl.Int64()})


def stage_files(batches: Iterable[pa.RecordBatch], job: StageJob) -> Iterator[pa.RecordBatch]:
    """mapInArrow over input file indexes (one per partition): stage each one."""
    for batch in batches:
        for src in batch.column(0).to_pylist():  # one value per input file, not per row
            yield _staged(job, src)


def _staged(job: StageJob, src: int) -> pa.RecordBatch:
    """A file's counts, or its error carried back to the driver, which raises it as
    the polars engine would (a Spark task failure would wrap it in a Java trace)."""
    counts, error = None, None
    try:
        counts = json.dumps(asdict(job.stage_one(src)))
    except (RecsysError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        error = _portable(exc)
    return pa.RecordBatch.from_pydict({"src": [src], "counts": [counts], "error": [error]}, schema=_STAGED_ARROW)


def _portable(exc: BaseException) -> bytes:
    """`exc` pickled; a Rust panic (its class cannot be imported) as a Polars error of the same text."""
    try:
        return pickle.dumps(exc)
    except (pickle.PicklingError, TypeError, AttributeError):
        return pickle.dumps(pl.exceptions.ComputeError(str(exc)))


def counts_of(row: tuple[int, str | None, bytes | None]) -> ev.FileCounts:
    """The driver's side of `_staged`: the counts, or the file's error raised."""
    _, counts, error = row
    if error is not None:
        raise _unpickled(error)
    assert counts is not None
    return ev.FileCounts(**json.loads(counts))


def _unpickled(data: bytes) -> BaseException:
    exc = pickle.loads(data)  # written by `_portable` in this job's own executors
    return exc if isinstance(exc, BaseException) else RuntimeError(repr(exc))


def dedupe_day(table: pa.Table, job: DaysJob, schema: pl.Schema) -> pa.Table:
    """groupBy(date).applyInArrow: one day's staged rows (`schema`, the union of the
    staged files') deduplicated against themselves and the lake's earlier part
    files of that day, pseudonymised with tables of the day's own values, and
    written as the day's part file. Returns the duplicates per input file."""
    frame = from_arrow(table, schema).select(schema.names())
    # Sorted by file then line: the staged files concatenated in file order, each
    # in line order, which is what `in_time_order` expects (as under polars).
    frame = ev.in_time_order(frame.sort(ev.SRC, Col.LINE))
    day = frame[Col.DATE][0]
    users, hashes = ev.shard_pseudonyms(frame, job.key, job.hash_columns, job.as_is)
    events = job.tmp / "events"
    rows, dups = ev.dedupe_rows(frame, ev.day_parts(events, day, job.run), users, hashes, job.as_is)
    if rows.height:  # every row already in the lake: no file, as under polars
        ev.write_day(rows.drop(Col.DATE), events, day, job.run)
    return to_spark(dups.rename({"len": "duplicates"}), DUPLICATES)
