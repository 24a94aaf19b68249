"""How much of the shop the production model has never met, and how old it is.

A model knows the users and items of its training data only. The share of the
newest window's events by users it never met (they get popularity) and on items
it never met (it cannot recommend them) grows until the next retrain; so does
the share of new products, launched after its cutoff, that it cannot offer. The
service's own event log says the same about live traffic. The items whose share
of events moved most are listed with whether the model knows them: a rising item
without an embedding is demand the model cannot see.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.monitoring.samples import Window
from recsys_cli.serving.state import LiveEvent


def staleness(
    events: pl.LazyFrame,
    items: pl.LazyFrame | None,
    users_vocab: Vocabulary,
    items_vocab: Vocabulary,
    cutoff: datetime,
    current: Window,
    movers: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """The model's age at the lake's newest event, the current window's events by
    unknown users and on unknown items, new products it cannot offer, and the top
    popularity movers (a `share_drift` movers table, keyed by item) with `known`."""
    counts = (
        current.events(events)
        .select(
            pl.len().alias("events"),
            (~_known(Col.USER, users_vocab)).sum().alias("unknown_user_events"),
            (~_known(Col.ITEM, items_vocab)).sum().alias("unknown_item_events"),
        )
        .collect()
    )
    row = counts.row(0, named=True)
    n = int(row["events"])
    out: dict[str, Any] = {
        "model_age_days": round((current.end - cutoff).total_seconds() / 86_400, 2),
        "current_events": n,
        "unknown_user_share": float(row["unknown_user_events"]) / n if n else None,
        "unknown_item_share": float(row["unknown_item_events"]) / n if n else None,
        "new_products": _new_products(events, items, items_vocab, cutoff),
    }
    if movers is not None and movers.height:
        key = movers.columns[0]
        known = set(items_vocab.tokens[1:])
        out["popularity_movers"] = [{**r, "known": str(r[key]) in known} for r in movers.head(20).iter_rows(named=True)]
    return out


def _new_products(
    events: pl.LazyFrame, items: pl.LazyFrame | None, items_vocab: Vocabulary, cutoff: datetime
) -> dict[str, Any]:
    """Products launched after the cutoff (by the catalogue's `launched_at`, else by
    their first event), and the share of them the model cannot offer."""
    after = pl.lit(cutoff, dtype=Timestamp)
    first_seen = events.group_by(Col.ITEM).agg(pl.col(Col.TS).min().alias("first"))
    new = first_seen.filter(pl.col("first") >= after).select(Col.ITEM)
    if items is not None and Col.LAUNCHED_AT in items.collect_schema().names():
        launched = items.filter(pl.col(Col.LAUNCHED_AT) >= after).select(Col.ITEM)
        new = pl.concat([new, launched.select(pl.col(Col.ITEM).cast(pl.String))]).unique()
    found = new.collect()[Col.ITEM].cast(pl.String)
    unknown = int((~found.is_in(list(items_vocab.tokens[1:]))).sum())
    return {
        "count": found.len(),
        "unknown_to_model": unknown,
        "share_unknown": unknown / found.len() if found.len() else None,
    }


def _known(column: str, vocab: Vocabulary) -> pl.Expr:
    """Whether each value of `column` is one of the vocabulary's tokens (not OOV)."""
    return pl.col(column).cast(pl.String).is_in(pl.Series(vocab.tokens[1:], dtype=pl.String).implode())


def event_log_staleness(folder: Path, users_vocab: Vocabulary, items_vocab: Vocabulary) -> dict[str, Any]:
    """The service's logged events (read only, as a crashed writer left them) by
    users and on items the model never met."""
    users, items = set(users_vocab.tokens[1:]), set(items_vocab.tokens[1:])
    n = unknown_users = unknown_items = bad = 0
    for line in _lines(folder):
        try:
            event = LiveEvent.from_json(line)
        except ValueError:  # a torn last line of a crashed writer
            bad += 1
            continue
        n += 1
        unknown_users += event.user not in users
        unknown_items += event.item not in items
    return {
        "events": n,
        "bad_lines": bad,
        "unknown_user_share": unknown_users / n if n else None,
        "unknown_item_share": unknown_items / n if n else None,
    }


def _lines(folder: Path) -> Iterator[bytes]:
    from recsys_cli.serving.event_log import segment_files

    for path in segment_files(folder):
        with open(path, "rb") as fh:
            yield from (line for line in fh if line.strip())
