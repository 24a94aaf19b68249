"""Partial dependence: the model's mean answer as one feature is set, for every
row at once, to each value of a grid, the others left as they are.

The individual curves (ICE, one per row) come for free: their spread says whether
the mean hides rows that move the other way (an interaction with another feature).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def grid(values: np.ndarray, points: int, categorical: bool = False) -> np.ndarray:
    """Where to evaluate: the distinct quantiles of a quantity (so the grid follows
    the data, not its outliers), or a code's most frequent values, in order.

    >>> grid(np.arange(101.0), 5).tolist()
    [0.0, 25.0, 50.0, 75.0, 100.0]
    """
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.zeros(0)
    if categorical:
        distinct, counts = np.unique(values, return_counts=True)
        return np.sort(distinct[np.argsort(-counts, kind="stable")[:points]])
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, points)))


def individual_curves(
    score: Callable[[np.ndarray], np.ndarray], x: np.ndarray, column: int, values: np.ndarray
) -> np.ndarray:
    """(rows, grid) score of every row with `column` set to each grid value: one
    scoring call over the stacked copies of `x`.

    >>> individual_curves(lambda m: m.sum(axis=1), np.array([[0.0, 1.0], [0.0, 2.0]]), 0, np.array([0.0, 10.0]))
    array([[ 1., 11.],
           [ 2., 12.]])
    """
    stacked = np.repeat(x[np.newaxis], values.size, axis=0)
    stacked[:, :, column] = values[:, np.newaxis]
    scores = np.asarray(score(stacked.reshape(-1, x.shape[1])), np.float64)
    return scores.reshape(values.size, x.shape[0]).T
