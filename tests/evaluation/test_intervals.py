"""The user bootstrap behind every interval of `recsys evaluate`."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_cli.evaluation.intervals import percentile_interval, resample


def skewed_metric(rng: np.random.Generator, n: int) -> np.ndarray:
    """Like a per-user NDCG: most users 0, the rest spread over (0, 1]."""
    return np.where(rng.random(n) < 0.7, 0.0, rng.beta(2, 3, n))


TRUE_MEAN = 0.3 * 2 / 5  # 30% non-zero, Beta(2, 3) has mean 2/5


def test_intervals_cover_the_true_mean_at_about_the_nominal_rate() -> None:
    """200 simulated evaluations of 300 users: the 95% interval of the mean should
    hold the true mean in about 95% of them. With 200 datasets the binomial
    standard error of the coverage is 1.5 points; the percentile bootstrap runs a
    little narrow at this size, so the band is 90-99%."""
    rng = np.random.default_rng(2026)
    covered = []
    for seed in range(200):
        values = skewed_metric(rng, 300)
        low, high = percentile_interval(resample(values[:, None], 1000, seed=seed).means)
        covered.append(low[0] <= TRUE_MEAN <= high[0])
    assert 0.90 <= np.mean(covered) <= 0.99


def test_group_mean_intervals_cover_at_about_the_nominal_rate() -> None:
    """The same for the mean of one group of users (a ratio of two resampled sums)."""
    rng = np.random.default_rng(7)
    covered = []
    for seed in range(200):
        in_group = rng.random(400) < 0.4
        values = skewed_metric(rng, 400)
        members = sp.csr_matrix(in_group.astype(float)[:, None])
        draws = resample(np.zeros((400, 1)), 1000, seed, members.multiply(values[:, None]).tocsr(), members)
        low, high = percentile_interval(draws.ratios)
        covered.append(low[0] <= TRUE_MEAN <= high[0])
    assert 0.90 <= np.mean(covered) <= 0.99


def test_resampled_means_are_means_of_real_resamples() -> None:
    values = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    draws = resample(values, 500, seed=1).means
    assert draws.shape == (500, 2)
    np.testing.assert_allclose(draws[:, 1], 3.0)  # a constant column never moves
    assert draws[:, 0].min() >= 0 and draws[:, 0].max() <= 9
    assert draws[:, 0].mean() == pytest.approx(4.5, abs=0.15)  # unbiased for the mean
    # Standard error of a mean of 10 values drawn from 0..9: sd / sqrt(n).
    assert draws[:, 0].std() == pytest.approx(np.arange(10).std() / np.sqrt(10), rel=0.15)


def test_ratios_over_everyone_equal_the_plain_means() -> None:
    rng = np.random.default_rng(0)
    values = rng.random((50, 1))
    everyone = sp.csr_matrix(np.ones((50, 1)))
    draws = resample(values, 200, 3, sp.csr_matrix(values), everyone)
    np.testing.assert_allclose(draws.ratios[:, 0], draws.means[:, 0])


def test_same_seed_same_intervals_and_blocks_are_reported() -> None:
    values = np.random.default_rng(0).random((100, 3))
    seen: list[int] = []
    a = resample(values, 300, seed=5, on_block=seen.append).means
    np.testing.assert_array_equal(a, resample(values, 300, seed=5).means)
    assert not np.array_equal(a, resample(values, 300, seed=6).means)
    assert sum(seen) == 300


def test_undefined_resamples_are_ignored_and_bad_input_refused() -> None:
    low, high = percentile_interval(np.array([[np.nan, 1.0], [np.nan, 2.0], [np.nan, 3.0]]))
    assert np.isnan(low[0]) and np.isnan(high[0]) and 1.0 <= low[1] <= high[1] <= 3.0
    with pytest.raises(ValueError, match="NaN"):
        resample(np.array([[np.nan]]), 10)
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(np.zeros((3, 1)), confidence=1.5)
