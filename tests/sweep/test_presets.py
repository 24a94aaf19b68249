"""Every shipped sweep preset fits its model, and every sampler and pruner builds."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from recsys_cli.config import DEFAULT_CONF_DIR
from recsys_cli.sweep.loop import build_pruner, build_sampler
from recsys_cli.tasks.sweep import prepare

MODEL_OF = {"tiny": "bpr_mf", "sasrec": "sasrec", "two_tower": "two_tower"}
SAMPLERS = sorted(p.stem for p in (DEFAULT_CONF_DIR / "sweep" / "sampler").glob("*.yaml"))
PRUNERS = sorted(p.stem for p in (DEFAULT_CONF_DIR / "sweep" / "pruner").glob("*.yaml"))


def test_every_preset_is_listed_here() -> None:
    assert sorted(p.stem for p in (DEFAULT_CONF_DIR / "sweep").glob("*.yaml")) == sorted(MODEL_OF)


@pytest.mark.parametrize("preset", sorted(MODEL_OF))
def test_a_preset_searches_keys_its_model_has(preset: str, tmp_path: Path) -> None:
    plan = prepare([f"model={MODEL_OF[preset]}", f"sweep={preset}", f"sweeps_dir={tmp_path}"], DEFAULT_CONF_DIR)
    assert plan.metrics == ["val/ndcg@10"] and plan.directions == ["maximize"]
    assert all(name.startswith("model.") for name in plan.space().names)


def test_the_preset_follows_the_model_when_no_sweep_is_named(tmp_path: Path) -> None:
    plan = prepare(["model=sasrec", f"sweeps_dir={tmp_path}"], DEFAULT_CONF_DIR)
    assert plan.study == "synth-sasrec" and Path(plan.out) == tmp_path / "synth-sasrec"


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("pruner", PRUNERS)
def test_samplers_and_pruners_build(sampler: str, pruner: str, tmp_path: Path) -> None:
    grid = ["+sweep.params.model.lr.grid=[0.01,0.1]"] if sampler == "grid" else []
    overrides = ["model=bpr_mf", "sweep=tiny", f"sweep/sampler={sampler}", f"sweep/pruner={pruner}", *grid]
    plan = prepare([*overrides, f"sweeps_dir={tmp_path}"], DEFAULT_CONF_DIR)
    assert isinstance(build_sampler(plan, worker=0, existing=0), optuna.samplers.BaseSampler)
    assert isinstance(build_pruner(plan), optuna.pruners.BasePruner)


@pytest.mark.parametrize(
    ("objective", "pruned"),
    [
        (["sweep.metrics=[val/ndcg@10]"], True),
        (["sweep.metrics=[val/coverage@10]"], False),  # the loop reports NDCG per epoch, not coverage
        (["sweep.metrics=[val/ndcg@10]", "sweep.directions=[minimize]"], False),
        (["sweep.metrics=[val/ndcg@10,val/coverage@10]", "sweep.directions=[maximize,maximize]"], False),
    ],
)
def test_only_a_study_of_the_reported_metric_is_pruned(objective: list[str], pruned: bool, tmp_path: Path) -> None:
    overrides = ["model=bpr_mf", "sweep=tiny", "sweep/pruner=median", *objective, f"sweeps_dir={tmp_path}"]
    plan = prepare(overrides, DEFAULT_CONF_DIR)
    assert isinstance(build_pruner(plan), optuna.pruners.MedianPruner) == pruned


def test_trials_get_only_the_chain_keys_train_uses(tmp_path: Path) -> None:
    """The chain's shared override string may name keys `recsys train` has no use for
    (engine=, pii=) or decides itself (runs_dir); they stay out of the trials' overrides, so the best trial's
    experiment preset is one `recsys train experiment=...` accepts."""
    chain = [
        "engine=polars",
        "pii=development",
        "runs_dir=elsewhere",  # the sweep places its trials' runs itself
        "seed=3",
        "model=bpr_mf",
        "sweep=tiny",
        f"sweeps_dir={tmp_path}",
    ]
    plan = prepare(chain, DEFAULT_CONF_DIR)
    assert plan.overrides == ["seed=3", "model=bpr_mf"]
