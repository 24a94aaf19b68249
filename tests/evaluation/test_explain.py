"""A ranker's explanation on the checkerboard shop: importance, contributions that
add up to the ranker's scores, partial dependence, and the probability curves."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys_cli.errors import ConfigError
from recsys_cli.evaluation.dependence import grid, individual_curves
from recsys_cli.evaluation.explain import (
    EXPECTED,
    OTHER,
    Explanation,
    Labelled,
    Settings,
    explain,
    labelled_pairs,
    precision_recall,
    top_of_lists,
)
from recsys_cli.evaluation.importance import permutation_importance, shares, tree_importance
from recsys_cli.evaluation.ranker_view import RankerView, check_boosters, feature_names, ranker_view
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData


@pytest.fixture(scope="module")
def board() -> tuple[TrainData, dict[str, str]]:
    from tests.models.conftest import checkerboard

    return checkerboard()


def _fit(name: str, data: TrainData, *overrides: str) -> Recommender:
    from tests.models.test_contract import SMALL, make

    return make(name, *SMALL[name], *overrides).fit(data)


@pytest.fixture(scope="module")
def lgbm(board: tuple[TrainData, dict[str, str]]) -> Recommender:
    return _fit("ranker_lgbm", board[0])


def _truth(data: TrainData, held_out: dict[str, str]) -> tuple[np.ndarray, sp.csr_matrix]:
    """Every known user and their held-out item, the one a good ranker puts first."""
    users = np.arange(1, data.n_users)
    tokens = [data.users.tokens[u] for u in users]
    items = [data.items.tokens.index(held_out[t]) if t in held_out else 0 for t in tokens]
    truth = sp.csr_matrix((np.ones(users.size), (np.arange(users.size), items)), shape=(users.size, data.n_items))
    truth.eliminate_zeros()
    return users, truth


def _explained(model: Recommender, data: TrainData, held_out: dict[str, str], s: Settings) -> tuple[Labelled, Any]:
    view = ranker_view(model)
    users, truth = _truth(data, held_out)
    labelled = labelled_pairs(view, users, truth)
    tokens = np.asarray(data.users.tokens, dtype=object), np.asarray(data.items.tokens, dtype=object)
    return labelled, explain(view, labelled, *tokens, s)


@pytest.fixture(scope="module")
def explained(lgbm: Recommender, board: tuple[TrainData, dict[str, str]]) -> tuple[Labelled, Explanation]:
    return _explained(lgbm, *board, Settings(top=3, k=2, grid_points=5, seed=1))


def test_the_view_scores_the_pairs_as_the_ranker_does(lgbm: Recommender, explained: tuple[Labelled, Any]) -> None:
    """The explained scores are the ranker's own: its raw scores of the same pairs,
    and the calibrated probabilities its recommendations carry."""
    data, _ = explained
    np.testing.assert_allclose(data.raw, lgbm._raw(data.pairs), rtol=0, atol=1e-12)  # type: ignore[attr-defined]
    assert ((data.probability >= 0) & (data.probability <= 1)).all()
    assert data.engaged.sum() > 0 and not data.engaged.all()


def test_importance_shares_sum_to_one_and_match_the_boosters(
    lgbm: Recommender, explained: tuple[Labelled, Any]
) -> None:
    _, explanation = explained
    rows = explanation.summary["importance"]
    view = ranker_view(lgbm)
    assert [r["feature"] for r in rows] != [] and sorted(r["feature"] for r in rows) == sorted(view.names)
    for key in ("gain_share", "split_share", "contribution_share"):
        assert sum(r[key] for r in rows) == pytest.approx(1.0)
        assert all(0 <= r[key] <= 1 for r in rows)
    gains = [r["gain"] for r in rows]
    assert gains == sorted(gains, reverse=True)  # ranked by gain
    booster, trees = view.boosters[0]
    by_name = dict(zip(view.names, booster.feature_importance("split", iteration=trees), strict=True))
    assert all(r["split"] == by_name[r["feature"]] for r in rows)


def test_an_ensembles_importance_is_the_mean_over_its_models() -> None:
    class Booster:
        def __init__(self, gain: list[float], split: list[float]) -> None:
            self.values = {"gain": gain, "split": split}

        def feature_importance(self, kind: str, iteration: int) -> list[float]:
            return self.values[kind]

    gain, split = tree_importance([(Booster([1, 3], [2, 0]), 5), (Booster([3, 5], [4, 2]), 7)])
    assert gain.tolist() == [2, 4] and split.tolist() == [3, 1]
    assert shares(np.zeros(2)).tolist() == [0, 0]


def test_contributions_of_each_prediction_add_up_to_its_raw_score(explained: tuple[Labelled, Explanation]) -> None:
    """Each of the top-k predictions: the `top` strongest features, the rest as one
    row and the expected value; its rows sum to the ranker's raw score."""
    data, explanation = explained
    frame = explanation.contributions
    per = frame.group_by("user_id", "rank").agg(
        pl.col("contribution").sum().alias("total"), pl.col("raw_score").first(), pl.len()
    )
    np.testing.assert_allclose(per["total"].to_numpy(), per["raw_score"].to_numpy(), atol=1e-9)
    assert per["len"].unique().to_list() == [3 + 2]
    assert set(frame["rank"].unique().to_list()) == {1, 2}
    assert frame.filter(pl.col("feature").is_in([OTHER, EXPECTED]))["value"].null_count() == 2 * per.height
    # Within a prediction, the named features come strongest first.
    named = frame.filter(~pl.col("feature").is_in([OTHER, EXPECTED]))
    strength = named.group_by("user_id", "rank", maintain_order=True).agg(pl.col("contribution").abs())
    assert all(list(s) == sorted(s, reverse=True) for s in strength["contribution"].to_list())
    assert per.height == np.unique(data.pairs.rows).size * 2


