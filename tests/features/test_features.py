"""Exact features on the 15-event log (see tests/splits/conftest.py): validation
is predicted from the 9 events before day 7 noon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_cli.data.schema import EVENT_TYPES, EVENTS_SCHEMA, Col
from recsys_cli.features.build import FeatureConfig, build
from recsys_cli.features.context import context
from recsys_cli.features.interactions import SEEN, interactions
from recsys_cli.features.sequences import sequences
from recsys_cli.features.vocab import OOV, Vocabulary
from recsys_cli.splits.base import PART, TRAIN, Fold
from recsys_cli.splits.global_temporal import GlobalTemporalSplitter
from recsys_cli.splits.targets import TargetSpec
from tests.splits.conftest import day

CUTOFF = day(7)


def full(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Add the contract columns the hand-written log leaves out."""
    names = lf.collect_schema().names()
    return lf.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in EVENTS_SCHEMA.items() if c not in names)


@pytest.fixture
def history(assigned: pl.LazyFrame) -> pl.LazyFrame:
    return full(assigned).filter(pl.col(PART) == TRAIN).drop(PART)


def test_interactions_weight_events_by_type(history: pl.LazyFrame) -> None:
    out = interactions(history, CUTOFF, {"view": 1, "add_to_cart": 3, "purchase": 5}).collect()
    assert out.select(Col.USER, Col.ITEM, "weight", "events").rows() == [
        ("a", "i1", 6.0, 2),
        ("a", "i2", 1.0, 1),
        ("a", "i3", 1.0, 1),
        ("b", "i1", 1.0, 1),
        ("b", "i2", 4.0, 2),
        ("c", "i3", 6.0, 2),
    ]


def test_interaction_dedup_and_decay(history: pl.LazyFrame) -> None:
    strongest = interactions(history, CUTOFF, {"view": 1, "purchase": 5}, dedup="max").collect()
    assert strongest.filter(pl.col(Col.USER) == "a")["weight"].to_list() == [5.0, 1.0, 1.0]
    decayed = interactions(history, CUTOFF, {"view": 1}, half_life_days=2).collect()
    # b viewed i1 on day 6, one day before the cutoff: 0.5 ** (1 / 2)
    assert decayed.filter((pl.col(Col.USER) == "b") & (pl.col(Col.ITEM) == "i1"))["weight"].item() == pytest.approx(
        0.5**0.5
    )
    # zero-weight pairs (b's add_to_cart weighs nothing here) keep only what counts
    assert decayed.filter(pl.col(Col.USER) == "b")[Col.ITEM].to_list() == ["i1", "i2"]


def test_sequences_keep_the_most_recent_events_oldest_first(history: pl.LazyFrame) -> None:
    out = sequences(history, max_len=3).collect()
    a = out.filter(pl.col(Col.USER) == "a").row(0, named=True)
    assert a["items"] == ["i1", "i2", "i3"] and a["event_types"] == ["purchase", "view", "view"]
    assert a["gaps_s"] == [0, 2 * 86_400, 2 * 86_400] and a["length_total"] == 4
    assert all(t < CUTOFF for t in a["ts"])


def test_aggregates_over_trailing_windows(assigned: pl.LazyFrame) -> None:
    fs = build(full(assigned), "val", CUTOFF, FeatureConfig(windows_days=(1, 3)))
    users = {r[Col.USER]: r for r in fs.frames["user_features"].iter_rows(named=True)}
    assert (users["b"]["n_view_1d"], users["b"]["n_view_3d"], users["b"]["events_total"]) == (1, 1, 3)
    assert users["c"]["n_purchase_1d"] == 1 and users["c"]["conversion_3d"] == 1.0
    assert users["a"]["recency_days"] == 2.0 and users["a"]["activity_level"] == "new"
    items = {r[Col.ITEM]: r for r in fs.frames["item_features"].iter_rows(named=True)}
    assert items["i3"]["n_view_3d"] == 2 and items["i3"]["conversion"] == 0.5
    assert "i4" not in items  # first seen after the cutoff


def test_context_features() -> None:
    df = pl.DataFrame({Col.TS: [datetime(2026, 1, 3, 21, 5, tzinfo=UTC)]}).select(context())
    assert df.row(0) == (21, 6)


def test_vocabulary_round_trip_and_unseen_ids() -> None:
    vocab = Vocabulary.fit(pl.Series(["u2", "u1", "u2", "u3", "u1", "u2"]), min_count=2)
    assert vocab.tokens == (OOV, "u2", "u1")
    again = Vocabulary.from_json(vocab.to_json())
    assert again == vocab
    encoded = pl.DataFrame({"u": ["u1", "u3", "new", None]}).select(again.encode("u"))["u"].to_list()
    assert encoded == [2, 0, 0, 0]


