"""RecentlyViewed: re-targeting, the items a user met lately first.

Which items may be recommended follows the target (`Recommender.seen`); these
specifications rank with `exclude_seen=False` to read the model's own order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys_cli.models.base import Recommender
from recsys_cli.models.recently_viewed import RecentlyViewed
from tests.models.clickstream_shop import minutes, ranked, shop

DAY = minutes(1)
CROWD = [(f"p{n}", "hit", "view", 10 * DAY) for n in range(5)]  # the shop's best-seller, never met by ann


def test_the_most_recently_viewed_item_ranks_first() -> None:
    data = shop([*CROWD, ("ann", "a", "view", 1 * DAY), ("ann", "b", "view", 5 * DAY), ("ann", "c", "view", 6 * DAY)])
    assert ranked(RecentlyViewed().fit(data), data, "ann", k=4, exclude_seen=False) == ["c", "b", "a", "hit"]


def test_frequency_counts_within_the_half_life() -> None:
    """Three views of a this morning beat one view of b an hour later."""
    ann = [("ann", "a", "view", 6 * DAY + m) for m in (0, 5, 10)] + [("ann", "b", "view", 6 * DAY + 70)]
    data = shop([*CROWD, *ann])
    assert ranked(RecentlyViewed(half_life_days=1).fit(data), data, "ann", k=2, exclude_seen=False) == ["a", "b"]
    assert ranked(RecentlyViewed(half_life_days=0.01).fit(data), data, "ann", k=2, exclude_seen=False) == ["b", "a"]


def test_an_item_met_long_ago_still_outranks_every_item_never_met() -> None:
    data = shop([*CROWD, ("ann", "a", "view", 0.0)])
    assert ranked(RecentlyViewed(half_life_days=0.1).fit(data), data, "ann", k=2, exclude_seen=False) == ["a", "hit"]


def test_a_visitor_back_after_weeks_gets_the_order_of_their_last_visit() -> None:
    """Ages count from the user's own latest event, not the cutoff: weights of a
    visit 60 half-lives ago would otherwise all round to the same score."""
    ann = [("ann", "a", "view", 0.0), ("ann", "a", "view", 1.0), ("ann", "b", "view", 30.0)]
    data = shop([*CROWD, *ann])
    assert ranked(RecentlyViewed(half_life_days=0.01).fit(data), data, "ann", k=2, exclude_seen=False) == ["b", "a"]


def test_carts_weigh_more_and_bought_items_are_not_retargeted() -> None:
    ann = [("ann", "a", "view", 6 * DAY), ("ann", "b", "add_to_cart", 6 * DAY), ("ann", "c", "view", 6 * DAY + 1)]
    ann += [("ann", "d", "view", 6 * DAY + 2), ("ann", "d", "purchase", 6 * DAY + 3)]
    data = shop([*CROWD, *ann])
    assert ranked(RecentlyViewed().fit(data), data, "ann", k=4, exclude_seen=False) == ["b", "c", "a", "hit"]
    kept = ranked(RecentlyViewed(skip_purchased=False).fit(data), data, "ann", k=5, exclude_seen=False)
    assert kept.index("d") < kept.index("hit")


def test_items_never_met_follow_recent_popularity() -> None:
    old = [(f"q{n}", "old", "view", 0.0) for n in range(8)]
    data = shop([*CROWD, *old, ("ann", "a", "view", 10 * DAY)])
    assert ranked(RecentlyViewed().fit(data), data, "ann", k=3, exclude_seen=False) == ["a", "hit", "old"]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    data = shop([*CROWD, ("ann", "a", "view", 1 * DAY), ("ann", "b", "add_to_cart", 2 * DAY)])
    model = RecentlyViewed().fit(data)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
