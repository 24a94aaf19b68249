"""ItemKNN's interaction weighting: scale-free readings of the feature weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_cli.models.data import TrainData
from recsys_cli.models.item_knn import ItemKNN, neighbours
from recsys_cli.models.weighting import WEIGHTINGS, reweight
from tests.models.conftest import checkerboard


def scaled(data: TrainData, factor: float) -> TrainData:
    return TrainData(data.users, data.items, (data.matrix * factor).tocsr())


@pytest.mark.parametrize("weighting", [w for w in WEIGHTINGS if w != "raw"])
def test_scale_free_weightings_give_the_same_neighbours_on_scaled_weights(weighting: str) -> None:
    data, _ = checkerboard()
    plain = ItemKNN(weighting=weighting).fit(data)
    heavy = ItemKNN(weighting=weighting).fit(scaled(data, 37.5))
    np.testing.assert_allclose(plain.sim.toarray(), heavy.sim.toarray(), rtol=1e-4, atol=1e-7)


def test_log_dampens_a_heavily_repeated_pair() -> None:
    x = sp.csr_matrix(np.array([[1.0, 20.0], [1.0, 1.0]], dtype=np.float32))
    w = reweight(x, "log").toarray()
    assert w[0, 1] / w[0, 0] < 20.0 / 2  # under half the raw ratio of 20
    assert (reweight(x, "binary").toarray() == 1.0).all()


def test_idf_weightings_down_weight_users_who_touched_many_items() -> None:
    x = sp.csr_matrix(np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=np.float32))
    for how in ("bm25", "tfidf"):
        w = reweight(x, how).toarray()
        assert w[1, 0] < w[2, 0], how


def test_an_unknown_weighting_is_refused() -> None:
    with pytest.raises(ValueError, match="weighting"):
        reweight(sp.csr_matrix(np.ones((2, 2), np.float32)), "sqrt")


def whole_product_neighbours(x: sp.csr_matrix, k: int, shrink: float) -> np.ndarray:
    """The definition: shrunk cosine over the whole item-item product, no item its own
    neighbour, each row's k largest kept (ties to the lower item index)."""
    dense = x.toarray().astype(np.float64)
    norms = np.sqrt((dense**2).sum(axis=0))
    sim = dense.T @ dense / (norms[:, None] * norms[None, :] + shrink)
    np.fill_diagonal(sim, 0.0)
    kept = np.zeros_like(sim)
    for i, row in enumerate(sim):
        order = np.lexsort((np.arange(row.size), -row))[:k]
        order = order[row[order] > 0]
        kept[i, order] = row[order]
    return kept


@pytest.mark.parametrize("budget", [1, 40, 1 << 24])
def test_neighbours_built_block_by_block_equal_the_whole_product(budget: int) -> None:
    x = sp.random(60, 25, density=0.2, random_state=3, format="csr", dtype=np.float32)
    x.data = np.ceil(x.data * 3)
    got = neighbours(x, k=4, shrink=2.0, budget=budget)
    np.testing.assert_allclose(got.toarray(), whole_product_neighbours(x, 4, 2.0), rtol=1e-5)
    assert (got.getnnz(axis=1) <= 4).all() and got.diagonal().sum() == 0


def test_dense_and_sorted_selection_keep_the_same_neighbours_ties_included(monkeypatch: pytest.MonkeyPatch) -> None:
    """Co-occurrences dense enough are cut to their top k through dense rows; the
    kept entries, equal values by lower column, are those of the sort."""
    from recsys_cli.models import item_knn

    x = sp.random(200, 120, density=0.1, random_state=5, format="csr", dtype=np.float32)
    x.data = np.ceil(x.data * 2)  # integer weights: many equal similarities
    monkeypatch.setattr(item_knn, "_DENSE_SELECT", float("inf"))
    sorted_ = neighbours(x, k=7, shrink=1.0, budget=600)
    monkeypatch.setattr(item_knn, "_DENSE_SELECT", 0.0)
    monkeypatch.setattr(item_knn, "_DENSE_ROWS_FLOATS", 300)  # several dense chunks per block
    dense = neighbours(x, k=7, shrink=1.0, budget=600)
    assert (sorted_ != dense).nnz == 0
    assert np.array_equal(np.sort(sorted_.indices), np.sort(dense.indices))


def test_item_knns_fitted_on_the_same_data_with_the_same_settings_share_one_neighbour_computation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import recsys_cli.models.item_knn as module

    data, _ = checkerboard()
    calls: list[float] = []

    def counted(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
        calls.append(shrink)
        return neighbours(x, k, shrink)

    monkeypatch.setattr(module, "neighbours", counted)
    first = ItemKNN(k=5, shrink=2.0, weighting="log").fit(data)
    second = ItemKNN(k=5, shrink=2.0, weighting="log").fit(data)
    other = ItemKNN(k=5, shrink=50.0, weighting="log").fit(data)  # other settings: their own
    assert calls == [2.0, 50.0] and second.sim is first.sim
    fresh = neighbours(reweight(data.matrix, "log").tocsr(), 5, 2.0)
    np.testing.assert_array_equal(first.sim.toarray(), fresh.toarray())
    assert not np.array_equal(other.sim.toarray(), first.sim.toarray())


def hub_log(seed: int = 4, n_users: int = 120, n_items: int = 60) -> TrainData:
    """Item 1 in nearly every basket: a hub in every other item's neighbour list."""
    from recsys_cli.features.vocab import Vocabulary

    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.08).astype(np.float32)
    dense[:, 1] = (rng.random(n_users) < 0.9).astype(np.float32)
    dense[:, 0] = 0.0
    users = Vocabulary(tuple(f"u{i}" for i in range(n_users)))
    return TrainData(users, Vocabulary(tuple(f"i{j}" for j in range(n_items))), sp.csr_matrix(dense))


