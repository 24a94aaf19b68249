"""Top-K ranking metrics, vectorised over users (no Python loop per user).

Inputs are a (n_users, K) matrix of recommended item indices, best first, and a
sparse (n_users, n_items) relevance matrix whose rows align with it. Per-user
values are returned too, so intervals and paired tests can be built on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def hits(recs: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """hits[u, r] is True when the r-th recommendation of user u is relevant."""
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
