"""`recsys split` as a function of its composed config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import polars as pl
from omegaconf import DictConfig

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data import event_order
from recsys_cli.data.lake import MANIFEST, decoding, open_lake, scan_events, staged_version, write_sealed
from recsys_cli.data.remote import is_remote, mirrored, recorded
from recsys_cli.data.schema import Col
from recsys_cli.errors import SplitError
from recsys_cli.registry.integrity import sha256_file
from recsys_cli.registry.outputs import KIND, SPLIT
from recsys_cli.spark.session import spark_settings
from recsys_cli.splits.base import PART, PARTS, TEST, TRAIN, VAL, Fold, PolarsTimeline, Splitter, Timeline, part_counts
from recsys_cli.splits.targets import COLD, TargetSpec, ground_truth


@dataclass
class SplitResult:
    path: Path
    manifest: dict[str, Any]


@dataclass
class FoldTables:
    """What one fold publishes: rows and users per part (`part`, `rows`, `users`), and
    the val and test targets (file stem, table), each sorted by user and item."""

    counts: pl.DataFrame
    targets: list[tuple[str, pl.DataFrame]]


class SplitEngine(Protocol):
    """Where the events are read and each fold computed: this process with Polars,
    or a Spark cluster (recsys_cli/spark/split.py); the orchestration is the same."""

    def timeline(self) -> Timeline: ...

    def fold(self, splitter: Splitter, fold: Fold, spec: TargetSpec, scratch: Path) -> FoldTables:
        """The fold's tables; `scratch`: a folder of the version being built that an
        engine may use for a moment (and leaves as it found it)."""
        ...


@dataclass
class PolarsSplit:
    """engine=polars: one streaming pass per fold over the lake's lazy frame."""

    events: pl.LazyFrame

    def timeline(self) -> Timeline:
        return PolarsTimeline(self.events)

    def fold(self, splitter: Splitter, fold: Fold, spec: TargetSpec, scratch: Path) -> FoldTables:
        assigned = splitter.assign(self.events, fold)
        queries = [part_counts(assigned), ground_truth(assigned, spec, VAL), ground_truth(assigned, spec, TEST)]
        counts, val, test = pl.collect_all(queries, engine="streaming")
        return FoldTables(counts, [("val", val), ("test", test)])


@contextmanager
def split_engine(cfg: DictConfig, lake: Path) -> Iterator[SplitEngine]:
    """The engine `cfg.engine` names (polars when the config has no engine group)."""
    settings = spark_settings(cfg, "split")
    if settings is None:
        yield PolarsSplit(scan_events(lake))
        return
    from recsys_cli.spark.split import spark_split

    with spark_split(settings, lake) as split:
        yield split


def run(cfg: DictConfig, reporter: Reporter | None = None, verify: bool = True) -> SplitResult:
    """Split the lake; it is checked against its manifest first (`verify`: every file re-hashed).

    Remote folders (s3://) are read and written through local mirrors (`data/remote/`);
    the manifest records the configured locations, never the mirrors'."""
    with mirrored(cfg, reads=["lake_dir"], writes="split_dir") as local:
        return _split(local, cfg, reporter or NullReporter(), verify)


def _split(cfg: DictConfig, given: DictConfig, reporter: Reporter, verify: bool) -> SplitResult:
    from recsys_cli.config import build

    lake = Path(cfg.lake_dir)
    lake_manifest = open_lake(lake, full=verify)
    splitter: Splitter = build(cfg.split)
    spec = TargetSpec.from_config(cfg.target)
    out = Path(cfg.split_dir)
    with split_engine(cfg, lake) as engine, decoding((lake, "lake")), staged_version(out, SPLIT, [lake]) as tmp:
        folds = splitter.folds(engine.timeline())
        reporter.start(f"splitting ({splitter.name})", total=len(folds))
        summaries = []
        for fold in folds:
            summaries.append(_write_fold(tmp / fold.name, engine.fold(splitter, fold, spec, tmp), fold))
            reporter.advance()
        manifest = {
            KIND: SPLIT,
            "protocol": {"splitter": type(splitter).__name__, **splitter.describe()},
            "target": {**spec.__dict__, "positive_events": list(spec.positive_events)},
            "event_order": event_order.describe(),
            "lake": {
                "path": str(given.lake_dir) if is_remote(given.lake_dir) else str(lake),
                "manifest_sha256": sha256_file(lake / MANIFEST),
                "fingerprint": lake_manifest.get("fingerprint"),
            },
            "created_at": datetime.now(UTC).isoformat(),
            "folds": summaries,
            "config": recorded(given),
        }
        manifest = write_sealed(tmp, manifest)
    return SplitResult(out, manifest)


def _write_fold(folder: Path, tables: FoldTables, fold: Fold) -> dict[str, Any]:
    folder.mkdir(parents=True)
    by_part = {p: {"rows": 0, "users": 0} for p in PARTS} | {
        r[PART]: {"rows": r["rows"], "users": r["users"]} for r in tables.counts.iter_rows(named=True)
    }
    _refuse_empty_parts(fold, by_part)
    summary = {}
    for name, targets in tables.targets:
        targets.write_parquet(folder / f"{name}_targets.parquet")
        summary[name] = _target_counts(targets)
    return {**fold.to_json(), "parts": by_part, "targets": summary}


def _refuse_empty_parts(fold: Fold, by_part: dict[str, dict[str, int]]) -> None:
    """A fold with nothing to train on or nothing to test is a split of nothing
    (cutoffs given past the lake's last event, or before its first): refused,
    instead of a split whose every metric would be empty."""
    for part, where in ((TRAIN, f"before {fold.val_start}"), (TEST, f"from {fold.test_start} to {fold.test_end}")):
        if by_part[part]["rows"] == 0:
            window = where if fold.val_start is not None else "(per user)"
            raise SplitError(f"{fold.name}: no events in the {part} part {window}; check the split's cutoffs")


def _target_counts(targets: pl.DataFrame) -> dict[str, int]:
    warm = targets.filter(~pl.col(COLD))
    cold = targets.filter(pl.col(COLD))
    return {
        "evaluated_users": warm[Col.USER].n_unique(),
        "pairs": warm.height,
        "cold_users": cold[Col.USER].n_unique(),
        "cold_pairs": cold.height,
    }
