"""What a sweep leaves behind: an experiment preset that composes exactly the
configuration of its overrides, and Optuna's plots as PNG files."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from recsys_cli.config import DEFAULT_CONF_DIR, compose
from recsys_cli.errors import ConfigError
from recsys_cli.sweep.outputs import experiment_preset, write_best, write_plots

OVERRIDES = [
    "model=bpr_mf",
    "trainer=smoke",
    "paths.data_dir=/data/shop",
    "features.half_life_days=null",
    "eval.ks=[5,10]",
    "model.lr=0.0031",
    "model.dim=16",
]


def _with_experiment_group(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, conf)
    (conf / "experiment").mkdir(exist_ok=True)
    return conf


def _experiment_override(conf: Path, name: str) -> str:
    """`experiment=NAME` where train.yaml lists the experiment group, else appended."""
    defaults = OmegaConf.to_container(OmegaConf.load(conf / "train.yaml")).get("defaults", [])  # type: ignore[union-attr]
    listed = any(isinstance(d, dict) and any("experiment" in k for k in d) for d in defaults)
    return f"experiment={name}" if listed else f"+experiment={name}"


def test_the_experiment_preset_composes_the_same_config_as_the_overrides(tmp_path: Path) -> None:
    conf = _with_experiment_group(tmp_path)
    files = write_best(OVERRIDES, "Best trial #3 of study demo.", conf, tmp_path / "out")
    shutil.copy(files["experiment"], conf / "experiment" / "tuned.yaml")
    text = files["experiment"].read_text()
    assert text.startswith("# @package _global_\n# Best trial #3 of study demo.\n")
    from_preset = compose("train", [_experiment_override(conf, "tuned")], conf)
    from_overrides = compose("train", OVERRIDES, conf)
    preset = OmegaConf.to_container(from_preset)
    assert isinstance(preset, dict)
    preset.pop("experiment", None)  # where the group is listed, its (empty) node remains
    assert preset == OmegaConf.to_container(from_overrides)
    assert files["best_overrides"].read_text().splitlines() == OVERRIDES


def test_a_deletion_cannot_become_a_preset() -> None:
    with pytest.raises(ConfigError, match="~model.dim: a deletion"):
        experiment_preset(["~model.dim"], DEFAULT_CONF_DIR, "")


def _toy_study(directions: list[str]) -> optuna.Study:
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        lr, dim = trial.suggest_float("model.lr", 1e-3, 1e-1, log=True), trial.suggest_categorical("model.dim", [8, 16])
        if len(directions) == 1:
            for step in range(3):
                trial.report(lr * (step + 1), step)
            return lr * dim
        return lr, 1.0 / dim

    study.optimize(objective, n_trials=6)
    return study


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    written, skipped = write_plots(_toy_study(["maximize"]), ["val/ndcg@10"], tmp_path)
    assert set(written) == {"optimization_history", "param_importances", "parallel_coordinate", "intermediate_values"}
    assert skipped == {}
    for path in written.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_objectives_get_a_pareto_front_plot(tmp_path: Path) -> None:
    written, skipped = write_plots(_toy_study(["maximize", "maximize"]), ["val/ndcg@10", "val/coverage@10"], tmp_path)
    assert "pareto_front" in written and "intermediate_values" in skipped


def test_plots_that_cannot_be_drawn_say_why(tmp_path: Path) -> None:
    written, skipped = write_plots(optuna.create_study(direction="maximize"), ["val/ndcg@10"], tmp_path)
    assert written == {}
    assert skipped["optimization_history"] == "no completed trial"
    assert "two completed trials" in skipped["param_importances"]
