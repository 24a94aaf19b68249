"""Global temporal split: one pair of cutoffs for everybody (train | val | test by time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recsys_cli.errors import SplitError
from recsys_cli.splits.base import Events, Fold, Splitter, Timeline, time_bounds, timeline

TICK = timedelta(microseconds=1)  # windows are half-open; the last event must be inside


def parse_instant(value: str) -> datetime:
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class GlobalTemporalSplitter(Splitter):
    """Cutoffs as timestamps, or as fractions of events counted from the end.

    >>> GlobalTemporalSplitter(val_fraction=0.1, test_fraction=0.1).test_fraction
    0.1

    `train_days` keeps only that many days of training history before the validation
    cutoff (a fixed-length window, as a rolling retrain uses); null keeps it all.

    With fractions, the test window starts at the timestamp of the first event of
    the last `test_fraction` of events by time; ties at the cutoff go to the later part.
    """

    def __init__(
        self,
        name: str = "global_temporal",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        val_cutoff: str | None = None,
        test_cutoff: str | None = None,
        train_days: float | None = None,
    ) -> None:
        super().__init__(name)
        if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise SplitError(f"fractions must be in [0, 1) and sum below 1: val={val_fraction}, test={test_fraction}")
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.val_cutoff = val_cutoff
        self.test_cutoff = test_cutoff
        if train_days is not None and not train_days > 0:
            raise SplitError(f"train_days must be positive or null (growing window), got {train_days}")
        self.train_days = train_days

    def folds(self, events: Events) -> list[Fold]:
        line = timeline(events)
        lo, hi, n = time_bounds(line)
        test_start = parse_instant(self.test_cutoff) if self.test_cutoff else self._nth(line, n, self.test_fraction)
        val_start = (
            parse_instant(self.val_cutoff)
            if self.val_cutoff
            else self._nth(line, n, self.test_fraction + self.val_fraction)
        )
        if not val_start <= test_start:
            raise SplitError(f"validation cutoff {val_start} is after the test cutoff {test_start}")
        train_start = val_start - timedelta(days=self.train_days) if self.train_days else None
        return [Fold("fold-0", train_start, val_start, test_start, hi + TICK)]

    @staticmethod
    def _nth(line: Timeline, n: int, tail_fraction: float) -> datetime:
        return line.nth(min(n - 1, int(n * (1 - tail_fraction))))
