"""The ranker's early-stopping metric: NDCG@k of each candidate list, by group."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from recsys_cli.models.dcn import grouped_ndcg


def test_grouped_ndcg_by_hand() -> None:
    # Group 0: the positive is ranked second -> 1 / log2(3). Group 1: first -> 1.
    # Group 2 has no positive and is left out of the mean.
    group = np.array([0, 0, 0, 1, 1, 2, 2])
    scores = np.array([0.9, 0.5, 0.1, 0.2, 0.1, 0.3, 0.4])
    labels = np.array([0, 1, 0, 1, 0, 0, 0])
    assert grouped_ndcg(group, scores, labels, k=10) == pytest.approx((1 / np.log2(3) + 1) / 2)


def test_grouped_ndcg_matches_scikit_learn_per_group() -> None:
    rng = np.random.default_rng(5)
    sizes = rng.integers(5, 30, 40)
    group = np.repeat(np.arange(sizes.size), sizes)
    scores = rng.normal(size=group.size)
    labels = (rng.uniform(size=group.size) < 0.2).astype(float)
    expected = [
        ndcg_score(labels[group == g][None, :], scores[group == g][None, :], k=10)
        for g in range(sizes.size)
        if labels[group == g].any()
    ]
    assert grouped_ndcg(group, scores, labels, k=10) == pytest.approx(np.mean(expected))


def test_the_restored_network_scores_what_early_stopping_logged() -> None:
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker", *SMALL["ranker"]).fit(data)
    assert model.tables is not None and model.best_score is not None
    _, held = model._examples(data.windows, model.tables)
    assert grouped_ndcg(held[1], model._logits(held[0]), held[2], 10) == pytest.approx(model.best_score, abs=1e-6)


def test_probabilities_stay_probabilities_for_unknown_users() -> None:
    """An unknown user's ranking falls back to popularity counts, but the ranker's
    probability for them is its own estimate, never a clipped count."""
    from tests.models.conftest import checkerboard
    from tests.models.test_contract import SMALL, make

    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    items = np.arange(1, data.n_items)
    cold = model.predict_proba(np.zeros(items.size, dtype=np.int64), items)
    assert ((cold >= 0.0) & (cold <= 1.0)).all()
    assert model.score(np.array([0]))[0, 1:].max() > 1.0  # the ranking: raw popularity counts
    assert cold.max() < 1.0
