"""Performance and fairness drift (recsys_cli/monitoring/performance.py) on a toy shop
whose answers are known.

Before the model's cutoff, ten filler shoppers make items i0..i9 popular in that
order (i0 bought by all ten, i9 by one), and the twelve evaluated shoppers u00..u11
each buy z, so a popularity model recommends i0, i1, i2, ... to each of them. The
reference window (the week after the cutoff) is kind to the model: three users in
four buy i0, its first pick. The current window, a month later, is not: three in
four buy i8, which it ranks ninth.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys_cli.data.schema import EVENT_TYPES, Col, EventType
from recsys_cli.evaluation.metrics import per_user
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData, interaction_matrix
from recsys_cli.models.item_knn import ItemKNN
from recsys_cli.models.popularity import Popularity
from recsys_cli.monitoring.performance import (
    PerformanceError,
    performance_drift,
    segment_drift,
    window_scores,
    window_truth,
)
from recsys_cli.splits.targets import TargetSpec

CUTOFF = datetime(2026, 3, 1, tzinfo=UTC)
REF = (CUTOFF, CUTOFF + timedelta(days=7))
CUR = (CUTOFF + timedelta(days=30), CUTOFF + timedelta(days=37))
EVALUATED = [f"u{n:02d}" for n in range(12)]
PURCHASES = TargetSpec(positive_events=["purchase"])


def at(day: float) -> datetime:
    return CUTOFF + timedelta(days=day)


def lake(extra: list[tuple[str, str, str, datetime]] = ()) -> pl.LazyFrame:  # type: ignore[assignment]
    rows = [(f"f{j}", f"i{i}", "purchase", at(-10)) for j in range(10) for i in range(10 - j)]
    rows += [(u, "z", "purchase", at(-5)) for u in EVALUATED]
    rows += [(u, "i0" if n % 4 else "i8", "purchase", at(2)) for n, u in enumerate(EVALUATED)]
    rows += [(u, "i8" if n % 4 else "i0", "purchase", at(32)) for n, u in enumerate(EVALUATED)]
    rows += list(extra)
    return pl.LazyFrame(
        rows,
        schema={Col.USER: pl.String, Col.ITEM: pl.String, Col.EVENT: EventType, Col.TS: pl.Datetime("us", "UTC")},
        orient="row",
    )


def fit(model: Recommender, events: pl.LazyFrame) -> Recommender:
    before = events.filter(pl.col(Col.TS) < CUTOFF).collect().with_columns(pl.lit(1.0).alias("weight"))
    users, items = Vocabulary.fit(before[Col.USER]), Vocabulary.fit(before[Col.ITEM])
    return model.fit(TrainData(users, items, interaction_matrix(before, users, items)))


@pytest.fixture(scope="module")
def model() -> Recommender:
    return fit(Popularity(), lake())


def truth_of(model: Recommender, events: pl.LazyFrame, window: tuple[datetime, datetime], **kw: object):  # type: ignore[no-untyped-def]
    assert model.users is not None and model.items is not None
    return window_truth(events, model.users, model.items, *window, **kw)  # type: ignore[arg-type]


def relevant(model: Recommender, truth: sp.csr_matrix, row: int) -> set[str]:
    assert model.items is not None
    n = len(model.items)
    return {model.items.tokens[c] if c < n else "<unknown>" for c in truth[row].indices}


def row_of(model: Recommender, window, user: str) -> int:  # type: ignore[no-untyped-def]
    assert model.users is not None
    return int(np.flatnonzero(window.users == model.users.tokens.index(user))[0])


# -- the window's ground truth --------------------------------------------------------


def test_truth_is_the_window_positives_of_known_users(model: Recommender) -> None:
    window = truth_of(model, lake(), REF, target=PURCHASES)
    assert window.users.size == 12 and window.truth.shape[0] == 12
    assert relevant(model, window.truth, row_of(model, window, "u01")) == {"i0"}
    assert relevant(model, window.truth, row_of(model, window, "u00")) == {"i8"}
    assert window.counts["positives"] == 12 and window.counts["seen_excluded"] == 0


def test_window_is_half_open_start_in_end_out(model: Recommender) -> None:
    events = lake([("u01", "i5", "purchase", REF[0]), ("u01", "i6", "purchase", REF[1])])
    window = truth_of(model, events, REF, target=PURCHASES)
    assert relevant(model, window.truth, row_of(model, window, "u01")) == {"i0", "i5"}


def test_items_seen_in_the_lake_before_the_window_are_left_out_after_the_cutoff_too(model: Recommender) -> None:
    # u01 bought i3 after the model's cutoff but before the window: not a discovery.
    events = lake([("u01", "i3", "purchase", at(20)), ("u01", "i3", "purchase", at(33))])
    window = truth_of(model, events, CUR, target=PURCHASES)
    row = row_of(model, window, "u01")
    assert relevant(model, window.truth, row) == {"i8"}
    assert window.counts["seen_excluded"] == 1
    assert model.items is not None
    # Everything u01 bought before the window: in training (z), the week after (i0), since (i3).
    assert {model.items.tokens[c] for c in window.excluded[row].indices} == {"z", "i0", "i3"}
    kept = truth_of(model, events, CUR, target=TargetSpec(positive_events=["purchase"], exclude_seen=False))
    assert relevant(model, kept.truth, row_of(model, kept, "u01")) == {"i3", "i8"}


def test_seen_follows_the_targets_seen_events(model: Recommender) -> None:
    events = lake([("u01", "i3", "view", at(20)), ("u01", "i3", "purchase", at(33))])
    purchases_only = truth_of(model, events, CUR, target=PURCHASES)
    assert "i3" in relevant(model, purchases_only.truth, row_of(model, purchases_only, "u01"))
    discovery = TargetSpec(positive_events=["purchase"], seen_events=list(EVENT_TYPES))
    any_event = truth_of(model, events, CUR, target=discovery)
    assert relevant(model, any_event.truth, row_of(model, any_event, "u01")) == {"i8"}


def test_unknown_users_are_left_out_and_counted(model: Recommender) -> None:
    events = lake([("newbie", "i0", "purchase", at(33)), ("newbie", "i1", "purchase", at(34))])
    window = truth_of(model, events, CUR, target=PURCHASES)
    assert window.users.size == 12 and 0 not in window.users
    assert window.counts["unknown_users"] == 1 and window.counts["unknown_user_positives"] == 2


def test_unknown_items_are_misses_by_default_or_dropped_and_always_counted(model: Recommender) -> None:
    events = lake([("u01", "new1", "purchase", at(33)), ("u02", "new1", "add_to_cart", at(33))])
    carts = TargetSpec(positive_events=["add_to_cart", "purchase"])
    window = truth_of(model, events, CUR, target=carts)
    assert relevant(model, window.truth, row_of(model, window, "u01")) == {"i8", "<unknown>"}
    assert window.counts["unknown_items"] == 1 and window.counts["unknown_item_positives"] == 2
    assert window.summary()["unknown_item_share"] == pytest.approx(2 / 14)
    dropped = truth_of(model, events, CUR, target=carts, drop_unknown_items=True)
    assert dropped.truth.shape[1] == window.truth.shape[1] - 1
    assert relevant(model, dropped.truth, row_of(model, dropped, "u01")) == {"i8"}
    assert dropped.counts["unknown_item_positives"] == 2


def test_a_window_without_known_positives_or_reversed_is_a_clear_error(model: Recommender) -> None:
    with pytest.raises(PerformanceError, match="no positives"):
        truth_of(model, lake(), (at(100), at(107)), target=PURCHASES)
    with pytest.raises(PerformanceError, match="before end"):
        truth_of(model, lake(), (REF[1], REF[0]), target=PURCHASES)


# -- scoring -------------------------------------------------------------------------


@pytest.mark.parametrize("make", [Popularity, lambda: ItemKNN(k=5)])
def test_window_metrics_are_the_shared_metric_code_on_the_models_lists(make) -> None:  # type: ignore[no-untyped-def]
    events = lake()
    fitted = fit(make(), events)
    window = truth_of(fitted, events, CUR, target=PURCHASES)
    scores = window_scores(fitted, window.users, window.truth, k=[5, 10], batch=5)
    for k in (5, 10):
        recs, _ = fitted.recommend(window.users, k)
        for name, values in per_user(recs, window.truth, k).items():
            np.testing.assert_allclose(scores[f"{name}@{k}"], values, err_msg=f"{name}@{k}")
    assert set(scores) >= {"ndcg@10", "recall@10", "hitrate@10", "precision@10", "mrr@10", "map@10"}


def test_reference_and_current_scores_match_the_story(model: Recommender) -> None:
    ref, cur = (truth_of(model, lake(), w, target=PURCHASES) for w in (REF, CUR))
    assert window_scores(model, ref.users, ref.truth, k=5)["hitrate@5"].mean() == pytest.approx(0.75)
    assert window_scores(model, cur.users, cur.truth, k=5)["hitrate@5"].mean() == pytest.approx(0.25)


def test_items_seen_since_the_cutoff_are_kept_out_of_the_lists(model: Recommender) -> None:
    # u01 bought i0 (the model's first pick) after the cutoff; in the window it buys i1.
    events = lake([("u01", "i0", "purchase", at(20)), ("u01", "i1", "purchase", at(33))])
    window = truth_of(model, events, CUR, target=PURCHASES)
    row = row_of(model, window, "u01")
    plain = window_scores(model, window.users, window.truth, k=1)
    fair = window_scores(model, window.users, window.truth, k=1, exclude=window.excluded)
    assert plain["hitrate@1"][row] == 0.0  # its slot went to i0, which it already has
    assert fair["hitrate@1"][row] == 1.0
    others = np.arange(window.users.size) != row
    np.testing.assert_array_equal(plain["ndcg@1"][others], fair["ndcg@1"][others])


def test_k_beyond_the_catalogue_is_refused(model: Recommender) -> None:
    window = truth_of(model, lake(), REF, target=PURCHASES)
    with pytest.raises(PerformanceError, match="monitor k"):
        window_scores(model, window.users, window.truth, k=50)


# -- performance drift ---------------------------------------------------------------


def test_a_planted_drop_is_significant_and_a_window_against_itself_is_not(model: Recommender) -> None:
    ref, cur = (truth_of(model, lake(), w, target=PURCHASES) for w in (REF, CUR))
    before = window_scores(model, ref.users, ref.truth, k=5)
    after = window_scores(model, cur.users, cur.truth, k=5)
    drift = performance_drift(before, after, resamples=500)
    hit = drift["metrics"]["hitrate@5"]
    assert hit["significant_drop"] and "ndcg@5" in drift["dropped"]
    assert hit["difference"]["value"] == pytest.approx(-0.5)
    assert hit["relative"]["value"] == pytest.approx(0.25 / 0.75 - 1)
    same = performance_drift(before, before, resamples=500)
    assert same["dropped"] == []
    assert json.loads(json.dumps(drift, allow_nan=False)) == drift
    assert same["metrics"]["hitrate@5"]["difference"]["low"] < 0 < same["metrics"]["hitrate@5"]["difference"]["high"]


def test_a_minimum_relative_drop_keeps_small_significant_drops_quiet() -> None:
    rng = np.random.default_rng(3)
    before = {"hitrate@10": (rng.random(20_000) < 0.30).astype(float)}
    after = {"hitrate@10": (rng.random(20_000) < 0.28).astype(float)}
    assert performance_drift(before, after, resamples=300)["dropped"] == ["hitrate@10"]
    assert performance_drift(before, after, resamples=300, min_relative_drop=0.2)["dropped"] == []


def test_intervals_contain_the_estimates_and_repeat_for_a_seed() -> None:
    rng = np.random.default_rng(0)
    before = {"ndcg@10": rng.random(300), "recall@10": rng.random(300)}
    after = {"ndcg@10": rng.random(250) * 0.9, "recall@10": rng.random(250)}
    one, again, other = (performance_drift(before, after, resamples=400, seed=s) for s in (7, 7, 8))
    assert one == again and one != other
    for m in one["metrics"].values():
        for part in ("reference", "current", "difference", "relative"):
            assert m[part]["low"] <= m[part]["value"] <= m[part]["high"], part


def test_an_unchanged_shop_rarely_alarms_and_a_real_drop_is_caught() -> None:
    """An A/A pair of windows (different users, one distribution) alarms in at most
    5% of seeds; a drop of hit rate from 0.30 to 0.20 is caught in at least 95%."""
    false_alarms = caught = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        base = {"hitrate@10": (rng.random(1000) < 0.3).astype(float)}
        same = {"hitrate@10": (rng.random(800) < 0.3).astype(float)}
        worse = {"hitrate@10": (rng.random(800) < 0.2).astype(float)}
        false_alarms += bool(performance_drift(base, same, resamples=300, seed=seed)["dropped"])
        caught += bool(performance_drift(base, worse, resamples=300, seed=seed)["dropped"])
    assert false_alarms <= 5 and caught >= 95


def test_empty_window_or_no_shared_metric_is_a_clear_error() -> None:
    with pytest.raises(PerformanceError, match="current window has no evaluated users"):
        performance_drift({"ndcg@10": np.ones(3)}, {"ndcg@10": np.zeros(0)})
    with pytest.raises(PerformanceError, match="share no metric"):
        performance_drift({"ndcg@10": np.ones(3)}, {"recall@10": np.ones(3)})


# -- fairness drift ------------------------------------------------------------------


def two_regions(rng: np.random.Generator, north: float, south: float, n: int = 400) -> tuple[dict, np.ndarray]:  # type: ignore[type-arg]
    labels = np.where(np.arange(n) % 2 == 0, "north", "south")
    rate = np.where(labels == "north", north, south)
    return {"ndcg@10": (rng.random(n) < rate).astype(float)}, labels


def test_a_widening_segment_gap_is_detected() -> None:
    rng = np.random.default_rng(1)
    (before, ref_labels), (after, cur_labels) = two_regions(rng, 0.4, 0.38), two_regions(rng, 0.4, 0.15)
    drift = segment_drift(before, after, ref_labels, cur_labels, resamples=500)
    assert drift["gap_widened"] and drift["current_gap"]["worst"] == "south"
    change = drift["gap_change"]
    assert change["low"] > 0 and change["low"] <= change["value"] <= change["high"]
    south = next(s for s in drift["segments"] if s["segment"] == "south")
    assert south["difference"]["high"] < 0 and south["reference"]["users"] == 200


def test_an_unchanged_gap_is_not_flagged_and_small_segments_stay_out() -> None:
    rng = np.random.default_rng(2)
    (before, ref_labels), (after, cur_labels) = two_regions(rng, 0.4, 0.3), two_regions(rng, 0.4, 0.3)
    cur_labels = cur_labels.astype(object)
    cur_labels[:5] = "west"  # five users: too few to judge
    cur_labels[5:9] = None
    drift = segment_drift(before, after, ref_labels, cur_labels, resamples=500)
    assert not drift["gap_widened"]
    in_gap = {s["segment"] for s in drift["segments"] if s["in_gap"]}
    assert in_gap == {"north", "south"}
    west = next(s for s in drift["segments"] if s["segment"] == "west")
    assert west["reference"]["users"] == 0 and west["reference"]["value"] is None
    assert json.loads(json.dumps(drift, allow_nan=False)) == drift


def test_segment_drift_with_one_segment_has_no_gap() -> None:
    drift = segment_drift({"ndcg@10": np.ones(30)}, {"ndcg@10": np.zeros(30)}, ["a"] * 30, ["a"] * 30, resamples=50)
    assert drift["reference_gap"] is None and drift["gap_change"] is None and not drift["gap_widened"]


def test_segment_labels_must_match_the_users() -> None:
    with pytest.raises(PerformanceError, match="3 current segment labels for 4 users"):
        segment_drift({"ndcg@10": np.ones(4)}, {"ndcg@10": np.ones(4)}, ["a"] * 4, ["a"] * 3)
    with pytest.raises(PerformanceError, match="no 'ndcg@5'"):
        segment_drift({"ndcg@10": np.ones(4)}, {"ndcg@10": np.ones(4)}, ["a"] * 4, ["a"] * 4, metric="ndcg@5")
