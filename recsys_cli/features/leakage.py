"""The leakage guard: proof by perturbation that features are point-in-time.

For every fold and every prediction part, the events at or after the cutoff are
perturbed three ways (deleted, altered, and joined by copies of past events
moved into the future). Features are rebuilt from the perturbed log with the
same cutoffs; any training table or column that changes depended on the future.
Training sequences are also checked directly: no event in them may be at or
after the cutoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.features.build import FeatureSet, cutoff_of
from recsys_cli.splits.base import TEST, VAL, Fold, Splitter

BuildFn = Callable[[pl.LazyFrame, str, datetime], FeatureSet]


@dataclass(frozen=True)
class Leak:
    fold: str
    part: str
    perturbation: str
    where: str  # "table.column" or "table"

    def __str__(self) -> str:
        return f"{self.fold}/{self.part}: {self.where} changes when future events are {self.perturbation}"


def perturbations(events: pl.LazyFrame, cutoff: datetime) -> dict[str, pl.LazyFrame]:
    """Three logs equal to `events` before `cutoff` and different from it after."""
    at = pl.lit(cutoff, dtype=Timestamp)
    past = events.filter(pl.col(Col.TS) < at)
    future = events.filter(pl.col(Col.TS) >= at).with_row_index("_i")
    altered = future.with_columns(
        (pl.col(Col.ITEM) + "_altered").alias(Col.ITEM),
        (pl.col(Col.VALUE).fill_null(0) + 1).alias(Col.VALUE),
        (pl.col(Col.PRICE).fill_null(0) * 2 + 1).alias(Col.PRICE),
        (pl.col(Col.TS) + timedelta(seconds=1)).alias(Col.TS),
    )
    echoed = (
        past.with_row_index("_i")
        .filter(pl.col("_i") % 3 == 0)
        .with_columns((at + pl.duration(seconds=pl.col("_i").cast(pl.Int64) % 86_400)).alias(Col.TS))
    )
    return {
        "deleted": pl.concat([past, future.filter(pl.col("_i") % 2 == 1).drop("_i")]),
        "altered": pl.concat([past, altered.drop("_i")]),
        "added": pl.concat([past, future.drop("_i"), echoed.drop("_i")]),
    }


def check_leakage(events: pl.LazyFrame, splitter: Splitter, folds: list[Fold], build: BuildFn) -> list[Leak]:
    """Every leak found (empty when the features are point-in-time)."""
    leaks: list[Leak] = []
    for fold in folds:
        assigned = splitter.assign(events, fold)
        for part, fold_cutoff in ((VAL, fold.val_start), (TEST, fold.test_start)):
            cutoff = cutoff_of(assigned, part, fold_cutoff)  # the cutoff `recsys features` uses
            reference = build(assigned, part, cutoff)
            leaks += _sequence_leaks(reference, fold, part)
            for name, perturbed in perturbations(events, cutoff).items():
                other = build(splitter.assign(perturbed, fold), part, cutoff)
                leaks += [Leak(fold.name, part, name, where) for where in _differences(reference, other)]
    return leaks


def _sequence_leaks(features: FeatureSet, fold: Fold, part: str) -> list[Leak]:
    seq = features.frames["sequences"]
    if seq.height == 0:
        return []
    latest = seq.select(pl.col("ts").list.max().max()).item()
    return [] if latest < features.cutoff else [Leak(fold.name, part, "kept", "sequences.ts (event at/after cutoff)")]


def _differences(a: FeatureSet, b: FeatureSet) -> list[str]:
    found = []
    for name, left in a.frames.items():
        right = b.frames[name]
        if left.columns != right.columns or left.height != right.height:
            found.append(f"{name} (rows {left.height} vs {right.height})")
            continue
        if left.equals(right):  # the common case, in one pass: no column to name
            continue
        for column in left.columns:
            try:
                assert_frame_equal(left.select(column), right.select(column), check_exact=False, rel_tol=1e-9)
            except AssertionError:
                found.append(f"{name}.{column}")
    for column, vocab in a.vocab.items():
        if b.vocab.get(column) != vocab:
            found.append(f"vocab.{column}")
    return found
