"""Schema of conf/sweep/: the search space (parsed by `sweep/search_space.py`, the
one place its rules live), the objective, and Optuna's sampler and pruner, of
which only the listed classes and keywords are accepted. The seed of a sampler
comes from the sweep's `seed` and is not a key here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from recsys_cli.errors import ConfigError
from recsys_cli.schemas._base import (
    Count,
    Int,
    Name,
    Positive,
    PositiveInt,
    Probability,
    Schema,
    Text,
    by_target,
    optional,
)

Direction = Literal["maximize", "minimize"]


class TPESampler(Schema):
    target_: Literal["optuna.samplers.TPESampler"] = Field(alias="_target_")
    n_startup_trials: Count = optional()
    n_ei_candidates: PositiveInt = optional()
    multivariate: bool = optional()
    group: bool = optional()
    constant_liar: bool = optional()
    consider_endpoints: bool = optional()
    prior_weight: Positive = optional()
    warn_independent_sampling: bool = optional()


class RandomSampler(Schema):
    target_: Literal["optuna.samplers.RandomSampler"] = Field(alias="_target_")


class GridSampler(Schema):
    """Partial: the sweep passes the grid built from `sweep.params`."""

    target_: Literal["optuna.samplers.GridSampler"] = Field(alias="_target_")
    partial: Literal[True] = Field(alias="_partial_")


class NSGAIISampler(Schema):
    target_: Literal["optuna.samplers.NSGAIISampler"] = Field(alias="_target_")
    population_size: Annotated[Int, Field(ge=2)] = optional()
    mutation_prob: Probability | None = optional()
    crossover_prob: Probability = optional()
    swapping_prob: Probability = optional()


class NopPruner(Schema):
    target_: Literal["optuna.pruners.NopPruner"] = Field(alias="_target_")


class MedianPruner(Schema):
    target_: Literal["optuna.pruners.MedianPruner"] = Field(alias="_target_")
    n_startup_trials: Count = optional()
    n_warmup_steps: Count = optional()
    interval_steps: PositiveInt = optional()
    n_min_trials: PositiveInt = optional()


class HyperbandPruner(Schema):
    target_: Literal["optuna.pruners.HyperbandPruner"] = Field(alias="_target_")
    min_resource: PositiveInt = optional()
    max_resource: PositiveInt | Literal["auto"] = optional()
    reduction_factor: Annotated[Int, Field(ge=2)] = optional()
    bootstrap_count: Count = optional()

    @field_validator("max_resource", mode="before")
    @classmethod
    def _resource(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise PydanticCustomError("resource", "must be 'auto' or a whole number of epochs >= 1")


Sampler = by_target("sampler", [TPESampler, RandomSampler, GridSampler, NSGAIISampler])
Pruner = by_target("pruner", [NopPruner, MedianPruner, HyperbandPruner])


class Sweep(Schema):
    """One search: its objective, searched keys, fixed overrides and first trials.
    Metric names and their k are checked against eval.ks when the sweep starts."""

    name: Name
    metrics: Annotated[list[Text], Field(min_length=1)] | Text
    directions: Annotated[list[Direction], Field(min_length=1)] | Direction = optional()
    fixed: list[Text] | None = optional()
    params: dict[Text, Any]
    enqueue: list[dict[Text, Any]] | None = optional()
    sampler: Sampler  # type: ignore[valid-type]
    pruner: Pruner  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _space(self) -> Sweep:
        """The search space and the enqueued trials, by the parser every sweep uses."""
        from recsys_cli.sweep.search_space import SearchSpace

        try:
            space = SearchSpace.from_config(self.params)
            space.check_enqueued(self.enqueue or [])
        except ConfigError as exc:
            raise PydanticCustomError("as_is", "{message}", {"message": str(exc)}) from None
        return self
