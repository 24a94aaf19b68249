"""The windows `recsys monitor` compares, and the samples drift reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.monitoring.samples import Windows, feature_samples

CUTOFF = datetime(2026, 3, 1, tzinfo=UTC)


def test_the_windows_sit_before_the_cutoff_after_it_and_at_the_lakes_end() -> None:
    end = CUTOFF + timedelta(days=30, hours=5)
    w = Windows.of(CUTOFF, end, days=7)
    assert (w.reference.start, w.reference.end) == (CUTOFF - timedelta(days=7), CUTOFF)
    assert (w.fresh.start, w.fresh.end) == (CUTOFF, CUTOFF + timedelta(days=7))
    assert w.current.end > end and w.current.end - w.current.start == timedelta(days=7)  # holds the newest event
    earlier = w.earlier_current(10)
    assert len(earlier) == 3 and all(e.start >= w.fresh.start for e in earlier)
    assert [e.end for e in earlier] == [w.current.start - timedelta(days=7 * i) for i in range(3)]


def test_samples_hold_the_window_active_users_and_items_without_their_ids() -> None:
    ts = [CUTOFF - timedelta(days=d) for d in (20, 3, 2, 1)]
    rows = {
        Col.USER: ["old", "u1", "u2", "u1"],
        Col.ITEM: ["i9", "i1", "i2", "i1"],
        Col.EVENT: ["view", "view", "purchase", "add_to_cart"],
        Col.TS: ts,
        Col.SESSION: ["s0", "s1", "s2", "s3"],
        Col.PRICE: [None, None, 5.0, None],
        Col.QUANTITY: [None, None, 1, None],
    }
    events = pl.LazyFrame({c: rows.get(c, [None] * 4) for c in EVENTS_SCHEMA.names()}, schema=EVENTS_SCHEMA)
    w = Windows.of(CUTOFF, CUTOFF + timedelta(days=30), days=7)  # the reference: the 7 days before the cutoff
    sample = feature_samples(events, None, w.reference, [7, 30])
    assert sample["user"].height == 2 and Col.USER not in sample["user"].columns  # "old" was not active
    assert sample["item"].height == 2 and Col.ITEM not in sample["item"].columns
    assert sample["context"].height == 3 and set(sample["context"].columns) == {"hour", "weekday", Col.EVENT}
