"""Exact expected splits on the 15-event log, and the no-leak property on random logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_cli.data.schema import Col
from recsys_cli.errors import SplitError
from recsys_cli.splits.base import PART, TRAIN, Splitter
from recsys_cli.splits.global_temporal import GlobalTemporalSplitter
from recsys_cli.splits.leave_last_n import LeaveLastNSplitter
from recsys_cli.splits.rolling_origin import RollingOriginSplitter
from tests.splits.conftest import day


def parts(assigned: pl.LazyFrame) -> dict[str, list[tuple[str, str]]]:
    df = assigned.sort(Col.TS, Col.USER).collect()
    return {p: list(zip(g[Col.USER], g[Col.ITEM], strict=True)) for (p,), g in df.group_by(PART, maintain_order=True)}


def test_global_temporal_fractions(events: pl.LazyFrame) -> None:
    splitter = GlobalTemporalSplitter(val_fraction=0.2, test_fraction=0.2)
    (fold,) = splitter.folds(events)
    # 15 events: the last 3 (20%) from index 12, the 3 before from index 9.
    assert (fold.val_start, fold.test_start) == (day(7), day(9))
    got = parts(splitter.assign(events, fold))
    assert got["val"] == [("a", "i2"), ("b", "i3")]
    assert got["test"] == [("a", "i4"), ("d", "i1"), ("b", "i4"), ("c", "i3")]  # ties at day 9 go to test
    assert len(got["train"]) == 9


def test_global_temporal_explicit_cutoffs(events: pl.LazyFrame) -> None:
    splitter = GlobalTemporalSplitter(val_cutoff="2026-01-06T00:00:00", test_cutoff="2026-01-08T00:00:00+00:00")
    (fold,) = splitter.folds(events)
    assert fold.val_start == datetime(2026, 1, 6, tzinfo=UTC)
    got = parts(splitter.assign(events, fold))
    assert [len(got[p]) for p in ("train", "val", "test")] == [7, 3, 5]


def test_cutoffs_out_of_order_are_an_error(events: pl.LazyFrame) -> None:
    with pytest.raises(SplitError, match="after the test cutoff"):
        GlobalTemporalSplitter(val_cutoff="2026-01-09", test_cutoff="2026-01-05").folds(events)


def test_rolling_origin_windows(events: pl.LazyFrame) -> None:
    splitter = RollingOriginSplitter(n_folds=2, test_days=2, val_days=2)
    folds = splitter.folds(events)
    end = day(10) + timedelta(microseconds=1)
    assert [(f.val_start, f.test_start, f.test_end) for f in folds] == [
        (end - timedelta(days=6), end - timedelta(days=4), end - timedelta(days=2)),
        (end - timedelta(days=4), end - timedelta(days=2), end),
    ]
    last = parts(splitter.assign(events, folds[1]))
    assert last["test"] == [("a", "i4"), ("d", "i1"), ("b", "i4"), ("c", "i3")]
    assert last["val"] == [("a", "i2"), ("b", "i3")]
    first = parts(splitter.assign(events, folds[0]))
    assert "d" not in {u for u, _ in first["train"] + first["val"] + first["test"]}  # after its test window


def test_rolling_origin_fixed_window_drops_old_events(events: pl.LazyFrame) -> None:
    (fold,) = RollingOriginSplitter(n_folds=1, test_days=2, val_days=2, train_days=3).folds(events)
    got = parts(RollingOriginSplitter(n_folds=1, test_days=2, val_days=2, train_days=3).assign(events, fold))
    assert got["train"] == [("c", "i3"), ("a", "i3"), ("b", "i1"), ("c", "i3")]


def test_rolling_origin_refuses_windows_before_the_data(events: pl.LazyFrame) -> None:
    with pytest.raises(SplitError, match="before the first event"):
        RollingOriginSplitter(n_folds=4, test_days=3, val_days=3).folds(events)


def test_leave_last_one_per_user(events: pl.LazyFrame) -> None:
    splitter = LeaveLastNSplitter(n=1, val_n=1)
    (fold,) = splitter.folds(events)
    df = splitter.assign(events, fold).collect()
    test = df.filter(pl.col(PART) == "test").sort(Col.USER)
    assert list(zip(test[Col.USER], test[Col.ITEM], strict=True)) == [
        ("a", "i4"),
        ("b", "i4"),
        ("c", "i3"),
        ("d", "i1"),
    ]
    val = df.filter(pl.col(PART) == "val").sort(Col.USER)
    assert list(zip(val[Col.USER], val[Col.ITEM], strict=True)) == [("a", "i2"), ("b", "i3"), ("c", "i3")]
    assert df.height == 15


@settings(max_examples=60, deadline=None)
@given(
    seconds=st.lists(st.integers(0, 10_000_000), min_size=3, max_size=60),
    val_fraction=st.floats(0.0, 0.4),
    test_fraction=st.floats(0.05, 0.4),
)
def test_no_training_row_at_or_after_its_cutoff(seconds: list[int], val_fraction: float, test_fraction: float) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = pl.LazyFrame(
        {
            Col.USER: [f"u{s % 7}" for s in seconds],
            Col.ITEM: [f"i{s % 11}" for s in seconds],
            Col.EVENT: pl.Series(["view"] * len(seconds)).cast(pl.Enum(["view"])),
            Col.TS: [t0 + timedelta(seconds=s) for s in seconds],
        }
    )
    splitters: list[Splitter] = [GlobalTemporalSplitter(val_fraction=val_fraction, test_fraction=test_fraction)]
    if max(seconds) - min(seconds) > 86_400 * 31:  # room for two 15-day folds
        splitters.append(RollingOriginSplitter(n_folds=2, test_days=10, val_days=5))
    for splitter in splitters:
        for fold in splitter.folds(events):
            df = splitter.assign(events, fold).collect()
            train = df.filter(pl.col(PART) == TRAIN)
            assert (train[Col.TS] < fold.val_start).all()
            val = df.filter(pl.col(PART) == "val")
            assert (val[Col.TS] < fold.test_start).all()
