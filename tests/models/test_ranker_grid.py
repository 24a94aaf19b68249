"""The LightGBM ranker chooses its own capacity from its held-out users.

`model.lightgbm_grid` fits every point on the training users of the labelled
windows and keeps the one whose held-out users rank best; the validation window
is never read. On the checkerboard, a point whose leaves need more rows than the
board has cannot split at all and ranks by chance, so it must lose.
`model.lightgbm_cv_folds` scores every point by k-fold cross-validation over the
labelled users instead, then fits the chosen one as a single point, or with
`model.lightgbm_cv_ensemble` keeps the chosen point's fold models and averages them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError
from recsys_cli.models import lambdarank
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import LabelledWindow
from recsys_cli.models.dcn import grouped_ndcg
from recsys_cli.models.lambdarank import Rows, grid_points, lightgbm_threads, user_folds
from recsys_cli.models.ranker import TwoStageRanker
from tests.models.conftest import checkerboard
from tests.models.test_contract import SMALL, make

# 100,000 rows per leaf: no split is possible, every candidate scores the same.
STUMP, LEARNS, ALSO_LEARNS = 100_000, 5, 1
# null first: the shipped yaml has a grid of its own, which an override would merge into.
GRID = ("model.lightgbm_grid=null", f"model.lightgbm_grid={{min_child_samples:[{STUMP},{LEARNS},{ALSO_LEARNS}]}}")


def fit_grid(*overrides: str) -> TwoStageRanker:
    data, _ = checkerboard()
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"], *overrides).fit(data)
    assert isinstance(model, TwoStageRanker)
    return model


@pytest.fixture(scope="module")
def gridded() -> TwoStageRanker:
    return fit_grid(*GRID)


def held_out_score(model: TwoStageRanker) -> float:
    """NDCG@10 of the kept booster on the held-out users, recomputed from scratch."""
    data, _ = checkerboard()
    assert model.tables is not None
    _, held = model._examples(data.windows, model.tables)
    return grouped_ndcg(held[1], model._raw(held[0]), held[2], 10)


def test_grid_points_vary_the_first_key_slowest() -> None:
    assert grid_points({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    assert grid_points({}) == [{}]


def test_the_point_that_can_learn_beats_the_one_that_cannot(gridded: TwoStageRanker) -> None:
    d = gridded.diagnostics
    stump = d[f"lightgbm_grid/min_child_samples={STUMP}/holdout_ndcg@10"]
    learns = d[f"lightgbm_grid/min_child_samples={LEARNS}/holdout_ndcg@10"]
    assert learns > stump
    assert d["lightgbm_grid/chosen/min_child_samples"] == LEARNS


def test_equal_held_out_scores_go_to_the_point_declared_first(gridded: TwoStageRanker) -> None:
    # On this board one row per leaf learns exactly what five rows do.
    d = gridded.diagnostics
    assert (
        d[f"lightgbm_grid/min_child_samples={ALSO_LEARNS}/holdout_ndcg@10"]
        == d[f"lightgbm_grid/min_child_samples={LEARNS}/holdout_ndcg@10"]
    )
    assert d["lightgbm_grid/chosen_point"] == 1


def test_the_kept_booster_is_the_chosen_point_and_scores_what_was_recorded(gridded: TwoStageRanker) -> None:
    chosen = gridded.diagnostics[f"lightgbm_grid/min_child_samples={LEARNS}/holdout_ndcg@10"]
    assert gridded.best_score == pytest.approx(chosen)
    assert held_out_score(gridded) == pytest.approx(chosen)
    ((booster, _),) = gridded.boosters
    assert booster.params["min_child_samples"] == LEARNS
    assert gridded.best_epoch == gridded.diagnostics[f"lightgbm_grid/min_child_samples={LEARNS}/trees"]


def test_every_point_is_recorded_beside_the_calibration_diagnostics(gridded: TwoStageRanker) -> None:
    d = gridded.diagnostics
    for value in (STUMP, LEARNS, ALSO_LEARNS):
        assert 0.0 <= d[f"lightgbm_grid/min_child_samples={value}/holdout_ndcg@10"] <= 1.0
        assert d[f"lightgbm_grid/min_child_samples={value}/trees"] >= 1
    assert d["holdout_pairs"] > 0 and "holdout_ece_calibrated" in d


def test_the_choice_is_deterministic(gridded: TwoStageRanker) -> None:
    again = fit_grid(*GRID)
    assert again.diagnostics == gridded.diagnostics
    users = np.arange(1, 10)
    np.testing.assert_array_equal(again.score(users), gridded.score(users))


def test_the_chosen_model_survives_save_and_load(gridded: TwoStageRanker, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    gridded.save(folder)
    users = np.arange(1, 10)
    np.testing.assert_allclose(Recommender.load(folder).score(users), gridded.score(users), rtol=1e-6)


def test_a_single_point_grid_is_a_plain_fit_and_records_no_grid() -> None:
    model = fit_grid("model.lightgbm_grid=null", f"model.lightgbm.min_child_samples={LEARNS}")
    assert not any(k.startswith("lightgbm_grid/") for k in model.diagnostics)
    assert model.best_score == pytest.approx(held_out_score(model))


POPULAR = {"popular": {"_target_": "recsys_cli.models.popularity.Popularity"}}


@pytest.mark.parametrize(
    ("options", "grid", "message"),
    [
        ({}, {"num_leafs": [7, 15]}, "model.lightgbm_grid: unknown LightGBM parameter(s) num_leafs"),
        ({}, {"num_leaves": []}, "model.lightgbm_grid.num_leaves: give a non-empty list"),
        ({}, {"num_leaves": 15}, "model.lightgbm_grid.num_leaves: give a non-empty list"),
        ({}, {"num_leaves": [[7]]}, "model.lightgbm_grid.num_leaves: values must be numbers or strings"),
        ({"learning_rat": 0.1}, {}, "model.lightgbm: unknown LightGBM parameter(s) learning_rat"),
    ],
)
def test_bad_lightgbm_settings_fail_at_construction_naming_the_key(
    options: dict[str, object], grid: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        TwoStageRanker(POPULAR, backend="lightgbm", lightgbm=options, lightgbm_grid=grid)  # type: ignore[arg-type]
    assert message in str(error.value)


def test_a_grid_from_the_command_line_is_checked_too() -> None:
    from hydra.errors import InstantiationException

    with pytest.raises(InstantiationException) as error:
        make("ranker_lgbm", "model.lightgbm_grid=null", "model.lightgbm_grid={num_leafs:[7,15]}")
    assert isinstance(error.value.__cause__, ConfigError)
    assert "num_leafs" in str(error.value.__cause__)


def test_a_grid_for_the_network_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match="backend=lightgbm only"):
        TwoStageRanker(POPULAR, backend="dcn", lightgbm_grid={"num_leaves": [7, 15]})


def test_aliases_and_core_parameters_are_known() -> None:
    # min_data_in_leaf is the core name of min_child_samples; feature_fraction a core-only one.
    grid = {"min_data_in_leaf": [20], "feature_fraction": [0.5, 1.0]}
    assert TwoStageRanker(POPULAR, backend="lightgbm", lightgbm_grid=grid).params["lightgbm_grid"] == grid


def test_a_window_without_positives_is_skipped_not_fatal() -> None:
    """The earliest windows of a short history can have no labelled user at all."""
    data, _ = checkerboard()
    empty = pl.DataFrame(schema={Col.USER: pl.String, Col.ITEM: pl.String})
    data.windows.append(LabelledWindow(data.windows[-1].data, empty))
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)
    assert model.diagnostics["holdout_pairs"] > 0


def test_windows_without_any_positive_give_a_clear_error() -> None:
    data, _ = checkerboard()
    empty = pl.DataFrame(schema={Col.USER: pl.String, Col.ITEM: pl.String})
    data.windows = [LabelledWindow(w.data, empty) for w in data.windows]
    with pytest.raises(ConfigError, match="no labelled window has a known user with a positive"):
        make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(data)


def test_the_shipped_lightgbm_ranker_fits_one_point_and_movielens_chooses_from_twelve() -> None:
    """A grid multiplies the fit, so the shop default has none; the MovieLens preset
    keeps the 12 points its recorded results chose from."""
    from recsys_cli.config import compose

    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(checkerboard()[0])
    assert not any(k.startswith("lightgbm_grid/") for k in model.diagnostics)
    preset = compose("train", ["experiment=movielens100k_ranker_lgbm"]).model
    assert len(grid_points(dict(preset.lightgbm_grid))) == 12  # 4 tree sizes x 3 leaf supports
    assert preset.negatives is None and preset.generators.ease is not None


@pytest.mark.parametrize(("value", "threads"), [("1", 1), ("3", 3), ("", None), ("0", None), ("auto", None)])
def test_lightgbm_uses_the_thread_count_the_process_was_given(
    monkeypatch: pytest.MonkeyPatch, value: str, threads: int | None
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert lightgbm_threads() == threads


def test_the_kept_booster_runs_on_the_given_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert all(b.params["num_threads"] == 1 for b, _ in fit_grid(*GRID).boosters)


# ---- k-fold cross-validated choice (model.lightgbm_cv_folds) ---------------------------

FOLDS = 3
CV = (*GRID, f"model.lightgbm_cv_folds={FOLDS}")
POINTS = (STUMP, LEARNS, ALSO_LEARNS)


@pytest.fixture(scope="module")
def cross_validated() -> TwoStageRanker:
    return fit_grid(*CV)


def cv_means(model: TwoStageRanker) -> list[float]:
    return [model.diagnostics[f"lightgbm_grid/min_child_samples={v}/cv_ndcg@10"] for v in POINTS]


def test_users_are_dealt_into_balanced_folds_that_hold_in_every_window() -> None:
    # Three windows over the same eleven users, in a different order each time.
    users = np.concatenate([np.arange(11), np.arange(11)[::-1], np.arange(3, 8)])
    fold = user_folds(users, 4, seed=3)
    per_user = {int(u): set(fold[users == u].tolist()) for u in np.unique(users)}
    assert all(len(folds) == 1 for folds in per_user.values())  # one fold per user, whatever the window
    sizes = np.bincount([next(iter(f)) for f in per_user.values()], minlength=4)
    assert sorted(sizes.tolist()) == [2, 3, 3, 3]
    np.testing.assert_array_equal(user_folds(users, 4, seed=3), fold)
    assert any(not np.array_equal(user_folds(users, 4, seed=s), fold) for s in range(4, 8))


def test_more_folds_than_users_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"model.lightgbm_cv_folds=5: the labelled windows hold only 3 user\(s\)"):
        user_folds(np.array([1, 2, 3, 1]), 5, seed=0)


def test_no_user_is_both_trained_on_and_scored_in_one_cross_validation_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of the k fits of a point trains on some users and scores the others;
    over the k fits every labelled user is scored exactly once."""
    calls: list[tuple[set[int], set[int]]] = []
    fit = lambdarank.fit_point

    def spy(options: dict[str, object], train: Rows, held: Rows, *rest: object) -> lambdarank.PointFit:
        # A group is (window, user): user + window x n_users, see TwoStageRanker._labelled.
        calls.append((set((train[1] % n_users).tolist()), set((held[1] % n_users).tolist())))
        return fit(options, train, held, *rest)  # type: ignore[arg-type]

    data, _ = checkerboard()
    n_users = len(data.users)
    monkeypatch.setattr(lambdarank, "fit_point", spy)
    cv = ("model.lightgbm_grid=null", "model.lightgbm_grid={min_child_samples:[5,1]}", "model.lightgbm_cv_folds=4")
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"], *cv).fit(data)
    assert model.diagnostics["lightgbm_grid/cv_folds"] == 4
    assert len(calls) == 2 * 4  # every point on every fold; the final fit is not cross-validation
    everyone = calls[0][0] | calls[0][1]
    for point in range(2):
        scored = [held for _, held in calls[point::2]]
        for train, held in calls[point::2]:
            assert held and not train & held and train | held == everyone
        assert sorted(u for held in scored for u in held) == sorted(everyone)


