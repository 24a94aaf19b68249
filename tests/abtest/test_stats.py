"""Delta-method intervals, Fieller's lift interval, and power / sample size checked
against values computed by hand from the textbook formulas (and by simulation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys_cli.abtest.stats import (
    Estimate,
    delta_ratio,
    lift,
    minimum_detectable_effect,
    power_at,
    proportion_sample_size,
    ratio_estimate,
    total_sample_size,
)

Z_975 = 1.959963984540054  # standard normal quantiles, from tables
Z_80 = 0.8416212335729143


def test_sample_size_for_a_difference_of_means_is_the_textbook_value() -> None:
    # n = 2 (z_{0.975} + z_{0.80})^2 sd^2 / delta^2 per arm; Cohen's d = 0.5 gives 62.79 -> 63.
    by_hand = 2 * (Z_975 + Z_80) ** 2 * 1.0**2 / 0.5**2
    assert by_hand == pytest.approx(62.79, abs=0.01)
    assert total_sample_size(sd=1.0, delta=0.5) / 2 == pytest.approx(by_hand)
    assert math.ceil(total_sample_size(sd=2.0, delta=0.2) / 2) == math.ceil(2 * (Z_975 + Z_80) ** 2 * 4 / 0.04)
    # Unequal arms: N = (z + z)^2 sd^2 (1/f_c + 1/f_t) / delta^2, here 20% in treatment.
    unequal = (Z_975 + Z_80) ** 2 * (1 / 0.8 + 1 / 0.2) / 0.5**2
    assert total_sample_size(sd=1.0, delta=0.5, share=0.2) == pytest.approx(unequal)


def test_sample_size_for_two_proportions_is_fleiss_formula() -> None:
    # 10% vs 12% conversion, alpha 0.05 two-sided, power 0.8, no continuity correction:
    # [1.96 sqrt(2 * 0.11 * 0.89) + 0.8416 sqrt(0.1 * 0.9 + 0.12 * 0.88)]^2 / 0.02^2 = 3840.85
    by_hand = (Z_975 * math.sqrt(2 * 0.11 * 0.89) + Z_80 * math.sqrt(0.1 * 0.9 + 0.12 * 0.88)) ** 2 / 0.02**2
    assert by_hand == pytest.approx(3840.85, abs=0.01)
    assert proportion_sample_size(0.10, 0.12) == 3841
    assert proportion_sample_size(0.05, 0.10) == 435


def test_power_is_what_the_sample_size_promised_and_what_simulation_shows() -> None:
    assert power_at(1.0, 0.5, 63, 63) >= 0.8 > power_at(1.0, 0.5, 62, 62)
    assert power_at(1.0, 0.0, 100, 100) == pytest.approx(0.05)
    mde = minimum_detectable_effect(1.0, 63, 63)
    assert power_at(1.0, mde, 63, 63) == pytest.approx(0.8, abs=1e-3)
    # 20,000 simulated two-sample z-tests at n = 63 per arm and d = 0.5 reject ~80% of the time.
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (20_000, 63)), rng.normal(0.5, 1, (20_000, 63))
    z = (b.mean(1) - a.mean(1)) / np.sqrt(a.var(1, ddof=1) / 63 + b.var(1, ddof=1) / 63)
    assert (np.abs(z) > Z_975).mean() == pytest.approx(power_at(1.0, 0.5, 63, 63), abs=0.015)


def test_delta_method_variance_matches_the_spread_of_simulated_ratios() -> None:
    rng = np.random.default_rng(1)
    experiments, users = 2_000, 400
    sessions = 1 + rng.poisson(4.0, (experiments, users))
    rate = rng.beta(0.5, 4.5, (experiments, users))  # users differ a lot: clustered sessions
    orders = rng.binomial(sessions, rate)
    values, variances, n = delta_ratio(orders, sessions)
    assert n.tolist() == [users] * experiments
    assert variances.mean() == pytest.approx(values.var(ddof=1), rel=0.1)
    # The naive binomial variance over sessions is too small for clustered data.
    naive = values * (1 - values) / sessions.sum(axis=1)
    assert naive.mean() < 0.7 * values.var(ddof=1)


def test_present_users_count_and_absent_ones_do_not() -> None:
    num, den = np.array([1.0, 0.0, 3.0]), np.array([2.0, 0.0, 2.0])
    value, variance, n = delta_ratio(num, den, present=np.array([True, True, False]))
    assert value == pytest.approx(0.5) and n == 2
    # Linearised values (y - R n) / mean(n): (1 - 1)/1, (0 - 0)/1 -> variance 0.
    assert variance == pytest.approx(0.0)
    estimate = ratio_estimate(np.array([1.0, 2.0, 0.0, 1.0]), np.array([2.0, 2.0, 1.0, 3.0]))
    assert estimate.value == pytest.approx(0.5) and estimate.units == 4
    assert estimate.low < estimate.value < estimate.high


def test_fieller_interval_agrees_with_the_difference_test() -> None:
    control = Estimate(0.10, 0.004**2, 0, 0, 5_000)
    for treatment_value in (0.105, 0.1075, 0.109, 0.11, 0.12):
        result = lift(control, Estimate(treatment_value, 0.004**2, 0, 0, 5_000))
        assert result.relative == pytest.approx(treatment_value / 0.10 - 1)
        assert result.relative_low < result.relative < result.relative_high
        assert result.significant == (result.relative_low > 0) == (result.difference_low > 0)
    # A control indistinguishable from 0 gives an unbounded (undefined) relative interval.
    vague = lift(Estimate(0.01, 0.01**2, 0, 0, 10), Estimate(0.05, 0.01**2, 0, 0, 10))
    assert math.isnan(vague.relative_low) and math.isnan(vague.relative_high) and vague.relative == pytest.approx(4)
    assert math.isnan(lift(Estimate(0.0, 0.0, 0, 0, 10), Estimate(0.1, 1e-4, 0, 0, 10)).relative)
