"""Calibration of the engagement probabilities a model attaches to what it shows.

A ranker that says 0.3 for an item should see about 30% of such items engaged
with. What matters is the level on the items actually recommended, so the pairs
checked are each user's recommended slots, labelled by whether the user engaged
with the item in the window. Only users the model really scored count: a
cold-start user's list comes from the popularity fallback, whose scores are not
probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_cli.evaluation.calibration import expected_calibration_error, reliability

# Per-user columns whose means over scored users are the pooled values (every
# scored user has the same number of slots, so the mean of user means is the
# pooled mean): intervals come from the same user bootstrap as the metrics.
PER_USER = ("brier", "log_loss", "predicted", "observed")
_EPS = 1e-7


def slate_calibration(
    probs: np.ndarray, hit: np.ndarray, scored: np.ndarray, bins: int = 15
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Pooled ECE, Brier score, log loss, mean prediction, observed rate and the
    reliability diagram over the scored users' slots; and, per user, the columns
    of `PER_USER` (NaN for users not scored).

    >>> summary, _ = slate_calibration(np.array([[0.9, 0.1]]), np.array([[True, False]]), np.array([True]))
    >>> round(summary["brier"], 3), summary["pairs"]
    (0.01, 2)
    """
    scored = np.asarray(scored, dtype=bool)
    p = np.clip(np.asarray(probs, dtype=np.float64)[scored], 0.0, 1.0)
    y = np.asarray(hit, dtype=bool)[scored]
    # The probability given to what happened: one log per slot for the log loss.
    likelihood = np.clip(np.where(y, p, 1.0 - p), _EPS, 1.0)
    per_user = {
        "brier": ((p - y) ** 2).mean(axis=1),
        "log_loss": -np.log(likelihood).mean(axis=1),
        "predicted": p.mean(axis=1),
        "observed": y.mean(axis=1),
    }
    columns = {name: _spread(values, scored) for name, values in per_user.items()}
    flat_p, flat_y = p.ravel(), y.ravel().astype(np.float64)
    # Every scored user has the same number of slots, so the pooled Brier score,
    # log loss and rates are the means of the per-user ones.
    pooled = {name: float(v.mean()) if v.size else float("nan") for name, v in per_user.items()}
    summary: dict[str, Any] = {
        "users": int(scored.sum()),
        "pairs": int(flat_p.size),
        "slots": int(np.shape(probs)[1]),
        "bins": bins,
        "ece": expected_calibration_error(flat_p, flat_y, bins),
        **pooled,
        "reliability": reliability(flat_p, flat_y, bins),
    }
    return summary, columns


def _spread(values: np.ndarray, scored: np.ndarray) -> np.ndarray:
    out = np.full(scored.size, np.nan)
    out[scored] = values
    return out
