"""The k best items of each row of a score matrix, in an order fixed by a rule.

Equal scores are common: counts tie in popularity models, an isotonic calibration
maps whole ranges of a ranker's raw scores to one probability, and a float32
matrix merges what float64 kept apart. `argpartition` picks among equal scores in
whatever order its selection algorithm leaves them, so which item makes the cut
would be an accident of the algorithm. Here it is a rule: a higher score first,
then a higher secondary key where the model gives one (a ranker's raw score
under its calibrated probability), then the lower item index (vocabularies
number items by descending training frequency, so the more popular item).
"""

from __future__ import annotations

import numpy as np


def top_indices(scores: np.ndarray, k: int, secondary: np.ndarray | None = None) -> np.ndarray:
    """(rows, k) column indices of the k best entries of each row, best first, by
    (score, secondary) descending, then column index ascending.

    >>> top_indices(np.array([[1.0, 3.0, 3.0, 2.0]], np.float32), 2).tolist()
    [[1, 2]]
    >>> top_indices(np.array([[1.0, 3.0, 3.0, 2.0]], np.float32), 2, np.array([[0.0, 0.1, 0.9, 0.0]])).tolist()
    [[2, 1]]
    """
    n, m = scores.shape
    k = min(k, m)
    if k <= 0 or n == 0:
        return np.zeros((n, max(k, 0)), dtype=np.int64)
    top = _select(scores, k)
    cut = np.take_along_axis(scores, top, axis=1).min(axis=1, keepdims=True)
    # Rows where an entry equal to the k-th best was left out: the selection among
    # the equals at the cut was arbitrary, so those rows are ranked whole.
    tied = (scores == cut).sum(axis=1) > (np.take_along_axis(scores, top, axis=1) == cut).sum(axis=1)
    if tied.any():
        top[tied] = _ranked_rows(scores[tied], k, None if secondary is None else secondary[tied])
    return _ordered(scores, top, secondary)


# Matrices at least this large are selected by torch's top-k: at 82k items, 0.08 ms a
# row against argpartition's 0.42 ms on one thread (a ranker's generators select one
# such row per candidate generator and user). Smaller ones skip torch's import.
TORCH_FROM = 1 << 20


def _select(scores: np.ndarray, k: int) -> np.ndarray:
    """k columns of each row holding its k largest values, in no order; which of
    several equal values at the cut is left to the algorithm (the caller checks)."""
    if scores.size >= TORCH_FROM and scores.dtype in (np.float32, np.float64) and not np.isnan(scores).any():
        import torch

        with torch.no_grad():
            picked = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1, sorted=False).indices
        return picked.numpy()
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def _ranked_rows(scores: np.ndarray, k: int, secondary: np.ndarray | None) -> np.ndarray:
    """The k best columns of each row by the rule, in any order. Without a secondary
    key, everything above the cut plus the lowest-indexed equals at it, in one pass;
    with one, the first k of the row's full order."""
    if secondary is not None:
        index = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        return np.lexsort((index, -secondary, -scores), axis=1)[:, :k]
    cut = np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above, at = -scores < cut, -scores == cut
    need = k - above.sum(axis=1, keepdims=True)
    chosen = above | (at & (np.cumsum(at, axis=1) <= need))
    return np.nonzero(chosen)[1].reshape(scores.shape[0], k)


def _ordered(scores: np.ndarray, top: np.ndarray, secondary: np.ndarray | None) -> np.ndarray:
    """The selected columns sorted by the rule."""
    keys = (top, *(() if secondary is None else (-np.take_along_axis(secondary, top, axis=1),)))
    order = np.lexsort((*keys, -np.take_along_axis(scores, top, axis=1)), axis=1)
    return np.take_along_axis(top, order, axis=1)
