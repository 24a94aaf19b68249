"""The ingest pipeline: raw source files -> a validated, pseudonymised lake.

    hash inputs -> (no-op if unchanged) -> stage each file (one streaming pass)
    -> threshold check -> dedupe + pseudonymise day by day -> items, users
    -> manifest -> atomic publish

The two passes over event rows (staging, and the day-by-day dedupe) run on an
`EventsEngine`: `PolarsEvents` in this process, or Spark (`spark/ingest.py`),
which calls the same per-file and per-day functions. Everything else (claim,
no-op, threshold, tables, quarantine, manifest, publish) is this module's, for
both engines.

Nothing is visible in the lake folder until the last step succeeds. The whole
run holds the lake's lock (`registry/outputs.py`), taken before the previous
manifest is read: two ingests of one lake run one after the other, and a second
`--append` appends on top of the first instead of beside it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import polars as pl

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data import events as ev
from recsys_cli.data.expressions import trimmed
from recsys_cli.data.lake import (
    MANIFEST,
    damaged,
    folder_problems,
    link_tree,
    read_manifest,
    recover,
    staged_version,
    write_json,
)
from recsys_cli.data.manifest import FORMAT_VERSION, build_manifest, inputs_section
from recsys_cli.data.personal import Personal, PersonalPolicy, blank_broken_records
from recsys_cli.data.pseudonymise import PiiKey, pseudonymise
from recsys_cli.data.read_errors import polars_error_summary
from recsys_cli.data.schema import Col
from recsys_cli.data.sources.base import TableReport, TableSpec, TimestampSpec
from recsys_cli.data.tables import ITEM_RULES, USER_RULES, prepare_table, table_inputs
from recsys_cli.errors import LakeError, OutputError, PiiKeyError, SourceError, ValidationThresholdError
from recsys_cli.registry.integrity import seal, sha256_file
from recsys_cli.registry.outputs import LAKE, claim, owned

WINDOW_WORKERS = 2


class Source(Protocol):
    name: str
    events: TableSpec

    def event_files(self) -> list[Path]: ...

    def table_files(self) -> dict[str, list[Path]]: ...

    def scan_events(self, path: Path) -> pl.LazyFrame: ...

    def events_spec(self, path: Path) -> TableSpec: ...

    def pseudonymous(self, path: Path) -> bool: ...

    def items(self) -> tuple[pl.DataFrame, str] | None: ...

    def users(self) -> tuple[pl.DataFrame, str] | None: ...

    def table_timestamp(self, table: str) -> TimestampSpec: ...

    def table_report(self, table: str) -> TableReport | None: ...


@dataclass(frozen=True)
class Rules:
    max_bad_fraction: float = 0.05
    min_ts: str = "1990-01-01T00:00:00+00:00"
    max_future_days: float = 1.0
    window_rows: int = 1_000_000

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        low = datetime.fromisoformat(self.min_ts)
        low = low if low.tzinfo else low.replace(tzinfo=UTC)
        return low, now + timedelta(days=self.max_future_days)


@dataclass
class IngestResult:
    lake: Path
    manifest: dict[str, Any]
    no_op: bool = False
    message: str = ""
    files: list[ev.FileCounts] = field(default_factory=list)
    repaired: str = ""  # the damage a rebuild of an unchanged lake repaired (first problem)


@dataclass(frozen=True)
class StageJob:
    """The first pass: each input file (its index is `_src`) parsed, validated and
    split into `staging/events/fNNNNN.parquet` and `staging/quarantine/fNNNNN.parquet`.
    Picklable (Spark ships it to its executors), so `source` must be too."""

    source: Source
    files: list[Path]
    digests: dict[str, str]
    staging: Path
    plans: list[Personal]
    low: datetime
    high: datetime

    def stage_one(self, src: int) -> ev.FileCounts:
        """Stage one input file in one streaming pass; its counts. The same call under every engine."""
        path = self.files[src]
        spec = self.source.events_spec(path)
        lf = ev.parse_events(self.source.scan_events(path), spec, self.low, self.high)
        try:
            ev.stage_file(lf, path, src, self.staging, self.plans[src], spec.keep)
        except pl.exceptions.PolarsError as exc:
            # Never the reader's own text: it quotes the field it choked on (a user id, an e-mail).
            raise SourceError(f"{path}: cannot be parsed: {polars_error_summary(exc)}") from exc
        return ev.staged_counts(self.staging, src, path, self.digests[str(path)])


@dataclass(frozen=True)
class DaysJob:
    """The second pass: staged rows deduplicated, pseudonymised and written day by
    day into the version folder `tmp` as `events/date=D/part-{run}.parquet`.
    `as_is`: input files whose user ids already are pseudonyms. Holds the key:
    whoever runs the pass computes pseudonyms."""

    tmp: Path
    staging: Path
    key: PiiKey
    hash_columns: frozenset[str]
    as_is: frozenset[int]
    run: int
    window_rows: int


class EventsEngine(Protocol):
    """Where the two passes over the event rows run."""

    def stage(self, job: StageJob, reporter: Reporter) -> list[ev.FileCounts]:
        """Every file staged; counts in file order (the first failing file's error raised)."""
        ...

    def write_events(
        self, job: DaysJob, counts: list[ev.FileCounts], users: tuple[pl.DataFrame, str] | None, reporter: Reporter
    ) -> pl.DataFrame:
        """Write the days, adding duplicates to `counts`; return the user pseudonyms
        the users table and the quarantine need."""
        ...


class PolarsEvents:
    """Both passes in this process: file after file, then windows of whole days
    (at most `window_rows` rows, two in flight) against whole-input pseudonym tables."""

    def stage(self, job: StageJob, reporter: Reporter) -> list[ev.FileCounts]:
        counts = []
        for src, path in enumerate(job.files):
            reporter.start(f"validating {path.name}", total=1)
            counts.append(job.stage_one(src))
            reporter.advance()
        return counts

    def write_events(
        self, job: DaysJob, counts: list[ev.FileCounts], users: tuple[pl.DataFrame, str] | None, reporter: Reporter
    ) -> pl.DataFrame:
        user_ids = _user_table(job.staging, users, job.key, job.as_is)
        hashes = _hash_tables(job.staging, Personal(hash=job.hash_columns), job.key)
        _write_days(job, counts, user_ids, hashes, reporter)
        return user_ids


F = TypeVar("F", bound=Callable[..., Any])


def raw_inputs(source: Source) -> list[Path]:
    """The raw folder and every file the source reads: what the lake may never overlap."""
    found = [Path(source.path)] if hasattr(source, "path") else []
    try:
        found += [*source.event_files(), *(f for fs in source.table_files().values() for f in fs)]
    except SourceError:
        pass  # the ingest itself reports it, after the claim
    return found


def _owns_lake(fn: F) -> F:
    """Claim and lock the lake (second argument) for the whole call; see the module docstring."""

    @functools.wraps(fn)
    def wrapper(source: Source, lake: Path, *args: Any, **kwargs: Any) -> Any:
        inputs = raw_inputs(source)
        _refuse_other_source(lake, claim(lake, LAKE, inputs), source.name)  # before the lock: touches nothing
        with owned(lake, LAKE, inputs) as real:
            _refuse_other_source(lake, real, source.name)  # again: another process may have written it meanwhile
            return fn(source, lake, *args, **kwargs)

    return cast(F, wrapper)


def _refuse_other_source(lake: Path, real: Path, name: str) -> None:
    """A lake holds one source: another source's lake is neither replaced nor appended to."""
    try:
        written = json.loads((real / MANIFEST).read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return  # no lake yet, or a damaged one that the ingest itself rebuilds or refuses
    if isinstance(written, str) and written != name:
        raise OutputError(
            f"{lake}: refusing to replace the lake of source {written!r} with source {name!r} "
            f"(not a {name} lake written by recsys); choose its own lake_dir"
        )


@_owns_lake
def ingest(
    source: Source,
    lake: Path,
    key: PiiKey,
    personal: PersonalPolicy,
    rules: Rules,
    config: dict[str, Any],
    append: bool = False,
    reporter: Reporter | None = None,
    now: datetime | None = None,
    engine: EventsEngine | None = None,
) -> IngestResult:
    """Ingest `source` into `lake`; see the module docstring for the steps.

    Unchanged inputs and config over an intact lake are a no-op; over a damaged one
    (see `previous_lake`) the lake is rebuilt.
    """
    reporter = reporter or NullReporter()
    now = now or datetime.now(UTC)
    engine = engine or PolarsEvents()
    recover(lake)
    files = source.event_files()
    tables = source.table_files()
    previous, damage = previous_lake(lake, append)
    digests = _hash_inputs([*files, *(f for fs in tables.values() for f in fs)], reporter)
    fingerprint = _fingerprint(digests, config, key)
    if previous and previous.get("fingerprint") == fingerprint:
        return IngestResult(lake, previous, no_op=True, message="inputs and config unchanged: lake already up to date")
    if append and previous and previous["pii"]["key_fingerprint"] != key.fingerprint:
        raise PiiKeyError(
            f"{lake} was written with another pseudonymisation key (fingerprint "
            f"{previous['pii']['key_fingerprint']}, now {key.fingerprint}): appended user ids would not "
            "join; re-ingest everything without --append, or use the original key"
        )
    new_files, rebuild = _what_to_read(source, lake, previous if append else None, files, tables, digests)
    if append and previous and not new_files and not rebuild:
        return IngestResult(lake, previous, no_op=True, message="no new event files to append")
    for f in new_files:  # fail on unreadable files before any work
        source.scan_events(f)
    loaded = {"items": source.items(), "users": source.users()}  # read once, used twice
    plans, table_plans = _plan_personal(source, new_files, loaded, personal)  # production refuses here
    as_is = frozenset(src for src, f in enumerate(new_files) if source.pseudonymous(f))  # ids already pseudonyms

    with staged_version(lake, LAKE, raw_inputs(source)) as tmp:
        staging = tmp / "_staging"
        counts = engine.stage(StageJob(source, new_files, digests, staging, plans, *rules.window(now)), reporter)
        _check_threshold(counts, rules)
        run = (previous or {}).get("run", 0) + 1 if append and previous else 1
        if append and previous:
            link_tree(lake, tmp, skip={MANIFEST})
        hashed = frozenset[str]().union(*(p.hash for p in plans))
        days = DaysJob(tmp, staging, key, hashed, as_is, run, rules.window_rows)
        user_ids = engine.write_events(days, counts, loaded["users"], reporter)
        loaded = {name: t if name in rebuild else None for name, t in loaded.items()}
        table_inputs = _write_tables(tmp, staging, source, loaded, user_ids, key, table_plans, tables)
        _write_quarantine(tmp, staging, run, user_ids, as_is)
        shutil.rmtree(staging, ignore_errors=True)  # absent when --append only rebuilt a table
        inputs = inputs_section(previous if append else None, counts, digests, table_inputs, run)
        manifest = build_manifest(tmp, source.name, config, fingerprint, key, inputs, run, now)
        manifest = seal(manifest)
        write_json(tmp / MANIFEST, manifest)
    rebuilt = f"; rebuilt {' and '.join(sorted(table_inputs))} (input changed)" if append and table_inputs else ""
    return IngestResult(
        lake, manifest, files=counts, message=f"wrote {manifest['rows']['events']:,} events{rebuilt}", repaired=damage
    )


def _what_to_read(
    source: Source,
    lake: Path,
    previous: dict[str, Any] | None,
    files: list[Path],
    tables: dict[str, list[Path]],
    digests: dict[str, str],
) -> tuple[list[Path], set[str]]:
    """Event files to stage and tables to (re)build: everything, or with `--append`
    (a `previous` manifest) the event files the lake has not seen and the tables
    whose files changed (a table whose files are gone keeps what the lake holds)."""
    if previous is None:
        return files, set(tables)
    if previous.get("source") != source.name:
        raise LakeError(
            f"{lake} holds source '{previous.get('source')}', not '{source.name}': --append only adds files of the "
            "lake's own source; ingest this source into its own lake_dir"
        )
    inputs = previous.get("inputs", [])
    seen = {i["sha256"] for i in inputs if i.get("table", "events") == "events"}

    def before(name: str) -> set[str]:
        return {i["sha256"] for i in inputs if i.get("table") == name}

    rebuild = {name for name, fs in tables.items() if fs and {digests[str(f)] for f in fs} != before(name)}
    return [f for f in files if digests[str(f)] not in seen], rebuild


def previous_lake(lake: Path, append: bool) -> tuple[dict[str, Any] | None, str]:
    """The lake's manifest and "", or None and the first problem where the lake no
    longer matches its manifest: a plain ingest then rebuilds it from the inputs
    rather than calling it up to date.

    Every file is re-hashed, not only sized: a flipped byte keeps the size, and
    ingest already reads every raw input to fingerprint it, which is larger than
    the lake. `--append` keeps the old partitions and seals them into the new
    manifest, so it refuses a damaged lake: only a full rebuild can be trusted.
    """
    if not (lake / MANIFEST).is_file():
        return None, ""
    try:
        manifest = read_manifest(lake)
    except LakeError:
        problems = [f"{MANIFEST} is unreadable"]
    else:
        problems = folder_problems(lake, manifest, full=True)
        if not problems:
            return manifest, ""
    if append:
        hint = "re-ingest without --append to rebuild it from the inputs (its old partitions cannot be trusted)"
        raise damaged(lake, "lake", problems, hint)
    return None, problems[0]


def _hash_inputs(paths: list[Path], reporter: Reporter) -> dict[str, str]:
    reporter.start("hashing inputs", total=len(paths))
    out = {}
    for p in paths:
        out[str(p)] = sha256_file(p)
        reporter.advance()
    return out


def _fingerprint(digests: dict[str, str], config: dict[str, Any], key: PiiKey) -> str:
    """What the lake is made of: inputs, config, key, format. Not the `engine`,
    which says how it is computed: both engines write the same lake, so a lake
    built by one is up to date for the other."""
    what = {k: v for k, v in config.items() if k != "engine"}
    payload = json.dumps(
        {"inputs": sorted(digests.values()), "config": what, "key": key.fingerprint, "format": FORMAT_VERSION},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _check_threshold(counts: list[ev.FileCounts], rules: Rules) -> None:
    rows_in = sum(c.rows_in for c in counts)
    bad = sum(c.rows_quarantined for c in counts)
    if rows_in and bad / rows_in > rules.max_bad_fraction:
        worst = max(counts, key=lambda c: c.rows_quarantined / max(c.rows_in, 1))
        top = sorted(worst.quarantine_by_reason.items(), key=lambda kv: -kv[1])[:3]
        raise ValidationThresholdError(
            f"{bad:,} of {rows_in:,} rows ({bad / rows_in:.1%}) failed validation, above "
            f"validation.max_bad_fraction={rules.max_bad_fraction:g}; worst file {worst.path}: "
            + ", ".join(f"{r} x{n:,}" for r, n in top)
            + "; nothing was written"
        )


def _plan_personal(
    source: Source, files: list[Path], loaded: dict[str, tuple[pl.DataFrame, str] | None], policy: PersonalPolicy
) -> tuple[list[Personal], dict[str, Personal]]:
    """What becomes of each file's personal columns, decided before any work: in
    production an undeclared column refuses the run here, with nothing written."""
    events = [policy.plan(source.scan_events(f).collect_schema().names(), "events", str(f)) for f in files]
    tables = {name: policy.plan(t[0].columns, name, t[1]) for name, t in loaded.items() if t is not None}
    return events, tables


def _user_table(
    staging: Path,
    users: tuple[pl.DataFrame, str] | None,
    key: PiiKey,
    as_is: frozenset[int] = frozenset(),
    events: bool = True,
) -> pl.DataFrame:
    """Pseudonyms for every raw user id in events (unless not `events`: an engine
    that pseudonymises each shard of events with its own table), the users table
    and quarantined rows (not those of the `as_is` input files, whose ids already
    are pseudonyms).

    Ids are taken exactly as they are replaced later (trimmed, as `parse_events` and
    `prepare_table` trim them): a table keyed on other values would leave ids without
    a pseudonym.
    """
    ids = []
    if events and ev.staged_files(staging):
        ids.append(ev.scan_staged(staging).filter(~pl.col(ev.SRC).is_in(sorted(as_is))).select(Col.USER))
    if users is not None:
        ids.append(users[0].lazy().select(pl.col(Col.USER).cast(pl.String)).select(trimmed(Col.USER)))
    for path in (staging / "quarantine").glob("f*.parquet"):
        if Col.USER in pl.read_parquet_schema(path) and path.stem not in _staged_names(as_is):
            ids.append(pl.scan_parquet(path).select(Col.USER))
    if not ids:
        return ev.user_pseudonyms(pl.Series(Col.USER, [], dtype=pl.String), key)
    values = pl.concat(ids, how="vertical_relaxed").unique().collect(engine="streaming")[Col.USER]
    return ev.user_pseudonyms(values, key)


def table_pseudonyms(
    staging: Path, users: tuple[pl.DataFrame, str] | None, key: PiiKey, as_is: frozenset[int] = frozenset()
) -> pl.DataFrame:
    """The user pseudonyms the users table and the quarantine need, without the
    events' ids (for an engine that pseudonymised the events shard by shard)."""
    return _user_table(staging, users, key, as_is, events=False)


def _hash_tables(staging: Path, personal: Personal, key: PiiKey) -> dict[str, pl.DataFrame]:
    if not ev.staged_files(staging):
        return {}
    staged = ev.scan_staged(staging)
    names = set(staged.collect_schema().names())
    out = {}
    for column in sorted(personal.hash & names):
        values = staged.select(column).unique().collect(engine="streaming")[column]
        out[column] = ev.column_pseudonyms(values, key, column)
    return out


def _write_days(
    job: DaysJob,
    counts: list[ev.FileCounts],
    user_ids: pl.DataFrame,
    hashes: dict[str, pl.DataFrame],
    reporter: Reporter,
) -> None:
    windows = ev.day_windows(job.staging, job.window_rows)
    reporter.start("deduplicating and writing days", total=len(windows))
    events = job.tmp / "events"

    def process(window: tuple[date, date]) -> pl.DataFrame:
        existing = [f for day in _dates(window) for f in ev.day_parts(events, day, job.run)]
        rows, dups = ev.dedupe_window(job.staging, window, existing, user_ids, hashes, job.as_is)
        for (day,), part in rows.partition_by(Col.DATE, as_dict=True, include_key=False, maintain_order=True).items():
            ev.write_day(part, events, day, job.run)
        return dups

    # Two windows in flight: Polars releases the GIL, so one window's compression
    # overlaps the next one's sort and join. Results are consumed in order.
    with ThreadPoolExecutor(max_workers=WINDOW_WORKERS) as pool:
        for dups in pool.map(process, windows):
            count_duplicates(counts, dups)
            reporter.advance()


def count_duplicates(counts: list[ev.FileCounts], dups: pl.DataFrame) -> None:
    """Move duplicates (`_src`, count rows) from written to dropped in each file's counts."""
    for src, n in dups.iter_rows():
        counts[src].duplicates_dropped += n
        counts[src].rows_written -= n


def _dates(window: tuple[date, date]) -> list[date]:
    return [window[0] + timedelta(days=i) for i in range((window[1] - window[0]).days + 1)]


def _write_tables(
    tmp: Path,
    staging: Path,
    source: Source,
    loaded: dict[str, tuple[pl.DataFrame, str] | None],
    user_ids: pl.DataFrame,
    key: PiiKey,
    plans: dict[str, Personal],
    files: dict[str, list[Path]],
) -> dict[str, list[dict[str, Any]]]:
    """Write the loaded tables; per table, the manifest's entries of its input files."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, rules in (("items", ITEM_RULES), ("users", USER_RULES)):
        table = loaded[name]
        if table is None:
            continue
        df, joined = table
        good, bad = prepare_table(df, rules, source.table_timestamp(name), joined)
        report = source.table_report(name)
        if report is not None:
            bad = pl.concat([bad, report.rejected], how="diagonal_relaxed")
        out[name] = table_inputs(files.get(name, []), good, bad, report)
        good, bad = _protect(good.drop(Col.FILE), bad, user_ids, key, plans[name])
        target = tmp / f"{name}.parquet"
        target.unlink(missing_ok=True)  # may be a hard link into the previous version
        good.write_parquet(target, compression="zstd")
        _forget_quarantine(tmp, name)  # an appended lake's earlier rows of this table: replaced below
        if bad.height:
            (staging / "quarantine").mkdir(parents=True, exist_ok=True)
            bad.write_parquet(staging / "quarantine" / f"{name}.parquet")
    return out


def _forget_quarantine(tmp: Path, table: str) -> None:
    """Drop `table`'s rows from earlier runs' quarantine files, so a rebuilt table is counted once."""
    for path in sorted((tmp / "quarantine").glob("run-*.parquet")):
        rows = pl.read_parquet(path)
        if Col.TABLE not in rows.columns or not (rows[Col.TABLE] == table).any():
            continue
        rest = rows.filter(pl.col(Col.TABLE) != table)
        path.unlink()  # a hard link into the previous version
        if rest.height:
            rest.write_parquet(path)


def _protect(
    good: pl.DataFrame, bad: pl.DataFrame, user_ids: pl.DataFrame, key: PiiKey, personal: Personal
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pseudonymise user ids and drop or hash personal columns in a small table; a
    quarantined record the reader could not split keeps no text (see `rejected_rows`)."""
    frames = []
    for df in (good, bad):
        if Col.USER in df.columns:
            df = pseudonymise(df, Col.USER, user_ids)
        for column in personal.hash & set(df.columns):
            table = ev.column_pseudonyms(df[column].cast(pl.String), key, column)
            df = pseudonymise(df, column, table)
        frames.append(df.drop(*(personal.drop & set(df.columns))))
    lineage = {Col.FILE, Col.LINE, Col.REASON, Col.TABLE}
    bad = frames[1].with_columns(blank_broken_records([c for c in frames[1].columns if c not in lineage]))
    return frames[0], bad


def _staged_names(srcs: frozenset[int]) -> set[str]:
    """Stems of the staging files of these input files (`events.stage_file` names them)."""
    return {f"f{src:05d}" for src in srcs}


def _write_quarantine(
    tmp: Path, staging: Path, run: int, user_ids: pl.DataFrame, as_is: frozenset[int] = frozenset()
) -> None:
    files = sorted((staging / "quarantine").glob("*.parquet"))
    keep = _staged_names(as_is)
    frames = [
        pseudonymise(df, Col.USER, user_ids) if Col.USER in df.columns and f.stem not in keep else df
        for f, df in ((f, pl.read_parquet(f)) for f in files)
        if df.height
    ]
    if frames:
        (tmp / "quarantine").mkdir(exist_ok=True)
        pl.concat(frames, how="diagonal_relaxed").write_parquet(tmp / "quarantine" / f"run-{run:05d}.parquet")
