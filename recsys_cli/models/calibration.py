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


def fit_calibration(method: Method, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Parameters of the map from raw score (a logit for the network) to probability."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    if method == "none":
        return np.zeros(0, np.float64)
    if method in ("temperature", "platt"):
        return _fit_scale(scores, labels, shift=method == "platt")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
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


def _fit_scale(scores: np.ndarray, labels: np.ndarray, shift: bool) -> np.ndarray:
    """Scale a > 0 (1 / temperature) and, with `shift`, b minimising the log loss
    of sigmoid(a * score + b)."""

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = np.exp(theta[0]), theta[1]
        z = a * scores + b
        p = expit(z)
        nll = float(np.mean(np.logaddexp(0.0, z) - labels * z))
        grad_z = (p - labels) / scores.size
        return nll, np.array([float(np.sum(grad_z * scores) * a), float(np.sum(grad_z)) if shift else 0.0])

    result = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B")
    return np.array([np.exp(result.x[0]), result.x[1]])
