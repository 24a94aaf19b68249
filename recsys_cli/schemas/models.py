"""Schemas of conf/model/: one per model class, picked by the config's `_target_`.
Keys follow the class's constructor (a test checks both name the same keys); a
key left out takes the constructor's default. Cross-key rules the constructors
already check in one line (the ranker's LightGBM grid and cross-validation
settings, which need LightGBM to know its parameters) stay there."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from recsys_cli.schemas._base import (
    Batch,
    Count,
    Dropout,
    Int,
    Name,
    NonNegative,
    OpenUnit,
    Positive,
    PositiveInt,
    Probability,
    Scalar,
    Schema,
    Seed,
    Text,
    Width,
    by_target,
    fail,
    optional,
)
from recsys_cli.schemas.groups import Events, EventType, Trainer

CALIBRATIONS = ("temperature", "platt", "isotonic", "none")  # models/calibration.py:Method
BACKENDS = ("dcn", "lightgbm")  # models/ranker.py:Backend


class Popularity(Schema):
    target_: Literal["recsys_cli.models.popularity.Popularity"] = Field(alias="_target_")


class RecentPopularity(Schema):
    target_: Literal["recsys_cli.models.popularity.RecentPopularity"] = Field(alias="_target_")
    window_days: Positive = optional()
    events: Events = optional()


class SegmentPopularity(Schema):
    target_: Literal["recsys_cli.models.popularity.SegmentPopularity"] = Field(alias="_target_")
    attribute: Text = optional()


WEIGHTINGS = Literal["raw", "binary", "log", "bm25", "tfidf"]  # models/weighting.py:Weighting
# {setting: [values]} searched on the validation window (models/selection.py); null = none.
SearchGrid = dict[Text, Annotated[list[Scalar], Field(min_length=1)]] | None


class EASE(Schema):
    target_: Literal["recsys_cli.models.ease.EASE"] = Field(alias="_target_")
    l2: Positive = optional()  # 0 leaves the Gram matrix singular
    l2_scale: Literal["absolute", "mean_diag"] = optional()
    weighting: WEIGHTINGS = optional()
    max_items: Annotated[Int, Field(ge=1, le=100_000)] = optional()  # a dense max_items^2 matrix
    grid: SearchGrid = optional()


class ItemKNN(Schema):
    target_: Literal["recsys_cli.models.item_knn.ItemKNN"] = Field(alias="_target_")
    k: PositiveInt = optional()
    shrink: NonNegative = optional()
    last_n: PositiveInt | None = optional()
    weighting: WEIGHTINGS = optional()
    reach: PositiveInt | None = optional()  # items an item passes its score on to, at most
    max_history: PositiveInt | None = optional()  # a user's strongest items the similarities learn from
    grid: SearchGrid = optional()


class ALS(Schema):
    target_: Literal["recsys_cli.models.implicit_mf.ALS"] = Field(alias="_target_")
    factors: Width = optional()
    regularization: NonNegative = optional()
    alpha: NonNegative = optional()
    iterations: PositiveInt = optional()
    seed: Seed = optional()
    weighting: WEIGHTINGS = optional()
    grid: SearchGrid = optional()


class ImplicitBPR(Schema):
    target_: Literal["recsys_cli.models.implicit_mf.ImplicitBPR"] = Field(alias="_target_")
    factors: Width = optional()
    learning_rate: Positive = optional()
    regularization: NonNegative = optional()
    iterations: PositiveInt = optional()
    seed: Seed = optional()


EventWeights = dict[EventType, NonNegative]  # type: ignore[valid-type]


class CategoryAffinity(Schema):
    target_: Literal["recsys_cli.models.affinity.CategoryAffinity"] = Field(alias="_target_")
    half_life_days: Positive | None = optional()
    event_weights: EventWeights = optional()
    global_weight: Annotated[float, Field(ge=0, le=1)] = optional()


class ItemTransitions(Schema):
    target_: Literal["recsys_cli.models.transitions.ItemTransitions"] = Field(alias="_target_")
    window: Annotated[Int, Field(ge=1, le=100)] = optional()
    max_gap_minutes: Positive = optional()
    backward: NonNegative = optional()
    event_weights: EventWeights = optional()
    shrink: NonNegative = optional()
    popularity_damping: Annotated[float, Field(ge=0, le=1)] = optional()
    neighbours: Annotated[Int, Field(ge=1, le=10_000)] = optional()
    last_n: Annotated[Int, Field(ge=1, le=1_000)] = optional()
    recency: Annotated[float, Field(gt=0, le=1)] = optional()
    popularity_half_life_days: Positive | None = optional()


class RecentlyViewed(Schema):
    target_: Literal["recsys_cli.models.recently_viewed.RecentlyViewed"] = Field(alias="_target_")
    half_life_days: Positive = optional()
    event_weights: EventWeights = optional()
    skip_purchased: bool = optional()
    popularity_half_life_days: Positive | None = optional()


class _Neural(Schema):
    """Keys of every model fitted by the shared Lightning loop (`NeuralRecommender`)."""

    lr: Positive = optional()
    weight_decay: NonNegative = optional()
    batch_size: Batch = optional()
    patience: Count = optional()
    seed: Seed = optional()
    trainer: Trainer | None = optional()


class BPRMF(_Neural):
    target_: Literal["recsys_cli.models.bpr_mf.BPRMF"] = Field(alias="_target_")
    dim: Width = optional()


class SASRec(_Neural):
    target_: Literal["recsys_cli.models.sasrec.SASRec"] = Field(alias="_target_")
    max_len: Annotated[Int, Field(ge=1, le=100_000)] = optional()
    dim: Width = optional()
    heads: Annotated[Int, Field(ge=1, le=256)] = optional()
    layers: Annotated[Int, Field(ge=1, le=64)] = optional()
    dropout: Dropout = optional()
    negatives: Count = optional()
    train_stride: PositiveInt | None = optional()
    target_events: Events | None = optional()  # type: ignore[valid-type]
    other_weight: Probability = optional()
    event_inputs: bool = optional()
    dedupe: bool = optional()

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> SASRec:
        if self.dim is not None and self.heads is not None and self.dim % self.heads:
            fail("heads", self.heads, f"must divide model.dim ({self.dim})")
        return self


class TwoTower(_Neural):
    target_: Literal["recsys_cli.models.two_tower.TwoTower"] = Field(alias="_target_")
    dim: Width = optional()
    dropout: Dropout = optional()
    temperature: Positive = optional()
    hard_negatives: Count = optional()
    hard_pool: Annotated[Int, Field(ge=1, le=1_000_000)] = optional()
    side_features: bool = optional()
    history: Annotated[Int, Field(ge=0, le=10_000)] = optional()
    negatives: Count = optional()
    target_events: Events | None = optional()  # type: ignore[valid-type]
    other_weight: Probability = optional()
    dedupe: bool = optional()


GENERATORS: list[type[Schema]] = [
    Popularity,
    RecentPopularity,
    SegmentPopularity,
    EASE,
    ItemKNN,
    ALS,
    ImplicitBPR,
    BPRMF,
    SASRec,
    TwoTower,
    CategoryAffinity,
    ItemTransitions,
    RecentlyViewed,
]
Generator = by_target("candidate generator", GENERATORS)


class TwoStageRanker(_Neural):
    """Candidate generators (any model above, each under its own name) and a
    second stage; `generators` nest whole model configs."""

    target_: Literal["recsys_cli.models.ranker.TwoStageRanker"] = Field(alias="_target_")
    recursive: Literal[False] = Field(default=False, alias="_recursive_")
    # null turns a generator of the base config off (a preset drops one it lists).
    generators: Annotated[dict[Name, Generator | None], Field(min_length=1)] = optional()  # type: ignore[valid-type]
    n_candidates: Annotated[Int, Field(ge=1, le=100_000)] = optional()
    backend: Literal[BACKENDS] = optional()  # type: ignore[valid-type]
    calibration: Literal[CALIBRATIONS] = optional()  # type: ignore[valid-type]
    holdout: OpenUnit = optional()
    max_users_per_window: PositiveInt = optional()
    negatives: PositiveInt | None = optional()  # per labelled list; null = every candidate
    embedding_dim: Width = optional()
    cross_layers: Annotated[Int, Field(ge=0, le=64)] = optional()
    hidden: list[Width] = optional()
    dropout: Dropout = optional()
    lightgbm: dict[Text, Scalar] | None = optional()
    lightgbm_grid: dict[Text, Annotated[list[Scalar], Field(min_length=1)]] | None = optional()
    lightgbm_cv_folds: Annotated[Int, Field(ge=2)] | None = optional()
    lightgbm_cv_ensemble: bool = optional()
    # generator keys or feature groups (models/ranker_features.py) to train without
    ablate: list[Name] = optional()
    # item numeric columns averaged over each user's history into user columns
    user_profile: list[Text] | None = optional()
    # labelled windows' weight halves every this many windows back (backend=lightgbm)
    window_half_life: Positive | None = optional()

    @model_validator(mode="after")
    def _ablate_known(self) -> TwoStageRanker:
        from recsys_cli.models.ranker_features import known_ablations, unknown_ablations

        generators = [k for k, v in (self.generators or {}).items() if v is not None]
        unknown = unknown_ablations(self.ablate or (), generators) if self.generators is not None else []
        if unknown:
            fail("ablate", self.ablate, f"unknown name {unknown[0]!r}; known: {', '.join(known_ablations(generators))}")
        return self


Member = by_target("blend member", [*GENERATORS, TwoStageRanker])


class Blend(Schema):
    """Members (whole model configs, each under its own name) whose per-user
    standardised scores are summed: the first weighs 1, the others `weights`, or
    the `grid` point the validation window chooses."""

    target_: Literal["recsys_cli.models.blend.Blend"] = Field(alias="_target_")
    recursive: Literal[False] = Field(default=False, alias="_recursive_")
    # null drops a member of the base config
    members: Annotated[dict[Name, Member | None], Field(min_length=2)] = optional()  # type: ignore[valid-type]
    weights: dict[Name, NonNegative] | None = optional()
    grid: dict[Name, Annotated[list[NonNegative], Field(min_length=1)]] | None = optional()


Model = by_target("model", [*GENERATORS, TwoStageRanker, Blend])
