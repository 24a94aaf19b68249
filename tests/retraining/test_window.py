"""Where a retrain's windows fall (recsys_cli/retraining/window.py): the lake's newest
`eval_days` are held out, the candidate trains on what came before, and a fixed
window keeps `train_days` of that history, validation days included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError
from recsys_cli.retraining.window import NothingNewError, RetrainWindow
from recsys_cli.splits.base import PART
from recsys_cli.splits.global_temporal import GlobalTemporalSplitter

END = datetime(2026, 3, 31, 12, tzinfo=UTC)  # the lake's newest event
PRODUCTION = END - timedelta(days=20)  # the production model's cutoff


def days(n: float) -> timedelta:
    return timedelta(days=n)


def splitter(window: RetrainWindow) -> GlobalTemporalSplitter:
    return GlobalTemporalSplitter(**{k: v for k, v in window.split_config().items() if k != "_target_"})


def daily(first: datetime, last: datetime) -> pl.LazyFrame:
    """One event a day, noon to noon, from `first` to `last`."""
    n = (last - first).days + 1
    return pl.LazyFrame(
        {
            Col.USER: [f"u{i}" for i in range(n)],
            Col.ITEM: ["i"] * n,
            Col.TS: [first + days(i) for i in range(n)],
        }
    )


def test_the_newest_eval_days_are_held_out_and_the_candidate_trains_on_all_before_them() -> None:
    window = RetrainWindow.of(END, PRODUCTION, eval_days=7, val_days=5, train_days=None)
    assert (window.cutoff, window.val_start, window.end) == (END - days(7), END - days(12), END)
    assert window.to_json() == {
        "train_start": None,
        "cutoff": (END - days(7)).isoformat(),
        "held_out": {"start": (END - days(7)).isoformat(), "end": END.isoformat()},
    }
    (fold,) = splitter(window).folds(daily(END - days(60), END))
    assert (fold.train_start, fold.val_start, fold.test_start) == (None, END - days(12), END - days(7))
    assert fold.test_end is not None and fold.test_end > END  # the newest event is held out too


def test_a_fixed_window_keeps_train_days_before_the_cutoff_validation_days_included() -> None:
    window = RetrainWindow.of(END, PRODUCTION, eval_days=7, val_days=5, train_days=30)
    assert window.split_config()["train_days"] == 25  # counted by the split before its validation cutoff
    assert window.to_json()["train_start"] == (END - days(37)).isoformat()
    events = daily(END - days(60), END)
    s = splitter(window)
    (fold,) = s.folds(events)
    assert fold.train_start == END - days(37)
    trained = s.assign(events, fold).filter(pl.col(PART).is_in(["train", "val"])).collect()
    assert trained[Col.TS].min() == END - days(37) and trained[Col.TS].max() == END - days(8)
    assert trained.height == 30  # one event a day, exactly train_days of them


def test_naive_times_read_as_utc() -> None:
    naive = RetrainWindow.of(END.replace(tzinfo=None), PRODUCTION.replace(tzinfo=None), 7, 5, None)
    assert naive == RetrainWindow.of(END, PRODUCTION, 7, 5, None)


@pytest.mark.parametrize("eval_days", [20, 25])
def test_nothing_new_when_the_cutoff_would_not_be_after_productions(eval_days: float) -> None:
    with pytest.raises(NothingNewError, match=r"only 20\.0 day\(s\) after the production model's cutoff") as caught:
        RetrainWindow.of(END, PRODUCTION, eval_days=eval_days, val_days=5, train_days=None)
    assert "retrain.window.eval_days" in str(caught.value) and "\n" not in str(caught.value)


def test_one_more_day_than_held_out_is_enough() -> None:
    assert RetrainWindow.of(END, PRODUCTION, eval_days=19, val_days=5, train_days=None).cutoff == PRODUCTION + days(1)


@pytest.mark.parametrize("train_days", [5, 3])
def test_a_fixed_window_must_be_longer_than_its_validation_days(train_days: float) -> None:
    with pytest.raises(ConfigError, match=r"retrain\.window\.train_days \(\d+\) must exceed val_days \(5\)"):
        RetrainWindow.of(END, PRODUCTION, eval_days=7, val_days=5, train_days=train_days)
