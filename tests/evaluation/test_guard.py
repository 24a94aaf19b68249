"""The retrain's gate: promote only a candidate that is not significantly worse."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_cli.evaluation.guard import GuardError, promotion_decision

RNG = np.random.default_rng(5)
PRODUCTION = {"ndcg@10": RNG.uniform(0, 0.4, 2000), "recall@10": RNG.uniform(0, 0.6, 2000)}


def shifted(factor: float, noise: float = 0.02) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(9)
    return {m: np.clip(v * factor + rng.normal(0, noise, v.size), 0, 1) for m, v in PRODUCTION.items()}


def test_a_deliberately_worse_model_is_refused_naming_the_metric() -> None:
    decision = promotion_decision(shifted(0.8), PRODUCTION, ["ndcg@10", "recall@10"], resamples=500)
    assert not decision.promote
    assert decision.reasons[0].startswith("ndcg@10: significantly worse than production (-")
    assert decision.metrics["ndcg@10"]["relative_high"] < 0


def test_an_equal_model_passes_unless_a_primary_metric_must_improve() -> None:
    same = shifted(1.0)
    assert promotion_decision(same, PRODUCTION, ["ndcg@10"], resamples=500).promote
    required = promotion_decision(same, PRODUCTION, ["ndcg@10"], primary="recall@10", resamples=500)
    assert not required.promote and required.reasons == [r for r in required.reasons if "not significantly better" in r]


def test_a_better_model_passes_with_a_primary_and_a_small_drop_within_the_tolerance_passes() -> None:
    better = promotion_decision(shifted(1.2), PRODUCTION, ["ndcg@10"], primary="recall@10", resamples=500)
    assert better.promote and better.reasons[-1].startswith("recall@10: significantly better")
    slightly = shifted(0.97, noise=0.0)  # surely 3% worse
    assert not promotion_decision(slightly, PRODUCTION, ["ndcg@10"], resamples=500).promote
    assert promotion_decision(slightly, PRODUCTION, ["ndcg@10"], tolerance=0.05, resamples=500).promote


def test_the_decision_repeats_for_a_seed_and_bad_input_is_one_line() -> None:
    first = promotion_decision(shifted(0.99), PRODUCTION, ["ndcg@10"], resamples=300, seed=4)
    again = promotion_decision(shifted(0.99), PRODUCTION, ["ndcg@10"], resamples=300, seed=4)
    assert first == again
    with pytest.raises(GuardError, match="no per-user values for \\['map@10'\\]"):
        promotion_decision(PRODUCTION, PRODUCTION, ["map@10"])
    with pytest.raises(GuardError, match="tolerance"):
        promotion_decision(PRODUCTION, PRODUCTION, ["ndcg@10"], tolerance=-0.1)
