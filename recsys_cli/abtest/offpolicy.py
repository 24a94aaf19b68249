"""Off-policy estimates from the logs alone: what a policy would have earned,
without a user model, to check the simulator's verdict against.

The log is a list of actions (a user opened an item) with their reward (the item
was then carted, say). A new policy would have shown other items, so the logged
rewards are reweighted:

- replay (Li, Chu, Langford and Wang 2011): keep the logged actions whose item
  the policy's slate holds and average their rewards. Unbiased when the logging
  policy chose items uniformly at random; with a popularity-driven log it favours
  popular items, which is why the weighted estimators below are reported too.
- IPS: the mean of w * reward with w = pi(a|x) / mu(a|x), the probability that
  the policy takes the logged action over the probability the logging policy
  did; unbiased when mu is right and positive wherever pi is. Weights are
  clipped at `clip` to bound the variance (at the price of a downward bias on
  the actions the clip bites).
- SNIPS: sum(w * reward) / sum(w), self-normalised: a little bias, much less
  variance, and immune to a constant error in mu.

Each estimator is a ratio of per-action terms, summed per user; the interval
is the delta method over users (a user's actions are not independent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys_cli.abtest.stats import (
    Estimate,
    Lift,
    bootstrap_p,
    delta_ratio,
    z_value,
)
from recsys_cli.evaluation import intervals

ESTIMATORS = ("replay", "ips", "snips")


@dataclass(frozen=True)
class LoggedActions:
    """One row per logged action: the acting user (a dense index), the reward, and
    the logging policy's probability of the action."""

    user: np.ndarray
    reward: np.ndarray
    logging_prob: np.ndarray
    n_users: int


def terms(
    estimator: str, log: LoggedActions, target_prob: np.ndarray, clip: float = np.inf
) -> tuple[np.ndarray, np.ndarray]:
    """Per-action numerator and denominator of `estimator` for a target policy that
    takes each logged action with probability `target_prob`."""
    reward = np.asarray(log.reward, np.float64)
    if estimator == "replay":
        matched = (np.asarray(target_prob) > 0).astype(np.float64)
        return matched * reward, matched
    weight = np.minimum(np.asarray(target_prob, np.float64) / np.asarray(log.logging_prob, np.float64), clip)
    if estimator == "ips":
        return weight * reward, np.ones_like(reward)
    if estimator == "snips":
        return weight * reward, weight
    raise ValueError(f"unknown off-policy estimator {estimator!r}; known: {list(ESTIMATORS)}")


def per_user(log: LoggedActions, num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator summed per user (users without actions get 0)."""
    return (
        np.bincount(log.user, weights=num, minlength=log.n_users),
        np.bincount(log.user, weights=den, minlength=log.n_users),
    )


def estimate(
    estimator: str, log: LoggedActions, target_prob: np.ndarray, clip: float = np.inf, confidence: float = 0.95
) -> Estimate:
    """The policy's value under `estimator`, with a delta-method interval over the
    users who acted (replay: over the users with a matched action)."""
    num, den = per_user(log, *terms(estimator, log, target_prob, clip))
    acted = np.bincount(log.user, minlength=log.n_users) > 0
    if estimator == "replay":
        acted &= den > 0
    value, variance, n = delta_ratio(num[acted], den[acted])
    half = z_value(confidence) * np.sqrt(variance) if np.isfinite(variance) else np.nan
    return Estimate(float(value), float(variance), float(value - half), float(value + half), int(n))


@dataclass(frozen=True)
class PolicyComparison:
    estimator: str
    control: Estimate
    treatment: Estimate
    lift: Lift


def compare_policies(
    log: LoggedActions,
    control_prob: np.ndarray,
    treatment_prob: np.ndarray,
    clip: float = np.inf,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[PolicyComparison]:
    """Both policies under every estimator, and the treatment's lift. The two are
    evaluated on the same logged actions, so the lift's interval comes from a
    paired bootstrap over users: each resample draws one set of users for both
    policies (the evaluation's engine, `intervals.resample`)."""
    out = []
    for estimator in ESTIMATORS:
        estimates = [estimate(estimator, log, prob, clip, confidence) for prob in (control_prob, treatment_prob)]
        sums = [per_user(log, *terms(estimator, log, prob, clip)) for prob in (control_prob, treatment_prob)]
        ratios = intervals.resample(
            np.zeros((log.n_users, 0)),
            n_resamples,
            seed,
            sp.csr_matrix(np.column_stack([sums[0][0], sums[1][0]])),
            sp.csr_matrix(np.column_stack([sums[0][1], sums[1][1]])),
        ).ratios
        control, treatment = ratios[:, 0], ratios[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = treatment / control - 1
        c, t = estimates
        p = bootstrap_p(treatment - control)
        rel = t.value / c.value - 1 if c.value > 0 else np.nan
        result = Lift(
            t.value - c.value,
            *intervals.interval(treatment - control, confidence),
            float(rel),
            *intervals.interval(relative, confidence),
            p,
            bool(p < 1 - confidence),
        )
        out.append(PolicyComparison(estimator, c, t, result))
    return out


def slate_probability(in_slate: np.ndarray, slate_size: int) -> np.ndarray:
    """pi(a|x) of a slate policy whose user takes one of its `slate_size` items,
    each equally likely: the model-free choice (no position model assumed)."""
    return np.asarray(in_slate, np.float64) / slate_size


def popularity_propensity(items: np.ndarray, n_items: int, floor: float = 1e-6) -> np.ndarray:
    """mu(a) of a logging policy that shows items in proportion to how often they
    were acted on: each action's item share of all actions, at least `floor`."""
    counts = np.bincount(items, minlength=n_items).astype(np.float64)
    return np.maximum(counts[items] / max(items.size, 1), floor)
