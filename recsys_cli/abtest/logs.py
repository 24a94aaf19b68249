"""What the experiment reads from the lake: the period it runs in, the catalog, and
the logged behaviour as (session, item) exposures.

An exposure is one item a user had in front of them in one session (viewed,
clicked, carted or bought), with a flag per event type. Exposures before the
period are the history the simulator is fitted on; those inside it give the
period's sessions (the simulated traffic: who comes back, and on which day) and
the logged actions the off-policy estimators reweight.

Datasets without session ids (MovieLens) count a user's day as one session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys_cli.abtest import AbTestError
from recsys_cli.data.lake import MANIFEST, decoding, open_lake, open_output, scan_events
from recsys_cli.data.schema import EVENT_TYPES, Col, Timestamp
from recsys_cli.splits.base import TEST, VAL
from recsys_cli.splits.global_temporal import parse_instant

INDEX = "index"
DAY = "day"
PURCHASE_QTY = "purchase_qty"
OBSERVED_PRICE = "observed_price"
MONEY_EVENTS = ("add_to_cart", "purchase")


@dataclass(frozen=True)
class Period:
    """The experiment's half-open window [start, end) and where its history begins."""

    part: str
    start: datetime
    end: datetime
    history_start: datetime | None = None

    @property
    def n_days(self) -> int:
        return max(1, math.ceil((self.end - self.start) / timedelta(days=1)))

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.n_days,
            "history_start": self.history_start.isoformat() if self.history_start else None,
        }


def period_of(split_dir: Path, fold: str, part: str) -> Period:
    """The window of `part` (val or test) of `fold`, from the split's manifest."""
    manifest = open_output(split_dir, "split") if (split_dir / MANIFEST).is_file() else None
    if manifest is None:
        raise AbTestError(f"{split_dir}: no split manifest; the runs' split folder is gone (rerun `recsys split`)")
    entry = next((f for f in manifest.get("folds", []) if f.get("name") == fold), None)
    if entry is None:
        raise AbTestError(f"{split_dir / MANIFEST}: no fold {fold!r}")
    keys = {VAL: ("val_start", "test_start"), TEST: ("test_start", "test_end")}[part]
    if not all(entry.get(k) for k in keys):
        raise AbTestError(
            f"{split_dir / MANIFEST}: fold {fold!r} has no {keys[0]}/{keys[1]}; an experiment needs a time-based "
            "split (global_temporal or rolling_origin), not a per-user one"
        )
    start, end = (parse_instant(entry[k]) for k in keys)
    train_start = entry.get("train_start")
    return Period(part, start, end, parse_instant(train_start) if train_start else None)


@dataclass(frozen=True)
class Catalog:
    """Every item the experiment can show or has logs for, indexed 0..n-1, with a
    category code (0 = unknown) and a price."""

    items: pl.DataFrame  # item_id, index, category (code), price

    @property
    def size(self) -> int:
        return self.items.height

    @property
    def category(self) -> np.ndarray:
        return self.items[Col.CATEGORY].to_numpy().astype(np.int64)

    @property
    def price(self) -> np.ndarray:
        return self.items[Col.PRICE].to_numpy().astype(np.float64)

    def index(self, ids: pl.Series) -> np.ndarray:
        """Catalog index per id; -1 for ids the catalog does not know."""
        frame = pl.DataFrame({Col.ITEM: ids.cast(pl.String)})
        coded = frame.join(self.items.select(Col.ITEM, INDEX), on=Col.ITEM, how="left", maintain_order="left")
        return coded[INDEX].fill_null(-1).to_numpy().astype(np.int64)


@dataclass(frozen=True)
class Logs:
    """The lake as the experiment needs it."""

    catalog: Catalog
    history: pl.DataFrame  # exposures before the period
    window: pl.DataFrame  # exposures inside it, each with its day of the period
    sessions: pl.DataFrame  # session_id, user_id, day: the period's traffic, in time order


