"""The LightGBM ranker chooses its own capacity from its held-out users.

`model.lightgbm_grid` fits every point on the training users of the labelled
windows and keeps the one whose held-out users rank best; the validation window
is never read. On the checkerboard, a point whose leaves need more rows than the
board has cannot split at all and ranks by chance, so it must lose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import LabelledWindow
from recsys_cli.models.dcn import grouped_ndcg
from recsys_cli.models.lambdarank import grid_points, lightgbm_threads
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
    assert gridded.booster.params["min_child_samples"] == LEARNS
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


def test_the_shipped_lightgbm_ranker_chooses_from_its_grid() -> None:
    model = make("ranker_lgbm", *SMALL["ranker_lgbm"]).fit(checkerboard()[0])
    d = model.diagnostics
    assert sum(k.endswith("/holdout_ndcg@10") for k in d) == 12  # 4 tree sizes x 3 leaf supports
    assert d["lightgbm_grid/chosen/num_leaves"] in (7, 15, 31, 63)
    assert d["lightgbm_grid/chosen/min_child_samples"] in (20, 100, 300)


@pytest.mark.parametrize(("value", "threads"), [("1", 1), ("3", 3), ("", None), ("0", None), ("auto", None)])
def test_lightgbm_uses_the_thread_count_the_process_was_given(
    monkeypatch: pytest.MonkeyPatch, value: str, threads: int | None
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert lightgbm_threads() == threads


def test_the_kept_booster_runs_on_the_given_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert fit_grid(*GRID).booster.params["num_threads"] == 1
