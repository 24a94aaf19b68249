"""Cold start from the package's popularity tables (`registry/package_fallbacks.py`):
what a user the model never met, with no session events, is shown, and what fills
an answer the rules left short.

The tables are turned into numpy arrays once, when a package is loaded: per table
(global, each hour of day, each segment value) the model item indices best first
and a score in (0, 1], the item's distinct users over the table's best item's.
A request then only looks up, blends and masks a few hundred entries.

An unknown user gets, in order of preference:

    segment  the first of the request's segments (region=north, device=...) whose
             table holds enough items (else the one holding most), blended with
    hour     the table of the request's hour of day (weight `hour_weight`),
    global   the whole history's popularity, topping up whatever is still short.

`which` names what answered, e.g. "segment:region=north+hour:14" or "global".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.registry.package_fallbacks import GLOBAL, HOUR, HOURLY, RANK, SEGMENT, SEGMENTS, USERS, VALUE
from recsys_cli.serving.catalogue import UNKNOWN, Catalogue

# Which items a fallback may propose (bool per item index), e.g. the request's
# filters and the stock rule: `functools.partial(rules.admissible, ...)`.
Admit = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Popular:
    """One popularity table: model item indices best first, scores in (0, 1]."""

    items: np.ndarray  # int64
    scores: np.ndarray  # float64

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, catalogue: Catalogue) -> Popular:
        """From rows of `item_id`, `users`, `rank`; items the catalogue lacks are left out."""
        frame = frame.sort(RANK)
        items = catalogue.item_index(frame[Col.ITEM].to_list())
        users = frame[USERS].cast(pl.Float64).to_numpy()
        known = items != UNKNOWN
        best = users.max() if len(users) else 1.0
        return cls(items[known], users[known] / max(best, 1.0))


EMPTY = Popular(np.zeros(0, dtype=np.int64), np.zeros(0))


@dataclass(frozen=True)
class Picked:
    """Items and scores, best first, and what answered (None: nothing did)."""

    items: np.ndarray
    scores: np.ndarray
    which: str | None


@dataclass(frozen=True)
class Fallbacks:
    """The package's popularity tables, ready for requests (module docstring)."""

    everyone: Popular
    hourly: Mapping[int, Popular]
    segments: Mapping[tuple[str, str], Popular]
    hour_weight: float = 0.5

    @classmethod
    def from_tables(
        cls, tables: Mapping[str, pl.DataFrame], catalogue: Catalogue, hour_weight: float = 0.5
    ) -> Fallbacks:
        """From `Package.fallbacks` ("global", "hour_of_day", "segments"; a missing
        table is empty). `hour_weight` in [0, 1] is the hour table's share of a
        blended score."""
        if not 0.0 <= hour_weight <= 1.0:
            raise ValueError(f"hour_weight must be in [0, 1], got {hour_weight}")
        hourly = _grouped(tables.get(HOURLY), [HOUR], catalogue)
        segments = _grouped(tables.get(SEGMENTS), [SEGMENT, VALUE], catalogue)
        everyone = Popular.from_frame(tables[GLOBAL], catalogue) if GLOBAL in tables else EMPTY
        return cls(everyone, {int(h): p for (h,), p in hourly.items()}, segments, hour_weight)

    def pick(
        self,
        segments: Mapping[str, str],
        hour: int | None,
        n: int,
        exclude: np.ndarray | None = None,
        admit: Admit | None = None,
    ) -> Picked:
        """Up to `n` items for a user known only by request context: segment and
        hour blended, topped up from global. `exclude` (item indices) and `admit`
        narrow every source; `segments` are tried in the order given, and a
        segment or value the package has no table for is skipped."""
        segment = self._segment(segments, n, exclude, admit)
        hourly = self.hourly.get(hour) if hour is not None else None
        parts = [(f"segment:{segment[0]}={segment[1]}", self.segments[segment])] if segment else []
        if hourly is not None:
            parts.append((f"hour:{hour}", hourly))
        items, scores = _blend([p for _, p in parts], self.hour_weight if len(parts) == 2 else 1.0)
        usable = _usable(items, exclude, admit)
        picked = Picked(items[usable][:n], scores[usable][:n], "+".join(name for name, _ in parts) or None)
        return self.top_up(picked.items, picked.scores, n, exclude, admit, picked.which)

    def top_up(
        self,
        items: np.ndarray,
        scores: np.ndarray,
        k: int,
        exclude: np.ndarray | None = None,
        admit: Admit | None = None,
        which: str | None = None,
    ) -> Picked:
        """`items` filled up to `k` from global popularity, skipping what they hold
        and `exclude`. The fill scores never exceed the last given score, so the
        answer still reads in descending order; `which` gains "global" when the
        fill added anything."""
        items, scores = np.asarray(items, dtype=np.int64), np.asarray(scores, dtype=np.float64)
        short = k - len(items)
        if short <= 0:
            return Picked(items, scores, which)
        skip = items if exclude is None else np.concatenate([items, np.asarray(exclude, dtype=np.int64)])
        usable = _usable(self.everyone.items, skip, admit)
        fill, fill_scores = self.everyone.items[usable][:short], self.everyone.scores[usable][:short]
        if len(fill) == 0:
            return Picked(items, scores, which)
        if len(scores):
            fill_scores = np.minimum(fill_scores, scores[-1])
        named = GLOBAL if which is None else f"{which}+{GLOBAL}"
        return Picked(np.concatenate([items, fill]), np.concatenate([scores, fill_scores]), named)

    def _segment(
        self, segments: Mapping[str, str], n: int, exclude: np.ndarray | None, admit: Admit | None
    ) -> tuple[str, str] | None:
        """The first of the request's segments with `n` usable items, else the one with most."""
        best, most = None, 0
        for key in segments.items():
            table = self.segments.get(key)
            if table is None:
                continue
            usable = int(_usable(table.items, exclude, admit).sum())
            if usable >= n:
                return key
            if usable > most:
                best, most = key, usable
        return best


def _grouped(frame: pl.DataFrame | None, by: list[str], catalogue: Catalogue) -> dict[tuple, Popular]:
    """One `Popular` per group of `by` in a long table (none when absent or empty)."""
    if frame is None or frame.is_empty():
        return {}
    groups = frame.partition_by(by, as_dict=True, maintain_order=True)
    return {tuple(key): Popular.from_frame(part, catalogue) for key, part in groups.items()}


def _blend(parts: list[Popular], second_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """The union of one or two tables' items, scored by the weighted sum of their
    scores (an item absent from a table scores 0 there), best first, ties by index."""
    if not parts:
        return EMPTY.items, EMPTY.scores
    weights = [1.0 - second_weight, second_weight] if len(parts) == 2 else [1.0]
    items = np.concatenate([p.items for p in parts])
    weighted = np.concatenate([p.scores * w for p, w in zip(parts, weights, strict=True)])
    union, slot = np.unique(items, return_inverse=True)
    scores = np.bincount(slot, weights=weighted, minlength=len(union))
    order = np.lexsort((union, -scores))
    return union[order], scores[order]


def _usable(items: np.ndarray, exclude: np.ndarray | None, admit: Admit | None) -> np.ndarray:
    """Which of `items` are neither excluded nor refused by `admit` (bool)."""
    keep = np.ones(len(items), dtype=bool) if exclude is None else ~np.isin(items, exclude)
    if admit is not None and len(items):
        keep &= admit(items)
    return keep
