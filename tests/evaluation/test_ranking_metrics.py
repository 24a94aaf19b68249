"""MAP and the all-cut-offs ranking metrics: by hand, against the per-k metrics
`recsys train` reports, and against scikit-learn."""

from __future__ import annotations

import numpy as np
import polars as pl
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


# ---- items no model can know: misses, each counted once -------------------------------


def _one_hit_three_unknown() -> tuple[np.ndarray, sp.csr_matrix]:
    """A catalogue of items 0..5 (0 the unknown item); the user engaged with item 2
    and with three products the model never saw, and is recommended 2 first."""
    from recsys_cli.features.vocab import Vocabulary
    from recsys_cli.models.data import TrainData
    from recsys_cli.models.validation import Targets

    items = Vocabulary(("<oov>", "i1", "i2", "i3", "i4", "i5"))
    data = TrainData(Vocabulary(("<oov>", "u")), items, sp.csr_matrix((2, len(items))))
    frame = pl.DataFrame({"user_id": ["u"] * 4, "item_id": ["i2", "new_a", "new_b", "new_c"]})
    recs = np.array([[2, 1, 3, 4, 5]])
    return recs, Targets.from_frame(frame, data).truth


def test_unknown_items_are_misses_counted_in_full_by_hand() -> None:
    """Recall 1/4, not 1/2; the ideal DCG is that of 4 relevant items (ranks 1..4),
    so NDCG = 1 / (1 + 1/log2 3 + 1/2 + 1/log2 5) = 0.39038..., not 1 / (1 + 1/log2 3)."""
    recs, truth = _one_hit_three_unknown()
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4) + 1 / np.log2(5)
    assert ideal == pytest.approx(2.5616063116448506, rel=1e-15)
    m = per_user(recs, truth, 5)
    assert m["recall"][0] == pytest.approx(0.25, rel=1e-15)
    assert m["ndcg"][0] == pytest.approx(1 / ideal, rel=1e-15)
    assert m["ndcg"][0] == pytest.approx(0.3903800499921017, rel=1e-12)
    assert (m["precision"][0], m["hitrate"][0], m["mrr"][0]) == (pytest.approx(1 / 5), 1.0, 1.0)
    every = ranking_metrics(hits(recs, truth), relevant_counts(truth), [1, 5])
    assert every["recall@5"][0] == pytest.approx(0.25, rel=1e-15)
    assert every["ndcg@5"][0] == pytest.approx(1 / ideal, rel=1e-15)
    assert every["ndcg@1"][0] == pytest.approx(1.0)  # one slot: the ideal list holds one item
    assert every["map@5"][0] == pytest.approx(1 / 4)  # precision 1 at the hit, over min(4, 5)
    assert average_precision(recs, truth, 5)[0] == pytest.approx(1 / 4)


def test_recall_at_10_with_three_unknown_items_and_one_known_hit() -> None:
    """The brief's case: lists of 10 over a larger catalogue, one known hit among
    4 relevant items -> recall@10 = 1/4 and NDCG@10 = 1 / IDCG(4)."""
    truth = sp.csr_matrix(
        (np.ones(4), ([0, 0, 0, 0], [7, 20, 21, 22])), shape=(1, 23)
    )  # items 0..19 known; 20, 21, 22: new products (Targets' columns past the catalogue)
    recs = np.array([[3, 7, 1, 2, 4, 5, 6, 8, 9, 10]])  # the hit at rank 2
    m = ranking_metrics(hits(recs, truth), relevant_counts(truth), [10])
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4) + 1 / np.log2(5)
    assert m["recall@10"][0] == pytest.approx(0.25, rel=1e-15)
    assert m["ndcg@10"][0] == pytest.approx((1 / np.log2(3)) / ideal, rel=1e-15)
    assert m["ndcg@10"][0] == pytest.approx(0.24630238874073, rel=1e-12)
    assert m["mrr@10"][0] == pytest.approx(0.5) and m["map@10"][0] == pytest.approx(0.5 / 4)


def test_lists_must_stay_within_the_truths_columns() -> None:
    with pytest.raises(ValueError, match="0..3"):
        hits(np.array([[4]]), sp.csr_matrix((1, 4)))
