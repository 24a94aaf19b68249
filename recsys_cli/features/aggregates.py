"""User and item aggregates over trailing windows ending at the cutoff.

Every window is [cutoff - w days, cutoff); the history passed in already stops
before the cutoff, so nothing here can look past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from recsys_cli.data.schema import EVENT_TYPES, Col, Timestamp

ACTIVITY_LEVELS = ((5, "new"), (20, "casual"), (100, "regular"))  # fewer events than -> level; else "heavy"
LIST_PRICE = "_list_price"  # the catalogue's price, for events that carry none


def in_window(cutoff: datetime, days: float) -> pl.Expr:
    return pl.col(Col.TS) >= pl.lit(cutoff - timedelta(days=days), dtype=Timestamp)


def is_event(event: str) -> pl.Expr:
    return pl.col(Col.EVENT) == event


def window_counts(cutoff: datetime, windows: Sequence[float], events: Sequence[str] = EVENT_TYPES) -> list[pl.Expr]:
    """n_<event>_<w>d: events of each type in each trailing window."""
    return [
        (in_window(cutoff, w) & is_event(e)).sum().cast(pl.UInt32).alias(f"n_{e}_{w:g}d")
        for w in windows
        for e in events
    ]


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator)


def days_before(cutoff: datetime, ts: pl.Expr) -> pl.Expr:
    return (pl.lit(cutoff, dtype=Timestamp) - ts).dt.total_seconds() / 86_400


def user_aggregates(
    history: pl.LazyFrame, items: pl.LazyFrame | None, cutoff: datetime, windows: Sequence[float]
) -> pl.LazyFrame:
    """Behaviour of each user with history: volume per event type and window,
    funnel rates, spend, price and category affinity, recency, sessions, activity."""
    return user_behaviour(history.join(catalogue(items), on=Col.ITEM, how="left"), cutoff, windows)


def catalogue(items: pl.LazyFrame | None) -> pl.LazyFrame:
    """What `user_behaviour` reads of each event's item: its category and list price.

    Apart so that an engine holding the events in shards (Spark) joins it to the
    events before sharding them by user, as a small broadcast table."""
    wanted = {Col.CATEGORY: pl.String(), Col.PRICE: pl.Float64()}
    return _columns(items, wanted).rename({Col.PRICE: LIST_PRICE})


def user_behaviour(history: pl.LazyFrame, cutoff: datetime, windows: Sequence[float]) -> pl.LazyFrame:
    """`user_aggregates` of a history already joined with the `catalogue`. Per user:
    any subset of users (a shard) gives exactly those users' rows."""
    price = pl.coalesce(pl.col(Col.PRICE), pl.col(LIST_PRICE))
    bought = is_event("purchase")
    engaged = is_event("add_to_cart") | bought
    last = max(windows)
    per_window = []
    for w in windows:
        recent = in_window(cutoff, w)
        carts, buys, views = ((recent & is_event(e)).sum() for e in ("add_to_cart", "purchase", "view"))
        per_window += [
            ratio(carts - buys, carts).clip(0, 1).alias(f"cart_abandonment_{w:g}d"),
            ratio(buys, views).alias(f"conversion_{w:g}d"),
            (price * pl.col(Col.QUANTITY).fill_null(1)).filter(recent & bought).sum().alias(f"spend_{w:g}d"),
        ]
    level = pl.lit("heavy")
    for bound, name in reversed(ACTIVITY_LEVELS):
        level = pl.when(pl.len() < bound).then(pl.lit(name)).otherwise(level)
    aggregated = history.group_by(Col.USER).agg(
        pl.len().alias("events_total"),
        *window_counts(cutoff, windows),
        *per_window,
        price.filter(engaged).mean().alias("price_affinity"),
        pl.col(Col.CATEGORY).drop_nulls().mode().sort().first().alias("top_category"),
        days_before(cutoff, pl.col(Col.TS).max()).alias("recency_days"),
        ratio(pl.col(Col.SESSION).is_not_null().sum(), pl.col(Col.SESSION).drop_nulls().n_unique()).alias(
            "events_per_session"
        ),
        pl.col(Col.TS).filter(in_window(cutoff, last)).dt.date().n_unique().alias(f"active_days_{last:g}d"),
        level.alias("activity_level"),
    )
    share = (
        history.filter(pl.col(Col.CATEGORY).is_not_null())
        .group_by(Col.USER, Col.CATEGORY)
        .len()
        .with_columns((pl.col("len") / pl.col("len").sum().over(Col.USER)).alias("top_category_share"))
        .rename({Col.CATEGORY: "top_category"})
        .drop("len")
    )
    return aggregated.join(share, on=[Col.USER, "top_category"], how="left").sort(Col.USER)


