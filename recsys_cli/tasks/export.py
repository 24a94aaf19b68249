"""`recsys export RUN`: the run's model package, the one folder a service loads,
written beside (by default inside) the run and pushed to the registry.

The run is opened as every command opens it (`open_run`: its manifest's seal,
every file's sha256, and the lake, split and features it was trained on); the
lake, split and feature folders are re-hashed before a row is read. The package
is built under a hidden name next to its target and renamed into place whole
(`data.lake.staged_version`), so a reader never sees half a package, and only a
folder that is itself a package (its manifest says so) is ever replaced.

The default target, `RUN/package/`, sits inside the sealed run folder. That is
safe: a run's manifest forbids added files only under `model/` (`open_run`),
the same rule that lets `recsys evaluate` write `RUN/eval/`, and the package
never overlaps what it reads (`model/`, `config.yaml`, the data folders).

The cutoff everything is taken "as of" is the run's training cutoff: the split's
validation start for a part=val run, its test start for a part=test refit (the
features manifest's cutoff for per-user protocols, which have none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from omegaconf import DictConfig, OmegaConf

from recsys_cli.data.lake import decoding, open_output, staged_version
from recsys_cli.errors import ConfigError, IntegrityError
from recsys_cli.models.base import Recommender
from recsys_cli.registry.integrity import MANIFEST
from recsys_cli.registry.outputs import claim
from recsys_cli.registry.package import KIND as PACKAGE
from recsys_cli.registry.package_build import ExportSettings, RunSources, write_package
from recsys_cli.registry.package_lineage import feature_definitions_hash
from recsys_cli.registry.run_dir import CONFIG, MODEL, Run, open_run
from recsys_cli.schemas._base import NAME_CHARS
from recsys_cli.serving.ann import AnnSpec
from recsys_cli.splits.base import PART, TEST, Fold
from recsys_cli.splits.global_temporal import parse_instant
from recsys_cli.splits.targets import history_parts

DEFAULT_FOLDER = "package"


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    pushed: dict[str, Any] | None = None  # the registry's record of the new version


def run(
    run_dir: Path, cfg: DictConfig, out: Path | None = None, name: str | None = None, push: bool = True
) -> ExportResult:
    """Export the run in `run_dir` to `out` (default `RUN/package/`) as package `name`
    (default `<data>-<model>`), then push it to the registry unless `push` is False."""
    opened = open_run(Path(run_dir))
    name = _checked_name(name or default_name(opened.config))
    target = Path(out) if out is not None else opened.path / DEFAULT_FOLDER
    reads = _reads(opened)
    claim(target, PACKAGE, reads)  # a foreign folder is refused before any work
    sources, read = _sources(opened)
    with decoding(*read), staged_version(target, PACKAGE, reads) as staging:
        manifest = write_package(staging, sources, settings(cfg), name)
    pushed = push_package(cfg, target, name) if push else None
    return ExportResult(target, manifest, pushed)


def settings(cfg: DictConfig) -> ExportSettings:
    """The export config's settings (conf/export.yaml)."""
    fallbacks, snapshot = cfg.fallbacks, cfg.snapshot
    events = fallbacks.get("event_types")
    return ExportSettings(
        new_product_days=float(cfg.new_product_days),
        recent_days=float(cfg.recent_days),
        top_n=int(fallbacks.top_n),
        segments=tuple(str(c) for c in fallbacks.segments),
        event_types=None if events is None else tuple(str(e) for e in events),
        snapshot_users=str(snapshot.users),  # type: ignore[arg-type]
        snapshot_sequences=bool(snapshot.sequences),
        ann=AnnSpec.of(OmegaConf.to_container(cfg.ann, resolve=True)) if cfg.get("ann") is not None else None,  # type: ignore[arg-type]
    )


def push_package(cfg: DictConfig, folder: Path, name: str) -> dict[str, Any] | None:
    """Push the package to the registry the config names (`registry.uri`)."""
    registry = cfg.get("registry")
    if registry is None or not registry.get("uri"):
        raise ConfigError("no registry configured (registry.uri); export with --no-push, or set registry.uri")
    from recsys_cli.registry import store

    options = registry.get("storage_options")
    plain = OmegaConf.to_container(options, resolve=True) if isinstance(options, DictConfig) else options
    return store.push(str(registry.uri), folder, name, plain)  # type: ignore[arg-type]


def default_name(cfg: DictConfig) -> str:
    """`<data>-<model>`, e.g. synth-ease: one registry name per model of a shop."""
    model = str(cfg.model._target_).rsplit(".", 1)[-1].lower()
    data = cfg.get("data", {}).get("name") if isinstance(cfg.get("data"), DictConfig) else None
    return f"{data}-{model}" if data else model


def _checked_name(name: str) -> str:
    if not name or not name[0].isalnum() or not all(c.isalnum() or c in "._-" for c in name):
        raise ConfigError(
            f"--name {name!r}: a package name must start with a letter or digit and hold only {NAME_CHARS}"
        )
    return name


def _reads(opened: Run) -> list[Path]:
    cfg = opened.config
    data = [Path(str(cfg[key])) for key in ("lake_dir", "split_dir", "features_dir") if cfg.get(key)]
    return [opened.path / MODEL, opened.path / CONFIG, *data]


def _sources(opened: Run) -> tuple[RunSources, tuple[tuple[Path, str], ...]]:
    """The run's model and data as of its cutoff, every data folder re-hashed first."""
    from recsys_cli.tasks import features as features_task

    cfg = opened.config
    if not cfg.get("features_dir") or not cfg.get("split_dir") or not cfg.get("lake_dir"):
        raise ConfigError(f"{opened.path / CONFIG}: names no lake, split and features; retrain it with `recsys train`")
    part = str(cfg.get("part", "val"))
    features_dir = Path(str(cfg.features_dir))
    features_manifest = open_output(features_dir, "features")
    inputs = features_task.load(cfg)  # the lake and the split, re-hashed; the splitter and its folds
    fold = next((f for f in inputs.folds if f.name == str(cfg.fold)), None)
    if fold is None:
        raise IntegrityError(f"{Path(str(cfg.split_dir)) / MANIFEST}: has no fold {cfg.fold}; retrain the run")
    cutoff = _cutoff(fold, part, features_manifest, features_dir)
    assigned = inputs.splitter.assign(inputs.events, fold)
    history = assigned.filter(pl.col(PART).is_in(history_parts(part))).drop(PART)
    sources = RunSources(
        run=opened,
        model=Recommender.load(opened.path / MODEL),
        history=history,
        catalog=inputs.items,
        users=inputs.users,
        features=features_dir / str(cfg.fold) / part,
        cutoff=cutoff,
        feature_hash=feature_definitions_hash(cfg.features, cfg.target),
    )
    return sources, (*inputs.read, (features_dir, "features"))


def _cutoff(fold: Fold, part: str, features_manifest: dict[str, Any], features_dir: Path) -> datetime:
    """The split's boundary for the run's part, else the one its features recorded."""
    boundary = fold.test_start if part == TEST else fold.val_start
    if boundary is not None:
        return boundary
    for entry in features_manifest.get("folds", []):
        if entry.get("name") == fold.name and part in entry.get("parts", {}):
            return parse_instant(entry["parts"][part]["cutoff"])
    raise IntegrityError(
        f"{features_dir / MANIFEST}: records no cutoff for {fold.name}/{part}; rerun `recsys features`"
    )
