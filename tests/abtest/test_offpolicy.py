"""Off-policy estimators on a synthetic bandit log whose propensities and rewards
are known, so each policy's true value is known exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from recsys_cli.abtest.offpolicy import (
    LoggedActions,
    compare_policies,
    estimate,
    popularity_propensity,
    slate_probability,
)

N_CONTEXTS, N_ACTIONS = 20, 15


@dataclass(frozen=True)
class Bandit:
    context_p: np.ndarray  # (contexts,)
    logging: np.ndarray  # (contexts, actions) mu(a|x), all positive
    reward_p: np.ndarray  # (contexts, actions) E[reward | x, a]

    def value(self, policy: np.ndarray) -> float:
        """The true value of a (contexts, actions) policy."""
        return float(self.context_p @ (policy * self.reward_p).sum(axis=1))

    def log(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        context = rng.choice(N_CONTEXTS, n, p=self.context_p)
        cdf = np.cumsum(self.logging[context], axis=1)
        action = np.minimum((cdf < rng.random(n)[:, None]).sum(axis=1), N_ACTIONS - 1)
        reward = (rng.random(n) < self.reward_p[context, action]).astype(np.float64)
        return context, action, reward


def make_bandit(uniform_logging: bool = False, seed: int = 0) -> Bandit:
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 1, (N_CONTEXTS, N_ACTIONS))
    logging = np.full((N_CONTEXTS, N_ACTIONS), 1 / N_ACTIONS) if uniform_logging else _softmax(scores)
    return Bandit(rng.dirichlet(np.ones(N_CONTEXTS)), logging, rng.beta(1, 4, (N_CONTEXTS, N_ACTIONS)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def target_policy(seed: int = 1) -> np.ndarray:
    """A stochastic policy that favours other actions than the logger."""
    return _softmax(2 * np.random.default_rng(seed).normal(0, 1, (N_CONTEXTS, N_ACTIONS)))


def greedy_policy(bandit: Bandit) -> np.ndarray:
    """Deterministic: the best action of each context."""
    policy = np.zeros((N_CONTEXTS, N_ACTIONS))
    policy[np.arange(N_CONTEXTS), bandit.reward_p.argmax(axis=1)] = 1.0
    return policy


def logged(bandit: Bandit, n: int, seed: int, policy: np.ndarray) -> tuple[LoggedActions, np.ndarray]:
    context, action, reward = bandit.log(n, np.random.default_rng(seed))
    # Each logged action is its own unit here (contexts are not users), so the
    # interval is the plain one over actions.
    log = LoggedActions(np.arange(n), reward, bandit.logging[context, action], n)
    return log, policy[context, action]


@pytest.mark.parametrize("estimator", ["ips", "snips"])
def test_weighted_estimators_are_unbiased_with_known_propensities(estimator: str) -> None:
    bandit, policy = make_bandit(), target_policy()
    truth = bandit.value(policy)
    values, covered = [], []
    for seed in range(300):
        log, prob = logged(bandit, 2_000, seed, policy)
        e = estimate(estimator, log, prob)
        values.append(e.value)
        covered.append(e.low <= truth <= e.high)
    values = np.array(values)
    standard_error = values.std(ddof=1) / np.sqrt(values.size)
    assert values.mean() == pytest.approx(truth, abs=3 * standard_error + (0.002 if estimator == "snips" else 0))
    assert np.mean(covered) >= 0.9  # nominal 95%


def test_replay_is_unbiased_under_uniform_logging() -> None:
    bandit = make_bandit(uniform_logging=True, seed=4)
    greedy = greedy_policy(bandit)
    values = np.array([estimate("replay", *logged(bandit, 3_000, seed, greedy)).value for seed in range(300)])
    assert values.mean() == pytest.approx(bandit.value(greedy), abs=3 * values.std(ddof=1) / np.sqrt(values.size))


def test_clipping_trades_bias_for_variance() -> None:
    bandit, policy = make_bandit(), target_policy()
    plain, clipped = [], []
    for seed in range(200):
        log, prob = logged(bandit, 2_000, seed, policy)
        plain.append(estimate("ips", log, prob).value)
        clipped.append(estimate("ips", log, prob, clip=2.0).value)
    assert np.mean(clipped) < bandit.value(policy) - 3 * np.std(clipped) / np.sqrt(200)  # biased down
    assert np.std(clipped) < np.std(plain)


def test_a_policy_compared_with_itself_shows_no_lift() -> None:
    bandit, policy = make_bandit(), target_policy()
    log, prob = logged(bandit, 1_000, 0, policy)
    for c in compare_policies(log, prob, prob, n_resamples=200, seed=0):
        assert c.control == c.treatment
        assert c.lift.difference == 0 and c.lift.relative == 0 and not c.lift.significant
        assert c.lift.difference_low == c.lift.difference_high == 0


def test_a_better_policy_is_found_better_by_every_estimator() -> None:
    bandit = make_bandit(seed=5)
    log, worse = logged(bandit, 5_000, 1, _softmax(-3 * bandit.reward_p))
    _, better = logged(bandit, 5_000, 1, greedy_policy(bandit))  # the same log (same seed), another policy
    results = {c.estimator: c for c in compare_policies(log, worse, better, clip=1e9, n_resamples=300, seed=0)}
    assert set(results) == {"replay", "ips", "snips"}
    for c in results.values():
        assert c.lift.significant and c.lift.relative_low > 0, c.estimator


def test_slate_and_popularity_propensities() -> None:
    assert slate_probability(np.array([True, False, True]), 4).tolist() == [0.25, 0.0, 0.25]
    items = np.array([0, 0, 1, 2, 0])
    assert popularity_propensity(items, n_items=4).tolist() == [0.6, 0.6, 0.2, 0.2, 0.6]
    with pytest.raises(ValueError, match="unknown off-policy estimator"):
        estimate("dr", LoggedActions(np.zeros(1, np.int64), np.ones(1), np.ones(1), 1), np.ones(1))
