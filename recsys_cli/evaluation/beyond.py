"""Beyond accuracy: what a model shows, not only whether it hits.

A model can score well by recommending the same best-sellers to everyone; these
measures expose that. Per-user ones (novelty, popularity, diversity, share of
new products) are means over each user's list, so they get intervals and
segment breakdowns like the ranking metrics. Set-level ones (catalogue
coverage, Gini index of exposure) describe the whole population of lists.

All take a (n_users, L) matrix of recommended item indices, best first, and
give every cut-off k <= L at once through cumulative sums along the ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def exposure(recs: np.ndarray, k: int, n_items: int) -> np.ndarray:
    """How many lists show each item in their top k."""
    return np.bincount(recs[:, :k].ravel(), minlength=n_items)


def gini(values: np.ndarray) -> float:
    """Gini index of a non-negative distribution: 0 when every item is shown as
    often, towards 1 when a few items take all the exposure.

    >>> gini(np.array([1, 1, 1, 1])), round(gini(np.array([0, 0, 0, 4])), 3)
    (0.0, 0.75)
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * ranks - n - 1) * x).sum() / (n * total))


def set_level(recs: np.ndarray, ks: Sequence[int], n_items: int) -> dict[str, float]:
    """coverage@k (share of the recommendable catalogue shown to anyone) and
    gini@k (inequality of exposure over that catalogue; index 0, the unknown
    item, is never recommendable and is left out of both)."""
    out: dict[str, float] = {}
    for k in ks:
        shown = exposure(recs, k, n_items)[1:]
        out[f"coverage@{k}"] = float((shown > 0).sum() / max(shown.size, 1))
        out[f"gini@{k}"] = gini(shown)
    return out


def popularity_share(popularity: np.ndarray, n_train_users: int) -> np.ndarray:
    """Share of the training users who interacted with each item."""
    return np.asarray(popularity, dtype=np.float64) / max(n_train_users, 1)


def self_information(popularity: np.ndarray, n_train_users: int) -> np.ndarray:
    """-log2 of each item's training popularity share (Zhou et al., 2010): the
    surprise of seeing it recommended. An item nobody interacted with counts as
    one user's, so novelty stays finite."""
    share = np.maximum(np.asarray(popularity, dtype=np.float64), 1.0) / max(n_train_users, 1)
    return -np.log2(np.minimum(share, 1.0))


def training_popularity(popularity: np.ndarray, n_train_users: int) -> float:
    """Mean popularity share of the item behind a random training interaction:
    the level a model reproduces if it recommends what users already did, which
    the popularity lift is measured against."""
    pop = np.asarray(popularity, dtype=np.float64)
    total = pop.sum()
    return float((pop * popularity_share(pop, n_train_users)).sum() / total) if total > 0 else 0.0


def prefix_means(slot_values: np.ndarray, ks: Sequence[int], name: str) -> dict[str, np.ndarray]:
    """Mean of a per-slot value over each user's top k, for every k: `name@k`.

    >>> prefix_means(np.array([[1.0, 0.0, 0.5]]), [1, 3], "x")["x@3"].round(3).tolist()
    [0.5]
    """
    cum = np.cumsum(np.asarray(slot_values, dtype=np.float64), axis=1)
    return {f"{name}@{k}": cum[:, k - 1] / k for k in ks}


def category_diversity(categories: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Intra-list diversity by category: the share of pairs of items in the top k
    whose categories differ, per user (undefined for k = 1, so left out).

    `categories` is the (n_users, L) matrix of category codes of the recommended
    items. For every slot we count the earlier slots of the same category: sort
    each row by category (stably, so slots keep their order within a category),
    then a slot's place in its run is that count. Summed along the ranks, it gives
    the same-category pairs of every prefix at once.

    >>> category_diversity(np.array([[3, 3, 5, 3]]), [2, 4])["diversity@4"].round(3).tolist()
    [0.5]
    """
    cats = np.asarray(categories)
    if cats.size and 0 <= cats.min() and cats.max() < np.iinfo(np.int16).max:
        cats = cats.astype(np.int16)  # numpy sorts small integers stably by radix sort: much faster
    n, length = cats.shape
    if n == 0 or length == 0:
        return {f"diversity@{k}": np.zeros(n) for k in ks if k >= 2}
    order = np.argsort(cats, axis=1, kind="stable")
    sorted_cats = np.take_along_axis(cats, order, axis=1)
    new_run = np.ones_like(sorted_cats, dtype=bool)
    new_run[:, 1:] = sorted_cats[:, 1:] != sorted_cats[:, :-1]
    position = np.broadcast_to(np.arange(length), (n, length))
    run_start = np.maximum.accumulate(np.where(new_run, position, 0), axis=1)
    earlier_same = np.empty_like(order)
    np.put_along_axis(earlier_same, order, position - run_start, axis=1)
    same_pairs = np.cumsum(earlier_same, axis=1, dtype=np.float64)
    out = {}
    for k in ks:
        if k >= 2:
            out[f"diversity@{k}"] = 1.0 - same_pairs[:, k - 1] / (k * (k - 1) / 2)
    return out


def per_user(
    recs: np.ndarray,
    ks: Sequence[int],
    popularity: np.ndarray,
    n_train_users: int,
    categories: np.ndarray | None = None,
    new_items: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """novelty@k, popularity@k and, where the catalogue says, diversity@k and
    new_items@k (share of the list that is new products) for every user."""
    out = prefix_means(self_information(popularity, n_train_users)[recs], ks, "novelty")
    out |= prefix_means(popularity_share(popularity, n_train_users)[recs], ks, "popularity")
    if categories is not None:
        out |= category_diversity(np.asarray(categories)[recs], ks)
    if new_items is not None:
        out |= prefix_means(np.asarray(new_items, dtype=np.float64)[recs], ks, "new_items")
    return out
