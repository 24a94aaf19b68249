"""Embedding models expose the vectors their scores are inner products of, so that
serving can retrieve by nearest-neighbour search and still rank as `score` does:
`user_vectors(u) @ item_vectors().T == score(u)` for every known user, before and
after a save/load round trip. Models whose scores are not such a product say so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys_cli.errors import NotFittedError
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from tests.models.test_contract import SMALL, make

# A few epochs suffice: the identity holds for any weights, trained or not.
QUICK = ["trainer.max_epochs=2"]
EMBEDDING = {
    "als": SMALL["als"],
    "implicit_bpr": SMALL["implicit_bpr"],
    "bpr_mf": [*SMALL["bpr_mf"], *QUICK],
    "two_tower": [*SMALL["two_tower"], *QUICK],
    "two_tower_history": ["model.history=4", "model.dim=16", "model.batch_size=16", "model.negatives=4", *QUICK],
    "sasrec": [*SMALL["sasrec"], *QUICK],
    "sasrec_events": [*SMALL["sasrec"], "model.event_inputs=true", *QUICK],
}
# float32 products summed in a different order (torch's batched matmul vs numpy's).
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def fitted(case: str, data: TrainData) -> Recommender:
    name = case.removesuffix("_history").removesuffix("_events")
    return make(name, *EMBEDDING[case]).fit(data)


def assert_vectors_reproduce_scores(model: Recommender, n_users: int) -> None:
    users = np.arange(1, n_users)  # every known user; row 0 gets the popularity fallback in `score`
    items, people = model.item_vectors(), model.user_vectors(users)
    assert items is not None
    assert items.dtype == people.dtype == np.float32
    assert items.shape[0] == len(model.items or ()) and people.shape == (users.size, items.shape[1])
    np.testing.assert_allclose(people @ items.T, model.score(users), **TOLERANCE)


@pytest.mark.parametrize("case", sorted(EMBEDDING))
def test_user_vectors_times_item_vectors_are_the_scores(
    case: str, board: tuple[TrainData, dict[str, str]], tmp_path: Path
) -> None:
    data, _ = board
    model = fitted(case, data)
    assert_vectors_reproduce_scores(model, data.n_users)
    model.save(tmp_path / case)
    loaded = Recommender.load(tmp_path / case)
    assert_vectors_reproduce_scores(loaded, data.n_users)
    np.testing.assert_allclose(loaded.item_vectors(), model.item_vectors(), rtol=1e-6)  # type: ignore[arg-type]


def test_the_unknown_user_keeps_the_popularity_fallback_which_vectors_do_not_give(
    board: tuple[TrainData, dict[str, str]],
) -> None:
    """Row 0 has a vector of the model's own; the fallback is the caller's to apply."""
    data, _ = board
    model = fitted("als", data)
    assert model.user_vectors(np.array([0])).shape == (1, model.item_vectors().shape[1])  # type: ignore[union-attr]
    np.testing.assert_array_equal(model.score(np.array([0]))[0], model.popularity)


@pytest.mark.parametrize("name", ["popularity", "item_knn", "ease"])
def test_models_whose_scores_are_no_inner_product_have_no_vectors(
    name: str, board: tuple[TrainData, dict[str, str]]
) -> None:
    data, _ = board
    model = make(name, *SMALL.get(name, [])).fit(data)
    assert model.item_vectors() is None
    with pytest.raises(NotImplementedError, match="not an inner product"):
        model.user_vectors(np.array([1]))


def test_vectors_of_an_unfitted_model_are_refused() -> None:
    with pytest.raises(NotFittedError):
        make("als").item_vectors()
