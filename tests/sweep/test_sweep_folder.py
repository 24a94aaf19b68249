"""A study's folder: created or reused by `recsys sweep`, never taken over from something else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_cli.config import DEFAULT_CONF_DIR
from recsys_cli.errors import ConfigError, OutputError
from recsys_cli.tasks.sweep import prepare


def test_a_study_folder_is_marked_and_reused(tmp_path: Path) -> None:
    for _ in range(2):
        plan = prepare(["model=sasrec", f"sweeps_dir={tmp_path}"], DEFAULT_CONF_DIR)
    assert json.loads((Path(plan.out) / "manifest.json").read_text())["kind"] == "sweep"


def test_a_folder_that_is_not_a_sweeps_is_refused_before_a_study_is_created_in_it(tmp_path: Path) -> None:
    (tmp_path / "synth-sasrec").mkdir()
    (tmp_path / "synth-sasrec" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a sweep written by recsys: no manifest.json"):
        prepare(["model=sasrec", f"sweeps_dir={tmp_path}"], DEFAULT_CONF_DIR)
    assert [p.name for p in (tmp_path / "synth-sasrec").iterdir()] == ["notes.txt"]


def test_a_study_folder_never_holds_the_data_the_trials_read(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="refusing to replace a folder that holds the input"):
        prepare(["model=sasrec", f"sweeps_dir={tmp_path}", f"paths.data_dir={tmp_path}/synth-sasrec"], DEFAULT_CONF_DIR)
    assert not any(tmp_path.iterdir())


def test_an_empty_study_name_is_refused_not_replaced_by_the_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="study name ''"):
        prepare(["model=sasrec", f"sweeps_dir={tmp_path}"], DEFAULT_CONF_DIR, study="")


def test_a_sweep_over_ddp_trials_is_refused_before_any_folder_is_made(tmp_path: Path) -> None:
    """Lightning starts the command again for every extra rank, so each rank would run
    the whole sweep: parallel sweeps are workers sharing a study instead."""
    with pytest.raises(ConfigError, match="trainer=ddp: a sweep trains one trial per worker"):
        prepare(["model=sasrec", "trainer=ddp", f"sweeps_dir={tmp_path}"], DEFAULT_CONF_DIR)
    assert not any(tmp_path.iterdir())
