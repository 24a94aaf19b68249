"""From simulated sessions to the experiment's numbers: per-arm metrics with
intervals, lifts, coverage, the daily looks of the primary metric, and power.

Sessions are summed per user first (the randomisation unit), then each metric is
a ratio of user sums (see `abtest.stats`). Coverage (the share of the catalog an
arm's slates show) is not a ratio of sums: see `compare_coverage`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.special import gammaln

from recsys_cli.abtest import AbTestError
from recsys_cli.abtest.assignment import CONTROL, TREATMENT
from recsys_cli.abtest.sequential import Looks
from recsys_cli.abtest.simulator import ResponseSimulator, SessionOutcomes
from recsys_cli.abtest.stats import (
    Estimate,
    Lift,
    delta_ratio,
    lift,
    minimum_detectable_effect,
    power_at,
    ratio_estimate,
    total_sample_size,
    z_value,
)

# Metric -> (numerator, denominator) of per-user session sums.
RATIO_METRICS: dict[str, tuple[str, str]] = {
    "ctr": ("clicks", "impressions"),
    "add_to_cart_rate": ("carted_sessions", "sessions"),
    "conversion": ("orders", "sessions"),
    "revenue_per_session": ("revenue", "sessions"),
    "average_order_value": ("revenue", "orders"),
}
COVERAGE = "coverage"
METRICS = (*RATIO_METRICS, COVERAGE)
# Sessions simulated per call, so the per-slot draws stay a few tens of MB.
SESSION_CHUNK = 100_000


@dataclass(frozen=True)
class ArmComparison:
    metric: str
    control: Estimate
    treatment: Estimate
    lift: Lift
    mde_relative: float  # smallest relative lift this experiment detects with the configured power

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "control": self.control.to_json(),
            "treatment": self.treatment.to_json(),
            "lift": self.lift.to_json(),
            "mde_relative": self.mde_relative,
        }


def play(
    simulator: ResponseSimulator,
    users: pl.Series,
    session_user: np.ndarray,
    arm: np.ndarray,
    slates: list[np.ndarray],
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
) -> SessionOutcomes:
    """Simulate sessions in order, each showing its user's arm's slate. `users` are
    the ids behind the dense indices `session_user` and `arm`; `slates` holds the
    control's and the treatment's (users, k) slates. Sessions go to the simulator a
    chunk at a time from one generator, so the result does not depend on memory."""
    if np.any(arm[session_user] < 0):
        raise AbTestError("play: every session must belong to a user in an arm")
    ids = users.gather(session_user)
    parts = []
    for start in range(0, session_user.size, SESSION_CHUNK):
        u = session_user[start : start + SESSION_CHUNK]
        shown = np.where((arm[u] == TREATMENT)[:, None], slates[TREATMENT][u], slates[CONTROL][u])
        parts.append(simulator.simulate(ids.slice(start, u.size), shown, rng))
        if progress is not None:
            progress(u.size)
    if not parts:
        return simulator.simulate(ids, np.zeros((0, slates[CONTROL].shape[1]), np.int64), rng)
    return SessionOutcomes.concat(parts)


def session_columns(outcomes: SessionOutcomes) -> dict[str, np.ndarray]:
    """The per-session values the metrics are ratios of."""
    return {
        "sessions": np.ones(outcomes.clicks.size),
        "impressions": outcomes.impressions.astype(np.float64),
        "clicks": outcomes.clicks.astype(np.float64),
        "carted_sessions": (outcomes.carts > 0).astype(np.float64),
        "orders": (outcomes.purchases > 0).astype(np.float64),
        "revenue": outcomes.revenue.astype(np.float64),
    }


def user_totals(user: np.ndarray, columns: dict[str, np.ndarray], n_users: int) -> dict[str, np.ndarray]:
    """Every session column summed per user (dense user index)."""
    return {name: np.bincount(user, weights=values, minlength=n_users) for name, values in columns.items()}


def compare_arms(
    totals: dict[str, np.ndarray], arm: np.ndarray, confidence: float, power: float
) -> list[ArmComparison]:
    """Every ratio metric in both arms, with the lift and the minimum detectable
    relative effect at this experiment's size."""
    out = []
    masks = [arm == CONTROL, arm == TREATMENT]
    for metric, (num, den) in RATIO_METRICS.items():
        c, t = (ratio_estimate(totals[num][m], totals[den][m], confidence) for m in masks)
        mde = minimum_detectable_effect(c.sd, c.units, t.units, 1 - confidence, power)
        out.append(ArmComparison(metric, c, t, lift(c, t, confidence), mde / c.value if c.value > 0 else math.nan))
    return out


def compare_coverage(slates: list[np.ndarray], arm: np.ndarray, n_items: int, confidence: float) -> ArmComparison:
    """Share of the catalog each arm's slates show, compared at one number of users.

    Distinct items grow with the number of users, and the arms rarely have the
    same size, so both are rarefied (Hurlbert 1971) to m = (smaller arm) - 1
    users: the expected coverage of m users drawn at random from the arm, an
    unbiased estimate of the policy's coverage over m users of the period.
    Intervals come from the delete-one-user jackknife, the lift's from the delta
    method on the log scale as for the other metrics.
    """
    shown = [incidence(slate[arm == a], n_items) for a, slate in zip((CONTROL, TREATMENT), slates, strict=True)]
    m = max(1, min(s.shape[0] for s in shown) - 1)
    estimates = [_rarefied_estimate(s, m, n_items, confidence) for s in shown]
    c, t = estimates
    comparison = lift(c, t, confidence)
    return ArmComparison(COVERAGE, c, t, comparison, math.nan)


