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


# ---- model.ablate ---------------------------------------------------------------------


def test_an_ablated_generator_is_not_fitted_and_proposes_nothing(lgbm: TwoStageRanker) -> None:
    from recsys_cli.models.candidates import candidate_pairs

    model = fit("ranker_lgbm", "model.ablate=[als]")
    assert list(model.generators) == ["recent", "recent30", "item_knn", "last_items"]
    assert not any(n.startswith("als.") for n in model.feature_names())
    assert len(model.feature_names()) == len(lgbm.feature_names()) - 3
    assert model.diagnostics["ablated/als"] == 3.0
    assert model.tables is not None and lgbm.tables is not None
    users = np.arange(1, 12)
    rest = {k: g for k, g in lgbm.generators.items() if k != "als"}
    alone = candidate_pairs(model.generators, model.tables, users, 5)
    without = candidate_pairs(rest, lgbm.tables, users, 5)
    np.testing.assert_array_equal(alone.items, without.items)
    np.testing.assert_array_equal(alone.numeric, without.numeric)


@pytest.mark.parametrize("name", ["ranker_lgbm", "ranker"])
def test_an_ablated_group_leaves_the_learner_input(name: str, tmp_path: Path) -> None:
    full = fit(name, "trainer.max_epochs=2") if name == "ranker" else None
    model = fit(name, "model.ablate=[item_popularity,item_id]", *(["trainer.max_epochs=2"] if full else []))
    names = model.feature_names()
    assert not any(n.startswith("item.n_") for n in names) and "item_id" not in names
    assert names[-1] == "user.region" and "item_popularity" not in model.feature_groups()
    assert model.diagnostics["ablated/item_popularity"] == 8.0 and model.diagnostics["ablated/item_id"] == 1.0
    n_numeric = len(names) - 1  # user.region is the one categorical left
    if model.boosters:
        assert model.boosters[0][0].feature_name() == names
    else:
        assert model.network is not None and full is not None and full.network is not None
        assert model.network.numeric_mean.numel() == n_numeric == full.network.numeric_mean.numel() - 8
        assert len(model.network.embeddings) == 1 == len(full.network.embeddings) - 1
    # The saved model records what it dropped and ranks the same after loading.
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert isinstance(loaded, TwoStageRanker) and loaded.params["ablate"] == ["item_popularity", "item_id"]
    assert loaded.feature_names() == names
    users = np.arange(1, 12)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    np.testing.assert_array_equal(loaded.recommend(users, 3)[0], model.recommend(users, 3)[0])


def test_an_unknown_name_is_one_line_listing_the_known_ones() -> None:
    from recsys_cli.errors import ConfigError

    spec = {"_target_": "recsys_cli.models.popularity.Popularity"}
    with pytest.raises(ConfigError, match=r"model.ablate: unknown name\(s\) items; known: pop, category_affinity"):
        TwoStageRanker(generators={"pop": spec}, ablate=["items"])
    with pytest.raises(ConfigError, match="every candidate generator"):
        TwoStageRanker(generators={"pop": spec}, ablate=["pop"])
    assert TwoStageRanker(generators={"pop": spec}).params["ablate"] == []
