"""Rolling-origin backtest: several successive test windows ending at the last
event, each validated on the window just before it, for stability and drift."""

from __future__ import annotations

from datetime import timedelta

from recsys_cli.errors import SplitError
from recsys_cli.splits.base import Events, Fold, Splitter, time_bounds
from recsys_cli.splits.global_temporal import TICK


class RollingOriginSplitter(Splitter):
    """`n_folds` test windows of `test_days`, the latest ending at the last event.

    Each fold trains on everything before its validation window (a growing
    window), or on the `train_days` before it (a fixed window).
    """

    def __init__(
        self,
        name: str = "rolling_origin",
        n_folds: int = 4,
        test_days: float = 14,
        val_days: float = 14,
        train_days: float | None = None,
    ) -> None:
        super().__init__(name)
        if n_folds < 1 or test_days <= 0 or val_days < 0 or (train_days is not None and train_days <= 0):
            raise SplitError("rolling origin needs n_folds >= 1, test_days > 0, val_days >= 0, train_days > 0")
        self.n_folds = n_folds
        self.test_days = test_days
        self.val_days = val_days
        self.train_days = train_days

    def folds(self, events: Events) -> list[Fold]:
        lo, hi, _ = time_bounds(events)
        end = hi + TICK
        test, val = timedelta(days=self.test_days), timedelta(days=self.val_days)
        folds = []
        for k in range(self.n_folds):
            test_end = end - (self.n_folds - 1 - k) * test
            test_start = test_end - test
            val_start = test_start - val
            train_start = val_start - timedelta(days=self.train_days) if self.train_days else None
            if val_start <= lo:
                raise SplitError(
                    f"fold {k}: its validation window starts at {val_start}, before the first event ({lo}); "
                    "use fewer folds or shorter windows"
                )
            folds.append(Fold(f"fold-{k}", train_start, val_start, test_start, test_end))
        return folds
