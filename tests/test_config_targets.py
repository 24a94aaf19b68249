"""`config.build` constructs only recsys classes and the library callables the shipped
configs use: a `_target_` read from a file (a run's config, a sweep plan, an
experiment) never reaches an import of anything else."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from omegaconf import open_dict

from recsys_cli.config import DEFAULT_CONF_DIR, LIBRARY_TARGETS, build, check_targets, compose
from recsys_cli.errors import ConfigError
from recsys_cli.sweep.loop import build_pruner, build_sampler
from recsys_cli.tasks.sweep import prepare


def test_every_target_of_the_shipped_configs_is_allowed() -> None:
    found = set()
    for path in DEFAULT_CONF_DIR.rglob("*.yaml"):
        found |= set(re.findall(r"_target_:\s*(\S+)", path.read_text()))
    for target in found:
        check_targets({"_target_": target})
    assert {t for t in found if not t.startswith("recsys_cli.")} == LIBRARY_TARGETS


def test_a_composed_model_naming_os_system_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cfg = compose("train", [])
    with open_dict(cfg):  # as a config read back from an edited file would hold it
        cfg.model = {"_target_": "os.system", "command": f"touch {marker}"}
    with pytest.raises(ConfigError, match=r"run.yaml: model\._target_: 'os.system' may not be built"):
        build(cfg.model, "run.yaml")
    assert not marker.exists()


def test_a_ranker_generator_spec_is_checked_although_hydra_would_not_recurse_into_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cfg = compose("train", ["model=ranker"])
    with open_dict(cfg):
        cfg.model.generators.ease = {"_target_": "os.system", "command": f"touch {marker}"}
    with pytest.raises(ConfigError, match=r"model\.generators\.ease\._target_: 'os.system'"):
        build(cfg.model)
    assert not marker.exists()


@pytest.mark.parametrize(
    "target",
    [
        "recsys_cli.data.lake.os.system",  # reached through a module of ours
        "recsys_cli.tasks.train.Path",  # a class imported into one of our modules
        "recsys_cli.__main__.main",  # importing it would start the CLI
        "recsys_cli.data.lake.shutil",
        "builtins.eval",
        "subprocess.Popen",
        "optuna.samplers.BruteForceSampler",  # a library class the shipped configs do not use
    ],
)
def test_targets_that_are_not_our_classes_are_refused(target: str) -> None:
    with pytest.raises(ConfigError, match="may not be built"):
        build({"_target_": target, "x": 1})


def test_keyword_arguments_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"inner\._target_"):
        build({"_target_": "recsys_cli.models.ease.EASE"}, "cfg", inner={"_target_": "os.system"})


def test_a_sweep_plan_read_back_from_disk_builds_only_allowed_samplers_and_pruners(tmp_path: Path) -> None:
    plan = prepare(["model=bpr_mf", "sweep=tiny", f"sweeps_dir={tmp_path}"], DEFAULT_CONF_DIR)
    sweep = {**plan.sweep, "sampler": {"_target_": "os.system", "command": "true"}}
    edited = dataclasses.replace(plan, sweep=sweep)
    with pytest.raises(ConfigError, match=r"plan\.json: _target_: 'os.system' may not be built"):
        build_sampler(edited, worker=0, existing=0)
    edited = dataclasses.replace(plan, sweep={**plan.sweep, "pruner": {"_target_": "os.system", "command": "true"}})
    with pytest.raises(ConfigError, match=r"plan\.json: _target_: 'os.system'"):
        build_pruner(edited)
