"""Calibration over recommended slots, against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from recsys_cli.evaluation.probabilities import slate_calibration


def test_pooled_scores_over_the_scored_users_only() -> None:
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.01, 0.99, size=(40, 5))
    hit = rng.random((40, 5)) < probs
    scored = np.arange(40) % 4 != 0  # every fourth user came from the fallback
    summary, per_user = slate_calibration(probs, hit, scored, bins=10)
    p, y = probs[scored].ravel(), hit[scored].ravel()
    assert summary["pairs"] == p.size and summary["users"] == 30 and summary["slots"] == 5
    assert summary["brier"] == pytest.approx(brier_score_loss(y, p))
    assert summary["log_loss"] == pytest.approx(sk_log_loss(y, p))
    assert summary["observed"] == pytest.approx(y.mean()) and summary["predicted"] == pytest.approx(p.mean())
    assert sum(summary["reliability"]["count"]) == p.size
    # Per user: NaN where not scored; the mean over scored users is the pooled value.
    assert np.isnan(per_user["brier"][~scored]).all()
    assert np.nanmean(per_user["brier"]) == pytest.approx(summary["brier"])
    assert np.nanmean(per_user["log_loss"]) == pytest.approx(summary["log_loss"])


def test_overconfident_probabilities_show_a_large_calibration_error() -> None:
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 0.2, size=(2000, 10))
    hit = rng.random(truth.shape) < truth
    honest, _ = slate_calibration(truth, hit, np.ones(2000, bool))
    doubled, _ = slate_calibration(2 * truth, hit, np.ones(2000, bool))
    assert honest["ece"] < 0.01 < 0.05 < doubled["ece"]
    assert honest["brier"] < doubled["brier"]