def test_every_point_records_its_cross_validated_score_and_trees(cross_validated: TwoStageRanker) -> None:
    d = cross_validated.diagnostics
    assert d["lightgbm_grid/cv_folds"] == FOLDS
    for value in POINTS:
        assert 0.0 <= d[f"lightgbm_grid/min_child_samples={value}/cv_ndcg@10"] <= 1.0
        assert d[f"lightgbm_grid/min_child_samples={value}/cv_ndcg@10_sd"] >= 0.0
        assert d[f"lightgbm_grid/min_child_samples={value}/trees"] >= 1
    assert not any(k.endswith("/holdout_ndcg@10") for k in d)  # the held-out users chose nothing
    assert d["holdout_pairs"] > 0 and "holdout_ece_calibrated" in d


def test_the_chosen_point_has_the_best_mean_score_first_of_equals(cross_validated: TwoStageRanker) -> None:
    means = cv_means(cross_validated)
    assert means[1] > means[0]  # the stump cannot split
    first_best = means.index(max(means))
    assert cross_validated.diagnostics["lightgbm_grid/chosen_point"] == first_best
    assert cross_validated.diagnostics["lightgbm_grid/chosen/min_child_samples"] == POINTS[first_best]


def test_the_chosen_point_is_then_fitted_as_a_single_point_would_be(cross_validated: TwoStageRanker) -> None:
    chosen = int(cross_validated.diagnostics["lightgbm_grid/chosen/min_child_samples"])
    plain = fit_grid("model.lightgbm_grid=null", f"model.lightgbm.min_child_samples={chosen}")
    users = np.arange(1, 10)
    np.testing.assert_array_equal(cross_validated.score(users), plain.score(users))
    assert cross_validated.best_score == plain.best_score == pytest.approx(held_out_score(cross_validated))
    np.testing.assert_array_equal(cross_validated.calibration, plain.calibration)


