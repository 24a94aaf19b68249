"""`Recommender.score_history`: a fitted model scores a user again with live events
folded in, without a refit (models/history.py), for the models that can."""

from __future__ import annotations

import numpy as np
import pytest

from tests.models.conftest import checkerboard
from tests.models.test_contract import MODELS, small
from tests.models.test_retrieval import random_shop

FOLDS_IN = ["ease", "item_knn", "sasrec", "als", "recently_viewed", "item_transitions", "category_affinity"]


# Models whose history is a clickstream's categories and event types: fitted on a
# shop with categories (the checkerboard has none).
CLICKSTREAM = {"recently_viewed", "item_transitions", "category_affinity"}


def fitted(name: str):
    data = random_shop() if name in CLICKSTREAM else checkerboard()[0]
    return small(name, "trainer.max_epochs=5").fit(data), data


@pytest.mark.parametrize("name", FOLDS_IN)
def test_an_empty_history_changes_nothing(name: str) -> None:
    model, data = fitted(name)
    for user in range(1, data.n_users):
        got = model.score_history(user, np.zeros(0, np.int64))
        np.testing.assert_allclose(got, model.score(np.array([user]))[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FOLDS_IN)
def test_new_items_move_the_scores_and_unknown_items_are_ignored(name: str) -> None:
    model, data = fitted(name)
    user = 1
    before = model.score(np.array([user]))[0]
    items = np.array([data.n_items - 1, 2], dtype=np.int64)
    after = model.score_history(user, items, ["view", "add_to_cart"])
    assert after is not None and after.shape == (data.n_items,)
    assert not np.allclose(after, before)
    with_unknown = model.score_history(user, np.r_[0, items], ["view", "view", "add_to_cart"])
    np.testing.assert_allclose(with_unknown, after, rtol=1e-6)


@pytest.mark.parametrize("name", FOLDS_IN)
def test_a_new_visitor_is_scored_from_the_session_alone(name: str) -> None:
    """A visitor the model never met (user 0) with two views: the scores follow the
    items they viewed, not one constant."""
    model, data = fitted(name)
    scores = model.score_history(0, np.array([1, 2], dtype=np.int64))
    assert scores is not None and np.ptp(scores[1:]) > 0


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(FOLDS_IN) - {"ranker", "ranker_lgbm_ensemble"}))
def test_models_that_cannot_fold_a_history_in_say_so(name: str) -> None:
    model, _ = fitted(name)
    assert model.score_history(1, np.array([1], dtype=np.int64)) is None


def test_events_must_match_the_items() -> None:
    model, _ = fitted("ease")
    with pytest.raises(ValueError, match="2 items but 1 event types"):
        model.score_history(1, np.array([1, 2]), ["view"])


@pytest.mark.parametrize("name", ["sasrec", "als"])
def test_embedding_models_give_the_vector_behind_the_history_scores(name: str) -> None:
    """Its inner product with the item vectors is `score_history`: a service can
    retrieve through the package's ANN index with it."""
    model, data = fitted(name)
    items = np.array([1, 3], dtype=np.int64)
    vector = model.history_vector(2, items)
    np.testing.assert_allclose(model.item_vectors() @ vector, model.score_history(2, items), rtol=1e-5, atol=1e-6)


def test_models_without_vectors_have_no_history_vector() -> None:
    model, _ = fitted("ease")
    assert model.history_vector(1, np.array([1])) is None
