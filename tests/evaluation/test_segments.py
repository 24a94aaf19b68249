"""Groupings of users and items, and the per-group tables built on them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys_cli.evaluation import segments


def test_attribute_groups_pool_rare_values_and_keep_missing_apart() -> None:
    values = ["b", "a", "b", None, "c", "b", "a", "d"]
    g = segments.from_values("x", values, max_groups=2)
    assert g.labels == ("a", "b", "other", "unknown")
    assert g.row_labels().tolist() == ["b", "a", "b", "unknown", "other", "b", "a", "other"]
    assert g.counts().tolist() == [2, 3, 2, 1]


def test_item_attribute_gives_the_unknown_item_its_own_group() -> None:
    g = segments.item_attribute("category", ["shoes", None, "hats"])
    assert g.row_labels().tolist() == [segments.UNSEEN, "shoes", "unknown", "hats"]


def test_activity_buckets_and_bad_edges() -> None:
    g = segments.activity(np.array([0, 1, 4, 5, 19, 20, 400]), [5, 20])
    assert g.labels == ("0", "1-4", "5-19", "20+")
    assert g.row_labels().tolist() == ["0", "1-4", "1-4", "5-19", "5-19", "20+", "20+"]
    assert segments.activity(np.array([1, 2]), [2]).labels == ("0", "1", "2+")
    with pytest.raises(ValueError, match="increasing"):
        segments.activity(np.array([1]), [5, 5])


def test_popularity_tiers_follow_cumulative_interactions() -> None:
    # 100 interactions: item 1 has 40, item 2 30, items 3-5 10 each; item 6 none.
    popularity = np.array([7.0, 40, 30, 10, 10, 10, 0])
    g = segments.popularity_tiers(popularity, {"head": 0.5, "torso": 0.8})
    # Item 1 starts at 0% (head), item 2 at 40% (< 50%: head), item 3 at 70% (torso),
    # items 4 and 5 at 80% and 90% (tail); item 0 and item 6 never drew anyone.
    assert g.row_labels().tolist() == [segments.UNSEEN, "head", "head", "torso", "tail", "tail", segments.UNSEEN]
    with pytest.raises(ValueError, match="inside"):
        segments.popularity_tiers(popularity, {"head": 0.8, "torso": 0.5})


def test_user_table_means_match_a_polars_group_by() -> None:
    rng = np.random.default_rng(0)
    g = segments.from_values("region", rng.choice(["n", "s", "e"], 300).tolist())
    ndcg = rng.random(300)
    brier = np.where(rng.random(300) < 0.3, np.nan, rng.random(300))  # some users without probabilities
    rows = segments.user_table(g, {"ndcg@10": ndcg, "brier": brier})
    frame = pl.DataFrame({"g": g.row_labels().tolist(), "ndcg": ndcg, "brier": pl.Series(brier, nan_to_null=True)})
    expected = frame.group_by("g").agg(pl.len(), pl.col("ndcg").mean(), pl.col("brier").mean()).sort("g")
    assert [r["group"] for r in rows] == expected["g"].to_list()
    assert [r["users"] for r in rows] == expected["len"].to_list()
    np.testing.assert_allclose([r["ndcg@10"] for r in rows], expected["ndcg"].to_numpy())
    np.testing.assert_allclose([r["brier"] for r in rows], expected["brier"].to_numpy())
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)


def test_item_table_by_hand() -> None:
    # Items 1, 2 are "a", item 3 is "b"; item 0 (unknown) is its own group.
    g = segments.item_attribute("category", ["a", "a", "b"])
    popularity = np.array([0.0, 6, 2, 2])
    recs = np.array([[1, 3], [2, 1]])
    truth = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 0, 0, 1]]))  # user 1 also bought an unknown product
    hit = np.array([[False, True], [False, False]])
    rows = {r["group"]: r for r in segments.item_table(g, recs, hit, truth, popularity, [1, 2])}
    a, b, unseen = rows["a"], rows["b"], rows[segments.UNSEEN]
    assert (a["items"], b["items"], unseen["items"]) == (2, 1, 0)
    assert a["interaction_share"] == pytest.approx(0.8) and b["interaction_share"] == pytest.approx(0.2)
    assert b["positive_share"] == pytest.approx(2 / 3) and unseen["positive_share"] == pytest.approx(1 / 3)
    assert a["exposure@1"] == 1.0 and a["exposure@2"] == pytest.approx(3 / 4)
    assert b["exposure_ratio@2"] == pytest.approx((1 / 4) / 0.2)
    assert b["recall@1"] == 0.0 and b["recall@2"] == pytest.approx(1 / 2)
    assert np.isnan(a["recall@2"])  # nothing of group a was relevant
    assert unseen["recall@2"] == 0.0 and np.isnan(unseen["exposure_ratio@2"])


def test_new_products_past_the_catalogue_count_once_each_in_the_unseen_group() -> None:
    """Ground truth holds each product the model never saw in a column past the
    catalogue (models.validation.Targets): two such products are two positives of
    the `not in training` group, not one."""
    g = segments.item_attribute("category", ["a", "a", "b"])
    popularity = np.array([0.0, 6, 2, 2])
    recs = np.array([[1, 3]])
    truth = sp.csr_matrix(np.array([[0, 0, 0, 1, 1, 1]]))  # item 3, and two new products (columns 4, 5)
    hit = np.array([[False, True]])
    rows = {r["group"]: r for r in segments.item_table(g, recs, hit, truth, popularity, [2])}
    assert rows[segments.UNSEEN]["positive_share"] == pytest.approx(2 / 3)
    assert rows["b"]["positive_share"] == pytest.approx(1 / 3) and rows["b"]["recall@2"] == 1.0
