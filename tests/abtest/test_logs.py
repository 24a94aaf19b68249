"""Events become (session, item) exposures; the catalog fills in what is missing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from recsys_cli.abtest import AbTestError
from recsys_cli.abtest.logs import PURCHASE_QTY, build_catalog, exposures, observed_prices, period_of
from recsys_cli.data.lake import write_sealed
from recsys_cli.data.schema import EVENTS_SCHEMA, Col

ROWS = [
    # user, item, event, hour, session, quantity, price
    ("u1", "a", "view", 9, "s1", None, None),
    ("u1", "a", "add_to_cart", 9, "s1", 1, 4.0),
    ("u1", "a", "purchase", 10, "s1", 3, 4.0),
    ("u1", "b", "view", 10, "s1", None, None),
    ("u2", "a", "click", 11, None, None, None),  # no session id: the user's day is the session
    ("u2", "a", "view", 12, None, None, None),
    ("u2", "c", "purchase", 13, None, None, 6.0),  # no quantity: one item
]


def events() -> pl.LazyFrame:
    frame = pl.DataFrame(
        {
            Col.USER: [r[0] for r in ROWS],
            Col.ITEM: [r[1] for r in ROWS],
            Col.EVENT: [r[2] for r in ROWS],
            Col.TS: [datetime(2026, 3, 1, r[3], tzinfo=UTC) for r in ROWS],
            Col.SESSION: [r[4] for r in ROWS],
            Col.QUANTITY: [r[5] for r in ROWS],
            Col.PRICE: [r[6] for r in ROWS],
        }
    )
    return frame.with_columns(pl.col(c).cast(t) for c, t in EVENTS_SCHEMA.items() if c in frame.columns).lazy()


def test_events_become_one_exposure_per_session_and_item() -> None:
    got = exposures(events()).collect().sort(Col.USER, Col.ITEM)
    assert got.select(Col.USER, Col.SESSION, Col.ITEM).rows() == [
        ("u1", "s1", "a"),
        ("u1", "s1", "b"),
        ("u2", "u2@2026-03-01", "a"),
        ("u2", "u2@2026-03-01", "c"),
    ]
    assert got["view"].to_list() == [True, True, True, False]
    assert got["click"].to_list() == [False, False, True, False]
    assert got["add_to_cart"].to_list() == [True, False, False, False]
    assert got[PURCHASE_QTY].to_list() == [3, 0, 0, 1]
    assert got[Col.TS][0] == datetime(2026, 3, 1, 9, tzinfo=UTC)


def test_catalog_prices_come_from_the_item_table_then_the_logs_then_the_median() -> None:
    items = pl.DataFrame({Col.ITEM: ["a", "b", "d"], Col.CATEGORY: ["x", None, "y"], Col.PRICE: [5.0, None, 0.0]})
    catalog = build_catalog(items, pl.Series(["c", "a"]), observed_prices(events()).collect())
    frame = catalog.items.sort(Col.ITEM)
    assert frame[Col.ITEM].to_list() == ["a", "b", "c", "d"]
    # a: its own price; b: none anywhere -> median of the known (5, 6); c: paid 6; d: a 0 price is no price.
    assert frame[Col.PRICE].to_list() == [5.0, 5.5, 6.0, 5.5]
    assert frame[Col.CATEGORY].to_list() == [1, 0, 0, 2]  # 0: unknown category
    assert catalog.index(pl.Series(["c", "zzz"])).tolist() == [2, -1]


def test_the_period_comes_from_the_split_manifest(tmp_path: Path) -> None:
    fold = {
        "name": "fold-0",
        "train_start": None,
        "val_start": "2026-03-01T00:00:00+00:00",
        "test_start": "2026-03-08T00:00:00+00:00",
        "test_end": "2026-03-15T12:00:00+00:00",
    }
    write_sealed(tmp_path, {"kind": "split", "folds": [fold, {"name": "fold-1"}]})  # as `recsys split` writes it
    period = period_of(tmp_path, "fold-0", "test")
    assert period.start == datetime(2026, 3, 8, tzinfo=UTC) and period.n_days == 8
    assert period_of(tmp_path, "fold-0", "val").n_days == 7
    with pytest.raises(AbTestError, match="no fold 'fold-9'"):
        period_of(tmp_path, "fold-9", "test")
    with pytest.raises(AbTestError, match="time-based split"):
        period_of(tmp_path, "fold-1", "test")
    with pytest.raises(AbTestError, match="no split manifest"):
        period_of(tmp_path / "missing", "fold-0", "test")
