"""What data drift compares: the features the model reads, as of two moments.

The reference is the model's own world: its training cutoff, the users and items
active in the `days` before it, with the point-in-time aggregates the feature set
computed there (`features/aggregates.py`, the same code and windows). The current
sample is the same computation at the lake's newest instant, over the users and
items active in its last `days`. Request context is what the events say about
visits: the hour and weekday they happened (UTC) and their event type.

Each table comes back without its id column: drift compares distributions, and
the pseudonyms would only be a column of unique strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.features.aggregates import item_aggregates, user_aggregates

CONTEXT_HOUR, CONTEXT_WEEKDAY = "hour", "weekday"


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def events(self, events: pl.LazyFrame) -> pl.LazyFrame:
        ts = pl.col(Col.TS)
        return events.filter((ts >= pl.lit(self.start, dtype=Timestamp)) & (ts < pl.lit(self.end, dtype=Timestamp)))

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class Windows:
    """The model's last days before its cutoff (reference), its first days after
    (fresh: what it scored when new), and the lake's newest days (current)."""

    reference: Window
    fresh: Window
    current: Window

    @classmethod
    def of(cls, cutoff: datetime, lake_end: datetime, days: int) -> Windows:
        span = timedelta(days=days)
        end = lake_end + timedelta(microseconds=1)  # the newest event is in the current window
        return cls(Window(cutoff - span, cutoff), Window(cutoff, cutoff + span), Window(end - span, end))

    def earlier_current(self, n: int) -> list[Window]:
        """Up to `n` windows of the same length before the current one, newest first,
        none starting before the fresh window: the points of drift over time."""
        span = self.current.end - self.current.start
        out = []
        for i in range(1, n + 1):
            start = self.current.start - i * span
            if start < self.fresh.start:
                break
            out.append(Window(start, start + span))
        return out

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"reference": self.reference.to_json(), "fresh": self.fresh.to_json(), "current": self.current.to_json()}


def feature_samples(
    events: pl.LazyFrame, items: pl.LazyFrame | None, window: Window, windows_days: Sequence[float]
) -> dict[str, pl.DataFrame]:
    """The user, item and request-context samples of one window (module docstring):
    `{"user": ..., "item": ..., "context": ...}`, ids dropped."""
    history = events.filter(pl.col(Col.TS) < pl.lit(window.end, dtype=Timestamp))
    active = window.events(events)
    users = active.select(Col.USER).unique()
    seen_items = active.select(Col.ITEM).unique()
    user = user_aggregates(history, items, window.end, list(windows_days)).join(users, on=Col.USER, how="semi")
    item = item_aggregates(history, items, window.end, list(windows_days)).join(seen_items, on=Col.ITEM, how="semi")
    context = active.select(
        pl.col(Col.TS).dt.hour().alias(CONTEXT_HOUR),
        pl.col(Col.TS).dt.weekday().alias(CONTEXT_WEEKDAY),
        pl.col(Col.EVENT).cast(pl.String),
    )
    frames = pl.collect_all([user.drop(Col.USER), item.drop(Col.ITEM), context], engine="streaming")
    return dict(zip(("user", "item", "context"), frames, strict=True))
