"""ItemKNN's interaction weighting: scale-free readings of the feature weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_cli.models.data import TrainData
from recsys_cli.models.item_knn import ItemKNN
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