@settings(max_examples=40, deadline=None)
@given(
    seconds=st.lists(st.integers(0, 30 * 86_400), min_size=4, max_size=50),
    cut=st.integers(86_400, 29 * 86_400),
)
def test_nothing_at_or_after_the_cutoff_reaches_features(seconds: list[int], cut: int) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    cutoff = t0 + timedelta(seconds=cut)
    kinds = ["view", "add_to_cart", "purchase"]
    events = full(
        pl.LazyFrame(
            {
                Col.USER: [f"u{s % 5}" for s in seconds],
                Col.ITEM: [f"i{s % 13}" for s in seconds],
                Col.EVENT: pl.Series([kinds[s % 3] for s in seconds]).cast(EVENTS_SCHEMA[Col.EVENT]),
                Col.TS: [t0 + timedelta(seconds=s) for s in seconds],
            }
        )
    )
    fold = Fold("f", None, cutoff, cutoff + timedelta(days=1), cutoff + timedelta(days=400))
    assigned = GlobalTemporalSplitter().assign(events, fold)
    fs = build(assigned, "val", cutoff, FeatureConfig(windows_days=(1, 7)))
    before = events.filter(pl.col(Col.TS) < cutoff).collect()
    assert fs.frames["interactions"]["last_ts"].max() is None or fs.frames["interactions"]["last_ts"].max() < cutoff
    seq_ts = (
        fs.frames["sequences"].select(pl.col("ts").list.max().max()).item() if fs.frames["sequences"].height else None
    )
    assert seq_ts is None or seq_ts < cutoff
    assert fs.frames["interactions"]["events"].sum() == before.height


def test_catalogues_without_prices_or_launch_dates(assigned: pl.LazyFrame) -> None:
    """MovieLens has genres but no prices: aggregates leave those features empty."""
    items = pl.LazyFrame({Col.ITEM: ["i1", "i2", "i3"], Col.CATEGORY: ["x", "y", "x"]})
    fs = build(full(assigned), "val", CUTOFF, FeatureConfig(windows_days=(1, 3)), items=items)
    users = fs.frames["user_features"]
    assert users["price_affinity"].null_count() == users.height
    assert users.filter(pl.col(Col.USER) == "c")["top_category"].item() == "x"
    assert set(fs.frames["item_features"][Col.ITEM]) == {"i1", "i2", "i3"}


# ---- what the target counts as already seen -------------------------------------------

ENGAGEMENT = TargetSpec(name="engagement", positive_events=["add_to_cart", "purchase"])
DISCOVERY = TargetSpec(
    name="engagement_new", positive_events=["add_to_cart", "purchase"], seen_events=list(EVENT_TYPES)
)


def seen_pairs(frame: pl.DataFrame) -> list[tuple[str, str]]:
    return frame.filter(pl.col(SEEN)).select(Col.USER, Col.ITEM).rows()


def test_each_pair_records_whether_the_target_counts_it_as_seen(history: pl.LazyFrame) -> None:
    """Before the cutoff a bought i1, b carted i2 and c bought i3; the rest were views."""
    weights = {"view": 1, "add_to_cart": 3, "purchase": 5}
    carted = interactions(history, CUTOFF, weights, seen=ENGAGEMENT.excluded()).collect()
    assert seen_pairs(carted) == [("a", "i1"), ("b", "i2"), ("c", "i3")]
    assert carted.height == 6  # the viewed pairs stay interactions, just not seen
    everything = interactions(history, CUTOFF, weights, seen=DISCOVERY.excluded()).collect()
    assert everything[SEEN].all() and everything.height == 6
    kept = TargetSpec(positive_events=["purchase"], exclude_seen=False)
    assert not interactions(history, CUTOFF, weights, seen=kept.excluded()).collect()[SEEN].any()


def test_a_seen_pair_without_weight_is_kept_with_weight_zero(history: pl.LazyFrame) -> None:
    """b only viewed and carted i2: with those weighing nothing the pair carries no
    interaction, but a cart makes i2 seen, so it stays to be excluded."""
    out = interactions(history, CUTOFF, {"purchase": 5}, seen=ENGAGEMENT.excluded()).collect()
    assert out.select(Col.USER, Col.ITEM, "weight", SEEN).rows() == [
        ("a", "i1", 5.0, True),
        ("b", "i2", 0.0, True),
        ("c", "i3", 5.0, True),
    ]


def test_the_feature_set_and_every_ranker_window_record_the_targets_seen_items(assigned: pl.LazyFrame) -> None:
    cfg = FeatureConfig(windows_days=(1,), ranker_windows=2, ranker_label_days=2, ranker_stride_days=1)
    fs = build(full(assigned), "val", CUTOFF, cfg, target=ENGAGEMENT)
    assert seen_pairs(fs.frames["interactions"]) == [("a", "i1"), ("b", "i2"), ("c", "i3")]
    # window 0 predicts days 5-7 from the events before day 5: only a's purchase of i1 and b's cart of i2
    assert seen_pairs(fs.frames["ranker/0/interactions"]) == [("a", "i1"), ("b", "i2")]
    assert seen_pairs(fs.frames["ranker/1/interactions"]) == [("a", "i1"), ("b", "i2")]
    discovery = build(full(assigned), "val", CUTOFF, cfg, target=DISCOVERY)
    assert all(discovery.frames[f"{w}interactions"][SEEN].all() for w in ("", "ranker/0/", "ranker/1/"))
