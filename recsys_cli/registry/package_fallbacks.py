"""Popularity fallbacks of a package: what a service answers when a model cannot
(a user it never met, a model that timed out), from the run's own history.

Every table is computed from the events before the run's cutoff (the history its
features were built from, `tasks/export.py`) over the items the model knows, so a
fallback never proposes an item the item table lacks, nor anything the run could
not have seen. Items are ranked by distinct users, then events, then item id:

    global.parquet       the whole history
    recent.parquet       the last `recent_days` before the cutoff
    hour_of_day.parquet  per `hour_of_day` (0-23, UTC) the events happened at (`features/context.py`)
    segments.parquet     per `segment` (a demographic column of the lake's user table) and its `value`

Each row: the keys, `item_id`, `users`, `events`, `rank` (1 = best), at most
`top_n` rows per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.features.context import context

GLOBAL, RECENT, HOURLY, SEGMENTS = "global", "recent", "hour_of_day", "segments"
HOUR = "hour_of_day"
SEGMENT, VALUE = "segment", "value"
USERS, EVENTS, RANK = "users", "events", "rank"


def popularity(events: pl.LazyFrame, by: Sequence[str], top_n: int) -> pl.LazyFrame:
    """The `top_n` items per group of `by` (all events when empty): distinct users,
    events and rank, best first."""
    by = list(by)
    counted = events.group_by([*by, Col.ITEM]).agg(
        pl.col(Col.USER).n_unique().cast(pl.UInt32).alias(USERS), pl.len().cast(pl.UInt32).alias(EVENTS)
    )
    ordered = counted.sort([*by, USERS, EVENTS, Col.ITEM], descending=[*(False for _ in by), True, True, False])
    position = pl.int_range(1, pl.len() + 1, dtype=pl.UInt32)
    ranked = ordered.with_columns((position.over(by) if by else position).alias(RANK))
    return ranked.filter(pl.col(RANK) <= top_n).select(*by, Col.ITEM, USERS, EVENTS, RANK)


def fallback_tables(
    history: pl.LazyFrame,
    users: pl.LazyFrame | None,
    item_tokens: Sequence[str],
    cutoff: datetime,
    recent_days: float,
    segments: Sequence[str],
    top_n: int,
    event_types: Sequence[str] | None = None,
) -> dict[str, pl.DataFrame]:
    """The four tables of the module docstring, collected together. `history` holds
    only events before `cutoff`; `event_types` (None: all) narrows what counts;
    segment columns the user table lacks are left out, never invented."""
    known = pl.LazyFrame({Col.ITEM: list(item_tokens[1:])}, schema={Col.ITEM: pl.String})
    events = history.select(Col.USER, Col.ITEM, Col.EVENT, Col.TS).join(known, on=Col.ITEM, how="semi")
    if event_types is not None:
        events = events.filter(pl.col(Col.EVENT).cast(pl.String).is_in(list(event_types)))
    since = pl.lit(cutoff - timedelta(days=recent_days), dtype=Timestamp)
    tables = {
        GLOBAL: popularity(events, [], top_n),
        RECENT: popularity(events.filter(pl.col(Col.TS) >= since), [], top_n),
        HOURLY: popularity(events.with_columns(context()).filter(pl.col(HOUR).is_not_null()), [HOUR], top_n),
        SEGMENTS: _segments(events, users, segments, top_n),
    }
    return dict(zip(tables, pl.collect_all(list(tables.values())), strict=True))


def segment_columns(users: pl.LazyFrame | None, wanted: Sequence[str]) -> list[str]:
    """The wanted demographic columns the lake's user table has, in the order asked."""
    if users is None:
        return []
    names = set(users.collect_schema().names())
    return [c for c in wanted if c in names and c != Col.USER]


def _segments(events: pl.LazyFrame, users: pl.LazyFrame | None, wanted: Sequence[str], top_n: int) -> pl.LazyFrame:
    """Popularity per value of each segment column, one long table (`segment`, `value`)."""
    columns = segment_columns(users, wanted)
    empty = pl.LazyFrame(
        schema={SEGMENT: pl.String, VALUE: pl.String, Col.ITEM: pl.String, USERS: pl.UInt32, EVENTS: pl.UInt32}
        | {RANK: pl.UInt32}
    )
    if users is None or not columns:
        return empty
    parts = []
    for column in columns:
        labelled = users.select(Col.USER, pl.col(column).cast(pl.String).alias(VALUE)).filter(
            pl.col(VALUE).is_not_null()
        )
        counted = popularity(events.join(labelled, on=Col.USER, how="inner"), [VALUE], top_n)
        parts.append(counted.select(pl.lit(column).alias(SEGMENT), pl.all()))
    return pl.concat(parts).sort(SEGMENT, VALUE, RANK)
