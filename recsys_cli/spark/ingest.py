"""`recsys ingest` with engine=spark: the two passes over the event rows on Spark.

What runs where:

* the driver (this process) runs everything `data/ingest.py` runs for both
  engines (claim and lock, no-op check, bad-row threshold, items and users,
  quarantine, manifest, atomic publish) and plans the two Spark jobs below; it
  holds per-file counts, per-day duplicate counts and the pseudonyms of the
  users table and the quarantine, never the events;
* executors (`ingest_tasks.py`) stage one input file per task, with the
  source's own reader and `parse_events` (the raw files are read once, into the
  version's `_staging` folder, exactly as under polars), then, after a shuffle
  by `date`, deduplicate and write one day per group call against pseudonym
  tables of that day's own values (HMAC per value: the same pseudonyms as
  whole-input tables).

Executors write into the version folder the driver builds: they must see it at
the same path (local[N], or a shared file system on a cluster), and the source
object must pickle. The pseudonymisation key travels to them inside the task
(enable Spark's RPC encryption, `spark.network.crypto.enabled`, on a shared
cluster). Memory per task: one input file streamed, or one day's rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from recsys_cli.console import Reporter
from recsys_cli.data import events as ev
from recsys_cli.data.ingest import DaysJob, StageJob, count_duplicates, table_pseudonyms
from recsys_cli.data.schema import Col
from recsys_cli.spark.arrow import from_arrow, grouped_map, spark_schema
from recsys_cli.spark.ingest_tasks import DUPLICATES, STAGED, counts_of, dedupe_day, stage_files
from recsys_cli.spark.session import buckets, require_spark, spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkEvents:
    """The `EventsEngine` of engine=spark. Its session starts on first use, so an
    ingest that turns out to be a no-op starts none."""

    def __init__(self, engine: Mapping[str, Any], stack: ExitStack) -> None:
        self.engine = engine
        self._stack = stack
        self._session: SparkSession | None = None
        self.shards = 0  # day shards of the last `write_events` (tests check several occur)

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            self._session = self._stack.enter_context(spark_session(self.engine))
        return self._session

    def stage(self, job: StageJob, reporter: Reporter) -> list[ev.FileCounts]:
        """One task per input file (one partition each); counts in file order, and
        the first failing file's own error, as the polars engine raises it."""
        n = len(job.files)
        if not n:
            return []
        reporter.start(f"validating {n} files on Spark", total=n)
        tasks = self.session.range(0, n, 1, numPartitions=n)
        rows = tasks.mapInArrow(partial(stage_files, job=job), STAGED).collect()
        counts = [counts_of((r["src"], r["counts"], r["error"])) for r in sorted(rows, key=lambda r: r["src"])]
        reporter.advance(n)
        return counts

    def write_events(
        self, job: DaysJob, counts: list[ev.FileCounts], users: tuple[pl.DataFrame, str] | None, reporter: Reporter
    ) -> pl.DataFrame:
        """Shuffle the staged rows by day into `buckets(rows)` partitions, one
        `dedupe_day` call per day; the duplicates it reports go into `counts`.

        Each day hashes its own distinct user ids, so a user active on many days
        is hashed once per day: at most one HMAC per row (~3.5 us on this
        machine). The alternative, one whole-input pseudonym table joined in
        Spark, costs a second shuffle of every event (not measured)."""
        files = ev.staged_files(job.staging)
        if files:
            reporter.start("deduplicating and writing days on Spark", total=1)
            schema = ev.scan_staged(job.staging).collect_schema()  # the union, in the polars engine's order
            self.shards = buckets(sum(c.rows_written for c in counts), self.engine)
            staged = self._staged(files, schema).repartition(self.shards, Col.DATE)
            days = grouped_map(dedupe_day, job, schema)
            out = staged.groupBy(Col.DATE).applyInArrow(days, spark_schema(DUPLICATES)).toArrow()
            dups = from_arrow(out, DUPLICATES).group_by(ev.SRC).agg(pl.col("duplicates").sum()).sort(ev.SRC)
            count_duplicates(counts, dups)
            _sweep(job)
            reporter.advance()
        return table_pseudonyms(job.staging, users, job.key, job.as_is)

    def _staged(self, files: list[Path], schema: pl.Schema) -> DataFrame:
        """The staging files as one Spark frame of `schema`'s columns (Spark reads
        `_line`, a Parquet UInt64, as a decimal: carried as a long)."""
        from pyspark.sql import functions as F

        frame = self.session.read.option("mergeSchema", "true").parquet(*(str(f) for f in files))
        return frame.select(*(F.col(c).cast("long") if c == Col.LINE else F.col(c) for c in schema.names()))


def _sweep(job: DaysJob) -> None:
    """Temporary files of day writers that died before their rename (a retried task wrote its own)."""
    for leftover in (job.tmp / "events").glob("date=*/.part-*.tmp"):
        leftover.unlink(missing_ok=True)


@contextmanager
def spark_events(engine: Mapping[str, Any]) -> Iterator[SparkEvents]:
    """engine=spark for one ingest: refuses at once without pyspark or Java 17, and
    stops the session (if it started one) when the block ends."""
    require_spark()
    with ExitStack() as stack:
        yield SparkEvents(engine, stack)
