"""The leakage guard passes honest features and names a planted leak."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.features.build import FeatureConfig, FeatureSet, build
from recsys_cli.features.leakage import check_leakage, perturbations
from recsys_cli.splits.base import PART
from recsys_cli.splits.global_temporal import GlobalTemporalSplitter
from recsys_cli.splits.rolling_origin import RollingOriginSplitter
from tests.features.test_features import full
from tests.splits.conftest import day

CFG = FeatureConfig(windows_days=(1, 3))


def honest(assigned: pl.LazyFrame, part: str, cutoff: datetime) -> FeatureSet:
    return build(assigned, part, cutoff, CFG)


def leaky(assigned: pl.LazyFrame, part: str, cutoff: datetime) -> FeatureSet:
    """Item popularity over the whole log, the classic mistake."""
    features = honest(assigned, part, cutoff)
    popularity = assigned.group_by(Col.ITEM).agg(pl.len().alias("popularity_all_time")).collect()
    items = features.frames["item_features"].join(popularity, on=Col.ITEM, how="left")
    return FeatureSet(cutoff, features.frames | {"item_features": items}, features.vocab)


def test_perturbations_keep_the_past() -> None:
    events = full(pl.LazyFrame({Col.USER: ["a", "b"], Col.ITEM: ["x", "y"], Col.TS: [day(1), day(5)]}))
    for name, log in perturbations(events, day(3)).items():
        past = log.filter(pl.col(Col.TS) < day(3)).collect()
        assert past[Col.ITEM].to_list() == ["x"], name


def test_honest_features_pass(events: pl.LazyFrame) -> None:
    events = full(events)
    for splitter in (
        GlobalTemporalSplitter(val_fraction=0.2, test_fraction=0.2),
        RollingOriginSplitter(n_folds=2, test_days=2, val_days=2),
    ):
        assert check_leakage(events, splitter, splitter.folds(events), honest) == []


def test_planted_leak_is_caught_and_named(events: pl.LazyFrame) -> None:
    events = full(events)
    splitter = GlobalTemporalSplitter(val_fraction=0.2, test_fraction=0.2)
    leaks = check_leakage(events, splitter, splitter.folds(events), leaky)
    assert leaks, "the planted leak went unnoticed"
    assert {leak.where for leak in leaks} == {"item_features.popularity_all_time"}
    assert "item_features.popularity_all_time changes when future events are" in str(leaks[0])


def test_future_events_in_sequences_are_caught(events: pl.LazyFrame) -> None:
    events = full(events)

    def sequences_from_everything(assigned: pl.LazyFrame, part: str, cutoff: datetime) -> FeatureSet:
        return honest(assigned.with_columns(pl.lit("train").alias(PART)), part, cutoff)

    splitter = GlobalTemporalSplitter(val_fraction=0.2, test_fraction=0.2)
    leaks = check_leakage(events, splitter, splitter.folds(events), sequences_from_everything)
    assert any(leak.where.startswith("sequences.ts") for leak in leaks)
