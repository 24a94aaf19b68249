"""A feature set's stored sequences as one flat event log in index space, for the
clickstream models (category affinity, item transitions, recently viewed).

The sequences (`features/sequences.py`) hold each user's latest `features.max_len`
events, oldest first, with their types and times: exactly what a shop's cheap
models need (what came after what, how long ago, a view or a cart). Flattened
once into numpy arrays grouped by user, every model works on them vectorised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.models.data import TrainData

# Weight of each event type where a model's config names none: how much intent it shows.
DEFAULT_EVENT_WEIGHTS = {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "rating": 1.0}


@dataclass(frozen=True)
class EventLog:
    """Every stored sequence event with a known user and item, grouped by user
    (ascending index), oldest first within a user."""

    users: np.ndarray  # (n,) int64 user index
    items: np.ndarray  # (n,) int64 item index
    weights: np.ndarray  # (n,) float64 weight of the event's type
    events: np.ndarray  # (n,) str event type ("" where the sequences carry none)
    seconds: np.ndarray  # (n,) float64 epoch seconds (0 where the sequences carry no times)

    @property
    def now(self) -> float:
        """The latest event's time: the cutoff, as near as the history tells it."""
        return float(self.seconds.max()) if self.seconds.size else 0.0

    def age_days(self) -> np.ndarray:
        """Days from each event to the latest one in the log."""
        return (self.now - self.seconds) / 86_400.0


def event_log(data: TrainData, weights: Mapping[str, float] | None = None) -> EventLog:
    """The sequences of `data` flattened; event types missing from `weights` weigh 0.
    Sequences without types or times (data built in memory) count every event
    as weight 1 at one instant."""
    weights = DEFAULT_EVENT_WEIGHTS if weights is None else weights
    seqs = data.sequences
    if seqs is None or seqs.height == 0:
        empty = np.zeros(0, np.int64)
        return EventLog(empty, empty, np.zeros(0), np.zeros(0, dtype=str), np.zeros(0))
    lists = [c for c in ("items", "event_types", "ts") if c in seqs.columns]
    flat = seqs.select(Col.USER, *lists).explode(lists).drop_nulls("items")
    has_types, has_ts = "event_types" in flat.columns, "ts" in flat.columns
    flat = flat.select(
        pl.col(Col.USER),
        pl.col("items"),
        pl.col("event_types").cast(pl.String).fill_null("") if has_types else pl.lit("").alias("event_types"),
        (pl.col("ts").dt.epoch("ms").cast(pl.Float64) / 1000.0).fill_null(0.0) if has_ts else pl.lit(0.0).alias("ts"),
    )
    users, items = data.user_index(flat[Col.USER]), data.item_index(flat["items"])
    events = flat["event_types"].to_numpy().astype(str)
    if has_types:
        typed = pl.Series(events).replace_strict(
            list(weights), [float(w) for w in weights.values()], default=0.0, return_dtype=pl.Float64
        )
        w = typed.to_numpy()
    else:
        w = np.ones(flat.height)
    known = (users > 0) & (items > 0)
    # Users come sorted by id, not by index: a stable sort groups them by index and
    # keeps each user's events oldest first.
    order = np.argsort(users[known], kind="stable")
    pick = np.flatnonzero(known)[order]
    return EventLog(users[pick], items[pick], w[pick], events[pick], flat["ts"].to_numpy()[pick])


def recent_distinct(log: EventLog, last_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's `last_n` most recent distinct items: (user, item, rank), rank 0
    for the latest item, 1 for the one met before it, ..."""
    frame = pl.DataFrame({"u": log.users, "i": log.items, "p": np.arange(log.users.size)})
    latest = (
        frame.group_by("u", "i")
        .agg(pl.col("p").max())
        .with_columns((pl.col("p").rank("ordinal", descending=True).over("u") - 1).alias("rank"))
        .filter(pl.col("rank") < last_n)
    )
    return (
        latest["u"].to_numpy().astype(np.int64),
        latest["i"].to_numpy().astype(np.int64),
        latest["rank"].to_numpy().astype(np.int64),
    )


def decayed_popularity(log: EventLog, n_items: int, half_life_days: float | None) -> np.ndarray:
    """(n_items,) sum of event weights, each decayed by 0.5 ** (age / half-life)
    (no decay with None): what the shop is busy with now, not last quarter."""
    decay = 1.0 if half_life_days is None else np.power(0.5, log.age_days() / half_life_days)
    return np.bincount(log.items, weights=log.weights * decay, minlength=n_items)


def normalised(values: np.ndarray) -> np.ndarray:
    """`values` scaled to a maximum of 1 (all zeros stay zeros), float32."""
    top = float(values.max()) if values.size else 0.0
    return (values / top if top > 0 else np.zeros_like(values)).astype(np.float32)
