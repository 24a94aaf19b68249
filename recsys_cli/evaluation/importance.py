"""Which features a ranker leans on, three ways.

Tree importance (gain and split counts) says what the LightGBM models used while
fitting; SHAP-style contributions (`pred_contrib`) say how much each feature moved
these very predictions; permutation importance says how much ranking quality each
feature is worth, and needs nothing but a scorer, so it covers the neural backend
too. They disagree on purpose: a feature split on often can matter little, and
a correlated pair shares gain but loses little when one is shuffled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_BATCH = 65536


def tree_importance(boosters: Sequence[tuple[Any, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Total gain and split count per feature over the trees each model predicts
    with, averaged over the models of an ensemble (as their scores are)."""
    gain = [np.asarray(b.feature_importance("gain", iteration=t), np.float64) for b, t in boosters]
    split = [np.asarray(b.feature_importance("split", iteration=t), np.float64) for b, t in boosters]
    return np.mean(gain, axis=0), np.mean(split, axis=0)


def shares(values: np.ndarray) -> np.ndarray:
    """Each value's share of the total (all zero when the total is).

    >>> shares(np.array([1.0, 3.0])).tolist()
    [0.25, 0.75]
    """
    values = np.asarray(values, np.float64)
    total = float(values.sum())
    return values / total if total > 0 else np.zeros_like(values)


def contributions(boosters: Sequence[tuple[Any, int]], x: np.ndarray) -> np.ndarray:
    """(rows, features + 1) contribution of each feature to each row's raw score,
    the expected value last, averaged over the models: every row sums to the
    ensemble's raw score."""
    out = np.zeros((x.shape[0], x.shape[1] + 1))
    for booster, trees in boosters:
        for i in range(0, x.shape[0], _BATCH):
            block = booster.predict(x[i : i + _BATCH], num_iteration=trees, pred_contrib=True)
            out[i : i + _BATCH] += np.asarray(block, np.float64)
    return out / max(len(boosters), 1)


def permutation_importance(
    losses: Callable[[np.ndarray], np.ndarray], x: np.ndarray, columns: Sequence[int], rng: np.random.Generator
) -> np.ndarray:
    """(columns, losses) how much each of `losses` (lower is better) rises when each
    column in turn is shuffled across rows: the value the model draws from that
    column. One shuffle per column, drawn from `rng`, so a second call with the
    same seed agrees; several losses share each scoring of the shuffled matrix."""
    base = np.asarray(losses(x), np.float64)
    rises = np.zeros((len(columns), base.size))
    shuffled = x.copy()
    for j, column in enumerate(columns):
        shuffled[:, column] = x[rng.permutation(x.shape[0]), column]
        rises[j] = np.asarray(losses(shuffled), np.float64) - base
        shuffled[:, column] = x[:, column]
    return rises