def test_the_cross_validated_choice_is_deterministic(cross_validated: TwoStageRanker) -> None:
    again = fit_grid(*CV)
    assert again.diagnostics == cross_validated.diagnostics
    users = np.arange(1, 10)
    np.testing.assert_array_equal(again.score(users), cross_validated.score(users))


TWO_POINTS = {"num_leaves": [7, 15]}
NOT_AN_INTEGER = "model.lightgbm_cv_folds: give an integer of 2 or more, or null, got"


@pytest.mark.parametrize(
    ("folds", "backend", "grid", "message"),
    [
        (1, "lightgbm", TWO_POINTS, f"{NOT_AN_INTEGER} 1"),
        (2.5, "lightgbm", TWO_POINTS, f"{NOT_AN_INTEGER} 2.5"),
        ("5", "lightgbm", TWO_POINTS, f"{NOT_AN_INTEGER} '5'"),
        (True, "lightgbm", TWO_POINTS, f"{NOT_AN_INTEGER} True"),
        (5, "dcn", {}, "model.lightgbm_cv_folds applies to backend=lightgbm only, not 'dcn'"),
        (5, "lightgbm", {}, "model.lightgbm_cv_folds chooses among the points of model.lightgbm_grid"),
        (5, "lightgbm", {"num_leaves": [7]}, "give a grid of two or more points"),
        (None, "lightgbm", TWO_POINTS, "model.lightgbm_cv_ensemble averages the cross-validation's fold models"),
    ],
)
def test_bad_cross_validation_settings_are_one_line_naming_the_key(
    folds: object, backend: str, grid: dict[str, object], message: str
) -> None:
    ensemble = folds is None
    with pytest.raises(ConfigError) as error:
        TwoStageRanker(
            POPULAR, backend=backend, lightgbm_grid=grid, lightgbm_cv_folds=folds, lightgbm_cv_ensemble=ensemble
        )  # type: ignore[arg-type]
    assert message in str(error.value) and "\n" not in str(error.value)


