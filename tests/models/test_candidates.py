"""The candidate pairs' features: where each generator placed each pair."""

from __future__ import annotations

import numpy as np

from recsys_cli.models.candidates import _list_rank


def test_a_pairs_rank_is_its_place_in_the_users_list_or_one_past_the_end() -> None:
    rng = np.random.default_rng(2)
    n = 6
    top = rng.integers(0, 15, (30, n))  # 0 pads a short list; an item may be listed twice
    row = rng.integers(0, 30, 400)
    items = rng.integers(1, 15, 400)
    match = top[row] == items[:, None]
    want = np.where(match.any(axis=1), match.argmax(axis=1) + 1, n + 1)  # the first place it holds
    np.testing.assert_array_equal(_list_rank(top, row, items, n), want)
    assert (_list_rank(np.zeros((3, n), np.int64), np.array([0, 2]), np.array([4, 1]), n) == n + 1).all()
