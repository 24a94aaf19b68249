"""`model.window_half_life`: a LightGBM ranker's labelled windows weigh less the
older they are, so a shop whose tastes drift learns mostly from recent behaviour."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recsys_cli.errors import ConfigError
from recsys_cli.models.data import TrainData
from recsys_cli.models.lambdarank import recency_weights, subset_rows
from recsys_cli.models.ranker import TwoStageRanker


def test_window_j_weighs_half_to_the_power_j_over_the_half_life() -> None:
    n_users = 10
    group = np.array([3, 3, 7, 13, 13, 25, 39])  # windows 0, 0, 0, 1, 1, 2, 3
    np.testing.assert_allclose(recency_weights(group, n_users, 2.0), [1, 1, 1, 2**-0.5, 2**-0.5, 0.5, 2**-1.5])


def test_without_a_half_life_every_list_weighs_alike() -> None:
    assert recency_weights(np.arange(5), 3, None) is None


def test_weights_follow_their_rows_into_a_subset() -> None:
    rows = (np.arange(8.0).reshape(4, 2), np.array([0, 0, 1, 1]), np.array([1.0, 0, 1, 0]), np.array([1, 1, 0.5, 0.5]))
    part = subset_rows(rows, np.array([False, True, True, False]))
    np.testing.assert_array_equal(part[3], [1, 0.5])
    assert subset_rows((*rows[:3], None), np.array([True, False, True, False]))[3] is None


@pytest.mark.parametrize(
    ("backend", "half_life"), [("dcn", 4.0), ("lightgbm", 0.0), ("lightgbm", -1.0)], ids=["dcn", "zero", "negative"]
)
def test_a_half_life_needs_lightgbm_and_a_positive_number(backend: str, half_life: float) -> None:
    with pytest.raises(ConfigError, match="model.window_half_life"):
        TwoStageRanker(
            generators={"pop": {"_target_": "recsys_cli.models.popularity.Popularity"}},
            backend=backend,
            window_half_life=half_life,
        )


def test_lightgbm_learns_with_each_rows_window_weight(
    board: tuple[TrainData, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightgbm as lgb

    from tests.models.test_contract import small

    data, _ = board
    assert len(data.windows) >= 2
    seen: list[dict[str, Any]] = []
    fit = lgb.LGBMRanker.fit

    def spy(self: Any, X: Any, y: Any, **kwargs: Any) -> Any:  # noqa: N803 (LightGBM's name)
        seen.append(kwargs)
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(lgb.LGBMRanker, "fit", spy)
    small("ranker_lgbm", "++model.window_half_life=1.0").fit(data)
    weights = np.concatenate([np.unique(kw["sample_weight"]) for kw in seen])
    assert set(np.round(weights, 6)) <= {round(0.5**j, 6) for j in range(len(data.windows))}
    assert weights.max() == 1.0 and weights.min() < 1.0  # the newest window at 1, older ones below

    seen.clear()
    small("ranker_lgbm").fit(data)
    assert seen and all("sample_weight" not in kw for kw in seen)  # as before: no weights at all
