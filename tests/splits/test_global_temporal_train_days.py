"""The global temporal split's `train_days` (a fixed-length training window, as a
rolling retrain uses) on the 15-event log of conftest.py: three users over ten days."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from recsys_cli.data.schema import Col
from recsys_cli.errors import SplitError
from recsys_cli.splits.base import PART
from recsys_cli.splits.global_temporal import GlobalTemporalSplitter
from tests.splits.conftest import day


def split(train_days: float | None = None) -> GlobalTemporalSplitter:
    """Validation from day 8, test from day 9 (midnight), `train_days` before day 8."""
    return GlobalTemporalSplitter(
        val_cutoff="2026-01-08T00:00:00+00:00", test_cutoff="2026-01-09T00:00:00+00:00", train_days=train_days
    )


def parts(splitter: GlobalTemporalSplitter, events: pl.LazyFrame) -> dict[str, list[tuple[str, str]]]:
    (fold,) = splitter.folds(events)
    df = splitter.assign(events, fold).sort(Col.TS, Col.USER).collect()
    return {p: list(zip(g[Col.USER], g[Col.ITEM], strict=True)) for (p,), g in df.group_by(PART, maintain_order=True)}


def test_events_before_val_cutoff_minus_train_days_are_left_out_of_training(events: pl.LazyFrame) -> None:
    splitter = split(3)
    (fold,) = splitter.folds(events)
    assert fold.train_start == day(5, 0) and fold.val_start == day(8, 0)
    got = parts(splitter, events)
    # Days 5, 6 and 7 only: a/i3 on day 5, b/i1 and c/i3 on day 6, a/i2 on day 7.
    assert got["train"] == [("a", "i3"), ("b", "i1"), ("c", "i3"), ("a", "i2")]
    assert got["val"] == [("b", "i3")]
    assert len(got["test"]) == 4
    assert sum(len(v) for v in got.values()) == 9  # the six oldest events belong to no part


def test_without_train_days_all_history_trains(events: pl.LazyFrame) -> None:
    grown = parts(split(), events)
    fixed = parts(split(3), events)
    assert len(grown["train"]) == 10 and set(fixed["train"]) < set(grown["train"])
    assert grown["val"] == fixed["val"] and grown["test"] == fixed["test"]


def test_a_window_longer_than_the_history_keeps_it_all(events: pl.LazyFrame) -> None:
    assert parts(split(365), events) == parts(split(), events)


def test_fractional_days_cut_within_a_day(events: pl.LazyFrame) -> None:
    (fold,) = split(1.25).folds(events)
    assert fold.train_start == day(8, 0) - timedelta(hours=30)
    got = parts(split(1.25), events)
    assert got["train"] == [("a", "i2")]  # day 7 noon is in, day 6 noon (36 hours before the cutoff) is not
    edge = parts(split(1.5), events)
    assert edge["train"] == [("b", "i1"), ("c", "i3"), ("a", "i2")]  # the window's first instant is in


def test_the_split_describes_its_window() -> None:
    assert split(3).describe()["train_days"] == 3
    assert split().describe()["train_days"] is None


@pytest.mark.parametrize("train_days", [0, -2])
def test_train_days_must_be_positive(train_days: float) -> None:
    with pytest.raises(SplitError, match="train_days must be positive or null"):
        split(train_days)
