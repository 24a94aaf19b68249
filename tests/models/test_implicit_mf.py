"""ALS reads an interaction weight as confidence 1 + alpha * weight."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.data import TrainData
from recsys_cli.models.implicit_mf import ALS
from tests.models.conftest import GROUPS, checkerboard


def with_mixed_user(weight_a: float, weight_b: float) -> TrainData:
    """The checkerboard plus one user who met a0, a1 at `weight_a` and b0, b1 at `weight_b`."""
    base, _ = checkerboard()
    row = np.zeros((1, base.n_items), dtype=np.float32)
    columns = [base.items.tokens.index(item) for item in ("a0", "a1", "b0", "b1")]
    row[0, columns] = [weight_a, weight_a, weight_b, weight_b]
    users = Vocabulary((*base.users.tokens, "mixed"))
    return TrainData(users, base.items, sp.vstack([base.matrix, sp.csr_matrix(row)]).tocsr())


def first_pick(model: ALS, data: TrainData) -> str:
    top, _ = model.fit(data).recommend(np.array([data.n_users - 1]), k=1)
    return data.items.tokens[top[0, 0]]


@pytest.mark.parametrize(("weight_a", "weight_b", "group"), [(5.0, 1.0, "A"), (1.0, 5.0, "B")])
def test_the_heavier_weighted_taste_wins(weight_a: float, weight_b: float, group: str) -> None:
    data = with_mixed_user(weight_a, weight_b)
    assert first_pick(ALS(factors=2, seed=0), data) in GROUPS[group]


def test_alpha_zero_ignores_weights() -> None:
    """Every observed cell then has confidence 1, however heavy."""
    users = np.arange(1, checkerboard()[0].n_users + 1)
    heavy_b = ALS(factors=2, alpha=0.0, seed=0).fit(with_mixed_user(1.0, 5.0)).score(users)
    even = ALS(factors=2, alpha=0.0, seed=0).fit(with_mixed_user(1.0, 1.0)).score(users)
    np.testing.assert_array_equal(heavy_b, even)
