"""Calibration measures on cases small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from recsys_cli.evaluation.calibration import brier_score, expected_calibration_error, log_loss, reliability


def test_ece_by_hand() -> None:
    # Bin [0.2, 0.4): predictions 0.3, 0.3 with outcomes 1, 0 -> gap |0.5 - 0.3| = 0.2, weight 2/4.
    # Bin [0.8, 1.0]: predictions 0.9, 0.9 with outcomes 1, 1 -> gap 0.1, weight 2/4.
    probs = np.array([0.3, 0.3, 0.9, 0.9])
    labels = np.array([1, 0, 1, 1])
    assert expected_calibration_error(probs, labels, bins=5) == pytest.approx(0.5 * 0.2 + 0.5 * 0.1)


def test_perfectly_calibrated_predictions_have_small_ece() -> None:
    rng = np.random.default_rng(0)
    probs = rng.uniform(size=200_000)
    labels = rng.uniform(size=probs.size) < probs
    assert expected_calibration_error(probs, labels) < 0.01


def test_brier_and_log_loss_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    probs, labels = rng.uniform(0.01, 0.99, 500), rng.integers(0, 2, 500)
    assert brier_score(probs, labels) == pytest.approx(brier_score_loss(labels, probs))
    assert log_loss(probs, labels) == pytest.approx(sk_log_loss(labels, probs))


def test_reliability_diagram_bins() -> None:
    diagram = reliability(np.array([0.05, 0.05, 0.95]), np.array([0, 1, 1]), bins=10)
    assert diagram == {"predicted": [0.05, 0.95], "observed": [0.5, 1.0], "count": [2.0, 1.0]}
