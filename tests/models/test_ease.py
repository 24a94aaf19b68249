"""EASE's penalty relative to the Gram matrix's mean diagonal is scale-free."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_cli.models.data import TrainData
from recsys_cli.models.ease import EASE, penalty
from tests.models.conftest import checkerboard


def scaled(data: TrainData, factor: float) -> TrainData:
    return TrainData(data.users, data.items, (data.matrix * factor).tocsr())


def test_a_relative_penalty_fits_the_same_model_on_weights_scaled_by_a_constant() -> None:
    data, _ = checkerboard()
    plain = EASE(l2=2.0, l2_scale="mean_diag").fit(data)
    heavy = EASE(l2=2.0, l2_scale="mean_diag").fit(scaled(data, 37.5))
    np.testing.assert_allclose(plain.b, heavy.b, rtol=1e-4, atol=1e-6)


def test_an_absolute_penalty_does_not() -> None:
    data, _ = checkerboard()
    plain = EASE(l2=2.0).fit(data)
    heavy = EASE(l2=2.0).fit(scaled(data, 37.5))
    assert not np.allclose(plain.b, heavy.b, rtol=1e-2)


def test_the_relative_penalty_is_l2_times_the_mean_diagonal_of_used_items() -> None:
    assert penalty(3.0, "mean_diag", np.array([0.0, 2.0, 4.0])) == pytest.approx(9.0)
    assert penalty(3.0, "absolute", np.array([0.0, 2.0, 4.0])) == 3.0


def test_the_defaults_keep_the_former_model() -> None:
    """The constructor's defaults are the former absolute l2=500 on raw weights, so
    a saved model or a preset that names only l2 means what it meant."""
    data, _ = checkerboard()
    x = data.matrix.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 500.0 * np.eye(x.shape[1]))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(EASE().fit(data).b, expected, rtol=1e-4, atol=1e-7)


def test_above_max_items_the_model_covers_the_items_most_users_had_and_ranks_the_rest_below() -> None:
    """A catalogue too large for a dense item-item matrix is not refused: the most
    used items are modelled, every other item comes after them by popularity."""
    data, _ = checkerboard()
    users_per_item = np.diff(data.matrix.tocsc().indptr)
    model = EASE(l2=2.0, l2_scale="mean_diag", max_items=4).fit(data)
    assert model.kept is not None and model.kept.size == 4
    assert set(model.kept) == set(np.argsort(-users_per_item, kind="stable")[:4])
    scores = model.score(np.arange(1, data.n_users))
    others = np.setdiff1d(np.arange(1, data.n_items), model.kept)
    assert (scores[:, others].max(axis=1) < scores[:, model.kept].min(axis=1)).all()


def test_a_covered_model_saves_and_loads_to_the_same_scores(tmp_path) -> None:
    from recsys_cli.models.base import Recommender

    data, _ = checkerboard()
    model = EASE(l2=2.0, l2_scale="mean_diag", max_items=4).fit(data)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(model.score(users), loaded.score(users))
