"""Folding a live history into a fitted model's view of one user.

A service learns of a visitor's views and carts minutes after they happen, long
before the next retrain. Models whose user is a row of interactions (EASE,
item-kNN) or a sequence (SASRec) can score that user again with the new items in;
these helpers build the updated row or sequence from the fitted one.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def with_items(row: sp.spmatrix, items: np.ndarray, weight: float = 1.0) -> sp.csr_matrix:
    """(1, n_items) `row` with `weight` added at each of `items` (repeats add up)."""
    row = sp.csr_matrix(row, dtype=np.float32)
    added = sp.csr_matrix(
        (np.full(items.size, weight, dtype=np.float32), (np.zeros(items.size, np.int64), items)), shape=row.shape
    )
    return (row + added).tocsr()


def latest_distinct(items: np.ndarray, n: int) -> np.ndarray:
    """The `n` latest distinct items of a history (oldest first in, newest first out)."""
    return np.asarray(list(dict.fromkeys(reversed(items.tolist())))[:n], dtype=np.int64)