def rarefied_coverage(counts: np.ndarray, n: int, m: int) -> np.ndarray:
    """Per item, the probability it is shown to at least one of m users drawn
    without replacement from n, c of whom are shown it: 1 - C(n-c, m) / C(n, m).

    >>> rarefied_coverage(np.array([0, 1, 2]), n=2, m=1).tolist()
    [0.0, 0.5, 1.0]
    """
    c = np.asarray(counts, np.float64)
    ok = n - c >= m
    safe = np.where(ok, n - c, m)
    log_ratio = gammaln(safe + 1) - gammaln(safe - m + 1) - gammaln(n + 1) + gammaln(n - m + 1)
    return np.where(ok, 1 - np.exp(log_ratio), 1.0)


def _rarefied_estimate(shown: sp.csr_matrix, m: int, n_items: int, confidence: float) -> Estimate:
    """Rarefied coverage with its jackknife variance: leaving user u out changes only
    the items u is shown, each from c to c - 1 among n - 1 users."""
    n = shown.shape[0]
    counts = np.asarray(shown.sum(axis=0)).ravel()
    value = float(rarefied_coverage(counts, n, m).sum() / n_items)
    if n < 2 or m > n - 1:
        return Estimate(value, math.nan, math.nan, math.nan, n)
    base = rarefied_coverage(counts, n - 1, m)
    drop = base - rarefied_coverage(np.maximum(counts - 1, 0), n - 1, m)
    per_user = (base.sum() - shown @ drop) / n_items
    variance = float((n - 1) / n * ((per_user - per_user.mean()) ** 2).sum())
    half = z_value(confidence) * math.sqrt(variance)
    return Estimate(value, variance, value - half, value + half, n)


def daily_looks(
    user: np.ndarray, day: np.ndarray, num: np.ndarray, den: np.ndarray, arm: np.ndarray, n_days: int
) -> Looks:
    """The metric num/den in each arm over the users arrived by the end of each day,
    from per-session values: (days x users) cumulative sums, one pass per arm."""
    n_users = arm.size
    cum = [_cumulative(user, day, values, n_users, n_days) for values in (num, den, np.ones(num.size))]
    arrived = cum[2] > 0
    stats = [delta_ratio(cum[0][:, arm == a], cum[1][:, arm == a], arrived[:, arm == a]) for a in (CONTROL, TREATMENT)]
    (c, c_var, n_c), (t, t_var, n_t) = stats
    return Looks(c, c_var, t, t_var, n_c, n_t)


def power_report(
    control: Estimate,
    target_lift: float,
    alpha: float,
    power: float,
    treatment_share: float,
    n_control: int,
    n_treatment: int,
    arrivals: np.ndarray,
) -> dict[str, Any]:
    """What it takes to detect `target_lift` (relative) on the primary metric, from
    the control arm's level and per-user spread, and what this experiment can
    detect. `arrivals` is the cumulative number of experiment users by day."""
    delta = target_lift * control.value
    total = total_sample_size(control.sd, delta, alpha, power, treatment_share)
    reached = np.flatnonzero(arrivals >= total)
    per_day = arrivals[-1] / arrivals.size if arrivals.size else 0.0
    mde = minimum_detectable_effect(control.sd, n_control, n_treatment, alpha, power)
    return {
        "target_lift": target_lift,
        "alpha": alpha,
        "power": power,
        "baseline": control.value,
        "sd_per_user": control.sd,
        "users_needed_control": math.ceil(total * (1 - treatment_share)) if math.isfinite(total) else None,
        "users_needed_treatment": math.ceil(total * treatment_share) if math.isfinite(total) else None,
        "users_control": n_control,
        "users_treatment": n_treatment,
        "achieved_power": power_at(control.sd, delta, n_control, n_treatment, alpha),
        "mde_relative": mde / control.value if control.value > 0 else None,
        "days_needed": int(reached[0]) + 1 if reached.size else None,
        # Beyond the window, assume new users keep arriving at the window's average rate
        # (returning users make this optimistic: read it as a lower bound).
        "days_needed_extrapolated": math.ceil(total / per_day) if per_day > 0 and math.isfinite(total) else None,
    }


def _cumulative(user: np.ndarray, day: np.ndarray, values: np.ndarray, n_users: int, n_days: int) -> np.ndarray:
    if day.size and (day.min() < 0 or day.max() >= n_days):
        raise AbTestError(f"session days must lie in [0, {n_days}), got [{day.min()}, {day.max()}]")
    flat = np.bincount(day * n_users + user, weights=values, minlength=n_days * n_users)
    return np.cumsum(flat.reshape(n_days, n_users), axis=0)


def incidence(slates: np.ndarray, n_items: int) -> sp.csr_matrix:
    """(users, items) 1 where the user's slate (a row of catalog indices, -1 for an
    empty slot) shows the item."""
    rows = np.repeat(np.arange(slates.shape[0]), slates.shape[1])
    cols = slates.ravel()
    keep = cols >= 0
    matrix = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(slates.shape[0], n_items))
    matrix.data[:] = 1.0
    return matrix
