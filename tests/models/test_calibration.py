"""Calibrators turn over-confident scores into frequencies without reordering them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from recsys_cli.evaluation.calibration import expected_calibration_error
from recsys_cli.models.calibration import apply_calibration, fit_calibration


@pytest.fixture
def overconfident() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True logit z, a model that reports 3z - 1 (too sure, biased low); fit and test halves."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=40_000)
    labels = (rng.uniform(size=z.size) < expit(z)).astype(float)
    scores = 3 * z - 1
    return scores[:20_000], labels[:20_000], scores[20_000:], labels[20_000:]


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_calibration_lowers_expected_calibration_error(
    method: str, overconfident: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> None:
    fit_scores, fit_labels, scores, labels = overconfident
    params = fit_calibration(method, fit_scores, fit_labels)  # type: ignore[arg-type]
    before = expected_calibration_error(expit(scores), labels)
    after = expected_calibration_error(apply_calibration(method, params, scores), labels)  # type: ignore[arg-type]
    assert before > 0.05
    assert after < before / (1.5 if method == "temperature" else 3)  # a scale alone cannot undo the bias


def test_platt_recovers_the_true_scale_and_shift(
    overconfident: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    scale, shift = fit_calibration("platt", *overconfident[:2])
    assert scale == pytest.approx(1 / 3, abs=0.03)
    assert shift == pytest.approx(1 / 3, abs=0.05)


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_calibration_keeps_the_order(
    method: str, overconfident: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> None:
    params = fit_calibration(method, *overconfident[:2])  # type: ignore[arg-type]
    scores = np.sort(overconfident[2])
    probs = apply_calibration(method, params, scores)  # type: ignore[arg-type]
    assert (np.diff(probs) >= 0).all() and ((probs >= 0) & (probs <= 1)).all()


def test_isotonic_probabilities_are_the_fitted_steps_themselves() -> None:
    """No share of the raw score is mixed in (the ranker orders ties by the raw score
    instead), so a probability reported to a user is exactly the calibrated one."""
    scores = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    labels = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    params = fit_calibration("isotonic", scores, labels)
    probs = apply_calibration("isotonic", params, np.array([0.0, 0.5, 2.0, 3.0, 5.0, 9.0]))
    np.testing.assert_array_equal(probs, [0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
