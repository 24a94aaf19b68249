from __future__ import annotations

import polars as pl
import pytest

from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError
from recsys_cli.splits.global_temporal import GlobalTemporalSplitter
from recsys_cli.splits.targets import COLD, TargetSpec, ground_truth


@pytest.fixture
def assigned(events: pl.LazyFrame) -> pl.LazyFrame:
    splitter = GlobalTemporalSplitter(val_fraction=0.2, test_fraction=0.2)
    return splitter.assign(events, splitter.folds(events)[0])


def rows(df: pl.LazyFrame) -> list[tuple[str, str, bool]]:
    return df.collect().select(Col.USER, Col.ITEM, COLD).rows()


def test_engagement_targets_exclude_seen_and_flag_cold_users(assigned: pl.LazyFrame) -> None:
    spec = TargetSpec(name="engagement", positive_events=["add_to_cart", "purchase"])
    # c re-buys i3, seen before the test window: not a target; d has no history: cold.
    assert rows(ground_truth(assigned, spec, "test")) == [("a", "i4", False), ("d", "i1", True)]
    # a bought i2 in validation after viewing it in training: a view is not a positive.
    assert rows(ground_truth(assigned, spec, "val")) == [("a", "i2", False), ("b", "i3", False)]


def test_seen_events_widen_what_counts_as_seen(assigned: pl.LazyFrame) -> None:
    spec = TargetSpec(positive_events=["add_to_cart", "purchase"], seen_events=["view", "add_to_cart", "purchase"])
    assert rows(ground_truth(assigned, spec, "val")) == [("b", "i3", False)]


def test_keeping_seen_items(assigned: pl.LazyFrame) -> None:
    spec = TargetSpec(positive_events=["purchase"], exclude_seen=False)
    assert rows(ground_truth(assigned, spec, "test")) == [("c", "i3", False), ("d", "i1", True)]


def test_min_value_filters_ratings() -> None:
    from datetime import UTC, datetime

    from recsys_cli.splits.base import PART

    df = pl.LazyFrame(
        {
            Col.USER: ["u", "u", "u"],
            Col.ITEM: ["a", "b", "c"],
            Col.EVENT: pl.Series(["rating"] * 3).cast(pl.Enum(["rating"])),
            Col.VALUE: [5.0, 3.0, 4.0],
            Col.TS: [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3)],
            PART: ["train", "test", "test"],
        }
    )
    spec = TargetSpec(positive_events=["rating"], min_value=4.0)
    assert rows(ground_truth(df, spec, "test")) == [("u", "c", False)]


def test_unknown_positive_event_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="wishlist"):
        TargetSpec(positive_events=["wishlist"])


def test_targets_carry_the_time_and_context_of_the_first_positive(assigned: pl.LazyFrame) -> None:
    from tests.splits.conftest import day

    spec = TargetSpec(positive_events=["add_to_cart", "purchase"])
    row = ground_truth(assigned, spec, "test").collect().row(0, named=True)
    assert (row[Col.USER], row[Col.TS], row["hour_of_day"], row["day_of_week"]) == ("a", day(9), 12, 5)


def test_the_target_group_becomes_a_spec_and_an_unknown_key_is_named() -> None:
    from omegaconf import OmegaConf

    spec = TargetSpec.from_config(OmegaConf.create({"name": "ratings", "positive_events": ["rating"], "min_value": 4}))
    assert (spec.name, list(spec.positive_events), spec.min_value) == ("ratings", ["rating"], 4)
    with pytest.raises(ConfigError, match=r"target: unknown key\(s\) \['positives'\]"):
        TargetSpec.from_config({"name": "x", "positives": ["rating"]})
