"""Where a retrain's windows fall, from the lake's newest event backwards.

The newest `eval_days` of the lake are held out: both the candidate and the
production model are scored there, so neither has seen it. The candidate trains
on what came before (its cutoff, `test_start`), which includes everything the
production model never saw since its own cutoff. A growing window keeps all
history; a fixed one keeps `train_days` before the cutoff. `val_days` before the
cutoff are the split's validation part, which a warm start or a refit trains on
like the rest (the run is a part=test refit; nothing is selected on the held-out
window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from recsys_cli.errors import ConfigError, RecsysError
from recsys_cli.monitoring.promotions import instant


class NothingNewError(RecsysError):
    """The lake holds too little after the production model's cutoff to retrain on."""


@dataclass(frozen=True)
class RetrainWindow:
    cutoff: datetime  # the candidate's training cutoff: the held-out window's start
    val_start: datetime
    end: datetime  # the lake's newest event (the held-out window ends just after it)
    train_days: float | None  # days of history before `cutoff`; None: a growing window

    @classmethod
    def of(
        cls,
        lake_end: datetime,
        production_cutoff: datetime,
        eval_days: float,
        val_days: float,
        train_days: float | None,
    ) -> RetrainWindow:
        """The windows; `NothingNewError` when the candidate's cutoff would not lie
        after production's (no new day to learn from)."""
        lake_end, production_cutoff = instant(lake_end), instant(production_cutoff)
        cutoff = lake_end - timedelta(days=eval_days)
        if cutoff <= production_cutoff:
            days = (lake_end - production_cutoff).total_seconds() / 86400
            raise NothingNewError(
                f"the lake ends {lake_end.isoformat()}, only {days:.1f} "
                f"day(s) after the production model's cutoff {production_cutoff.isoformat()}: a retrain needs more "
                f"than retrain.window.eval_days ({eval_days:g}) of new data"
            )
        if train_days is not None and not train_days > val_days:
            raise ConfigError(
                f"retrain.window.train_days ({train_days:g}) must exceed val_days ({val_days:g}): "
                "the history trained on includes the validation days"
            )
        return cls(cutoff, cutoff - timedelta(days=val_days), lake_end, train_days)

    def split_config(self, name: str = "global_temporal") -> dict[str, Any]:
        """The global temporal split these windows are (conf/split/global_temporal.yaml)."""
        return {
            "_target_": "recsys_cli.splits.global_temporal.GlobalTemporalSplitter",
            "name": name,
            "val_fraction": 0.1,
            "test_fraction": 0.1,
            "val_cutoff": self.val_start.isoformat(),
            "test_cutoff": self.cutoff.isoformat(),
            "train_days": None if self.train_days is None else self.train_days - self._val_days,
        }

    @property
    def _val_days(self) -> float:
        return (self.cutoff - self.val_start).total_seconds() / 86400

    def to_json(self) -> dict[str, Any]:
        return {
            "train_start": None
            if self.train_days is None
            else (self.cutoff - timedelta(days=self.train_days)).isoformat(),
            "cutoff": self.cutoff.isoformat(),
            "held_out": {"start": self.cutoff.isoformat(), "end": self.end.isoformat()},
        }
