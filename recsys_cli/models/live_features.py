"""A user's ranker features with the events the service received since the cutoff.

The ranker's user table (`features/aggregates.py`, `user_aggregates`) is computed at
the package's cutoff. Some of its columns follow from live events without any other
history: every event adds one to `events_total`, an event of type e adds one to
each window's `n_<e>_<w>d`, and the newest event sets `recency_days` (days before
the request). Those move. The others stay as they were until the next retrain:
ratios, spend, active days and sessions would need the old events that have left
each window since the cutoff. Category affinity moves too (`candidates.history_pairs`).

The rule is kept as one array beside the side tables (`LiveUserFeatures.as_array`),
with the mean and spread that put raw values in the table's units, so a package
applies it without the feature set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys_cli.data.schema import EVENT_TYPES
from recsys_cli.models.side_features import SideFeatures, raw_values, standardised

TOTAL = "events_total"
RECENCY = "recency_days"
_WINDOW_COUNT = re.compile(r"n_(?P<event>[a-z_]+)_(?P<days>\d+(?:\.\d+)?)d")


@dataclass(frozen=True)
class LiveUserFeatures:
    increments: np.ndarray  # (len(EVENT_TYPES), n_num) raw increase per event of each type
    recency: np.ndarray  # (n_num,) bool: the days since the newest event
    scale: np.ndarray  # (2, n_num) mean and spread of the table's signed-log values

    @classmethod
    def of(cls, users: SideFeatures) -> LiveUserFeatures:
        names = users.numeric_names
        increments = np.zeros((len(EVENT_TYPES), len(names)), np.float32)
        recency = np.zeros(len(names), bool)
        for j, name in enumerate(names):
            count = _WINDOW_COUNT.fullmatch(name)
            if name == TOTAL:
                increments[:, j] = 1.0
            elif name == RECENCY:
                recency[j] = True
            elif count is not None and count["event"] in EVENT_TYPES:
                increments[EVENT_TYPES.index(count["event"]), j] = 1.0
        return cls(increments, recency, np.asarray(users.scale, np.float64).reshape(2, len(names)))

    @property
    def moves(self) -> bool:
        """Whether any column follows live events."""
        return bool(self.increments.any() or self.recency.any())

    def as_array(self) -> np.ndarray:
        """(len(EVENT_TYPES) + 3, n_num): the increments, the recency mask, mean, spread."""
        return np.concatenate([self.increments, self.recency[None].astype(np.float32), self.scale]).astype(np.float64)

    @classmethod
    def from_array(cls, array: np.ndarray) -> LiveUserFeatures:
        n = len(EVENT_TYPES)
        return cls(array[:n].astype(np.float32), array[n] > 0.5, array[n + 1 : n + 3].astype(np.float64))

    def updated(self, row: np.ndarray, events: Sequence[str], recency_days: float | None) -> np.ndarray:
        """A user's standardised row with `events` (their types) counted and, where
        given, `recency_days` as the days since their newest event."""
        out = np.asarray(row, dtype=np.float32).copy()
        counts = np.zeros(len(EVENT_TYPES), np.float32)
        for event in events:
            if event in EVENT_TYPES:
                counts[EVENT_TYPES.index(event)] += 1.0
        moved = counts @ self.increments
        columns = moved > 0
        if recency_days is not None:
            columns |= self.recency
        if not columns.any():
            return out
        raw = raw_values(out[columns], self.scale[:, columns]) + moved[columns]
        raw = np.where(self.recency[columns], max(float(recency_days or 0.0), 0.0), raw)
        out[columns] = standardised(raw, self.scale[:, columns])
        return out
