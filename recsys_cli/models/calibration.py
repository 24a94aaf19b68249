"""Turning a ranker's raw scores into probabilities, fitted on held-out examples.

Networks trained on sampled or re-weighted examples, and boosted trees trained
for ranking, order candidates well but their raw outputs are not frequencies.
Temperature scaling (Guo et al., 2017) fits one scale on the logit; Platt
scaling adds a shift, which also corrects the base rate when negatives were
sampled. Both keep the order and can hardly overfit. Isotonic regression fits
any monotone map and needs more held-out data. Both are saved as plain arrays.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

Method = Literal["temperature", "platt", "isotonic", "none"]


def fit_calibration(
    method: Method, scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Parameters of the map from raw score (a logit for the network) to probability.
    `weights`: how many examples each one stands for (sampled negatives), else 1."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    w = None if weights is None else np.asarray(weights, np.float64)
    if method == "none":
        return np.zeros(0, np.float64)
    if method in ("temperature", "platt"):
        return _fit_scale(scores, labels, shift=method == "platt", weights=w)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels, sample_weight=w)
        return np.concatenate([iso.X_thresholds_, iso.y_thresholds_]).astype(np.float64)
    raise ValueError(f"calibration must be temperature, platt, isotonic or none, got {method!r}")


def apply_calibration(method: Method, params: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Probabilities. Every map keeps the raw order, but isotonic steps (and a
    float32 matrix) make candidates that the model separated equal: a ranker
    orders those by the raw score (`TwoStageRanker._score_with_tiebreak`), so the
    probabilities themselves stay exactly the calibrated ones."""
    scores = np.asarray(scores, np.float64)
    if method == "none":
        return expit(scores)
    if method in ("temperature", "platt"):
        return expit(params[0] * scores + params[1])
    half = params.size // 2
    return np.interp(scores, params[:half], params[half:])


def weighted_ece(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error (evaluation.calibration's) with each example
    counting `weights` times: the error over the candidate lists a sample stands for."""
    probs, labels, w = (np.asarray(a, np.float64) for a in (probs, labels, weights))
    if probs.size == 0 or w.sum() <= 0:
        return 0.0
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    gap = np.bincount(which, weights=w * (labels - probs), minlength=bins)
    return float(np.abs(gap).sum() / w.sum())


def _fit_scale(scores: np.ndarray, labels: np.ndarray, shift: bool, weights: np.ndarray | None = None) -> np.ndarray:
    """Scale a > 0 (1 / temperature) and, with `shift`, b minimising the (weighted)
    log loss of sigmoid(a * score + b)."""
    total = float(scores.size) if weights is None else float(weights.sum())

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = np.exp(theta[0]), theta[1]
        z = a * scores + b
        p = expit(z)
        if weights is None:
            nll = float(np.mean(np.logaddexp(0.0, z) - labels * z))
            grad_z = (p - labels) / scores.size
        else:
            nll = float(np.sum(weights * (np.logaddexp(0.0, z) - labels * z)) / total)
            grad_z = weights * (p - labels) / total
        return nll, np.array([float(np.sum(grad_z * scores) * a), float(np.sum(grad_z)) if shift else 0.0])

    result = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B")
    return np.array([np.exp(result.x[0]), result.x[1]])
