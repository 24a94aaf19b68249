from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from recsys_cli.evaluation.metrics import coverage, per_user, summarise


def test_hand_computed_values() -> None:
    truth = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 1]]))
    recs = np.array([[3, 2, 1], [1, 2, 3]])
    m = per_user(recs, truth, 3)
    # user 0: hits at ranks 1 and 3 -> DCG = 1 + 1/2; IDCG = 1 + 1/log2(3)
    assert m["ndcg"][0] == pytest.approx((1 + 0.5) / (1 + 1 / np.log2(3)))
    assert (m["recall"][0], m["hitrate"][0], m["mrr"][0]) == (1.0, 1.0, 1.0)
    assert m["precision"][0] == pytest.approx(2 / 3)
    assert (m["ndcg"][1], m["recall"][1], m["mrr"][1]) == (0.0, 0.0, 0.0)
    first_hit_second = per_user(np.array([[2, 1, 4]]), truth[:1], 3)
    assert first_hit_second["mrr"][0] == 0.5


def test_ndcg_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, k = 20, 30, 10
    relevance = (rng.random((n_users, n_items)) < 0.15).astype(float)
    relevance[relevance.sum(axis=1) == 0, 0] = 1.0
    scores = rng.random((n_users, n_items))
    recs = np.argsort(-scores, axis=1)
    ours = per_user(recs, sp.csr_matrix(relevance), k)["ndcg"]
    theirs = [ndcg_score(relevance[u : u + 1], scores[u : u + 1], k=k) for u in range(n_users)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_coverage_and_summary_keys() -> None:
    recs = np.array([[1, 2], [1, 3]])
    assert coverage(recs, 2, n_items=5) == 3 / 4
    keys = summarise(recs, sp.csr_matrix((2, 5)), [1, 2], 5, prefix="val/")
    assert "val/ndcg@2" in keys and "val/coverage@1" in keys