def test_cross_validation_from_the_command_line_is_checked_too() -> None:
    # Refused where the config is composed (its schema), before any constructor runs.
    with pytest.raises(ConfigError, match=r"model.lightgbm_cv_folds = 1: must be >= 2"):
        make("ranker_lgbm", "model.lightgbm_cv_folds=1")


ENSEMBLE = (*CV, "model.lightgbm_cv_ensemble=true")


@pytest.fixture(scope="module")
def ensemble() -> TwoStageRanker:
    return fit_grid(*ENSEMBLE)


def test_the_ensemble_averages_the_chosen_points_fold_models(
    ensemble: TwoStageRanker, cross_validated: TwoStageRanker
) -> None:
    assert (
        ensemble.diagnostics["lightgbm_grid/chosen_point"] == cross_validated.diagnostics["lightgbm_grid/chosen_point"]
    )
    assert len(ensemble.boosters) == FOLDS == ensemble.diagnostics["lightgbm_ensemble_models"]
    data, _ = checkerboard()
    assert ensemble.tables is not None
    pairs = ensemble._examples(data.windows, ensemble.tables)[1][0]
    each = [
        booster.predict(lambdarank.feature_matrix(pairs), num_iteration=trees) for booster, trees in ensemble.boosters
    ]
    np.testing.assert_allclose(ensemble._raw(pairs), np.mean(each, axis=0))
    chosen = int(ensemble.diagnostics["lightgbm_grid/chosen_point"])
    assert ensemble.best_score == pytest.approx(cv_means(ensemble)[chosen])


def test_the_ensemble_is_calibrated_on_every_labelled_users_out_of_fold_scores(
    ensemble: TwoStageRanker, cross_validated: TwoStageRanker
) -> None:
    """Calibration sees all labelled pairs (out of fold), not only the held-out fifth."""
    data, _ = checkerboard()
    assert ensemble.tables is not None
    train, held = ensemble._examples(data.windows, ensemble.tables)
    assert ensemble.diagnostics["holdout_pairs"] == train[2].size + held[2].size
    assert cross_validated.diagnostics["holdout_pairs"] == held[2].size
    probs = ensemble.predict_proba(np.arange(1, 10), np.arange(1, 10))
    assert ((probs >= 0) & (probs <= 1)).all()


def test_the_ensemble_saves_and_loads_with_every_model(ensemble: TwoStageRanker, tmp_path: Path) -> None:
    ensemble.save(tmp_path / "ensemble")
    loaded = Recommender.load(tmp_path / "ensemble")
    assert isinstance(loaded, TwoStageRanker) and len(loaded.boosters) == FOLDS
    users = np.arange(10)
    np.testing.assert_array_equal(loaded.score(users), ensemble.score(users))