def item_aggregates(
    history: pl.LazyFrame, items: pl.LazyFrame | None, cutoff: datetime, windows: Sequence[float]
) -> pl.LazyFrame:
    """Popularity per window and its trend, conversion, ratings, first and last
    event, and catalogue attributes of items launched before the cutoff (or with no launch date)."""
    return with_catalogue(item_behaviour(history, cutoff, windows), items, cutoff)


def item_behaviour(history: pl.LazyFrame, cutoff: datetime, windows: Sequence[float]) -> pl.LazyFrame:
    """The event-based part of `item_aggregates`, one row per item with history, unsorted.
    Per item: any subset of items (a shard) gives exactly those items' rows."""
    short, long = min(windows), max(windows)
    return (
        history.group_by(Col.ITEM)
        .agg(
            pl.len().alias("events_total"),
            *window_counts(cutoff, windows),
            in_window(cutoff, short).sum().alias("_short"),
            in_window(cutoff, long).sum().alias("_long"),
            ratio(is_event("purchase").sum(), is_event("view").sum()).alias("conversion"),
            pl.col(Col.VALUE).filter(is_event("rating")).mean().alias("avg_rating"),
            is_event("rating").sum().cast(pl.UInt32).alias("n_ratings"),
            # When the item first and last drew attention: new arrivals and fading
            # items, where a catalogue has no launch dates (MovieLens).
            days_before(cutoff, pl.col(Col.TS).min()).alias("first_seen_days"),
            days_before(cutoff, pl.col(Col.TS).max()).alias("last_seen_days"),
        )
        .with_columns(ratio(pl.col("_short") / short, pl.col("_long") / long).alias(f"trend_{short:g}d_vs_{long:g}d"))
        .drop("_short", "_long")
    )


def with_catalogue(counts: pl.LazyFrame, items: pl.LazyFrame | None, cutoff: datetime) -> pl.LazyFrame:
    """`item_behaviour` rows joined with the catalogue's items launched before the
    cutoff (items without events included), sorted by item."""
    if items is None:
        return counts.sort(Col.ITEM)
    if Col.LAUNCHED_AT in items.collect_schema().names():
        launched = pl.col(Col.LAUNCHED_AT)
        items = items.filter(launched.is_null() | (launched < pl.lit(cutoff, dtype=Timestamp))).with_columns(
            days_before(cutoff, launched).alias("age_days")
        )
    return items.join(counts, on=Col.ITEM, how="full", coalesce=True).sort(Col.ITEM)


def _columns(items: pl.LazyFrame | None, wanted: dict[str, pl.DataType]) -> pl.LazyFrame:
    """The item id and `wanted` columns of the catalogue, null where a source has none
    (MovieLens has no prices)."""
    if items is None:
        return pl.LazyFrame(schema={Col.ITEM: pl.String, **wanted})
    names = items.collect_schema().names()
    return items.select(
        Col.ITEM, *(pl.col(c).cast(t) if c in names else pl.lit(None, dtype=t).alias(c) for c, t in wanted.items())
    )
