"""A tiny hand-written shop log turned into a feature set in memory, for the
clickstream models' specifications: events are (user, item, event type, minute)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.data import TrainData, interaction_matrix

START = datetime(2026, 3, 1)
WEIGHTS = {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}

Event = tuple[str, str, str, float]


def shop(events: list[Event], categories: dict[str, str] | None = None) -> TrainData:
    """A feature set of `events` (minutes after a fixed start): interaction weights
    by event type, sequences oldest first with types, times and gaps, and an item
    table with each item's category (items of `categories` never met included)."""
    log = pl.DataFrame(events, schema=[Col.USER, Col.ITEM, Col.EVENT, "minute"], orient="row").with_columns(
        (pl.lit(START) + pl.duration(seconds=pl.col("minute") * 60)).dt.replace_time_zone("UTC").alias(Col.TS),
        pl.col(Col.EVENT).replace_strict(WEIGHTS, default=0.0, return_dtype=pl.Float64).alias("weight"),
    )
    categories = categories or {}
    catalogue = sorted(set(log[Col.ITEM]) | set(categories))
    inter = log.group_by(Col.USER, Col.ITEM).agg(pl.col("weight").sum())
    users = Vocabulary.fit(log[Col.USER])
    items = Vocabulary.fit(pl.Series(catalogue))
    item_features = pl.DataFrame(
        {Col.ITEM: catalogue, Col.CATEGORY: [categories.get(i) for i in catalogue]},
        schema={Col.ITEM: pl.String, Col.CATEGORY: pl.String},
    )
    sequences = (
        log.sort("minute", maintain_order=True)
        .group_by(Col.USER, maintain_order=True)
        .agg(pl.col(Col.ITEM).alias("items"), pl.col(Col.EVENT).alias("event_types"), pl.col(Col.TS).alias("ts"))
        .with_columns(pl.col("ts").list.eval(pl.element().diff().dt.total_seconds().fill_null(0)).alias("gaps_s"))
        .sort(Col.USER)
    )
    vocab = {Col.USER: users, Col.ITEM: items, Col.CATEGORY: Vocabulary.fit(item_features[Col.CATEGORY])}
    return TrainData(
        users, items, interaction_matrix(inter, users, items), None, item_features, sequences, vocabularies=vocab
    )


def ranked(model: object, data: TrainData, user: str, k: int = 3, exclude_seen: bool = True) -> list[str]:
    """The user's top-k item ids, best first."""
    row = data.user_index(pl.Series([user]))
    top, _ = model.recommend(row, k, exclude_seen=exclude_seen)  # type: ignore[attr-defined]
    return [data.items.tokens[i] for i in np.asarray(top)[0]]


def minutes(days: float) -> float:
    return timedelta(days=days).total_seconds() / 60
