"""Estimates, intervals, lift and power for metrics randomised by user.

Every experiment metric here is a ratio of sums over users: clicks / impressions,
orders / sessions, revenue / orders. Users, not sessions, are randomised, so a
user's sessions are not independent draws and a binomial interval over sessions
would be too narrow. The delta method gives the variance of a ratio of user sums
(Deng, Knoblich and Lu 2018, "Applying the delta method in metric analytics"):
with per-user numerator y_u and denominator n_u and R = sum(y) / sum(n),

    Var(R) ~ Var(y_u - R n_u) / (N * mean(n)^2)

over the N users of an arm. The linearised values y_u - R n_u, divided by
mean(n), also give the per-user standard deviation used in the power analysis.

Power and sample size use the two-sample z-test for a difference of means:

    N_total = (z_{1-alpha/2} + z_{power})^2 * sd^2 * (1/f_c + 1/f_t) / delta^2

with arm shares f_c and f_t; for equal arms this is the textbook
n = 2 (z_{1-alpha/2} + z_{power})^2 sd^2 / delta^2 per arm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A metric's value in one arm with its interval, over `units` users."""

    value: float
    variance: float
    low: float
    high: float
    units: int

    @property
    def sd(self) -> float:
        """Per-user standard deviation (of the linearised values)."""
        return math.sqrt(max(self.variance, 0.0) * self.units)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "se": math.sqrt(max(self.variance, 0.0))}


@dataclass(frozen=True)
class Lift:
    """Treatment minus control, absolute and relative, with the test of no difference."""

    difference: float
    difference_low: float
    difference_high: float
    relative: float
    relative_low: float
    relative_high: float
    p_value: float
    significant: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def z_value(confidence: float) -> float:
    """Two-sided normal quantile: 1.96 for 0.95."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def delta_ratio(num: np.ndarray, den: np.ndarray, present: np.ndarray | None = None) -> tuple[Any, Any, Any]:
    """R = sum(num) / sum(den), its delta-method variance and the number of users,
    over the last axis (users); leading axes (days) are kept. `present` marks the
    users that count (those who have arrived by a given day): a present user with a
    zero denominator still counts, as in the estimator's definition.

    >>> value, variance, n = delta_ratio(np.array([1.0, 0.0, 2.0, 1.0]), np.array([2.0, 1.0, 2.0, 3.0]))
    >>> round(float(value), 4), int(n)
    (0.5, 4)
    """
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    mask = np.ones(num.shape, bool) if present is None else np.asarray(present, bool)
    n = mask.sum(axis=-1)
    total_num, total_den = (num * mask).sum(axis=-1), (den * mask).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total_den > 0, total_num / np.where(total_den > 0, total_den, 1), np.nan)
        mean_den = total_den / np.maximum(n, 1)
        linear = (num - ratio[..., None] * den) / mean_den[..., None] * mask
        # The linearised values sum to zero, so their variance is sum(l^2) / (n - 1).
        variance = np.where(n > 1, (linear**2).sum(axis=-1) / np.maximum(n - 1, 1) / np.maximum(n, 1), np.nan)
    return ratio, variance, n


def ratio_estimate(num: np.ndarray, den: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Delta-method estimate and normal interval of sum(num) / sum(den) over users."""
    value, variance, n = delta_ratio(num, den)
    half = z_value(confidence) * math.sqrt(variance) if np.isfinite(variance) else math.nan
    return Estimate(float(value), float(variance), float(value - half), float(value + half), int(n))


def lift(control: Estimate, treatment: Estimate, confidence: float = 0.95) -> Lift:
    """The z-test of treatment - control (independent arms) and the relative lift
    treatment / control - 1 with Fieller's interval: the ratios r for which
    |t - r c| / sqrt(V_t + r^2 V_c) stays under z. It is skewed like a ratio's
    sampling distribution, and it holds 0 exactly when the difference test is not
    significant, so the two never disagree. Undefined (NaN) when the control is not
    clearly above 0 (the set of ratios is then unbounded).

    >>> c, t = Estimate(0.10, 1e-4, 0, 0, 1000), Estimate(0.12, 1e-4, 0, 0, 1000)
    >>> r = lift(c, t)
    >>> round(r.relative, 3), r.significant, r.relative_low > 0
    (0.2, False, False)
    """
    z = z_value(confidence)
    difference = treatment.value - control.value
    se = math.sqrt(control.variance + treatment.variance)
    if not (math.isfinite(difference) and math.isfinite(se)):
        p = math.nan  # an arm without data (no orders for an order value): nothing to test
    elif se > 0:
        p = float(2 * stats.norm.sf(abs(difference) / se))
    else:
        p = 1.0 if difference == 0 else 0.0
    rel, low, high = math.nan, math.nan, math.nan
    if control.value > 0:
        rel = treatment.value / control.value - 1
        a = control.value**2 - z**2 * control.variance
        if a > 0:
            b = treatment.value * control.value
            root = math.sqrt(b**2 - a * (treatment.value**2 - z**2 * treatment.variance))
            low, high = (b - root) / a - 1, (b + root) / a - 1
    return Lift(difference, difference - z * se, difference + z * se, rel, low, high, p, bool(p < 1 - confidence))


def total_sample_size(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8, share: float = 0.5) -> float:
    """Users needed in both arms together for a two-sided test at `alpha` to detect a
    difference `delta` with probability `power`; `share` is the treatment's share.

    >>> math.ceil(total_sample_size(sd=1.0, delta=0.5) / 2)  # Cohen's d = 0.5: 63 per arm
    63
    """
    if delta == 0 or not 0 < share < 1:
        return math.inf
    z = z_value(1 - alpha) + float(stats.norm.ppf(power))
    return z**2 * sd**2 * (1 / share + 1 / (1 - share)) / delta**2


def power_at(sd: float, delta: float, n_control: float, n_treatment: float, alpha: float = 0.05) -> float:
    """Probability that the two-sided z-test rejects when the true difference is `delta`."""
    if n_control <= 0 or n_treatment <= 0:
        return math.nan
    se = sd * math.sqrt(1 / n_control + 1 / n_treatment)
    if se == 0:
        return 1.0 if delta != 0 else alpha
    z = z_value(1 - alpha)
    shift = abs(delta) / se
    return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))


def minimum_detectable_effect(
    sd: float, n_control: float, n_treatment: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest absolute difference detected with probability `power`."""
    if n_control <= 0 or n_treatment <= 0:
        return math.nan
    return (z_value(1 - alpha) + float(stats.norm.ppf(power))) * sd * math.sqrt(1 / n_control + 1 / n_treatment)


def proportion_sample_size(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Per-arm size to tell conversion rates p1 and p2 apart (Fleiss' formula without
    continuity correction: pooled variance under the null, separate under the
    alternative)."""
    z_a, z_b = z_value(1 - alpha), float(stats.norm.ppf(power))
    mean = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root**2 / (p2 - p1) ** 2)


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from resampled differences: twice the
    share on the far side of zero (at least one resample's worth)."""
    finite = differences[np.isfinite(differences)]
    if finite.size == 0:
        return math.nan
    side = min((finite <= 0).mean(), (finite >= 0).mean())
    return float(min(1.0, 2 * max(side, 1 / finite.size)))
