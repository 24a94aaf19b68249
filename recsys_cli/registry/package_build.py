"""Writing a package's files from an opened run (`recsys export`).

The package layout (every file is listed, with its sha256 and size, in the
sealed `manifest.json` that `registry/package.py` writes last):

    model/               the run's model folder, byte for byte (model.json, weights.safetensors,
                         the ranker's lightgbm_<i>.txt): the `Recommender.save`/`load` contract
    ann/<model>/         per embedding model: its item vectors' nearest-neighbour index
    vocab/users.json     the model's user and item vocabularies (index 0: unknown)
    vocab/items.json
    items.parquet        the item table (registry/package_tables.py)
    users.parquet        each user's features and sequence as of the cutoff
    fallbacks/*.parquet  popularity fallbacks (registry/package_fallbacks.py)
    lineage.json         lake, split, features, config, metrics, environment, commits
    manifest.json

The model files are copied, not saved again from the loaded model, and checked
against the run's manifest once sealed: the package serves exactly the bytes
that were trained and evaluated.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from recsys_cli.errors import IntegrityError
from recsys_cli.models.base import Recommender
from recsys_cli.registry.package import ANN, FALLBACKS, ITEMS, MODEL, USERS, VOCAB, seal_package
from recsys_cli.registry.package_ann import write_indexes
from recsys_cli.registry.package_fallbacks import fallback_tables, segment_columns
from recsys_cli.registry.package_lineage import LINEAGE, lineage_record, summary
from recsys_cli.registry.package_tables import SnapshotUsers, item_table, user_snapshot, write_vocab
from recsys_cli.registry.run_dir import Run

if TYPE_CHECKING:
    from recsys_cli.serving.ann import AnnSpec

SEGMENTS = ("age_bucket", "gender", "region", "occupation")


@dataclass(frozen=True)
class ExportSettings:
    """What `conf/export.yaml` sets (see its comments)."""

    new_product_days: float = 30.0
    recent_days: float = 7.0
    top_n: int = 200
    segments: Sequence[str] = SEGMENTS
    event_types: Sequence[str] | None = None
    snapshot_users: SnapshotUsers = "all"
    snapshot_sequences: bool = True
    ann: AnnSpec | None = None  # conf/ann/; None: its defaults


@dataclass
class RunSources:
    """An opened run and the data it was trained on, as of its cutoff."""

    run: Run
    model: Recommender
    history: pl.LazyFrame  # the events before the cutoff the features were built from
    catalog: pl.LazyFrame | None  # the lake's items table
    users: pl.LazyFrame | None  # the lake's users table
    features: Path  # the run's fold/part folder of its feature set
    cutoff: datetime
    feature_hash: str


def write_package(folder: Path, sources: RunSources, settings: ExportSettings, name: str) -> dict[str, Any]:
    """Write every file of the package into the empty `folder` and seal it; returns the manifest."""
    model = sources.model
    assert model.users is not None and model.items is not None
    from recsys_cli.serving.ann import AnnSpec

    _copy_model(sources.run, folder / MODEL)
    ann = write_indexes(folder / ANN, model, settings.ann or AnnSpec())
    write_vocab(folder / VOCAB, {"users": model.users, "items": model.items})
    items = item_table(model.items.tokens, sources.catalog, sources.cutoff, settings.new_product_days)
    items.write_parquet(folder / ITEMS)
    users = user_snapshot(sources.features, model.users, settings.snapshot_users, settings.snapshot_sequences)
    users.write_parquet(folder / USERS)
    fallbacks = fallback_tables(
        sources.history,
        sources.users,
        model.items.tokens,
        sources.cutoff,
        settings.recent_days,
        settings.segments,
        settings.top_n,
        settings.event_types,
    )
    (folder / FALLBACKS).mkdir()
    for table, frame in fallbacks.items():
        frame.write_parquet(folder / FALLBACKS / f"{table}.parquet")
    record = lineage_record(sources.run, sources.cutoff, sources.feature_hash)
    (folder / LINEAGE).write_text(json.dumps(record, indent=1, default=str) + "\n")
    payload = {
        "name": name,
        "model": {"class": f"{type(model).__module__}.{type(model).__qualname__}"},
        "metrics": record["metrics"],
        "lineage": summary(record),
        "feature_definitions_sha256": sources.feature_hash,
        "contents": {
            "items": items.height,
            "users": users.height,
            "fallbacks": {table: frame.height for table, frame in fallbacks.items()},
            "segments": segment_columns(sources.users, settings.segments),
            "new_product_days": settings.new_product_days,
            "recent_days": settings.recent_days,
        },
        "ann": ann,
    }
    manifest = seal_package(folder, payload)
    _check_model_copy(sources.run, manifest, folder)
    return manifest


def _copy_model(run: Run, target: Path) -> None:
    """The model files the run's manifest lists (already verified by `open_run`)."""
    for entry in _model_entries(run.manifest):
        destination = target.parent / entry["path"]
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.path / entry["path"], destination)


def _check_model_copy(run: Run, manifest: dict[str, Any], folder: Path) -> None:
    """The package's model files are the run's, hash for hash (a file changed while it was copied is refused)."""
    trained = {e["path"]: e["sha256"] for e in _model_entries(run.manifest)}
    packaged = {e["path"]: e["sha256"] for e in manifest["files"] if e["path"].startswith(f"{MODEL}/")}
    if trained != packaged:
        changed = sorted(set(trained.items()) ^ set(packaged.items()))[0][0]
        raise IntegrityError(
            f"{folder / changed}: differs from the run's {changed} (it changed during export); export again"
        )


def _model_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in manifest["files"] if str(e["path"]).startswith(f"{MODEL}/")]
