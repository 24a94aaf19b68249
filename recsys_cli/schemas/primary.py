"""Schemas of the primary configs in conf/: each joins the groups its command
composes (groups.py, models.py, sweep.py) with the config's own keys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from recsys_cli.schemas._base import Count, Positive, PositiveInt, Schema, Seed, Text, optional
from recsys_cli.schemas.groups import (
    Ann,
    Data,
    Engine,
    Eval,
    Events,
    Features,
    IngestRules,
    Logger,
    Paths,
    Pii,
    Registry,
    Split,
    Target,
    Trainer,
    TrainEval,
)
from recsys_cli.schemas.models import Model
from recsys_cli.schemas.sweep import Sweep


def _fold(value: str) -> str:
    if not (value.startswith("fold-") and value[5:].isdigit()):
        raise PydanticCustomError("fold", "must name a fold of the split: fold-0, fold-1, ...")
    return value


Fold = Annotated[str, AfterValidator(_fold)]
Part = Literal["val", "test"]
# `recsys train` also runs both in turn: the validation run, then the refit from it.
TrainPart = Literal["val", "test", "val+test"]


class IngestConfig(Schema):
    """conf/ingest.yaml (also `recsys datasets`)."""

    paths: Paths
    data: Data  # type: ignore[valid-type]
    pii: Pii
    lake_dir: Text
    validation: IngestRules
    engine: Engine | None = optional()  # conf/engine/; absent: polars


class SplitConfig(Schema):
    """conf/split.yaml."""

    paths: Paths
    data: Data  # type: ignore[valid-type]
    split: Split  # type: ignore[valid-type]
    target: Target
    lake_dir: Text
    split_dir: Text
    engine: Engine | None = optional()  # conf/engine/; absent: polars


class FeaturesConfig(SplitConfig):
    """conf/features.yaml (also `recsys check-leakage`)."""

    features: Features
    features_dir: Text


class WarmStart(Schema):
    """`warm_start`: the run begins from a package's model (models/warm_start.py)."""

    package: Text
    # The package manifest's sha256; `recsys train` pins it, and refuses a package
    # that changed since (a rerun from the saved config starts from the same model).
    manifest_sha256: Text | None = optional()
    epochs: Count | None = optional()
    only_new: bool = False


class TrainConfig(FeaturesConfig):
    """conf/train.yaml, with or without an experiment preset."""

    trainer: Trainer  # before model, whose `trainer: ${trainer}` repeats it
    model: Model  # type: ignore[valid-type]
    runs_dir: Text
    fold: Fold
    part: TrainPart
    # auto | none | a part=val run folder (registry/selection.py)
    refit_from: Text | None = "auto"
    warm_start: WarmStart | None = optional()
    eval: TrainEval
    seed: Seed
    # conf/logger/: an experiment tracker the run is reported to (recsys_cli/tracking/)
    logger: Logger | None = optional()


class SweepConfig(TrainConfig):
    """conf/sweep.yaml: the train config every trial composes, and the search."""

    part: Part  # a trial is one validation run
    sweep: Sweep
    sweeps_dir: Text


class EvaluateConfig(Schema):
    """conf/evaluate.yaml; what is evaluated comes from the run's own config."""

    eval: Eval
    part: Part | None
    out_dir: Text | None
    batch_users: PositiveInt


class ExportFallbacks(Schema):
    """conf/export.yaml `fallbacks` (registry/package_fallbacks.py)."""

    top_n: PositiveInt
    segments: list[Text]
    event_types: Events | None


class ExportSnapshot(Schema):
    """conf/export.yaml `snapshot`: the users and columns of users.parquet."""

    users: Literal["all", "model"]
    sequences: bool


class ExportConfig(Schema):
    """conf/export.yaml; what is exported comes from the run's own config."""

    new_product_days: Positive
    recent_days: Positive
    fallbacks: ExportFallbacks
    snapshot: ExportSnapshot
    ann: Ann
    registry: Registry


class RegistryConfig(Schema):
    """conf/registry.yaml (`recsys registry`)."""

    registry: Registry


class ChainConfig(Schema):
    """conf/chain.yaml: the keys every command accepts (`recsys_cli.config.compose`
    checks them here where a command's own config lacks them)."""

    paths: Paths
    data: Data  # type: ignore[valid-type]
    split: Split  # type: ignore[valid-type]
    target: Target
    features: Features
    engine: Engine
    pii: Pii
    registry: Registry
    lake_dir: Text
    split_dir: Text
    features_dir: Text
    runs_dir: Text
    seed: Seed
