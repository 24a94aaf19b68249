"""`recsys features` and `recsys check-leakage` as functions of their config."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import polars as pl
from omegaconf import DictConfig, OmegaConf

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data import event_order
from recsys_cli.data.lake import (
    MANIFEST,
    decoding,
    open_lake,
    open_output,
    scan_events,
    staged_version,
    write_sealed,
)
from recsys_cli.data.remote import mirrored, recorded
from recsys_cli.errors import SplitError
from recsys_cli.features.build import FeatureConfig, FeatureSet, Written, build, cutoff_of
from recsys_cli.features.leakage import Leak, check_leakage
from recsys_cli.registry.integrity import sha256_file
from recsys_cli.registry.outputs import FEATURES, KIND, claim
from recsys_cli.spark.session import spark_settings
from recsys_cli.splits.base import TEST, VAL, Fold, Splitter
from recsys_cli.splits.global_temporal import parse_instant
from recsys_cli.splits.targets import TargetSpec

READS = ("lake_dir", "split_dir")


@dataclass
class FeaturesResult:
    path: Path
    manifest: dict[str, Any]


@dataclass
class Inputs:
    events: pl.LazyFrame
    items: pl.LazyFrame | None
    users: pl.LazyFrame | None
    splitter: Splitter
    folds: list[Fold]
    features: FeatureConfig
    target: TargetSpec
    split_manifest: Path
    read: tuple[tuple[Path, str], ...] = ()  # (folder, kind) of what is read, for `decoding`


def load(cfg: DictConfig, verify: bool = True) -> Inputs:
    """Lake tables, the split's folds (from its manifest) and the feature config.

    The lake and the split are checked against their manifests first (`verify`: every file re-hashed)."""
    from recsys_cli.config import build

    lake, split_dir = Path(cfg.lake_dir), Path(cfg.split_dir)
    if not (split_dir / MANIFEST).is_file():
        raise SplitError(f"{split_dir}: no split here; run `recsys split` with the same overrides first")
    open_lake(lake, full=verify)
    split = open_output(split_dir, "split", full=verify)
    if split["lake"]["manifest_sha256"] != sha256_file(lake / MANIFEST):
        raise SplitError(f"{split_dir}: the lake changed since this split was made; rerun `recsys split`")
    splitter = build(cfg.split)
    if splitter.orders_ties:
        _check_event_order(split_dir, split.get("event_order"))
    folds = [_fold(f) for f in split["folds"]]
    params = {k: v for k, v in cast(dict[str, Any], OmegaConf.to_container(cfg.features)).items() if k != "name"}
    return Inputs(
        events=scan_events(lake),
        items=pl.scan_parquet(lake / "items.parquet") if (lake / "items.parquet").exists() else None,
        users=pl.scan_parquet(lake / "users.parquet") if (lake / "users.parquet").exists() else None,
        splitter=splitter,
        folds=folds,
        features=FeatureConfig(**params),
        target=TargetSpec.from_config(cfg.target),
        split_manifest=split_dir / MANIFEST,
        read=((lake, "lake"), (split_dir, "split")),
    )


def _check_event_order(split_dir: Path, made: dict[str, str] | None) -> None:
    """Features assign events to parts again, so a split that holds out each user's
    latest events must be read with the tie order it was made with; otherwise its
    targets and the training history could disagree on which event was held out."""
    now = event_order.describe()
    if made == now:
        return
    if made is None:
        how = "before ties in time were ordered by a hash of (user, item)"
    elif made.get("polars") != now["polars"]:
        how = f"with Polars {made.get('polars')}, whose hash may order ties differently from {now['polars']}'s"
    else:
        how = f"with another tie rule ({made.get('rule')}, seed {made.get('seed')})"
    raise SplitError(f"{split_dir}: this split was made {how}; rerun `recsys split` with the same overrides")


def _fold(entry: dict[str, Any]) -> Fold:
    def at(key: str) -> datetime | None:
        return parse_instant(entry[key]) if entry.get(key) else None

    return Fold(entry["name"], at("train_start"), at("val_start"), at("test_start"), at("test_end"))


def builder(inputs: Inputs) -> partial[FeatureSet]:
    return partial(_build, cfg=inputs.features, items=inputs.items, users=inputs.users, target=inputs.target)


def _build(
    assigned: pl.LazyFrame,
    part: str,
    cutoff: datetime,
    cfg: FeatureConfig,
    items: pl.LazyFrame | None,
    users: pl.LazyFrame | None,
    target: TargetSpec,
) -> FeatureSet:
    return build(assigned, part, cutoff, cfg, items, users, target)


def run(cfg: DictConfig, reporter: Reporter | None = None, verify: bool = True) -> FeaturesResult:
    """Features of every fold; remote folders (s3://) are read and written through
    local mirrors (`data/remote/`), the manifest recording the configured locations."""
    with mirrored(cfg, reads=READS, writes="features_dir") as local:
        return _features(local, cfg, reporter or NullReporter(), verify)


def _features(cfg: DictConfig, given: DictConfig, reporter: Reporter, verify: bool) -> FeaturesResult:
    inputs = load(cfg, verify)
    out = Path(cfg.features_dir)
    claim(out, FEATURES, [cfg.lake_dir, cfg.split_dir])  # a wrong features_dir fails before any work
    reporter.start("building features", total=2 * len(inputs.folds))
    folds = []
    with (
        decoding(*inputs.read),
        staged_version(out, FEATURES, [cfg.lake_dir, cfg.split_dir]) as tmp,
        engine(cfg, inputs) as write_part,
    ):
        for fold in inputs.folds:
            parts = {}
            for part, fold_cutoff in ((VAL, fold.val_start), (TEST, fold.test_start)):
                written = write_part(fold, part, fold_cutoff, tmp / fold.name / part)
                parts[part] = {
                    "cutoff": written.cutoff.isoformat(),
                    "rows": written.rows,
                    "vocab_sizes": written.vocab_sizes,
                }
                reporter.advance()
            folds.append({"name": fold.name, "parts": parts})
        manifest = {
            KIND: FEATURES,
            "split_manifest_sha256": sha256_file(inputs.split_manifest),
            "created_at": datetime.now(UTC).isoformat(),
            "folds": folds,
            "config": recorded(given),
        }
        manifest = write_sealed(tmp, manifest)
    return FeaturesResult(out, manifest)


# Writes one part (val or test) of one fold into a folder: (fold, part, the fold's
# cutoff for it or None, folder) -> what the manifest records.
PartWriter = Callable[[Fold, str, datetime | None, Path], Written]


def engine(cfg: DictConfig, inputs: Inputs) -> AbstractContextManager[PartWriter]:
    """The engine's part writer (`engine.name`; absent = polars), open for the whole command."""
    settings = spark_settings(cfg, "features")
    if settings is not None:
        from recsys_cli.spark.features import spark_features

        return spark_features(settings, inputs, Path(cfg.lake_dir))
    return nullcontext(partial(write_polars_part, inputs))


def write_polars_part(inputs: Inputs, fold: Fold, part: str, fold_cutoff: datetime | None, folder: Path) -> Written:
    """The polars engine: the whole part lazily over the lake, one table collected at a time."""
    assigned = inputs.splitter.assign(inputs.events, fold)
    cutoff = cutoff_of(assigned, part, fold_cutoff)
    features = builder(inputs)(assigned, part, cutoff)
    rows = features.write(folder)
    return Written(cutoff, rows, {k: len(v) for k, v in features.vocab.items()})


def leakage(cfg: DictConfig) -> list[Leak]:
    with mirrored(cfg, reads=READS) as local:
        inputs = load(local)
        with decoding(*inputs.read):
            return check_leakage(inputs.events, inputs.splitter, inputs.folds, builder(inputs))
