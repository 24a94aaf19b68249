"""Duplicate detection and day windows of the second ingest pass."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from recsys_cli.data.events import SRC, day_windows, duplicate_mask
from recsys_cli.data.schema import EVENTS_SCHEMA, Col


def frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    """(user, item, second) rows; other contract columns null."""
    df = pl.DataFrame(
        {
            Col.USER: [r[0] for r in rows],
            Col.ITEM: [r[1] for r in rows],
            Col.TS: [datetime(2026, 1, 1, 0, 0, r[2], tzinfo=UTC) for r in rows],
        }
    )
    others = [pl.lit(None, dtype=t).alias(c) for c, t in EVENTS_SCHEMA.items() if c not in df.columns]
    return df.with_columns(others).select(EVENTS_SCHEMA.names()).sort(Col.TS, maintain_order=True)


def test_only_later_exact_copies_are_duplicates() -> None:
    df = frame([("u1", "i1", 1), ("u1", "i1", 1), ("u2", "i1", 1), ("u1", "i2", 2), ("u1", "i1", 3), ("u1", "i1", 1)])
    # sorted by ts (stable): rows at second 1 keep their order: u1i1, u1i1(dup), u2i1, u1i1(dup)
    assert duplicate_mask(df).to_list() == [False, True, False, True, False, False]


def test_equal_times_with_different_values_are_kept() -> None:
    df = frame([("u1", "i1", 5), ("u2", "i1", 5), ("u1", "i2", 5)])
    assert not duplicate_mask(df).any()


def test_windows_hold_whole_days_up_to_the_row_budget(tmp_path: Path) -> None:
    days = [date(2026, 1, 1)] * 3 + [date(2026, 1, 2)] * 2 + [date(2026, 1, 3)] * 5 + [date(2026, 1, 4)]
    (tmp_path / "events").mkdir()
    pl.DataFrame({Col.DATE: days, SRC: [0] * len(days)}).write_parquet(tmp_path / "events" / "f00000.parquet")
    assert day_windows(tmp_path, max_rows=5) == [
        (date(2026, 1, 1), date(2026, 1, 2)),
        (date(2026, 1, 3), date(2026, 1, 3)),  # a day above the budget stays whole
        (date(2026, 1, 4), date(2026, 1, 4)),
    ]
    assert day_windows(tmp_path, max_rows=100) == [(date(2026, 1, 1), date(2026, 1, 4))]