def test_reach_caps_what_an_item_passes_its_score_on_to() -> None:
    """With `reach`, an item's score goes to at most `reach` items, the strongest of
    those keeping it as a neighbour; the hub no longer reaches the whole catalogue."""
    data = hub_log()
    whole = ItemKNN(k=20, shrink=1.0, weighting="log").fit(data)
    capped = ItemKNN(k=20, shrink=1.0, weighting="log", reach=5).fit(data)
    out_whole, out_capped = whole._sim_t(), capped._sim_t()
    assert out_whole.getnnz(axis=1)[1] > 40  # the hub is in most items' lists
    assert (out_capped.getnnz(axis=1) <= 5).all()
    for item in range(data.n_items):  # each kept entry is one of the item's 5 strongest, same value
        row = out_whole[item].toarray().ravel()
        kept = out_capped[item].toarray().ravel()
        assert np.isin(np.flatnonzero(kept), np.lexsort((np.arange(row.size), -row))[:5]).all()
        np.testing.assert_array_equal(kept[kept > 0], row[kept > 0])
    users = np.arange(1, data.n_users)
    assert (capped._part(users).getnnz(axis=1) <= 5 * data.matrix[users].getnnz(axis=1)).all()


def test_a_one_item_history_keeps_its_exact_top_reach() -> None:
    """A user who met one item: their top `reach` is that item's strongest `reach`
    items, the same list as without the cap."""
    data = hub_log()
    dense = data.matrix.toarray()
    dense[1] = 0.0
    dense[1, 1] = 1.0  # user 1 met the hub only
    data = TrainData(data.users, data.items, sp.csr_matrix(dense))
    whole = ItemKNN(k=20, shrink=1.0, weighting="log").fit(data)
    capped = ItemKNN(k=20, shrink=1.0, weighting="log", reach=8).fit(data)
    np.testing.assert_array_equal(capped.recommend(np.array([1]), 8)[0], whole.recommend(np.array([1]), 8)[0])


def test_reach_is_kept_with_the_saved_model_and_must_be_positive(tmp_path) -> None:
    from recsys_cli.errors import ConfigError
    from recsys_cli.models.base import Recommender

    data = hub_log()
    model = ItemKNN(k=20, shrink=1.0, weighting="log", reach=5).fit(data)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = np.arange(1, data.n_users)
    assert loaded.params["reach"] == 5
    np.testing.assert_array_equal(loaded.recommend(users, 10)[0], model.recommend(users, 10)[0])
    with pytest.raises(ConfigError, match="reach"):
        ItemKNN(reach=0)


def test_the_reach_cut_keeps_what_a_whole_sort_keeps_ties_included() -> None:
    """Only rows longer than `reach` are sorted; the kept entries are those of
    `_top_k_per_row` on the whole transposed matrix (equal values by lower column)."""
    from recsys_cli.models.item_knn import _top_k_per_row, cap_rows, transposed

    rng = np.random.default_rng(9)
    dense = sp.random(80, 80, density=0.3, random_state=4, dtype=np.float32).toarray()
    dense = np.ceil(dense * 3)  # many equal similarities
    dense[:, 5] = rng.integers(1, 3, 80)  # a hub: in every row
    sim = sp.csr_matrix(dense)
    for reach in (1, 4, 30, 200):
        got = transposed(sim, reach)
        want = _top_k_per_row(sim.T.tocsr(), reach).tocsr()
        want.sort_indices()
        assert (got != want).nnz == 0 and got.nnz == want.nnz
        assert got.has_sorted_indices
    assert (transposed(sim, None) != sim.T).nnz == 0
    assert (cap_rows(sim, 3) != _top_k_per_row(sim, 3)).nnz == 0


def test_the_ranker_generators_share_one_reach_cut() -> None:
    data = hub_log()
    whole = ItemKNN(k=20, shrink=1.0, weighting="log", reach=5).fit(data)
    last = ItemKNN(k=20, shrink=1.0, weighting="log", reach=5, last_n=2).fit(data)
    assert whole._sim_t() is last._sim_t()
    other = ItemKNN(k=20, shrink=1.0, weighting="log", reach=6).fit(data)
    assert other._sim_t() is not whole._sim_t()


def test_max_history_learns_from_a_heavy_users_strongest_items_and_scores_the_whole_history() -> None:
    """With `max_history`, the neighbours are those of the log whose heavy users keep
    their strongest items only; a user's scores still read every item they met."""
    from recsys_cli.models.item_knn import cap_rows

    data = hub_log(n_users=60, n_items=40)
    dense = data.matrix.toarray()
    dense[3, 1:] = np.linspace(1.0, 2.0, 39)  # a heavy user, strongest on the last items
    data = TrainData(data.users, data.items, sp.csr_matrix(dense.astype(np.float32)))
    capped = ItemKNN(k=10, shrink=1.0, weighting="raw", max_history=6).fit(data)
    want = neighbours(cap_rows(data.matrix, 6), 10, 1.0)
    assert (capped.sim != want).nnz == 0
    assert (capped.sim != ItemKNN(k=10, shrink=1.0, weighting="raw").fit(data).sim).nnz > 0
    users = np.arange(1, data.n_users)
    whole_history = (data.matrix[users] @ capped.sim.T).toarray()
    np.testing.assert_allclose(capped.score(users)[:, 1:], whole_history[:, 1:], rtol=1e-5)
    with pytest.raises(Exception, match="max_history"):
        ItemKNN(max_history=0)
