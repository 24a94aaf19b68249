"""The synthetic shop written in RetailRocket's public layout (Kaggle's "retailrocket").

Why: models are tuned on our own data and confirmed on a held-back shop in that
layout. Writing the synthetic shop the same way lets the whole chain, from
`recsys ingest` through the RetailRocket source on, run on data of that shape.

Files, as the source (`data/sources/retailrocket.py`) reads them:
- `events.csv`: timestamp (epoch ms), visitorid, event (view / addtocart /
  transaction), itemid, transactionid (one per session's purchases, empty on
  other rows); ids are integers;
- `item_properties_part1.csv`, `item_properties_part2.csv`: (timestamp, itemid,
  property, value) snapshots, split in two by time as RetailRocket ships them:
  `categoryid`, `available` (0/1), and numeric properties in RetailRocket's
  `n123.000` spelling under numeric names (`790`: price in cents, `917`: stock),
  a brand token (`888`); some items get a later snapshot (availability flips,
  the price moves), so the reader must keep the latest; a price shift
  (`synth_shocks.py`) adds a price snapshot at its date and scales the later ones;
- `category_tree.csv`: categoryid, parentid (empty for a root): two levels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from recsys_cli.data.synth import SynthConfig, _DayLog, _World

EVENT_NAMES = {"view": "view", "add_to_cart": "addtocart", "purchase": "transaction"}
CATEGORIES_PER_PARENT = 6
RESNAPSHOT_SHARE = 0.2  # items with a second snapshot later in the period


def retailrocket_tables(cfg: SynthConfig, w: _World) -> dict[str, pl.DataFrame]:
    """The item property snapshots (two files) and the category tree."""
    rng = np.random.default_rng([cfg.seed, 1_000_003, 2])
    n_items = w.item_cat.size
    start_ms = int(w.start.timestamp() * 1000)
    # First snapshot when the item appears in the period: its launch day, or the log's start.
    first = start_ms + np.maximum(w.item_launch_day, 0).astype(np.int64) * 86_400_000
    stock = np.asarray(w.item_stock)
    cents = np.round(w.item_price * 100).astype(np.int64)
    item = np.arange(n_items)
    again = np.flatnonzero(rng.random(n_items) < RESNAPSHOT_SHARE)
    later = first[again] + rng.integers(1, max(cfg.n_days, 2), again.size).astype(np.int64) * 86_400_000
    moved = np.round(cents[again] * np.exp(rng.normal(0, 0.1, again.size))).astype(np.int64)
    shifted: list[pl.DataFrame] = []
    if w.shocks is not None and w.shocks.prices:
        cents, moved, shifted = _price_history(w, first, cents, again, later, moved)
    snapshots = [
        _props(item, first, "categoryid", pl.Series(w.item_cat).cast(pl.String)),
        _props(item, first, "available", pl.Series((stock > 0).astype(np.int64)).cast(pl.String)),
        _props(item, first, "790", _numeric(cents)),
        _props(item, first, "917", _numeric(stock)),
        _props(item, first, "888", pl.Series(1000 + np.asarray(w.item_brand)).cast(pl.String)),
        _props(again, later, "available", pl.Series((stock[again] == 0).astype(np.int64)).cast(pl.String)),
        _props(again, later, "790", _numeric(moved)),
        *shifted,
    ]
    props = pl.concat(snapshots).sort("timestamp", "itemid", "property")
    half = props.height // 2
    n_cat = cfg.n_categories
    n_parents = -(-n_cat // CATEGORIES_PER_PARENT)
    tree = pl.DataFrame(
        {
            "categoryid": np.arange(n_cat + n_parents),
            "parentid": pl.Series([*(n_cat + c // CATEGORIES_PER_PARENT for c in range(n_cat)), *[None] * n_parents]),
        },
        schema={"categoryid": pl.Int64, "parentid": pl.Int64},
    )
    return {
        "item_properties_part1": props.head(half),
        "item_properties_part2": props.slice(half),
        "category_tree": tree,
    }


def _price_history(
    w: _World, first: np.ndarray, cents: np.ndarray, again: np.ndarray, later: np.ndarray, moved: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[pl.DataFrame]]:
    """Prices under the shocks' price shifts: each snapshot's price scaled by the
    shifts begun by its day, and a snapshot at each shift's date for the items it
    reprices that were listed before it."""
    plan = w.shocks
    assert plan is not None
    start_ms = int(w.start.timestamp() * 1000)

    def factor(ms: np.ndarray, items: np.ndarray) -> np.ndarray:
        scale = plan.price_factor((ms - start_ms) // 86_400_000, w.item_cat[items])
        return np.ones(items.size) if scale is None else scale

    item = np.arange(cents.size)
    snapshots = []
    for day in sorted({s.start_day for s in plan.prices}):
        at = np.full(item.size, start_ms + day * 86_400_000, dtype=np.int64)
        moves = np.zeros(item.size, dtype=bool)
        moves[again[later == at[0]]] = True  # a snapshot of its own that day already shows the new price
        listed = np.flatnonzero((first < at) & ~moves & (factor(at, item) != factor(at - 1, item)))
        price = np.round(cents[listed] * factor(at[listed], listed)).astype(np.int64)
        snapshots.append(_props(listed, at[listed], "790", _numeric(price)))
    shifted = np.round(cents * factor(first, item)).astype(np.int64)
    return shifted, np.round(moved * factor(later, again)).astype(np.int64), snapshots


def retailrocket_events(cfg: SynthConfig, w: _World, log: _DayLog, first_transaction: int) -> tuple[pl.DataFrame, int]:
    """The day's written events as RetailRocket rows, and how many transactions
    they hold: each session's purchases share one transaction id, numbered on from
    `first_transaction` (the ids of earlier days)."""
    order = log.order
    sess, kind = log.sess[order], log.kind[order]
    bought = kind == "purchase"
    baskets, basket = np.unique(sess[bought], return_inverse=True)
    transaction = np.full(order.size, -1, dtype=np.int64)
    transaction[bought] = first_transaction + basket
    start_ms = int(w.start.timestamp() * 1000)
    frame = pl.DataFrame(
        {
            "timestamp": start_ms + log.ts[order] * 1000 + log.rng.integers(0, 1000, order.size),
            "visitorid": log.s_user[sess],
            "event": pl.Series(kind).replace_strict(EVENT_NAMES, return_dtype=pl.String),
            "itemid": log.item[order],
            "transactionid": pl.Series(transaction).replace(-1, None),
        },
        schema_overrides={"timestamp": pl.Int64, "visitorid": pl.Int64, "itemid": pl.Int64},
    )
    return frame, int(baskets.size)


def retailrocket_dirt(cfg: SynthConfig, rng: np.random.Generator, events: pl.DataFrame, n_dup: int) -> pl.DataFrame:
    """Client retries (exact duplicates) and broken rows, as in the shop layout:
    no visitor, an unknown event name, or no item."""
    n = events.height
    dup = np.zeros(n, dtype=bool)
    dup[rng.choice(n, min(n_dup, n), replace=False)] = True
    broken = np.zeros(n, dtype=np.int64) - 1
    dirty = np.flatnonzero(rng.random(n) < cfg.dirty_share)
    broken[dirty] = rng.integers(0, 3, dirty.size)
    k = pl.Series(broken)
    rows = events.with_columns(
        pl.when(k == 0).then(None).otherwise(pl.col("visitorid")).alias("visitorid"),
        pl.when(k == 1).then(pl.lit("unknown_action")).otherwise(pl.col("event")).alias("event"),
        pl.when(k == 2).then(None).otherwise(pl.col("itemid")).alias("itemid"),
    )
    index = np.concatenate([np.arange(n), np.flatnonzero(dup)])
    return rows[np.sort(index, kind="stable")]


def _props(item: np.ndarray, ts: np.ndarray, name: str, value: pl.Series) -> pl.DataFrame:
    return pl.DataFrame(
        {"timestamp": ts.astype(np.int64), "itemid": item.astype(np.int64), "property": name, "value": value}
    )


def _numeric(values: np.ndarray) -> pl.Series:
    """RetailRocket's spelling of a number: `n` and three decimals (n2799.000)."""
    return "n" + pl.Series(np.asarray(values, dtype=np.int64)).cast(pl.String) + ".000"
