"""Paired bootstrap: nominal coverage on simulated users, degenerate and invalid inputs, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_cli.evaluation.bootstrap import paired_bootstrap


def simulated_users(rng: np.random.Generator, n: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-user scores as in a ranking benchmark: a shared user difficulty (so the
    pairs are correlated), skewed noise, and model A better by `effect` on average."""
    difficulty = rng.beta(0.6, 2.0, size=n)
    b = np.clip(difficulty + rng.normal(0, 0.1, size=n), 0, 1)
    a = np.clip(difficulty + effect + rng.normal(0, 0.1, size=n), 0, 1)
    return a, b


def test_interval_covers_the_true_difference_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    # The true mean difference of the simulated population, from one very large draw
    # (clipping makes it differ from `effect`).
    big_a, big_b = simulated_users(rng, 2_000_000, 0.03)
    truth = float((big_a - big_b).mean())
    simulations, covered = 200, 0
    for s in range(simulations):
        a, b = simulated_users(rng, 300, 0.03)
        r = paired_bootstrap(a, b, n_resamples=1000, seed=s)
        covered += r.low <= truth <= r.high
    # 200 simulations at 95%: the binomial standard error is 1.5 points; the percentile
    # bootstrap runs slightly under nominal at this size.
    assert 0.89 <= covered / simulations <= 0.99


def test_a_clear_improvement_lies_above_zero_and_none_straddles_it() -> None:
    rng = np.random.default_rng(1)
    a, b = simulated_users(rng, 500, 0.05)
    better = paired_bootstrap(a, b, seed=0)
    assert 0 < better.low < better.difference < better.high
    assert better.relative == pytest.approx(a.mean() / b.mean() - 1)
    assert better.relative_low < better.relative < better.relative_high
    a, b = simulated_users(rng, 500, 0.0)
    same = paired_bootstrap(a, b, seed=0)
    assert same.low < 0 < same.high


def test_identical_inputs_give_a_zero_width_interval_at_zero() -> None:
    values = np.random.default_rng(3).random(100)
    r = paired_bootstrap(values, values.copy(), n_resamples=500)
    assert (r.difference, r.low, r.high) == (0.0, 0.0, 0.0)
    assert r.relative == pytest.approx(0.0) and r.relative_low == pytest.approx(0.0)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another() -> None:
    a, b = simulated_users(np.random.default_rng(5), 200, 0.02)
    first, again = paired_bootstrap(a, b, seed=11), paired_bootstrap(a, b, seed=11)
    assert first == again
    assert paired_bootstrap(a, b, seed=12) != first


def test_pairing_matters_more_than_the_means() -> None:
    """Shuffling one side keeps both means but breaks the pairs: the interval widens."""
    rng = np.random.default_rng(2)
    a, b = simulated_users(rng, 400, 0.02)
    paired = paired_bootstrap(a, b, seed=0)
    unpaired = paired_bootstrap(a, rng.permutation(b), seed=0)
    assert paired.difference == pytest.approx(unpaired.difference)
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)


def test_zero_baseline_has_no_relative_difference() -> None:
    r = paired_bootstrap(np.array([0.5, 0.0]), np.zeros(2), n_resamples=50)
    assert r.difference == 0.25 and np.isnan(r.relative) and np.isnan(r.relative_low)


@pytest.mark.parametrize(
    ("a", "b", "kwargs"),
    [
        (np.ones(3), np.ones(4), {}),
        (np.ones(0), np.ones(0), {}),
        (np.ones(3), np.ones(3), {"confidence": 1.0}),
        (np.ones(3), np.ones(3), {"n_resamples": 0}),
    ],
)
def test_invalid_inputs_are_refused(a: np.ndarray, b: np.ndarray, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        paired_bootstrap(a, b, **kwargs)  # type: ignore[arg-type]


def test_a_resample_of_only_zeros_leaves_the_relative_interval_sane() -> None:
    """Sparse per-user metrics: some resamples draw none of production's hits. Their
    ratio is undefined; float32 rounding must not turn it into +-1e8."""
    production = np.zeros(15)
    production[[1, 5, 9]] = [0.5, 0.63, 0.37]
    candidate = np.zeros(15)
    candidate[3] = 0.63
    r = paired_bootstrap(candidate, production, 2000, 0)
    assert -1.0 <= r.relative_low <= r.relative <= r.relative_high < 10