def test_the_summary_is_strict_json_with_figures_in_range(explained: tuple[Labelled, Explanation]) -> None:
    from recsys_cli.tasks.evaluate import finite

    s = json.loads(json.dumps(finite(explained[1].summary), allow_nan=False))
    pr, cal = s["precision_recall"], s["calibration"]
    assert pr["available"] and 0 <= pr["average_precision"] <= 1 and 0 < pr["base_rate"] < 1
    assert all(0 <= v <= 1 for v in pr["precision"] + pr["recall"])
    assert cal["available"] and 0 <= cal["ece"] <= 1 and 0 <= cal["brier"] <= 1
    assert sum(cal["reliability"]["count"]) == cal["pairs"] == s["pairs"]["pairs"]
    assert len(s["partial_dependence"]) == 3
    for curve in s["partial_dependence"]:
        assert len(curve["grid"]) == len(curve["mean_probability"]) == len(curve["ice_low"]) <= 5
        band = zip(curve["ice_low"], curve["ice_high"], curve["mean_probability"], strict=True)
        assert all(0 <= lo <= hi <= 1 and 0 <= mean <= 1 for lo, hi, mean in band)
    assert s["notes"] == [] and s["ranked_by"] == "gain"
    sizes = s["importance_sample"]  # a small window: every pair is shuffled and broken down
    assert sizes["permutation_pairs"] == sizes["contribution_pairs"] == s["pairs"]["pairs"]
    assert sizes["permutation_users"] == s["pairs"]["users"]


def test_the_ranker_learns_the_board_and_its_probabilities_find_the_held_out_items(
    explained: tuple[Labelled, Explanation],
) -> None:
    pr = explained[1].summary["precision_recall"]
    assert pr["average_precision"] > 2 * pr["base_rate"]


