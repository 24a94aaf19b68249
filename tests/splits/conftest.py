"""A 15-event hand-written log: three users over ten days."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from recsys_cli.data.schema import EVENTS_SCHEMA, Col


def day(d: int, h: int = 12) -> datetime:
    return datetime(2026, 1, d, h, tzinfo=UTC)


ROWS = [
    # user, item, event, day
    ("a", "i1", "view", 1),
    ("a", "i1", "purchase", 1),
    ("b", "i2", "view", 2),
    ("a", "i2", "view", 3),
    ("b", "i2", "add_to_cart", 3),
    ("c", "i3", "view", 4),
    ("a", "i3", "view", 5),
    ("b", "i1", "view", 6),
    ("c", "i3", "purchase", 6),
    ("a", "i2", "purchase", 7),  # event 10
    ("b", "i3", "purchase", 8),
    ("d", "i1", "purchase", 9),  # a cold user
    ("a", "i4", "add_to_cart", 9),
    ("c", "i3", "purchase", 10),  # already seen by c
    ("b", "i4", "view", 10),
]


@pytest.fixture
def events() -> pl.LazyFrame:
    df = pl.DataFrame(
        {
            Col.USER: [r[0] for r in ROWS],
            Col.ITEM: [r[1] for r in ROWS],
            Col.EVENT: pl.Series([r[2] for r in ROWS]).cast(EVENTS_SCHEMA[Col.EVENT]),
            Col.TS: [day(r[3]) for r in ROWS],
        }
    )
    return df.lazy()
