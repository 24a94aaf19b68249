"""`model.user_profile`: item columns averaged over each user's history become user
columns the ranker's second stage reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys_cli.models.base import Recommender
from recsys_cli.models.candidates import SideTables, user_profile
from recsys_cli.models.data import TrainData
from recsys_cli.models.side_features import SideFeatures


def side(numeric: list[list[float]], names: tuple[str, ...]) -> SideFeatures:
    values = np.asarray(numeric, np.float32)
    return SideFeatures(
        np.zeros((values.shape[0], 0), np.int64), (), values, names, {}, np.tile([[0.0], [1.0]], (1, len(names)))
    )


def test_the_profile_is_the_interaction_weighted_mean_of_the_items_columns() -> None:
    items = side([[0.0, 0.0], [1.0, 10.0], [3.0, 20.0], [5.0, 30.0]], ("age", "pop"))
    users = side([[7.0], [8.0], [9.0]], ("activity",))
    matrix = sp.csr_matrix(np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 3]], np.float32))
    out = user_profile(users, items, matrix, ["pop", "missing", "age"])
    assert out.names == ("activity", "profile_pop", "profile_age")
    np.testing.assert_allclose(out.numeric[:, 0], [7, 8, 9])  # the user's own columns first, unchanged
    np.testing.assert_allclose(out.numeric[1, 1:], [15.0, 2.0])
    np.testing.assert_allclose(out.numeric[2, 1:], [(20 + 90) / 4, (3 + 15) / 4])
    np.testing.assert_array_equal(out.numeric[0, 1:], [0.0, 0.0])  # no history: the columns' mean, 0
    assert out.scale.shape == (2, 3)  # live features read the scale column by column


def test_no_known_column_leaves_the_users_as_they_are() -> None:
    users = side([[1.0]], ("activity",))
    assert user_profile(users, side([[0.0]], ("age",)), sp.csr_matrix((1, 1)), ["nothing"]) is users


def test_the_ranker_reads_profiles_as_a_feature_group_and_saves_them(
    board: tuple[TrainData, dict[str, str]], tmp_path: Path
) -> None:
    from tests.models.test_contract import small

    data, _ = board
    column = SideTables.of(data).items.numeric_names[0]
    model = small("ranker_lgbm", f"++model.user_profile=[{column}]").fit(data)
    assert f"user.profile_{column}" in model.feature_names()
    assert model.feature_groups()["user_profile"] == [f"user.profile_{column}"]
    users = np.arange(data.n_users)
    model.save(tmp_path / "ranker")
    loaded = Recommender.load(tmp_path / "ranker")
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-6)
