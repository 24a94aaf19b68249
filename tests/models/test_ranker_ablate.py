"""The ranker names its columns and can be trained without some of them.

`feature_names` lines up with the matrix the learner reads, the boosters carry
the same names, and a saved ranker names them after loading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys_cli.models import lambdarank
from recsys_cli.models.base import Recommender
from recsys_cli.models.ranker import TwoStageRanker
from tests.models.conftest import checkerboard
from tests.models.test_contract import SMALL, make

BOARD_GENERATORS = ["recent", "recent30", "als", "item_knn", "last_items"]


def fit(name: str, *overrides: str) -> TwoStageRanker:
    data, _ = checkerboard()
    model = make(name, *SMALL[name], *overrides).fit(data)
    assert isinstance(model, TwoStageRanker)
    return model


@pytest.fixture(scope="module")
def lgbm() -> TwoStageRanker:
    return fit("ranker_lgbm")


def test_names_line_up_with_the_feature_matrix(lgbm: TwoStageRanker) -> None:
    data, _ = checkerboard()
    assert lgbm.tables is not None
    pairs = lgbm._labelled(data.windows, lgbm.tables)[0]
    names = lgbm.feature_names()
    assert len(names) == lambdarank.feature_matrix(pairs).shape[1] == len(set(names))
    assert names[:3] == ["recent.score", "recent.gap", "recent.log_rank"]
    assert names[15] == "category_affinity"
    assert names[pairs.numeric.shape[1] :] == ["item_id", "user.region"]  # the categoricals come last
    # The board's item table holds n_<event>_<w>d counts: item.n_view_7d is column 16.
    np.testing.assert_array_equal(pairs.numeric[:, 16], lgbm.tables.items.numeric[pairs.items, 0])
    assert lgbm.boosters[0][0].feature_name() == names


def test_groups_partition_the_names(lgbm: TwoStageRanker) -> None:
    groups = lgbm.feature_groups()
    assert list(groups)[:5] == BOARD_GENERATORS
    assert sorted(n for members in groups.values() for n in members) == sorted(lgbm.feature_names())
    assert groups["item_popularity"][0] == "item.n_view_7d" and groups["user_demographics"] == ["user.region"]


def test_a_loaded_ranker_names_its_features(lgbm: TwoStageRanker, tmp_path: Path) -> None:
    lgbm.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert isinstance(loaded, TwoStageRanker)
    assert loaded.feature_names() == lgbm.feature_names()
    assert loaded.feature_groups() == lgbm.feature_groups()


def test_a_ranker_saved_before_names_were_kept_still_loads(lgbm: TwoStageRanker, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    lgbm.save(tmp_path)
    weights = tmp_path / "weights.safetensors"
    state = {k: v for k, v in load_file(str(weights)).items() if not k.endswith("_names")}
    save_file(state, str(weights))
    loaded = Recommender.load(tmp_path)
    assert isinstance(loaded, TwoStageRanker)
    assert loaded.feature_names()[-2:] == ["item_id", "user.categorical_0"]
    users = np.arange(1, 6)
    np.testing.assert_array_equal(loaded.recommend(users, 3)[0], lgbm.recommend(users, 3)[0])
