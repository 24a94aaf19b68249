"""What counts as a correct recommendation in a period, and for whom.

The user chooses which events are positives (purchases and carts; for
MovieLens all ratings, or ratings of 4 and up), whether items the user already
interacted with before the period are excluded from the ground truth, and the
evaluated users: those with history before the period ("warm"); users without
any are cold-start and reported apart.

What is excluded as "already seen" is excluded on both sides: the feature set
records it per (user, item) pair (`excluded`), models never recommend those
items, and the ground truth never counts them. A shop that wants viewed items
recommended again (re-targeting) lists only carts and purchases as seen; one
that wants discovery only lists every event type (conf/target/engagement_new).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import polars as pl

from recsys_cli.data.schema import EVENT_TYPES, Col
from recsys_cli.errors import ConfigError
from recsys_cli.features.context import context
from recsys_cli.splits.base import PART, TEST, TRAIN, VAL

COLD = "cold"


@dataclass(frozen=True)
class TargetSpec:
    name: str = "purchases"
    positive_events: Sequence[str] = field(default_factory=lambda: ["purchase"])
    min_value: float | None = None
    exclude_seen: bool = True
    seen_events: Sequence[str] | None = None

    def __post_init__(self) -> None:
        unknown = sorted((set(self.positive_events) | set(self.seen_events or [])) - set(EVENT_TYPES))
        if unknown or not self.positive_events:
            raise ConfigError(f"target: unknown or empty event types {unknown}; known: {list(EVENT_TYPES)}")

    @classmethod
    def from_config(cls, node: Any) -> TargetSpec:
        """The composed `target` group (split and features read the same one); a
        key the spec does not know is one line naming it, not a TypeError."""
        from omegaconf import OmegaConf

        values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
        assert isinstance(values, dict)
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in values if k not in known)
        if unknown:
            raise ConfigError(f"target: unknown key(s) {unknown}; known: {known}")
        return cls(**{str(k): v for k, v in values.items()})

    def is_seen(self) -> pl.Expr:
        """Events that make an item "already seen": by default the positive event
        types, so a purchase after a view of the same item still counts."""
        return pl.col(Col.EVENT).cast(pl.String).is_in(list(self.seen_events or self.positive_events))

    def excluded(self) -> pl.Expr:
        """History events that take an item out of both the user's ground truth and
        the user's recommendations: the seen events with `exclude_seen`, none without."""
        return self.is_seen() if self.exclude_seen else pl.lit(False)

    def is_positive(self) -> pl.Expr:
        expr = pl.col(Col.EVENT).cast(pl.String).is_in(list(self.positive_events))
        if self.min_value is not None:
            expr = expr & (pl.col(Col.VALUE) >= self.min_value)
        return expr


def history_parts(part: str) -> list[str]:
    """The parts a model may have seen before being scored on `part`: val is
    scored after training on train; test after refitting on train and val."""
    return [TRAIN] if part == VAL else [TRAIN, VAL]


def ground_truth(assigned: pl.LazyFrame, spec: TargetSpec, part: str = TEST) -> pl.LazyFrame:
    """Distinct (user, item) positives of `part`, each flagged `cold` when the user
    has no event at all in its history parts, with the time of the first positive
    and its context (hour of day, day of week): what a ranker knows when asked.

    With `exclude_seen`, items the user already had a `seen_events` event with in
    the history are dropped: recommending them again is not a discovery, and the
    models do not (the feature set's `seen` column, from the same `excluded`).
    """
    history = assigned.filter(pl.col(PART).is_in(history_parts(part)))
    positives = (
        assigned.filter((pl.col(PART) == part) & spec.is_positive())
        .group_by(Col.USER, Col.ITEM)
        .agg(pl.col(Col.TS).min())
        .with_columns(context(Col.TS))
    )
    seen = history.filter(spec.excluded()).select(Col.USER, Col.ITEM).unique()
    positives = positives.join(seen, on=[Col.USER, Col.ITEM], how="anti", maintain_order="left")
    warm = history.select(Col.USER).unique().with_columns(pl.lit(False).alias(COLD))
    return (
        positives.join(warm, on=Col.USER, how="left", maintain_order="left")
        .with_columns(pl.col(COLD).fill_null(True))
        .sort(Col.USER, Col.ITEM)
    )