def load(lake: Path, period: Period) -> Logs:
    """Scan the lake once, collect the history, the window and the item table together."""
    events_dir = lake / "events"
    if not events_dir.is_dir():
        raise AbTestError(f"{lake}: no events/ folder; the runs' lake is gone (rerun `recsys ingest`)")
    open_lake(lake)
    events = scan_events(lake)
    ts = pl.col(Col.TS)
    lo, hi = pl.lit(period.start, dtype=Timestamp), pl.lit(period.end, dtype=Timestamp)
    before = ts < lo if period.history_start is None else (ts < lo) & (ts >= pl.lit(period.history_start, Timestamp))
    history_q = exposures(events.filter(before))
    window_q = exposures(events.filter((ts >= lo) & (ts < hi)))
    prices_q = observed_prices(events.filter(ts < hi))
    items_file = lake / "items.parquet"
    items_q = pl.scan_parquet(items_file) if items_file.is_file() else pl.LazyFrame(schema={Col.ITEM: pl.String})
    with decoding((lake, "lake")):
        history, window, prices, items = pl.collect_all([history_q, window_q, prices_q, items_q])
    if window.height == 0:
        raise AbTestError(f"{lake}: no events between {period.start} and {period.end}; nothing to experiment on")
    catalog = build_catalog(items, pl.concat([history[Col.ITEM], window[Col.ITEM]]), prices)
    day = ((pl.col(Col.TS) - pl.lit(period.start, dtype=Timestamp)).dt.total_seconds() // 86_400).cast(pl.Int32)
    window = window.with_columns(day.alias(DAY))
    sessions = (
        window.group_by(Col.USER, Col.SESSION)
        .agg(pl.col(Col.TS).min(), pl.col(DAY).min())
        .sort(Col.TS, Col.SESSION)
        .select(Col.SESSION, Col.USER, DAY)
    )
    return Logs(catalog, history, window, sessions)


def exposures(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (user, session, item) with its first timestamp, a flag per event
    type, and the quantity bought (a purchase without a quantity counts as one)."""
    event = pl.col(Col.EVENT).cast(pl.String)
    session = pl.coalesce(
        pl.col(Col.SESSION), pl.col(Col.USER) + pl.lit("@") + pl.col(Col.TS).dt.date().cast(pl.String)
    )
    bought = pl.when(event == "purchase").then(pl.col(Col.QUANTITY).fill_null(1).clip(lower_bound=1)).otherwise(0)
    return (
        events.with_columns(session.alias(Col.SESSION))
        .group_by(Col.USER, Col.SESSION, Col.ITEM)
        .agg(
            pl.col(Col.TS).min(),
            *[(event == kind).any().alias(kind) for kind in EVENT_TYPES],
            bought.sum().cast(pl.Int64).alias(PURCHASE_QTY),
        )
        .sort(Col.TS, Col.SESSION, Col.ITEM)
    )


def observed_prices(events: pl.LazyFrame) -> pl.LazyFrame:
    """Median price paid or carted per item, for items the catalog gives no price."""
    money = pl.col(Col.EVENT).cast(pl.String).is_in(list(MONEY_EVENTS)) & (pl.col(Col.PRICE) > 0)
    return events.filter(money).group_by(Col.ITEM).agg(pl.col(Col.PRICE).median().alias(OBSERVED_PRICE))


def build_catalog(items: pl.DataFrame, logged: pl.Series, prices: pl.DataFrame | None = None) -> Catalog:
    """Items of the item table and of the logs, sorted by id; the price is the item
    table's, else the median observed one, else the median over all items (so an
    unpriced item is worth what a typical item is, not nothing)."""
    if prices is None:
        prices = pl.DataFrame(schema={Col.ITEM: pl.String, OBSERVED_PRICE: pl.Float64})
    ids = pl.concat([items[Col.ITEM].cast(pl.String), logged.cast(pl.String)]).drop_nulls().unique().sort()
    frame = pl.DataFrame({Col.ITEM: ids}).with_row_index(INDEX).with_columns(pl.col(INDEX).cast(pl.Int64))
    table = items.select(
        pl.col(Col.ITEM).cast(pl.String),
        (pl.col(Col.CATEGORY).cast(pl.String) if Col.CATEGORY in items.columns else pl.lit(None, pl.String)).alias(
            "_category"
        ),
        (pl.col(Col.PRICE).cast(pl.Float64) if Col.PRICE in items.columns else pl.lit(None, pl.Float64)).alias(
            "_price"
        ),
    ).unique(Col.ITEM, keep="first")
    frame = frame.join(table, on=Col.ITEM, how="left", maintain_order="left").join(
        prices, on=Col.ITEM, how="left", maintain_order="left"
    )
    price = pl.when(pl.col("_price") > 0).then(pl.col("_price")).otherwise(pl.col(OBSERVED_PRICE))
    frame = frame.with_columns(price.alias(Col.PRICE))
    fallback = frame[Col.PRICE].median()
    codes = frame["_category"].drop_nulls().unique().sort()
    category = pl.col("_category").replace_strict(
        codes, pl.int_range(1, codes.len() + 1, eager=True), default=0, return_dtype=pl.Int64
    )
    frame = frame.select(
        Col.ITEM,
        INDEX,
        category.alias(Col.CATEGORY),
        pl.col(Col.PRICE).fill_null(float(fallback) if isinstance(fallback, int | float) else 0.0),
    )
    return Catalog(frame)