def test_partial_dependence_is_exact_for_a_linear_scorer_and_monotone_for_a_monotone_model() -> None:
    import lightgbm as lgb

    x = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    curves = individual_curves(lambda m: 2 * m[:, 0] + m[:, 1], x, 0, np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_allclose(curves, 2 * np.array([-1.0, 0.0, 1.0]) + x[:, [1]], rtol=1e-6)
    # A model constrained to rise with feature 0: its mean curve never falls.
    y = x[:, 0] + 0.3 * x[:, 1] ** 2
    booster = lgb.train(
        {"objective": "regression", "monotone_constraints": [1, 0], "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, y),
        num_boost_round=30,
    )
    values = grid(x[:, 0], 10)
    mean = individual_curves(booster.predict, x, 0, values).mean(axis=0)
    assert (np.diff(mean) >= 0).all() and mean[-1] - mean[0] > 1.0


def test_grids_follow_quantiles_or_the_most_frequent_codes() -> None:
    # Most values are 0: the lower quantiles coincide and count once.
    assert grid(np.r_[np.zeros(80), np.arange(1.0, 21.0)], 3).tolist() == [0.0, 20.0]
    assert grid(np.array([3, 3, 3, 1, 1, 2, 9]), 2, categorical=True).tolist() == [1.0, 3.0]
    assert grid(np.array([np.nan]), 4).size == 0


def test_shuffling_a_column_the_scorer_ignores_costs_nothing() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x[:, 0]

    def losses(m: np.ndarray) -> np.ndarray:
        return np.array([np.mean((m[:, 0] - y) ** 2)])

    rises = permutation_importance(losses, x, [0, 1, 2], np.random.default_rng(1))
    assert rises.shape == (3, 1) and rises[0, 0] > 1.0 and (rises[1:] == 0).all()
    again = permutation_importance(losses, x, [0, 1, 2], np.random.default_rng(1))
    np.testing.assert_array_equal(rises, again)


def test_top_of_lists_follows_the_raw_score_then_the_item() -> None:
    rows = np.array([0, 0, 0, 1, 1])
    index, rank = top_of_lists(rows, np.array([7, 5, 6, 1, 2]), np.array([0.5, 0.5, 0.9, 0.1, 0.3]), 2)
    assert index.tolist() == [2, 1, 4, 3] and rank.tolist() == [1, 2, 1, 2]


def test_precision_recall_without_a_positive_says_so() -> None:
    out = precision_recall(np.array([0.1, 0.2]), np.array([False, False]))
    assert not out["available"] and out["base_rate"] == 0.0


def test_only_the_two_stage_ranker_is_explained(board: tuple[TrainData, dict[str, str]]) -> None:
    from recsys_cli.models.popularity import Popularity

    with pytest.raises(ConfigError, match=r"explain supports the two-stage ranker .*model is Popularity"):
        ranker_view(Popularity().fit(board[0]))


def test_names_fall_back_to_column_numbers_and_pick_the_learners_columns() -> None:
    class Unnamed:
        pass

    class Named:
        def feature_names(self) -> list[str]:
            return ["a", "b", "c"]

    assert feature_names(Unnamed(), 2) == ["f0", "f1"]
    assert feature_names(Named(), 3) == ["a", "b", "c"]
    assert feature_names(Named(), 4) == ["f0", "f1", "f2", "f3"]  # names that do not fit the columns

    class Booster:
        def __init__(self, names: list[str]) -> None:
            self.names = names

        def feature_name(self) -> list[str]:
            return self.names

    check_boosters([(Booster(["Column_0", "Column_1"]), 1)], ["a", "b"])  # an older model names no feature
    check_boosters([(Booster(["a", "b"]), 1)], ["a", "b"])
    with pytest.raises(ConfigError, match="read 2 features, not the 3 columns"):
        check_boosters([(Booster(["a", "b"]), 1)], ["a", "b", "c"])
    with pytest.raises(ConfigError, match="retrain the run"):
        check_boosters([(Booster(["b", "a"]), 1)], ["a", "b"])


def test_a_neural_ranker_gets_permutation_importance_and_no_contributions(
    board: tuple[TrainData, dict[str, str]],
) -> None:
    data, held_out = board
    model = _fit("ranker", data, "trainer.max_epochs=3")
    labelled, explanation = _explained(model, data, held_out, Settings(top=2, grid_points=4))
    view: RankerView = ranker_view(model)
    np.testing.assert_allclose(labelled.raw, model._raw(labelled.pairs), atol=1e-6)  # type: ignore[attr-defined]
    s = explanation.summary
    assert s["ranked_by"] == "permutation_ndcg_drop" and "LightGBM-only" in s["notes"][0]
    assert "gain" not in s["importance"][0] and len(s["importance"]) == len(view.names)
    assert explanation.contributions.height == 0 and len(s["partial_dependence"]) == 2


@pytest.mark.parametrize("name", ["ranker_lgbm", "ranker"])
def test_a_ranker_without_some_features_is_explained_on_the_columns_its_learner_reads(
    name: str, board: tuple[TrainData, dict[str, str]]
) -> None:
    """Feature groups dropped by `model.ablate` never reach the learner: the view's
    columns are the learner's, named as the ranker names them, scored as it scores."""
    import inspect

    from recsys_cli.models.ranker import TwoStageRanker

    if "ablate" not in inspect.signature(TwoStageRanker).parameters:
        pytest.skip("this ranker drops no features")
    data, held_out = board
    model = _fit(name, data, "model.ablate=[category_affinity]", "trainer.max_epochs=2")
    labelled, explanation = _explained(model, data, held_out, Settings(top=2, grid_points=3))
    view = ranker_view(model)
    assert view.names == model.feature_names() and "category_affinity" not in view.names  # type: ignore[attr-defined]
    assert labelled.x.shape[1] == len(view.names)
    np.testing.assert_allclose(labelled.raw, model._raw(labelled.pairs), atol=1e-6)  # type: ignore[attr-defined]
    assert {r["feature"] for r in explanation.summary["importance"]} == set(view.names)


def test_an_ensembles_contributions_add_up_to_its_averaged_score(board: tuple[TrainData, dict[str, str]]) -> None:
    data, held_out = board
    model = _fit("ranker_lgbm_ensemble", data)
    assert len(ranker_view(model).boosters) == 3
    labelled, explanation = _explained(model, data, held_out, Settings(top=2, k=1, grid_points=3))
    np.testing.assert_allclose(labelled.raw, model._raw(labelled.pairs), atol=1e-12)  # type: ignore[attr-defined]
    per = explanation.contributions.group_by("user_id", "rank").agg(pl.col("contribution").sum(), pl.col("raw_score"))
    np.testing.assert_allclose(per["contribution"], [r[0] for r in per["raw_score"].to_list()], atol=1e-9)
