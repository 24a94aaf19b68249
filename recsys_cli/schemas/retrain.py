"""Schema of conf/retrain.yaml (`recsys retrain`) and its group conf/retrain/."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from recsys_cli.schemas._base import Count, Int, OpenUnit, Positive, Schema, Text, fail
from recsys_cli.schemas.groups import Pii, Registry

Distance = Annotated[float, Field(gt=0, le=1)]


class Append(Schema):
    raw: bool
    event_log: Text | None


class Window(Schema):
    eval_days: Positive
    val_days: Positive
    kind: Literal["growing", "fixed"]
    train_days: Positive

    @model_validator(mode="after")
    def _room_for_validation(self) -> Window:
        if self.kind == "fixed" and self.train_days <= self.val_days:
            fail("train_days", self.train_days, f"must exceed val_days ({self.val_days}) for a fixed window")
        return self


class FullWhen(Schema):
    unknown_item_event_share: Annotated[float, Field(gt=0, le=1)] | None
    category_js: Distance | None


class Warm(Schema):
    epochs: Count | None
    only_new: bool


class Policy(Schema):
    mode: Literal["auto", "warm", "full"]
    full_when: FullWhen
    warm: Warm


class Guard(Schema):
    metrics: Annotated[list[Text], Field(min_length=1)]
    primary: Text | None
    tolerance: Annotated[float, Field(ge=0, lt=1)]
    resamples: Annotated[Int, Field(ge=100, le=100_000)]
    confidence: OpenUnit

    @model_validator(mode="after")
    def _ranking_metrics(self) -> Guard:
        named = [("metrics", m) for m in self.metrics] + ([("primary", self.primary)] if self.primary else [])
        for key, name in named:
            metric, _, k = name.partition("@")
            if metric not in ("ndcg", "recall", "precision", "hitrate", "mrr", "map") or not k.isdigit() or int(k) < 1:
                fail(key, name, "must be a ranking metric at a cut-off: ndcg@10, recall@20, ...")
        return self


class AbTest(Schema):
    enabled: bool
    guard: bool
    overrides: list[Text]


class Retrain(Schema):
    """conf/retrain/: what a retrain trains on, how, and when it promotes."""

    append: Append
    window: Window
    policy: Policy
    guard: Guard
    abtest: AbTest
    keep_data: bool


class RetrainConfig(Schema):
    """conf/retrain.yaml (`recsys retrain`)."""

    registry: Registry
    pii: Pii
    retrain: Retrain
    model_name: Text | None
    alias: Text
    lake: Text | None
    out_dir: Text | None
    seed: Annotated[Int, Field(ge=0)]
