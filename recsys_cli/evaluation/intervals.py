"""Bootstrap intervals over users for many metrics at once.

Users are the unit of resampling: the evaluated users are one draw from the
shop's users, and each user's values across metrics are kept together. A
resample is a vector of multinomial counts (how often each user was drawn), so
the resampled mean of every metric is one row of a matrix product
W (resamples x users) @ values (users x metrics). Group means and pooled rates
(a calibration error over a subset of users) are ratios of two such sums,
taken from the same draws, so intervals of a gap between groups keep the
groups' joint variation.

Everything goes through one dense float32 product per block of resamples:
BLAS is an order of magnitude faster there than sparse products or float64,
and float32 sums keep about seven significant digits, far finer than the
bootstrap's own spread. Blocks bound the memory of the count matrix.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import norm

# At most this many multinomial counts per block (40 MB as float32).
_BLOCK_VALUES = 10_000_000


@dataclass(frozen=True)
class Resamples:
    """Resampled means (resamples x columns) and ratios of sums (resamples x ratios)."""

    means: np.ndarray
    ratios: np.ndarray


def resample(
    values: np.ndarray,
    n_resamples: int,
    seed: int = 0,
    numerators: sp.csr_matrix | None = None,
    denominators: sp.csr_matrix | None = None,
    on_block: Callable[[int], None] | None = None,
) -> Resamples:
    """Bootstrap the column means of `values` (users x columns) and, when given,
    the ratios sum(numerators[:, j]) / sum(denominators[:, j]) over the same draws.

    NaN values are not allowed in `values`; express a mean over a subset of users
    as a ratio instead. `on_block(n)` is called after each block of n resamples
    (progress). The same seed and inputs give the same resamples.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"resample needs a non-empty (users, columns) matrix, got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("resample: values contain NaN; pass subset means as numerators/denominators")
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    n, n_means = values.shape
    # Centred in float64 first (means on the column mean, numerators on the point
    # ratio), so float32 only carries the deviations: a constant column resamples
    # to exactly its value, and precision does not depend on the level.
    center = values.mean(axis=0)
    parts = [values - center]
    ref = np.zeros(0)
    if numerators is not None and denominators is not None:
        num, den = numerators.toarray(), denominators.toarray()
        totals = den.sum(axis=0)
        ref = np.where(totals > 0, num.sum(axis=0) / np.where(totals > 0, totals, 1.0), 0.0)
        parts += [num - ref * den, den]
    columns = np.ascontiguousarray(np.hstack(parts), dtype=np.float32)
    sums = np.empty((n_resamples, columns.shape[1]), dtype=np.float64)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_VALUES // n)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        sums[start:stop] = _multinomial_counts(rng, stop - start, n) @ columns
        if on_block is not None:
            on_block(stop - start)
    n_ratios = ref.size
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = ref + sums[:, n_means : n_means + n_ratios] / sums[:, n_means + n_ratios :]
    return Resamples(center + sums[:, :n_means] / n, ratios)


def _multinomial_counts(rng: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """(n_resamples, n) counts of each user among n draws with replacement: the
    index draws of a plain bootstrap, tallied one resample at a time."""
    counts = np.empty((n_resamples, n), dtype=np.float32)
    for row in counts:
        row[:] = np.bincount(rng.integers(0, n, size=n), minlength=n)
    return counts


def percentile_interval(resampled: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column, ignoring undefined (NaN) resamples;
    NaN where every resample of a column is undefined."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tails = 100 * np.array([(1 - confidence) / 2, (1 + confidence) / 2])
    data = np.atleast_2d(np.asarray(resampled, dtype=np.float64))
    if data.shape[1] == 0:
        return np.zeros(0), np.zeros(0)
    # An all-NaN column (a group too small to appear in any resample) warns; its
    # interval is simply undefined.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(np.where(np.isfinite(data), data, np.nan), tails, axis=0)
    return np.asarray(low), np.asarray(high)


def interval(draws: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of one statistic's resampled values (NaN ones ignored)."""
    low, high = percentile_interval(np.asarray(draws, dtype=np.float64)[:, None], confidence)
    return float(low[0]), float(high[0])


# -- a proportion, and ratios of sums over units weighted by Poisson draws (monitoring/kpis.py) ----------

_POISSON_BLOCK_VALUES = 4_000_000  # Poisson weights drawn per block of replicates (32 MB)


def wilson_interval(
    successes: np.ndarray | Sequence[float], trials: np.ndarray | Sequence[float], confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of each proportion successes/trials (NaN where trials is 0).

    >>> low, high = wilson_interval([7], [10])
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (0.3968, 0.8922)
    """
    k, n = np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    z2 = norm.ppf((1 + confidence) / 2) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        scale = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / scale
        half = np.sqrt(z2 * (p * (1 - p) / n + z2 / (4 * n * n))) / scale
    defined = n > 0
    return np.where(defined, np.clip(centre - half, 0, 1), np.nan), np.where(
        defined, np.clip(centre + half, 0, 1), np.nan
    )


def poisson_bootstrap(
    group: np.ndarray,
    num: np.ndarray,
    den: np.ndarray,
    count: np.ndarray,
    n_groups: int,
    n_resamples: int = 1000,
    seed: int | Sequence[int] = 0,
) -> np.ndarray:
    """Resampled sum(num)/sum(den) per group: (n_resamples, n_groups), or
    (n_resamples, n_groups, r) for r ratios given as (cells, r) columns.

    Cell i stands for `count[i]` units of group `group[i]`, each contributing
    (num[i], den[i]); a replicate weighs the cell by Poisson(count[i]), the sum of
    its units' Poisson(1) weights. Ratios over the same units share the weights,
    so their intervals come from the same replicates. NaN where a replicate drew
    no denominator.
    """
    nums, dens = (np.asarray(x, np.float64).reshape(group.size, -1) for x in (num, den))
    r = nums.shape[1]
    rows = np.repeat(np.arange(group.size), r)
    columns = (np.asarray(group, np.int64)[:, None] * r + np.arange(r)).ravel()
    shape = (group.size, n_groups * r)
    num_by, den_by = (sp.csr_array((x.ravel(), (rows, columns)), shape=shape) for x in (nums, dens))
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, n_groups * r), dtype=np.float64)
    block = max(1, _POISSON_BLOCK_VALUES // max(group.size, 1))
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        weights = rng.poisson(np.asarray(count, np.float64), size=(stop - start, group.size)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:stop] = (weights @ num_by) / (weights @ den_by)
    return out.reshape(n_resamples, n_groups, r) if np.ndim(num) > 1 else out.reshape(n_resamples, n_groups)
