"""Top-K ranking metrics, vectorised over users (no Python loop per user).

Inputs are a (n_users, K) matrix of recommended item indices, best first, and a
sparse relevance matrix whose rows align with it. Per-user values are returned
too, so intervals and paired tests can be built on them.

The relevance matrix holds every relevant item of a user once, including items
no model can know (a product new in the window): those have columns of their
own past the catalogue (`models.validation.Targets`), so a row's count is the
true number of relevant items. The ideal DCG, recall and average precision
divide by it; a list can never hit those columns, so they count as misses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def hits(recs: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """hits[u, r] is True when the r-th recommendation of user u is relevant."""
    if recs.size and (recs.min() < 0 or recs.max() >= truth.shape[1]):
        raise ValueError(f"recommended item indices must lie in 0..{truth.shape[1] - 1}, the truth's columns")
    rows = np.repeat(np.arange(recs.shape[0]), recs.shape[1])
    return np.asarray(truth[rows, recs.ravel()]).reshape(recs.shape) > 0


def per_user(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """NDCG, recall, precision, hit rate and MRR at k for every user.

    >>> import scipy.sparse as sp
    >>> truth = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    >>> {m: round(float(v[0]), 3) for m, v in per_user(np.array([[1, 2, 3]]), truth, 3).items()}
    {'ndcg': 0.92, 'recall': 1.0, 'precision': 0.667, 'hitrate': 1.0, 'mrr': 1.0}
    """
    h = hits(recs[:, :k], truth).astype(np.float64)
    relevant = np.asarray(truth.getnnz(axis=1), dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.clip(relevant.astype(np.int64), 1, k) - 1]
    first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "ndcg": np.where(relevant > 0, (h * discounts).sum(axis=1) / ideal, 0.0),
            "recall": np.where(relevant > 0, h.sum(axis=1) / relevant, 0.0),
            "precision": h.sum(axis=1) / k,
            "hitrate": h.any(axis=1).astype(np.float64),
            "mrr": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
        }


def coverage(recs: np.ndarray, k: int, n_items: int) -> float:
    """Share of the catalogue (excluding the unknown-item index 0) recommended to anyone."""
    return float(np.unique(recs[:, :k]).size / max(n_items - 1, 1))


def summarise(
    recs: np.ndarray, truth: sp.csr_matrix, ks: Sequence[int], n_items: int, prefix: str = ""
) -> dict[str, float]:
    """Mean of each per-user metric at each k, plus catalogue coverage: `val/ndcg@10`..."""
    out: dict[str, float] = {}
    for k in ks:
        for name, values in per_user(recs, truth, k).items():
            out[f"{prefix}{name}@{k}"] = float(values.mean()) if values.size else 0.0
        out[f"{prefix}coverage@{k}"] = coverage(recs, k, n_items)
    return out


# Every ranking metric `recsys evaluate` reports, in display order.
RANKING_METRICS = ("ndcg", "recall", "precision", "hitrate", "mrr", "map")


def relevant_counts(truth: sp.csr_matrix) -> np.ndarray:
    """Relevant items per user, including those no model can recommend (the
    columns past the catalogue), each counted once."""
    return np.asarray(truth.getnnz(axis=1), dtype=np.float64)


def average_precision(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """AP@k per user: the mean of precision@r over the ranks r <= k that hold a hit,
    divided by min(relevant, k) so that a perfect top-k scores 1 whatever the
    number of relevant items; 0 for users with nothing relevant.

    >>> truth = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    >>> round(float(average_precision(np.array([[1, 2, 3]]), truth, 3)[0]), 4)  # (1/1 + 2/3) / 2
    0.8333
    """
    return ranking_metrics(hits(recs[:, :k], truth), relevant_counts(truth), [k])[f"map@{k}"]


def ranking_metrics(hit: np.ndarray, relevant: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Every metric of `RANKING_METRICS` at every k, per user, from one hits matrix.

    `hit` is `hits(recs, truth)` for the longest list, `relevant` the users'
    relevant counts. Cumulative sums along the ranks give every k at once, so the
    hits are looked up once however many cut-offs are asked for. Values agree with
    `per_user` (same NDCG ideal, recall over all relevant items, precision over k).

    >>> m = ranking_metrics(np.array([[False, True, True]]), np.array([2.0]), [1, 3])
    >>> [round(float(m[key][0]), 3) for key in ("hitrate@1", "ndcg@3", "mrr@3", "map@3")]
    [0.0, 0.693, 0.5, 0.583]
    """
    n_slots = hit.shape[1]
    if not ks or max(ks) > n_slots or min(ks) < 1:
        raise ValueError(f"cut-offs {list(ks)} must lie in 1..{n_slots}, the length of the lists")
    h = hit.astype(np.float64)
    ranks = np.arange(1, n_slots + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(ranks + 1.0)
    cols = np.asarray(ks) - 1
    cum_hits = np.cumsum(h, axis=1)
    n_hits = cum_hits[:, cols]
    dcg = np.cumsum(h * discounts, axis=1)[:, cols]
    # Sum of precision@r over hit ranks r: the numerator of average precision.
    precision_sum = np.cumsum(h * cum_hits / ranks, axis=1)[:, cols]
    del cum_hits
    ideal_cum = np.cumsum(discounts)
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)
    known = relevant > 0
    safe = np.where(known, relevant, 1.0)
    out: dict[str, np.ndarray] = {}
    for j, k in enumerate(ks):
        ideal = ideal_cum[np.clip(relevant.astype(np.int64), 1, k) - 1]
        out[f"ndcg@{k}"] = np.where(known, dcg[:, j] / ideal, 0.0)
        out[f"recall@{k}"] = np.where(known, n_hits[:, j] / safe, 0.0)
        out[f"precision@{k}"] = n_hits[:, j] / k
        out[f"hitrate@{k}"] = (n_hits[:, j] > 0).astype(np.float64)
        out[f"mrr@{k}"] = np.where((first > 0) & (first <= k), 1.0 / np.maximum(first, 1), 0.0)
        out[f"map@{k}"] = np.where(known, precision_sum[:, j] / np.minimum(safe, k), 0.0)
    return out
