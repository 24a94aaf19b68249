"""`Recommender.candidates` and `pair_scores`: the top-n of the dense scores, found
without them where the model's form allows (models/retrieval.py)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_cli.models.affinity import CategoryAffinity
from recsys_cli.models.base import Recommender
from recsys_cli.models.implicit_mf import ALS
from recsys_cli.models.item_knn import ItemKNN
from recsys_cli.models.popularity import Popularity
from recsys_cli.models.recently_viewed import RecentlyViewed
from recsys_cli.models.retrieval import _index_pays, sparse_lookup
from recsys_cli.models.transitions import ItemTransitions
from tests.models.clickstream_shop import shop

EVENT_TYPES = ["view", "view", "view", "add_to_cart", "purchase"]


def random_shop(seed: int = 0, n_users: int = 40, n_items: int = 90, n_events: int = 700):
    """Users who browse a few categories, with a long-history user among them, and
    items nobody met (the catalogue is larger than the log)."""
    rng = np.random.default_rng(seed)
    categories = {f"i{i:03d}": f"c{i % 7}" for i in range(n_items)}
    events = []
    for e in range(n_events):
        user = 0 if e % 5 == 0 else int(rng.integers(1, n_users))  # u000 sees a fifth of everything
        item = int(rng.integers(0, n_items - 10) if user % 3 else rng.integers(0, 30))
        events.append((f"u{user:03d}", f"i{item:03d}", EVENT_TYPES[int(rng.integers(0, 5))], float(e * 7)))
    return shop(events, categories)


MODELS = {
    "popularity": lambda: Popularity(),
    "item_knn": lambda: ItemKNN(k=20, shrink=2.0),
    "item_knn_last": lambda: ItemKNN(k=20, shrink=2.0, last_n=3),
    "recently_viewed": lambda: RecentlyViewed(),
    "transitions": lambda: ItemTransitions(),
    "affinity": lambda: CategoryAffinity(),
    "als": lambda: ALS(factors=8, iterations=3),
}


@pytest.fixture(autouse=True, params=["pairs", "dense", "switched"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every specification holds on every path: pairs (what a large catalogue takes),
    dense rows (a small catalogue), and dense rows from the sparse part already
    computed (a batch of a large catalogue whose pairs would reach too much of it)."""
    from recsys_cli.models import retrieval

    if request.param == "pairs":
        monkeypatch.setattr(retrieval, "DENSE_BELOW", 0)
        monkeypatch.setattr(retrieval, "DENSE_SHARE", float("inf"))
        monkeypatch.setattr(retrieval, "ANN_FROM", 0)  # embeddings searched by faiss
        monkeypatch.setattr(retrieval, "_index_pays", lambda index: True)
    elif request.param == "switched":
        monkeypatch.setattr(retrieval, "DENSE_BELOW", 0)
        monkeypatch.setattr(retrieval, "DENSE_SHARE", 0.0)
    return str(request.param)


def dense_top(model: Recommender, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    return model.top_k(model.score(users), users, n)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("n", [1, 10, 85])
def test_candidates_are_the_dense_top_n(name: str, n: int) -> None:
    data = random_shop()
    model = MODELS[name]().fit(data)
    users = np.arange(data.n_users)  # the unknown user 0 included: popularity, as `score` gives it
    top, scores = model.candidates(users, n)
    want_top, want_scores = dense_top(model, users, n)
    finite = np.isfinite(want_scores)
    # Rows short of n unseen items are padded with item 0 at -inf, as the dense top-k pads with -inf.
    assert np.array_equal(np.isfinite(scores), finite)
    assert np.array_equal(np.where(finite, top, 0), np.where(finite, want_top, 0))
    # Inner products summed in another order (ALS) differ in the last float32 bits.
    np.testing.assert_allclose(scores[finite], want_scores[finite], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pair_scores_are_the_dense_scores(name: str) -> None:
    data = random_shop(seed=1)
    model = MODELS[name]().fit(data)
    rng = np.random.default_rng(2)
    users = rng.integers(0, data.n_users, 500)
    items = rng.integers(1, data.n_items, 500)
    dense = model.score(np.arange(data.n_users))
    np.testing.assert_allclose(model.pair_scores(users, items), dense[users, items], rtol=1e-5, atol=1e-6)


def test_candidates_never_propose_the_seen_nor_the_unknown_item() -> None:
    data = random_shop(seed=3)
    model = ItemKNN(k=20, shrink=2.0).fit(data)
    top, scores = model.candidates(np.arange(1, data.n_users), 30)
    seen = data.seen_matrix()[np.arange(1, data.n_users)].toarray() > 0
    proposed = np.take_along_axis(seen, top, axis=1) & np.isfinite(scores)
    assert not proposed.any()
    assert not ((top == 0) & np.isfinite(scores)).any()


def test_a_refit_forgets_the_lookups_of_the_previous_fit() -> None:
    model = Popularity().fit(random_shop(seed=4))
    model.candidates(np.arange(3), 5)
    data = random_shop(seed=5)
    model.fit(data)
    top, _ = model.candidates(np.arange(3), 5)
    assert np.array_equal(top, dense_top(model, np.arange(3), 5)[0])


def test_sparse_lookup_reads_stored_values_and_zero_elsewhere() -> None:
    import scipy.sparse as sp

    m = sp.csr_matrix(np.array([[0, 2.0, 0], [3.0, 0, 4.0]]))
    got = sparse_lookup(m, np.array([0, 0, 1, 1, 1]), np.array([0, 1, 0, 1, 2]))
    assert got.tolist() == [0.0, 2.0, 3.0, 0.0, 4.0]


@pytest.mark.parametrize("name", ["item_knn", "transitions", "recently_viewed"])
def test_pair_scores_after_candidates_reuse_the_part_and_agree(name: str) -> None:
    """A ranker asks for a batch's candidates, then its pairs' scores: the second
    reads the part the first computed, with the same values, and a user outside it
    is computed afresh."""
    data = random_shop(seed=6)
    model = MODELS[name]().fit(data)
    users = np.arange(1, 20)
    model.candidates(users, 10)
    rng = np.random.default_rng(3)
    pair_users = np.r_[rng.choice(users, 200), data.n_users - 1]  # the last user was not in the batch
    items = rng.integers(1, data.n_items, pair_users.size)
    dense = model.score(np.arange(data.n_users))
    np.testing.assert_allclose(model.pair_scores(pair_users, items), dense[pair_users, items], rtol=1e-5, atol=1e-6)


def test_an_index_searched_only_where_it_scans_a_small_share_of_the_catalogue() -> None:
    """IVF widened until it scans every list is an exact search with overheads (ALS
    at 82k items: 3.7 ms a user against 0.2 ms for a dense row): dense rows win."""
    from types import SimpleNamespace

    assert _index_pays(SimpleNamespace(kind="ivf", params={"nlist": 1024, "nprobe": 32}))
    assert not _index_pays(SimpleNamespace(kind="ivf", params={"nlist": 1024, "nprobe": 1024}))
    assert not _index_pays(SimpleNamespace(kind="ivf", params={"nlist": 1024, "nprobe": 256}))
    assert not _index_pays(SimpleNamespace(kind="exact", params={}))
    assert _index_pays(SimpleNamespace(kind="hnsw", params={"ef_search": 128}))
