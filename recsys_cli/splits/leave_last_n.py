"""Leave-last-N per user: each user's last N events are test, the N before
them validation.

Kept for comparison with published numbers only. It leaks global time: one
user's test event can be older than another user's training events, so a model
can learn from the future of the catalogue (popularity, new items). Prefer the
global temporal or rolling-origin splits for decisions.
"""

from __future__ import annotations

import polars as pl

from recsys_cli.data.event_order import event_order
from recsys_cli.data.schema import Col
from recsys_cli.splits.base import PART, TEST, TRAIN, VAL, Events, Fold, Splitter


class LeaveLastNSplitter(Splitter):
    orders_ties = True

    def __init__(self, name: str = "leave_last_n", n: int = 1, val_n: int = 1) -> None:
        super().__init__(name)
        self.n = n
        self.val_n = val_n

    def folds(self, events: Events) -> list[Fold]:
        return [Fold("fold-0")]

    def assign(self, events: pl.LazyFrame, fold: Fold) -> pl.LazyFrame:
        """Rank each user's events from the newest, in `event_order` (ties in time
        by a hash of user and item, never by item id), so the split is the same on
        every run and agrees with the sequences models read."""
        order = event_order(events.collect_schema().names())
        ranked = events.sort(Col.USER, *order, descending=[False] + [True] * len(order)).with_columns(
            pl.int_range(pl.len(), dtype=pl.UInt32).over(Col.USER).alias("_from_end")
        )
        part = (
            pl.when(pl.col("_from_end") < self.n)
            .then(pl.lit(TEST))
            .when(pl.col("_from_end") < self.n + self.val_n)
            .then(pl.lit(VAL))
            .otherwise(pl.lit(TRAIN))
        )
        return ranked.with_columns(part.alias(PART)).drop("_from_end")
