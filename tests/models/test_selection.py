"""A closed-form model's grid is searched on the validation targets inside `fit`:
the best point's fit is kept and named in `selected`, ready to pin for a refit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_cli.errors import ConfigError
from recsys_cli.models.data import TrainData
from recsys_cli.models.ease import EASE
from recsys_cli.models.implicit_mf import ALS
from recsys_cli.models.item_knn import ItemKNN
from recsys_cli.models.selection import GridSelected, grid_points, validation_ndcg
from recsys_cli.models.validation import Targets
from tests.models.conftest import checkerboard


class Planted(GridSelected):
    """Scores each user's held-out item `boost` above the rest: the larger boost
    wins NDCG; boost 0 leaves items in index order."""

    FITTED = ("scores",)

    def __init__(self, boost: float = 0.0, answers: tuple[int, ...] = (), grid: dict | None = None) -> None:
        super().__init__(grid=grid, boost=boost, answers=answers)
        self.boost, self.answers = boost, answers
        self.fits = 0

    def _fit_point(self, data: TrainData) -> None:
        self.fits += 1
        self.scores = -np.arange(data.n_items, dtype=np.float32)[None, :].repeat(data.n_users, axis=0)
        self.scores[np.arange(data.n_users), np.asarray(self.answers)] += self.boost * data.n_items

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.scores[users].copy()

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, state: dict[str, np.ndarray]) -> None: ...


def validation_of(data: TrainData, held_out: dict[str, str]) -> tuple[Targets, np.ndarray]:
    """The checkerboard's held-out items as validation truth, and each user row's answer."""
    users = np.array([data.users.tokens.index(u) for u in held_out])
    items = np.array([data.items.tokens.index(i) for i in held_out.values()])
    truth = sp.csr_matrix((np.ones(users.size, np.float32), (np.arange(users.size), items)))
    truth.resize((users.size, data.n_items))
    answers = np.zeros(data.n_users, dtype=np.int64)
    answers[users] = items
    return Targets(users, truth.tocsr()), answers


def test_grid_points_vary_the_last_key_fastest() -> None:
    assert grid_points({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    assert grid_points(None) == grid_points({}) == []


def test_the_best_validation_point_is_kept_and_selected() -> None:
    data, held_out = checkerboard()
    validation, answers = validation_of(data, held_out)
    model = Planted(answers=tuple(answers), grid={"boost": [0.0, 2.0, 0.5]})
    model.fit(data, validation=validation)
    assert model.selected == {"boost": 2.0}
    assert model.boost == 2.0 and model.params["boost"] == 2.0  # the saved params name the fitted point
    assert model.fits == 3  # each point once; the best fit is kept, not refitted
    top, _ = model.recommend(validation.users, k=1)
    assert (top[:, 0] == answers[validation.users]).all()  # the kept fit is the best point's
    assert model.diagnostics["selected/boost"] == 2.0
    assert model.diagnostics["selected/val_ndcg@10"] == pytest.approx(1.0)


def test_without_validation_targets_the_configured_point_is_fitted() -> None:
    """A refit on train + validation (part=test) or a ranker's generator: no search."""
    data, held_out = checkerboard()
    _, answers = validation_of(data, held_out)
    model = Planted(boost=0.5, answers=tuple(answers), grid={"boost": [0.0, 2.0]}).fit(data)
    assert model.fits == 1 and model.boost == 0.5 and model.selected == {}


def test_a_grid_key_the_model_does_not_have_is_refused() -> None:
    with pytest.raises(ConfigError, match="model.grid.l3"):
        EASE(grid={"l3": [1.0]})
    with pytest.raises(ConfigError, match="empty"):
        ItemKNN(grid={"shrink": []})


@pytest.mark.parametrize(
    ("model", "key"),
    [
        (EASE(l2_scale="mean_diag", grid={"l2": [0.5, 4.0]}), "l2"),
        (ItemKNN(weighting="log", grid={"shrink": [0.0, 100.0]}), "shrink"),
        (ALS(factors=4, iterations=3, seed=0, grid={"alpha": [1.0, 10.0]}), "alpha"),
    ],
)
def test_closed_form_models_select_on_validation(model: GridSelected, key: str) -> None:
    data, held_out = checkerboard()
    validation, _ = validation_of(data, held_out)
    model.fit(data, validation=validation)
    assert set(model.selected) == {key} and model.selected[key] in model.grid[key]
    assert getattr(model, key) == model.selected[key]
    assert 0.0 < model.diagnostics["selected/val_ndcg@10"] <= 1.0


def random_log(seed: int, n_users: int = 80, n_items: int = 40) -> tuple[TrainData, Targets]:
    """Random interactions (a few popular items) and one unseen held-out item per user."""
    from recsys_cli.features.vocab import Vocabulary

    rng = np.random.default_rng(seed)
    popular = rng.random((n_users, n_items)) < np.linspace(0.5, 0.02, n_items)[None, :]
    popular[:, 0] = False  # index 0 is the unknown item
    matrix = sp.csr_matrix(popular.astype(np.float32))
    users = np.arange(1, n_users)
    items = np.array([rng.choice(np.flatnonzero(~popular[u] & (np.arange(n_items) > 0))) for u in users])
    truth = sp.csr_matrix((np.ones(users.size, np.float32), (np.arange(users.size), items)), (users.size, n_items))
    user_vocab = Vocabulary(tuple(f"u{i}" for i in range(n_users)))
    data = TrainData(user_vocab, Vocabulary(tuple(f"i{j}" for j in range(n_items))), matrix)
    return data, Targets(users, truth)


@pytest.mark.parametrize("grid", [{"shrink": [0.0, 1000.0]}, {"reach": [1, 2, None]}, {"shrink": [1000.0, 0.0]}])
def test_each_point_is_scored_as_its_own_fresh_fit_would_be(grid: dict) -> None:
    """Lookups a model caches from its fitted state (item-kNN's transposed, reach-cut
    neighbours) are rebuilt for every point: each point scores what a model fitted at
    that point alone scores, and the kept model recommends as that fresh fit does."""
    data, validation = random_log(seed=3)
    fresh = {}
    for point in grid_points(grid):
        alone = ItemKNN(weighting="log", k=3, **point).fit(data)
        fresh[tuple(point.values())] = (validation_ndcg(alone, validation), alone)
    assert len({score for score, _ in fresh.values()}) > 1  # the points differ on this data
    model = ItemKNN(weighting="log", k=3, grid=grid).fit(data, validation=validation)
    best_score, best = fresh[tuple(model.selected.values())]
    assert model.diagnostics["selected/val_ndcg@10"] == pytest.approx(max(s for s, _ in fresh.values()))
    assert best_score == pytest.approx(model.diagnostics["selected/val_ndcg@10"])
    np.testing.assert_array_equal(model.recommend(validation.users, 5)[0], best.recommend(validation.users, 5)[0])
