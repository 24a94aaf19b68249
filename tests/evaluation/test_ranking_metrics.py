"""MAP and the all-cut-offs ranking metrics: by hand, against the per-k metrics
`recsys train` reports, and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import average_precision_score, ndcg_score

from recsys_cli.evaluation.metrics import (
    RANKING_METRICS,
    average_precision,
    hits,
    per_user,
    ranking_metrics,
    relevant_counts,
)


def test_average_precision_by_hand() -> None:
    truth = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [0, 1, 1, 1, 1], [1, 0, 0, 0, 0]]))
    recs = np.array([[3, 2, 1], [1, 2, 0], [1, 2, 3]])
    ap = average_precision(recs, truth, 3)
    # user 0: hits at ranks 1 and 3 -> (1/1 + 2/3) / min(2 relevant, 3)
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2)
    # user 1: 4 relevant, hits at ranks 1 and 2 -> (1 + 1) / min(4, 3): a top-3 can hold at most 3 of them
    assert ap[1] == pytest.approx(2 / 3)
    # user 2: only item 0 is relevant, and it is never recommended
    assert ap[2] == 0.0


def test_all_cut_offs_by_hand() -> None:
    # One user, two relevant items, hits at ranks 2 and 4 of 5.
    m = ranking_metrics(np.array([[False, True, False, True, False]]), np.array([2.0]), [1, 2, 5])
    assert m["hitrate@1"][0] == 0 and m["mrr@1"][0] == 0 and m["ndcg@1"][0] == 0
    assert m["mrr@2"][0] == 0.5 and m["precision@2"][0] == 0.5 and m["recall@2"][0] == 0.5
    assert m["ndcg@5"][0] == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3)))
    assert m["map@5"][0] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["precision@5"][0] == pytest.approx(0.4)
    assert sorted(m) == sorted(f"{name}@{k}" for name in RANKING_METRICS for k in (1, 2, 5))


def test_users_without_relevant_items_score_zero() -> None:
    m = ranking_metrics(np.zeros((1, 3), dtype=bool), np.array([0.0]), [3])
    assert all(v[0] == 0.0 for v in m.values())


def test_agrees_with_the_per_k_metrics_train_reports() -> None:
    rng = np.random.default_rng(3)
    truth = sp.csr_matrix((rng.random((50, 40)) < 0.1).astype(float))
    recs = np.argsort(-rng.random((50, 40)), axis=1)[:, :20]
    ks = [1, 5, 10, 20]
    every = ranking_metrics(hits(recs, truth), relevant_counts(truth), ks)
    for k in ks:
        for name, values in per_user(recs, truth, k).items():
            np.testing.assert_allclose(every[f"{name}@{k}"], values, rtol=1e-12, err_msg=f"{name}@{k}")
        np.testing.assert_allclose(every[f"map@{k}"], average_precision(recs, truth, k), rtol=1e-12)


def test_ndcg_and_map_match_scikit_learn_on_full_rankings() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 25
    relevance = (rng.random((n_users, n_items)) < 0.2).astype(float)
    relevance[relevance.sum(axis=1) == 0, 3] = 1.0
    scores = rng.random((n_users, n_items))
    recs = np.argsort(-scores, axis=1)
    ours = ranking_metrics(hits(recs, sp.csr_matrix(relevance)), relevance.sum(axis=1), [10, n_items])
    ndcg = [ndcg_score(relevance[u : u + 1], scores[u : u + 1], k=10) for u in range(n_users)]
    np.testing.assert_allclose(ours["ndcg@10"], ndcg, rtol=1e-9)
    # Over the whole catalogue, AP@n is scikit-learn's average precision of the scores.
    ap = [average_precision_score(relevance[u], scores[u]) for u in range(n_users)]
    np.testing.assert_allclose(ours[f"map@{n_items}"], ap, rtol=1e-9)


def test_cut_offs_must_fit_the_lists() -> None:
    with pytest.raises(ValueError, match="1..3"):
        ranking_metrics(np.zeros((2, 3), dtype=bool), np.ones(2), [5])
