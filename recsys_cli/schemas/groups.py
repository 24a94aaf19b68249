"""Schemas of the data-side config groups: paths, pii, data (with the synthetic
shop's generator), split, target, features, trainer and eval, plus ingest's
validation rules. One class per group (per `_target_` where a group builds
several classes); the consumers' dataclasses keep their defaults, a test checks
that both name the same keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from recsys_cli.data.schema import EVENT_TYPES
from recsys_cli.schemas._base import (
    Count,
    Day,
    Instant,
    Int,
    Name,
    NonNegative,
    OpenUnit,
    Positive,
    PositiveInt,
    Probability,
    Resamples,
    Scalar,
    Schema,
    Text,
    by_target,
    fail,
    optional,
    refuse,
)

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Events = Annotated[list[EventType], Field(min_length=1)]


def _env_name(value: str) -> str:
    if not value or value[0].isdigit() or not all(c.isalnum() or c == "_" for c in value):
        raise PydanticCustomError("env_name", "must be an environment variable name (letters, digits, '_')")
    return value


# Keys of an fsspec/s3fs storage_options mapping that would put a credential in a
# config file (and from there into manifests and run folders).
CREDENTIAL_OPTIONS = frozenset(
    {"key", "secret", "token", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "password"}
)


def _no_credentials(value: dict[str, Any] | None) -> dict[str, Any] | None:
    found = sorted(CREDENTIAL_OPTIONS & set(value or {}))
    if found:
        refuse(f"{found[0]}: credentials come from the AWS_* environment variables or a profile, never a config file")
    return value


class Paths(Schema):
    data_dir: Text
    raw_dir: Text
    lake_dir: Text
    # data_dir as s3://bucket/prefix (data/remote/): local mirrors of its folders, and
    # how the store is reached (endpoint_url, config_kwargs...; s3fs's options).
    cache_dir: Text | None = optional()
    storage_options: Annotated[dict[Text, Any] | None, AfterValidator(_no_credentials)] = optional()


def _master(value: str) -> str:
    schemes = ("local[", "spark://", "k8s://", "mesos://")
    if not (value in ("local", "yarn") or value.startswith(schemes)):
        refuse("must be a Spark master: local[N], spark://host:port, yarn or k8s://...")
    return value


class Engine(Schema):
    """Where ingest, split and features run (conf/engine/): Polars in this process,
    or Spark (`recsys_cli/spark/`), whose shards run the same Polars code."""

    name: Literal["polars", "spark"]
    master: Annotated[str, AfterValidator(_master)] | None = optional()
    rows_per_task: Annotated[Int, Field(ge=1_000, le=1_000_000_000)] | None = optional()
    conf: dict[Text, Scalar] | None = optional()

    @model_validator(mode="after")
    def _spark_only(self) -> Engine:
        if self.name == "polars":
            for key in ("master", "rows_per_task", "conf"):
                if getattr(self, key):
                    fail(key, getattr(self, key), "is a Spark setting; choose engine=spark to use it")
        elif not self.master:
            fail("master", self.master, "engine=spark needs a master (local[2], spark://host:7077, yarn...)")
        return self


Action = Literal["drop", "hash"]
Table = Literal["events", "items", "users"]


class Pii(Schema):
    """Pseudonymisation key and personal columns (`data/pseudonymise.py`, `data/personal.py`)."""

    key_env: Annotated[str, AfterValidator(_env_name)]
    allow_development_key: bool
    min_key_length: Annotated[Int, Field(ge=16)]
    personal_columns: dict[Text, Action] | None = optional()
    # Slice C (personal data): see conf/pii/development.yaml and data/personal.py.
    fail_closed: bool = optional()
    personal_patterns: dict[Action, list[Text]] | None = optional()
    personal_patterns_by_table: dict[Table, dict[Action, list[Text]]] | None = optional()
    safe_columns: dict[Table, list[Text]] | None = optional()


# --------------------------------------------------------------------------- data


class Timestamp(Schema):
    unit: Literal["s", "ms", "us", "iso"] = optional()
    format: Text | None = optional()


class RawTable(Schema):
    """One raw table of a tabular source (`data/sources/base.py:TableSpec`)."""

    files: Annotated[list[Text], Field(min_length=1)] = optional()
    format: Literal["csv", "jsonl", "parquet"] = optional()
    separator: Annotated[str, Field(min_length=1, max_length=1)] = optional()
    quote_char: Annotated[str, Field(min_length=1, max_length=1)] | None = optional()
    has_header: bool = optional()
    raw_columns: Annotated[list[Text], Field(min_length=1)] | None = optional()
    columns: dict[str, Text] = optional()
    constants: dict[str, Scalar] = optional()
    event_types: dict[str, EventType] | None = optional()
    timestamp: Timestamp = optional()
    keep: list[Text] = optional()
    rating_scale: Annotated[list[float], Field(min_length=2, max_length=2)] | None = optional()  # (low, high)


# Shocks after a date (`data/synth_shocks.py`), local copies of its names so that
# validating a config never imports the generator; a test keeps them equal. The
# generator checks what needs the rest of the config (start_day < n_days, a
# category index < n_categories, the new products' shares adding up below 1).
SHOCK_KEYS = {  # kind: (required keys, optional keys)
    "category_surge": (("start_day", "category", "factor"), ()),
    "price_shift": (("start_day", "factor"), ("category",)),
    "new_products": (("start_day", "count", "share"), ("category",)),
    "taste_change": (("start_day", "segment"), ("categories",)),
}


def _category(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.startswith("cat_") and value[4:].isdigit():
        return value
    raise PydanticCustomError("category", "must be a category index (3) or its name in items.csv (cat_03)")


ShockCategory = Annotated[Any, BeforeValidator(_category)]


class Segment(Schema):
    """Users a taste change moves: every attribute named must match."""

    age_bucket: Literal["18-24", "25-34", "35-44", "45-54", "55+"] = optional()
    gender: Literal["F", "M", "X"] = optional()
    region: Literal["north", "south", "east", "west", "central"] = optional()


class Shock(Schema):
    """One shock of `generator.shocks`; which keys it takes depends on its kind."""

    kind: Literal[tuple(SHOCK_KEYS)]  # type: ignore[valid-type]
    start_day: Annotated[Int, Field(ge=1, le=36_500)]
    category: ShockCategory | None = optional()
    factor: Annotated[float, Field(gt=0, le=1_000)] = optional()
    count: Annotated[Int, Field(ge=1, le=1_000_000)] = optional()
    share: OpenUnit = optional()
    segment: Segment = optional()
    categories: Annotated[list[ShockCategory], Field(min_length=1)] | None = optional()

    @model_validator(mode="after")
    def _keys_of_its_kind(self) -> Shock:
        required, optional_keys = SHOCK_KEYS[self.kind]
        keys = ("kind", *required, *optional_keys)
        for key in sorted(self.model_fields_set - set(keys)):
            fail(key, getattr(self, key), f"is not a key of a {self.kind} shock (its keys: {', '.join(keys)})")
        for key in required:
            if getattr(self, key) is None:
                fail(key, None, f"is required for a {self.kind} shock")
        if self.kind == "category_surge" and self.factor is not None and self.factor < 1:
            fail("factor", self.factor, "must be >= 1 for a category_surge (it multiplies the category's share)")
        if self.segment is not None and not self.segment.model_fields_set:
            fail("segment", {}, "must name one or more of age_bucket, gender, region")
        return self


class Generator(Schema):
    """Size and behaviour of the synthetic shop (`data/synth.py:SynthConfig`)."""

    # Upper bounds keep a typo (an extra zero or six) from running for days or
    # allocating past any machine's memory; far above what a demo or benchmark needs.
    n_events: Annotated[Int, Field(ge=1, le=10**10)] = optional()
    n_days: Annotated[Int, Field(ge=1, le=36_500)] = optional()
    start: Day = optional()
    n_users: Annotated[Int, Field(ge=0, le=10**8)] = optional()  # 0: derived from n_events
    n_items: Annotated[Int, Field(ge=0, le=10**8)] = optional()
    n_categories: Annotated[Int, Field(ge=1, le=10_000)] = optional()
    n_brands: Annotated[Int, Field(ge=1, le=10**6)] = optional()
    n_clusters: Annotated[Int, Field(ge=1, le=1_000)] = optional()
    new_item_share: Probability = optional()
    drift: Probability = optional()
    favourite_share: Probability = optional()
    duplicate_share: Annotated[float, Field(ge=0, lt=1)] = optional()
    dirty_share: Probability = optional()
    seed: Annotated[Int, Field(ge=0)] = optional()
    events_per_user: Annotated[float, Field(ge=1)] = optional()  # sizes users and items where n_users / n_items are 0
    events_per_item: Annotated[float, Field(ge=1)] = optional()
    popularity_shape: Annotated[float, Field(gt=0, le=100)] = optional()
    # Clickstream knobs (data/synth_clickstream.py); the defaults are the original shop's funnel.
    views_per_session: Annotated[float, Field(ge=0, le=1_000)] = optional()  # 0: the shop's 2.4 (otherwise >= 1)
    click_share: Probability = optional()
    cart_scale: Annotated[float, Field(ge=0, le=100)] = optional()
    casual_share: Probability = optional()
    complement_share: Probability = optional()
    n_complements: Annotated[Int, Field(ge=1, le=1_000)] = optional()
    retarget_share: Probability = optional()
    retarget_boost: Annotated[float, Field(ge=0, le=100)] = optional()
    layout: Literal["shop", "retailrocket"] = optional()
    shocks: list[Shock] = optional()  # sudden changes from a day on (data/synth_shocks.py); none by default

    @field_validator("views_per_session")
    @classmethod
    def _a_session_has_a_view(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < 1:
            refuse("must be 0 (the shop's default) or at least 1: every session has a view")
        return value


class _Source(Schema):
    name: Name
    description: str = optional()
    path: Text


class TabularSource(_Source):
    target_: Literal["recsys_cli.data.sources.tabular.TabularSource"] = Field(alias="_target_")
    events: RawTable
    items: RawTable | None = optional()
    users: RawTable | None = optional()


class SynthSource(TabularSource):
    target_: Literal["recsys_cli.data.sources.synth.SynthSource"] = Field(alias="_target_")  # type: ignore[assignment]
    generator: Generator | None = optional()


class MovieLensSource(_Source):
    target_: Literal["recsys_cli.data.sources.movielens.MovieLensSource"] = Field(alias="_target_")


class RetailRocketSource(_Source):
    target_: Literal["recsys_cli.data.sources.retailrocket.RetailRocketSource"] = Field(alias="_target_")


class SynthRetailRocketSource(RetailRocketSource):
    target_: Literal["recsys_cli.data.sources.synth.SynthRetailRocketSource"] = Field(alias="_target_")  # type: ignore[assignment]
    generator: Generator | None = optional()


Data = by_target(
    "data source", [TabularSource, SynthSource, MovieLensSource, RetailRocketSource, SynthRetailRocketSource]
)


class IngestRules(Schema):
    """`validation` of conf/ingest.yaml (`data/ingest.py:Rules`)."""

    max_bad_fraction: Probability
    min_ts: Instant
    max_future_days: NonNegative
    window_rows: PositiveInt


# --------------------------------------------------------------------------- split, target, features


class GlobalTemporal(Schema):
    target_: Literal["recsys_cli.splits.global_temporal.GlobalTemporalSplitter"] = Field(alias="_target_")
    name: Name
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = optional()
    test_fraction: OpenUnit = optional()
    val_cutoff: Instant | None = optional()
    test_cutoff: Instant | None = optional()
    train_days: Positive | None = optional()

    @model_validator(mode="after")
    def _fit_together(self) -> GlobalTemporal:
        if self.val_fraction is not None and self.test_fraction is not None:
            if self.val_fraction + self.test_fraction >= 1:
                fail("test_fraction", self.test_fraction, f"must be below 1 - val_fraction ({self.val_fraction})")
        if self.val_cutoff and self.test_cutoff and _utc(self.val_cutoff) > _utc(self.test_cutoff):
            fail("val_cutoff", self.val_cutoff, f"must not be after test_cutoff {self.test_cutoff}")
        return self


def _utc(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class LeaveLastN(Schema):
    target_: Literal["recsys_cli.splits.leave_last_n.LeaveLastNSplitter"] = Field(alias="_target_")
    name: Name
    n: PositiveInt = optional()
    val_n: Count = optional()


class RollingOrigin(Schema):
    target_: Literal["recsys_cli.splits.rolling_origin.RollingOriginSplitter"] = Field(alias="_target_")
    name: Name
    n_folds: PositiveInt = optional()
    test_days: Positive = optional()
    val_days: NonNegative = optional()
    train_days: Positive | None = optional()


Split = by_target("splitter", [GlobalTemporal, LeaveLastN, RollingOrigin])


class Target(Schema):
    """What counts as a positive (`splits/targets.py:TargetSpec`)."""

    name: Name
    positive_events: Events
    min_value: float | None = optional()
    exclude_seen: bool = optional()
    seen_events: Events | None = optional()


class Features(Schema):
    """Point-in-time features (`features/build.py:FeatureConfig`)."""

    name: Name
    weights: dict[EventType, NonNegative | Literal["value"]] = optional()
    half_life_days: Positive | None = optional()
    dedup: Literal["sum", "max", "last"] = optional()
    max_len: Annotated[Int, Field(ge=1, le=100_000)] = optional()
    windows_days: Annotated[list[Positive], Field(min_length=1)] = optional()
    vocab_min_count: PositiveInt = optional()
    vocab_columns: list[Text] = optional()
    ranker_windows: Count = optional()
    ranker_label_days: Positive = optional()
    ranker_stride_days: Positive = optional()

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        """Each weight is a number >= 0 or `value` (the event's own value)."""
        for event, weight in (value or {}).items() if isinstance(value, dict) else ():
            if weight != "value" and (isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0):
                fail(str(event), weight, "must be a number >= 0 or 'value'")
        return value


# --------------------------------------------------------------------------- trainer


PRECISIONS = ("auto", "64", "32", "16", "bf16", "64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed")


def _precision(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and str(value) in PRECISIONS:
        return str(value)
    return value


def _devices(value: Any) -> Any:
    """A count, -1 (all), 'auto', or a list of device indices."""
    if value == "auto" or value == -1 or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    if isinstance(value, list) and value and all(type(v) is int and v >= 0 for v in value):
        return value
    raise PydanticCustomError("devices", "must be a count >= 1, -1 (all), 'auto' or a list of device indices")


class Trainer(Schema):
    """Lightning Trainer keywords (conf/trainer/); the fit itself sets callbacks,
    checkpointing and, unless asked, the logger."""

    max_epochs: PositiveInt
    min_epochs: Count | None = optional()
    max_steps: Annotated[Int, Field(ge=-1)] = optional()
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"] = optional()
    devices: Annotated[Any, BeforeValidator(_devices)] = optional()
    precision: Annotated[Literal[PRECISIONS], BeforeValidator(_precision)] = optional()  # type: ignore[valid-type]
    enable_progress_bar: bool = optional()
    enable_model_summary: bool = optional()
    log_every_n_steps: PositiveInt = optional()
    check_val_every_n_epoch: PositiveInt = optional()
    num_sanity_val_steps: Annotated[Int, Field(ge=-1)] = optional()
    gradient_clip_val: NonNegative | None = optional()
    gradient_clip_algorithm: Literal["norm", "value"] = optional()
    accumulate_grad_batches: PositiveInt = optional()
    deterministic: bool | Literal["warn"] = optional()
    benchmark: bool = optional()
    logger: bool = optional()
    # The strategies the shared fit supports: its loaders shard themselves across DDP
    # ranks and its validation metric is gathered over them (models/sharding.py).
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true"] = optional()
    num_nodes: PositiveInt = optional()

    @model_validator(mode="after")
    def _epochs(self) -> Trainer:
        if self.min_epochs is not None and self.min_epochs > self.max_epochs:
            fail("min_epochs", self.min_epochs, f"must not exceed max_epochs ({self.max_epochs})")
        return self


# --------------------------------------------------------------------------- ann


class AnnHnsw(Schema):
    M: PositiveInt
    ef_construction: PositiveInt
    ef_search: PositiveInt


class AnnIvf(Schema):
    nlist: PositiveInt
    nprobe: PositiveInt

    @model_validator(mode="after")
    def _probes_lists(self) -> AnnIvf:
        if self.nprobe > self.nlist:
            fail("nprobe", self.nprobe, f"must be at most nlist ({self.nlist}): a query cannot scan more lists")
        return self


class Ann(Schema):
    """conf/ann/: the nearest-neighbour index over an embedding model's item vectors
    (`serving/ann.py:AnnSpec`), built and measured when a model is exported."""

    kind: Literal["auto", "exact", "hnsw", "ivf"]
    exact_below: Count
    hnsw: AnnHnsw
    ivf: AnnIvf
    recall_sample_users: PositiveInt
    k: PositiveInt
    min_recall: Annotated[float, Field(ge=0.0, le=1.0)]


# --------------------------------------------------------------------------- eval


class TrainEval(Schema):
    """`eval` of conf/train.yaml: the cut-offs `recsys train` reports."""

    ks: Annotated[list[PositiveInt], Field(min_length=1)]
    batch_users: PositiveInt


class Bootstrap(Schema):
    resamples: Resamples
    confidence: OpenUnit
    seed: Annotated[Int, Field(ge=0)]


class Calibration(Schema):
    bins: PositiveInt


class Segments(Schema):
    user_attributes: list[Text]
    activity_edges: list[Annotated[Int, Field(ge=2)]]
    max_groups: PositiveInt

    @field_validator("activity_edges")
    @classmethod
    def _increasing(cls, edges: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            refuse("must increase strictly")
        return edges


class Thresholds(Schema):
    max_relative_gap: NonNegative | None = optional()
    gap_attributes: list[Text] = optional()
    min_group_users: PositiveInt = optional()
    min_exposure_ratio: NonNegative | None = optional()
    max_exposure_ratio: Positive | None = optional()
    min_interaction_share: Probability = optional()


class Eval(Schema):
    """conf/eval/: how `recsys evaluate` judges a run."""

    ks: Annotated[list[PositiveInt], Field(min_length=1)]
    primary: Text
    users: Literal["all", "warm"]
    bootstrap: Bootstrap
    calibration: Calibration
    new_item_days: NonNegative
    popularity_tiers: dict[Text, OpenUnit]
    segments: Segments
    thresholds: Thresholds

    @model_validator(mode="after")
    def _consistent(self) -> Eval:
        from recsys_cli.evaluation.metrics import RANKING_METRICS

        name, _, k = self.primary.partition("@")
        if name not in RANKING_METRICS or not k.isdigit() or int(k) not in self.ks:
            fail("primary", self.primary, f"must be one of {'/'.join(RANKING_METRICS)} @ one of eval.ks {self.ks}")
        cuts = list(self.popularity_tiers.values())
        if any(b <= a for a, b in zip(cuts, cuts[1:], strict=False)):
            fail("popularity_tiers", self.popularity_tiers, "cuts must increase strictly (head first)")
        return self


# --------------------------------------------------------------------------- logger


class Logger(Schema):
    """conf/logger/: where `recsys train` and sweep trials are reported besides the
    run folder (recsys_cli/tracking/). `none` has no other key."""

    name: Literal["none", "mlflow"]
    tracking_uri: Text = optional()
    artifact_location: Text | None = optional()
    experiment_name: Text = optional()
    run_name: Text | None = optional()

    @model_validator(mode="after")
    def _complete(self) -> Logger:
        keys = ("tracking_uri", "artifact_location", "experiment_name", "run_name")
        given = [key for key in keys if getattr(self, key) is not None]
        if self.name == "none" and given:
            fail(given[0], getattr(self, given[0]), "is for logger=mlflow (logger=none reports nowhere)")
        if self.name == "mlflow":
            for key in ("tracking_uri", "experiment_name"):
                if getattr(self, key) is None:
                    fail(key, None, "is required for logger=mlflow")
        return self


# --------------------------------------------------------------------------- registry


class Registry(Schema):
    """conf/registry/: where packages are pushed and resolved from (`registry/store.py`)."""

    uri: Text
    storage_options: dict[Text, Any]
    cache_dir: Text | None
