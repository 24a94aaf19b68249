"""Beyond-accuracy measures on lists small enough to check by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recsys_cli.evaluation import beyond


def test_gini_by_hand_and_by_mean_absolute_difference() -> None:
    assert beyond.gini(np.array([5, 5, 5])) == 0.0
    assert beyond.gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    assert beyond.gini(np.zeros(4)) == 0.0
    x = np.random.default_rng(0).exponential(size=200)
    # The textbook definition: mean absolute difference over twice the mean.
    textbook = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())
    assert beyond.gini(x) == pytest.approx(textbook)


def test_coverage_and_gini_leave_out_the_unknown_item() -> None:
    recs = np.array([[1, 2], [1, 3]])
    out = beyond.set_level(recs, [1, 2], n_items=6)  # items 1..5 are recommendable
    assert out["coverage@1"] == pytest.approx(1 / 5)
    assert out["coverage@2"] == pytest.approx(3 / 5)
    # Exposure at k=2 over items 1..5 is [2, 1, 1, 0, 0].
    assert out["gini@2"] == pytest.approx(beyond.gini(np.array([2, 1, 1, 0, 0])))


def test_novelty_is_self_information_of_training_popularity() -> None:
    popularity = np.array([0.0, 4.0, 1.0, 0.0])  # of 8 training users
    info = beyond.self_information(popularity, 8)
    assert info[1] == pytest.approx(1.0) and info[2] == pytest.approx(3.0)
    assert info[3] == pytest.approx(3.0)  # nobody: counted as one user, not infinitely novel
    m = beyond.per_user(np.array([[1, 2]]), [1, 2], popularity, 8)
    assert m["novelty@1"][0] == pytest.approx(1.0) and m["novelty@2"][0] == pytest.approx(2.0)
    assert m["popularity@2"][0] == pytest.approx((4 / 8 + 1 / 8) / 2)


def test_training_popularity_is_the_level_of_a_random_interaction() -> None:
    # Items with 3 and 1 interacting users out of 4: a random interaction is on the
    # first item 3 times in 4 (share 0.75), on the second once (share 0.25).
    assert beyond.training_popularity(np.array([0.0, 3.0, 1.0]), 4) == pytest.approx(0.75 * 0.75 + 0.25 * 0.25)


def test_category_diversity_matches_counting_pairs() -> None:
    rng = np.random.default_rng(1)
    cats = rng.integers(0, 4, size=(40, 8))
    out = beyond.category_diversity(cats, [1, 2, 5, 8])
    assert "diversity@1" not in out  # no pair in a list of one
    for k in (2, 5, 8):
        brute = [np.mean([a != b for a, b in itertools.combinations(row[:k], 2)]) for row in cats]
        np.testing.assert_allclose(out[f"diversity@{k}"], brute)


def test_new_product_share_per_user() -> None:
    new = np.array([False, True, False, True])
    m = beyond.per_user(np.array([[1, 2, 3], [2, 2, 2]]), [3], np.ones(4), 4, new_items=new)
    np.testing.assert_allclose(m["new_items@3"], [2 / 3, 0.0])
    assert "diversity@3" not in m  # no categories given
