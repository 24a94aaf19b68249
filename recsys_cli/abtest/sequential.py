"""The guard against peeking: when may the experiment's result be read?

Looking at a fixed-horizon test every day and stopping at the first p < alpha
inflates the false-positive rate far above alpha. Two designs avoid it:

- `FixedHorizon`: decide once, at the planned end. The daily naive p-values are
  still reported, with the first day a peeker would have stopped, to show what
  peeking would have claimed.
- `MixtureSPRT`: the mixture sequential probability ratio test (Robbins 1970;
  Johari, Pekelis and Walsh 2017, "Always valid inference"), whose p-values and
  confidence sequences stay valid however often they are looked at, so the
  experiment may stop on the first day p <= alpha. For an estimate
  theta_hat ~ N(theta, V) and a N(0, tau^2) mixture over theta:

      Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 theta_hat^2 / (2 V (V + tau^2)))

  the always-valid p-value is the running minimum of 1 / Lambda, and the
  confidence sequence is theta_hat +- sqrt(V (V + tau^2) / tau^2 *
  (log((V + tau^2) / V) - 2 log alpha)), intersected over looks. tau is the
  effect size the test is tuned to: `relative_tau` times the control's value.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from recsys_cli.abtest import AbTestError
from recsys_cli.evaluation.significance import BETTER, SAME, WORSE


@dataclass(frozen=True)
class Looks:
    """The primary metric's cumulative estimate in each arm at the end of each day."""

    control: np.ndarray
    control_variance: np.ndarray
    treatment: np.ndarray
    treatment_variance: np.ndarray
    n_control: np.ndarray
    n_treatment: np.ndarray

    @property
    def difference(self) -> np.ndarray:
        return self.treatment - self.control

    @property
    def variance(self) -> np.ndarray:
        return self.control_variance + self.treatment_variance


@dataclass(frozen=True)
class SequentialResult:
    method: str
    decision: str
    decision_day: int | None  # 1-based day the decision was made (None: never, or never allowed)
    p_values: np.ndarray  # per look: naive (fixed horizon) or always-valid
    low: np.ndarray  # interval of the difference per look
    high: np.ndarray
    naive_stop_day: int | None  # first day a daily naive test crossed alpha
    params: dict[str, Any]
    looks: Looks

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "decision": self.decision,
            "decision_day": self.decision_day,
            "naive_stop_day": self.naive_stop_day,
            "params": self.params,
            "daily": [
                {
                    "day": d + 1,
                    "users_control": int(self.looks.n_control[d]),
                    "users_treatment": int(self.looks.n_treatment[d]),
                    "control": float(self.looks.control[d]),
                    "treatment": float(self.looks.treatment[d]),
                    "difference": float(self.looks.difference[d]),
                    "difference_low": float(self.low[d]),
                    "difference_high": float(self.high[d]),
                    "p_value": float(self.p_values[d]),
                }
                for d in range(self.p_values.size)
            ],
        }


class SequentialTest(ABC):
    def __init__(self, alpha: float = 0.05) -> None:
        if not 0 < alpha < 1:
            raise AbTestError(f"sequential: alpha must be in (0, 1), got {alpha}")
        self.alpha = alpha

    @abstractmethod
    def analyse(self, looks: Looks) -> SequentialResult: ...


class FixedHorizon(SequentialTest):
    """One decision at the last look; daily looks are shown, never acted on."""

    def analyse(self, looks: Looks) -> SequentialResult:
        p, low, high = naive_tests(looks, self.alpha)
        decision = _decision(looks.difference[-1], p[-1] <= self.alpha)
        naive_stop = _first(p[:-1] <= self.alpha)
        return SequentialResult(
            "fixed_horizon", decision, p.size, p, low, high, naive_stop, {"alpha": self.alpha}, looks
        )


class MixtureSPRT(SequentialTest):
    """Always-valid p-values: stop on the first day p <= alpha."""

    def __init__(self, alpha: float = 0.05, relative_tau: float = 0.05) -> None:
        super().__init__(alpha)
        if relative_tau <= 0:
            raise AbTestError(f"sequential.relative_tau must be positive, got {relative_tau}")
        self.relative_tau = relative_tau

    def analyse(self, looks: Looks) -> SequentialResult:
        baseline = abs(float(looks.control[np.isfinite(looks.control)][-1])) if np.isfinite(looks.control).any() else 0
        tau2 = (self.relative_tau * baseline) ** 2
        p, low, high = msprt(looks.difference, looks.variance, tau2, self.alpha)
        stop = _first(p <= self.alpha)
        at = (stop or p.size) - 1
        decision = _decision(looks.difference[at], stop is not None)
        naive, _, _ = naive_tests(looks, self.alpha)
        params = {"alpha": self.alpha, "relative_tau": self.relative_tau, "tau": math.sqrt(tau2)}
        return SequentialResult("msprt", decision, stop, p, low, high, _first(naive <= self.alpha), params, looks)


def naive_tests(looks: Looks, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per look, the fixed-horizon z-test's p-value and 1 - alpha interval."""
    se = np.sqrt(looks.variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * stats.norm.sf(np.abs(looks.difference) / se), 1.0)
    half = stats.norm.ppf(1 - alpha / 2) * se
    return np.nan_to_num(p, nan=1.0), looks.difference - half, looks.difference + half


def msprt(
    difference: np.ndarray, variance: np.ndarray, tau2: float, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Always-valid p-values and confidence sequence per look (see the module).

    >>> p, low, high = msprt(np.array([0.0, 0.5]), np.array([0.01, 0.01]), tau2=0.25, alpha=0.05)
    >>> float(p[0]), bool(p[1] < 1e-3), bool(low[1] > 0)
    (1.0, True, True)
    """
    ok = np.isfinite(difference) & np.isfinite(variance) & (variance > 0) & (tau2 > 0)
    v = np.where(ok, variance, 1.0)
    with np.errstate(over="ignore"):
        log_lambda = 0.5 * np.log(v / (v + tau2)) + tau2 * np.nan_to_num(difference) ** 2 / (2 * v * (v + tau2))
    p = np.minimum.accumulate(np.where(ok, np.minimum(1.0, np.exp(-log_lambda)), 1.0))
    half = np.sqrt(v * (v + tau2) / max(tau2, 1e-300) * (np.log((v + tau2) / v) - 2 * math.log(alpha)))
    low = np.maximum.accumulate(np.where(ok, difference - half, -np.inf))
    high = np.minimum.accumulate(np.where(ok, difference + half, np.inf))
    return p, low, high


def _decision(difference: float, significant: bool) -> str:
    if not significant:
        return SAME
    return BETTER if difference > 0 else WORSE


def _first(flags: np.ndarray) -> int | None:
    hits = np.flatnonzero(flags)
    return int(hits[0]) + 1 if hits.size else None
