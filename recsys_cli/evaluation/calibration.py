"""How far predicted probabilities are from observed frequencies.

A ranker's probabilities feed decisions downstream (expected revenue, bidding,
blending with business rules), where a model that is right about order but
wrong about level does harm; these measures catch the level.
"""

from __future__ import annotations

import numpy as np


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    if probs.size == 0:
        return 0.0
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    gap = np.bincount(which, weights=labels - probs, minlength=bins)
    return float(np.abs(gap).sum() / probs.size)


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((np.asarray(probs, np.float64) - np.asarray(labels, np.float64)) ** 2))


def log_loss(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, np.float64), eps, 1 - eps)
    y = np.asarray(labels, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Per non-empty bin: mean prediction, observed rate and count (a reliability diagram)."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    keep = count > 0
    mean_p = np.bincount(which, weights=probs, minlength=bins)[keep] / count[keep]
    rate = np.bincount(which, weights=labels, minlength=bins)[keep] / count[keep]
    return {"predicted": mean_p.tolist(), "observed": rate.tolist(), "count": count[keep].astype(float).tolist()}
