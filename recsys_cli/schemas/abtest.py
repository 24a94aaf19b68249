"""Schema of conf/abtest.yaml and its groups: the simulated experiment, the click
model with its funnel, and the sequential test."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from recsys_cli.abtest.experiment import RATIO_METRICS
from recsys_cli.schemas._base import (
    Int,
    NonNegative,
    OpenUnit,
    Positive,
    Probability,
    Resamples,
    Schema,
    Seed,
    Text,
    by_target,
    fail,
    optional,
)
from recsys_cli.schemas.groups import Events

RatioMetric = Literal[tuple(RATIO_METRICS)]  # type: ignore[valid-type]


class Funnel(Schema):
    """Click, cart and purchase propensities (`abtest/funnel.py:FunnelSpec`)."""

    target_: Literal["recsys_cli.abtest.funnel.FunnelSpec"] = Field(alias="_target_")
    click_events: Events = optional()
    cart_events: Events = optional()
    purchase_events: Events = optional()
    prior_strength: Positive = optional()
    affinity_prior: Positive = optional()
    holdout_fraction: OpenUnit = optional()
    ridge: NonNegative = optional()


class PositionBased(Schema):
    target_: Literal["recsys_cli.abtest.simulator.PositionBasedModel"] = Field(alias="_target_")
    eta: NonNegative = optional()
    funnel: Funnel | None = optional()


class Cascade(Schema):
    target_: Literal["recsys_cli.abtest.simulator.CascadeModel"] = Field(alias="_target_")
    continue_after_click: Probability = optional()
    patience: Probability = optional()
    funnel: Funnel | None = optional()


class FixedHorizon(Schema):
    target_: Literal["recsys_cli.abtest.sequential.FixedHorizon"] = Field(alias="_target_")
    alpha: OpenUnit = optional()


class MixtureSPRT(Schema):
    target_: Literal["recsys_cli.abtest.sequential.MixtureSPRT"] = Field(alias="_target_")
    alpha: OpenUnit = optional()
    relative_tau: Positive = optional()


Simulator = by_target("click model", [PositionBased, Cascade])
Sequential = by_target("sequential test", [FixedHorizon, MixtureSPRT])


class Assignment(Schema):
    salt: Text
    control: Annotated[float, Field(gt=0, le=1)]
    treatment: Annotated[float, Field(gt=0, le=1)]

    @model_validator(mode="after")
    def _shares(self) -> Assignment:
        if self.control + self.treatment > 1 + 1e-12:
            fail("treatment", self.treatment, f"control ({self.control}) and treatment must sum to at most 1")
        return self


class OffPolicy(Schema):
    action_events: Events
    reward_events: Events
    compare_with: RatioMetric  # type: ignore[valid-type]
    clip: Positive
    min_propensity: OpenUnit


class AbTest(Schema):
    part: Literal["val", "test"] | None
    slate_size: Annotated[Int, Field(ge=1, le=10_000)]
    exclude_seen: bool
    assignment: Assignment
    primary_metric: RatioMetric  # type: ignore[valid-type]
    alpha: OpenUnit
    power: OpenUnit
    target_lift: Positive
    resamples: Resamples
    offpolicy: OffPolicy
    simulator: Simulator  # type: ignore[valid-type]
    sequential: Sequential  # type: ignore[valid-type]


class AbTestConfig(Schema):
    """conf/abtest.yaml: `recsys abtest CONTROL TREATMENT`."""

    abtest: AbTest
    seed: Seed
