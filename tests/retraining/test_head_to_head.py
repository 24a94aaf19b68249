"""The candidate against production on the held-out window, user by user
(recsys_cli/retraining/head_to_head.py), on a toy shop whose answers are known.

Before production's cutoff ten filler shoppers make i0..i9 popular in that order,
and shoppers a, b and c each buy z. The candidate's cutoff is five days later: by
then c bought y twice (so c comes first in the candidate's user vocabulary, last of
the three in production's) and d, a newcomer, bought z. Both models are popularity
rankers, so a user's list is the same under both; in the held-out week a buys i0
(first on the list), b buys i2 (third), c buys i5 (sixth), d buys i1 and e, whom
neither model knows, buys i1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from recsys_cli.data.schema import Col, EventType
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData, interaction_matrix
from recsys_cli.models.popularity import Popularity
from recsys_cli.retraining.head_to_head import HeadToHeadError, head_to_head, means
from recsys_cli.splits.targets import TargetSpec

PRODUCTION_CUTOFF = datetime(2026, 3, 1, tzinfo=UTC)
CUTOFF = PRODUCTION_CUTOFF + timedelta(days=5)
HELD_OUT = (CUTOFF, CUTOFF + timedelta(days=7))
PURCHASES = TargetSpec(positive_events=["purchase"])
METRICS = ["ndcg@10", "recall@10"]


def at(day: float) -> datetime:
    return PRODUCTION_CUTOFF + timedelta(days=day)


def shop(held_out: list[tuple[str, str]]) -> pl.LazyFrame:
    rows = [(f"f{j}", f"i{i}", at(-10)) for j in range(10) for i in range(10 - j)]
    rows += [(u, "z", at(-5)) for u in ("a", "b", "c")]
    rows += [("c", "y", at(2)), ("c", "y", at(2.5)), ("d", "z", at(3))]
    rows += [(u, item, at(6)) for u, item in held_out]
    return pl.LazyFrame(
        [(u, i, "purchase", t) for u, i, t in rows],
        schema={Col.USER: pl.String, Col.ITEM: pl.String, Col.EVENT: EventType, Col.TS: pl.Datetime("us", "UTC")},
        orient="row",
    )


WINDOW = [("a", "i0"), ("b", "i2"), ("c", "i5"), ("d", "i1"), ("e", "i1")]


def popularity(events: pl.LazyFrame, cutoff: datetime) -> Recommender:
    before = events.filter(pl.col(Col.TS) < cutoff).collect().with_columns(pl.lit(1.0).alias("weight"))
    users, items = Vocabulary.fit(before[Col.USER]), Vocabulary.fit(before[Col.ITEM])
    return Popularity().fit(TrainData(users, items, interaction_matrix(before, users, items)))


@pytest.fixture(scope="module")
def models() -> tuple[Recommender, Recommender]:
    events = shop(WINDOW)
    return popularity(events, CUTOFF), popularity(events, PRODUCTION_CUTOFF)


def test_the_vocabularies_order_the_shared_users_differently(models: tuple[Recommender, Recommender]) -> None:
    candidate, production = models
    assert candidate.users is not None and production.users is not None
    order = [t for t in candidate.users.tokens if t in ("a", "b", "c")]
    assert order != [t for t in production.users.tokens if t in ("a", "b", "c")]  # the premise of the next test


def test_pairs_the_users_both_models_know_row_by_row(models: tuple[Recommender, Recommender]) -> None:
    candidate, production = models
    pairs = head_to_head(candidate, production, shop(WINDOW), *HELD_OUT, PURCHASES, METRICS)
    expected = np.array([1.0, 1 / np.log2(4), 1 / np.log2(7)])  # a, b, c: first, third and sixth on their lists
    for side in (pairs.candidate, pairs.production):
        assert set(side) == set(METRICS)
        np.testing.assert_allclose(side["ndcg@10"], expected)
        np.testing.assert_allclose(side["recall@10"], [1.0, 1.0, 1.0])
    assert pairs.counts == {
        "users_compared": 3,
        "candidate_users": 4,  # d too, whom production never met
        "production_users": 3,
        "candidate_only_users": 1,
    }
    assert means(pairs.candidate) == pytest.approx({"ndcg@10": expected.mean(), "recall@10": 1.0})


def test_no_shared_user_with_a_positive_is_an_error(models: tuple[Recommender, Recommender]) -> None:
    candidate, production = models
    with pytest.raises(HeadToHeadError, match="held-out window"):
        head_to_head(candidate, production, shop([("d", "i1"), ("e", "i1")]), *HELD_OUT, PURCHASES, METRICS)


def test_a_metric_that_is_not_a_ranking_metric_is_named(models: tuple[Recommender, Recommender]) -> None:
    candidate, production = models
    with pytest.raises(HeadToHeadError, match=r"retrain\.guard\.metrics: auc@10 is not a ranking metric"):
        head_to_head(candidate, production, shop(WINDOW), *HELD_OUT, PURCHASES, ["ndcg@10", "auc@10"])
