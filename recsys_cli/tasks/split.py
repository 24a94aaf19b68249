"""`recsys split` as a function of its composed config."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from recsys_cli.splits.base import PART, PARTS, TEST, TRAIN, VAL, Fold, Splitter
from recsys_cli.splits.targets import COLD, TargetSpec, ground_truth


@dataclass
class SplitResult:
    path: Path
    manifest: dict[str, Any]


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
    events = scan_events(lake)
    out = Path(cfg.split_dir)
    with decoding((lake, "lake")), staged_version(out, SPLIT, [lake]) as tmp:
        folds = splitter.folds(events)
        reporter.start(f"splitting ({splitter.name})", total=len(folds))
        summaries = []
        for fold in folds:
            summaries.append(_write_fold(tmp / fold.name, splitter.assign(events, fold), fold, spec))
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


def _write_fold(folder: Path, assigned: pl.LazyFrame, fold: Fold, spec: TargetSpec) -> dict[str, Any]:
    folder.mkdir(parents=True)
    counts_q = assigned.group_by(PART).agg(pl.len().alias("rows"), pl.col(Col.USER).n_unique().alias("users"))
    val_q, test_q = ground_truth(assigned, spec, VAL), ground_truth(assigned, spec, TEST)
    counts, val, test = pl.collect_all([counts_q, val_q, test_q], engine="streaming")
    for name, targets in (("val", val), ("test", test)):
        targets.write_parquet(folder / f"{name}_targets.parquet")
    by_part = {p: {"rows": 0, "users": 0} for p in PARTS} | {
        r[PART]: {"rows": r["rows"], "users": r["users"]} for r in counts.iter_rows(named=True)
    }
    _refuse_empty_parts(fold, by_part)
    return {**fold.to_json(), "parts": by_part, "targets": {"val": _target_counts(val), "test": _target_counts(test)}}


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
