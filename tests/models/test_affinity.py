"""CategoryAffinity: a user's categories first, each by what sells there now."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.models.affinity import CategoryAffinity, item_categories
from recsys_cli.models.base import Recommender
from tests.models.clickstream_shop import minutes, ranked, shop

CATEGORIES = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "b3": "B"}
NOW = minutes(30)


def events() -> list[tuple[str, str, str, float]]:
    crowd = [(f"p{n}", "b1", "view", NOW - n) for n in range(4)]  # b1: the shop's best-seller
    crowd += [(f"p{n}", "b2", "view", NOW - n) for n in range(2)]
    crowd += [("q1", "a2", "view", NOW - 5), ("q2", "a2", "view", NOW - 6), ("q3", "a3", "view", NOW - 7)]
    return [*crowd, ("ann", "a1", "view", NOW - 10), ("zed", "x1", "view", NOW - 10)]


def test_a_user_who_only_viewed_category_a_gets_a_items_first() -> None:
    data = shop(events(), CATEGORIES)
    model = CategoryAffinity().fit(data)
    assert ranked(model, data, "ann", k=3, exclude_seen=False) == ["a2", "a3", "a1"]  # a3 met more lately
    assert ranked(model, data, "ann", k=3) == ["a2", "a3", "b1"]  # then the shop's best-seller


def test_a_user_without_a_category_gets_the_shops_popularity() -> None:
    """Items without a category form their own; past it, the global term ranks."""
    data = shop(events(), CATEGORIES)
    assert ranked(CategoryAffinity().fit(data), data, "zed", k=3) == ["b1", "b2", "a2"]  # b2 met more lately


def test_items_of_a_category_go_by_recent_popularity() -> None:
    """a2 was popular a month ago, a3 is bought now: with a week's half-life a3 leads."""
    old = [(f"q{n}", "a2", "view", 0.0) for n in range(3)]
    now = [("r1", "a3", "purchase", NOW - 1), ("ann", "a1", "view", NOW)]
    data = shop(old + now, CATEGORIES)
    assert ranked(CategoryAffinity(half_life_days=7).fit(data), data, "ann", k=2) == ["a3", "a2"]
    assert ranked(CategoryAffinity(half_life_days=None, event_weights={"view": 1}).fit(data), data, "ann", k=2) == [
        "a2",
        "a3",
    ]


def test_scores_mix_category_and_global_shares() -> None:
    data = shop(events(), CATEGORIES)
    alone = CategoryAffinity(global_weight=0.0).fit(data)
    only_global = CategoryAffinity(global_weight=1.0).fit(data)
    ann = data.user_index(pl.Series(["ann"]))
    a_items = data.item_index(pl.Series(["a1", "a2", "a3"]))
    assert np.isclose(alone.score(ann)[0, a_items].sum(), 1.0)  # all of ann's mass is in A
    assert np.isclose(only_global.score(ann)[0].sum(), 1.0)


def test_categories_are_indexed_with_the_feature_sets_vocabulary() -> None:
    data = shop(events(), CATEGORIES)
    category = item_categories(data)
    vocab = data.vocabularies["category"]
    assert category[data.item_index(pl.Series(["x1"]))[0]] == 0
    assert vocab.tokens[category[data.item_index(pl.Series(["a2"]))[0]]] == "A"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    data = shop(events(), CATEGORIES)
    model = CategoryAffinity().fit(data)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
