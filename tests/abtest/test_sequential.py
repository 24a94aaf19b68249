"""The peeking guard: daily naive looks inflate false positives, the mSPRT does
not, and it still stops early on a real effect."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_cli.abtest import AbTestError
from recsys_cli.abtest.sequential import FixedHorizon, Looks, MixtureSPRT, msprt, naive_tests
from recsys_cli.evaluation.significance import BETTER, SAME

DAYS, USERS_PER_DAY = 20, 200


def simulated_looks(effect: float, seed: int) -> Looks:
    """Cumulative means of a per-user metric (sd 1, control mean 1) in two arms,
    one look per day as users arrive."""
    rng = np.random.default_rng(seed)
    control = rng.normal(1.0, 1.0, (DAYS, USERS_PER_DAY))
    treatment = rng.normal(1.0 + effect, 1.0, (DAYS, USERS_PER_DAY))
    n = USERS_PER_DAY * np.arange(1, DAYS + 1)
    means = [np.cumsum(x.sum(axis=1)) / n for x in (control, treatment)]
    variances = [np.cumsum((x**2).sum(axis=1)) / n - m**2 for x, m in zip((control, treatment), means, strict=True)]
    return Looks(means[0], variances[0] / n, means[1], variances[1] / n, n, n)


def test_peeking_at_a_fixed_horizon_test_inflates_false_positives_but_the_msprt_does_not() -> None:
    runs = [simulated_looks(0.0, seed) for seed in range(400)]
    peeking = np.mean([(naive_tests(looks, 0.05)[0] <= 0.05).any() for looks in runs])
    sequential = [MixtureSPRT(alpha=0.05, relative_tau=0.1).analyse(looks) for looks in runs]
    fixed = [FixedHorizon(alpha=0.05).analyse(looks) for looks in runs]
    assert peeking > 0.12  # stopping at the first naive p < 0.05 of 20 looks: far above 5%
    assert np.mean([r.decision != SAME for r in sequential]) <= 0.05
    assert np.mean([r.decision != SAME for r in fixed]) <= 0.08  # one look: nominal 5%
    # The always-valid confidence sequence holds the true difference (0) at every look.
    assert np.mean([(r.low <= 0).all() and (r.high >= 0).all() for r in sequential]) >= 0.95


def test_the_msprt_stops_early_on_a_real_effect_and_fixed_horizon_waits() -> None:
    looks = simulated_looks(0.25, seed=1)
    sequential = MixtureSPRT(alpha=0.05, relative_tau=0.25).analyse(looks)
    assert sequential.decision == BETTER and sequential.decision_day is not None and sequential.decision_day < DAYS
    assert np.all(np.diff(sequential.p_values) <= 0)  # always-valid p-values never go back up
    fixed = FixedHorizon(alpha=0.05).analyse(looks)
    assert fixed.decision == BETTER and fixed.decision_day == DAYS
    assert fixed.naive_stop_day is not None and fixed.naive_stop_day < DAYS  # what a peeker would have done
    saved = sequential.to_json()
    assert saved["method"] == "msprt" and len(saved["daily"]) == DAYS and saved["params"]["relative_tau"] == 0.25


def test_msprt_matches_its_formula() -> None:
    difference, variance, tau2 = np.array([0.3]), np.array([0.01]), 0.04
    p, low, high = msprt(difference, variance, tau2, alpha=0.05)
    likelihood_ratio = np.sqrt(0.01 / 0.05) * np.exp(0.04 * 0.09 / (2 * 0.01 * 0.05))
    assert p[0] == pytest.approx(1 / likelihood_ratio)
    half = np.sqrt(0.01 * 0.05 / 0.04 * (np.log(0.05 / 0.01) - 2 * np.log(0.05)))
    assert (low[0], high[0]) == pytest.approx((0.3 - half, 0.3 + half))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(AbTestError, match="alpha"):
        FixedHorizon(alpha=1.5)
    with pytest.raises(AbTestError, match="relative_tau"):
        MixtureSPRT(relative_tau=0.0)
