"""`recsys sweep` end to end on a small synthetic shop: a tiny search, its outputs
and how they reproduce; failing, pruned and interrupted trials; resuming; several
workers on one study (PostgreSQL when `.ci/run` provides a server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.sweep.storage import default_url, open_storage

runner = CliRunner()
STUDY = "synth-tiny"  # <data.name>-<sweep name>
# Trials are driven through Study.optimize; reading a heartbeat storage by hand warns.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")


def _args(data: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        f"paths.data_dir={data}",
        f"sweeps_dir={tmp_path / 'sweeps'}",
        "model=bpr_mf",
        "sweep=tiny",
        "trainer=smoke",
        *extra,
    ]


def _sweep(*args: str) -> Any:
    return runner.invoke(app, ["sweep", *args], catch_exceptions=False)


def _trials(tmp_path: Path, storage: str | None = None, name: str = STUDY) -> list[Any]:
    url = storage or default_url(tmp_path / "sweeps" / name)
    return sorted(optuna.load_study(study_name=name, storage=open_storage(url)).trials, key=lambda t: t.number)


def test_a_tiny_sweep_writes_a_best_configuration_that_reproduces_and_resumes(prepared: Path, tmp_path: Path) -> None:
    args = _args(prepared, tmp_path)
    result = _sweep(*args, "--trials", "4")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sweeps" / STUDY
    trials = json.loads((folder / "trials.json").read_text())
    assert [(t["number"], t["outcome"]) for t in trials] == [(i, "complete") for i in range(4)]
    best = json.loads((folder / "best.json").read_text())["best"]
    assert best["values"]["val/ndcg@10"] == max(t["values"][0] for t in trials)
    assert f"best: #{best['number']} val/ndcg@10" in result.output
    for plot in ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values"):
        assert (folder / "plots" / f"{plot}.png").is_file()
    assert "# @package _global_" in (folder / "experiment.yaml").read_text()

    # The override file is a `recsys train` command line that repeats the best trial.
    overrides = (folder / "best_overrides.txt").read_text().split()
    again = runner.invoke(app, ["train", *overrides, f"runs_dir={tmp_path / 'again'}"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    (run,) = (tmp_path / "again" / "bprmf").iterdir()
    assert json.loads((run / "metrics.json").read_text())["val/ndcg@10"] == best["values"]["val/ndcg@10"]

    shown = runner.invoke(app, ["sweep", "show", STUDY, f"--config-dir={_conf_with_sweeps_dir(tmp_path)}"])
    assert shown.exit_code == 0, shown.output
    assert f"Study {STUDY}" in shown.output and "4 complete" in shown.output and f"{best['number']} ★" in shown.output
    top = runner.invoke(app, ["sweep", "show", str(folder), "--top", "1"])  # a sweep folder works too
    assert top.exit_code == 0, top.output
    assert f"{best['number']} ★" in top.output and sum("│ complete" in line for line in top.output.splitlines()) == 1

    # Another search space under the same study name is refused, not mixed in.
    other = _sweep(*args, "sweep.params.model.dim.choices=[8]", "--trials", "5")
    assert other.exit_code == 1 and "was started with other settings (params differ)" in other.output
    # The same command with a larger budget continues the study where it stopped.
    more = _sweep(*args, "--trials", "5")
    assert more.exit_code == 0, more.output
    assert [t.number for t in _trials(tmp_path)] == [0, 1, 2, 3, 4]


def _conf_with_sweeps_dir(tmp_path: Path) -> Path:
    """`sweep show NAME` finds NAME under conf/sweep.yaml's sweeps_dir: a copy of
    the configs whose sweeps_dir is this test's."""
    import shutil

    from recsys_cli.config import DEFAULT_CONF_DIR

    conf = tmp_path / "conf"
    if not conf.is_dir():
        shutil.copytree(DEFAULT_CONF_DIR, conf)
        text = (conf / "sweep.yaml").read_text()
        (conf / "sweep.yaml").write_text(text.replace("sweeps_dir: runs/sweeps", f"sweeps_dir: {tmp_path / 'sweeps'}"))
    return conf


def test_a_failing_trial_is_recorded_with_its_error_and_the_sweep_goes_on(prepared: Path, tmp_path: Path) -> None:
    # A fold the split does not have: a valid setting (a value the config schema refuses
    # is refused before the first trial) that fails when the trial reads its features.
    bad_fold = [
        "+sweep.params.fold={type:categorical,choices:[fold-0,fold-9]}",
        "sweep.enqueue=[{fold:fold-9,model.dim:8},{fold:fold-0,model.dim:8},{fold:fold-0,model.dim:16}]",
    ]
    result = _sweep(*_args(prepared, tmp_path, *bad_fold), "--trials", "3")
    assert result.exit_code == 0, result.output
    trials = _trials(tmp_path)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[0].params["fold"] == "fold-9"
    assert "fold-9" in trials[0].user_attrs["error"] and "failed" in result.output


def test_pruning_stops_a_trial_that_does_not_learn(prepared: Path, tmp_path: Path) -> None:
    frozen = [  # a learning rate of 1e-9 after a working one: its validation NDCG never moves (0 is refused)
        "~sweep.params.model.lr",
        "+sweep.params.model.lr={type:categorical,choices:[0.05,1.0e-9]}",
        "sweep.enqueue=[{model.lr:0.05,model.dim:16},{model.lr:1.0e-9,model.dim:16}]",
        "sweep/pruner=median",
        "sweep.pruner.n_startup_trials=1",
        "sweep.pruner.n_warmup_steps=2",
        "trainer.max_epochs=8",
        "model.patience=8",
        "model.batch_size=128",
    ]
    result = _sweep(*_args(prepared, tmp_path, *frozen), "--trials", "2")
    assert result.exit_code == 0, result.output
    good, frozen_trial = _trials(tmp_path)
    assert good.state.name == "COMPLETE" and len(good.intermediate_values) == 8
    assert frozen_trial.state.name == "PRUNED"
    assert max(frozen_trial.intermediate_values) == 2  # stopped right after the warm-up, not at epoch 8
    assert frozen_trial.intermediate_values[2] < good.intermediate_values[2]
    assert "run" not in frozen_trial.user_attrs and "pruned after epoch 3" in result.output


def test_an_interrupted_sweep_resumes_the_same_study(prepared: Path, tmp_path: Path) -> None:
    args = _args(prepared, tmp_path, "trainer.max_epochs=4")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "recsys_cli", "sweep", *args, "--trials", "3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_running_trial(tmp_path, number=1, proc=first)
        first.send_signal(signal.SIGTERM)  # what a scheduler sends; the sweep treats it as Ctrl-C
        output, _ = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, output
    assert "rerun the same command to resume" in output
    before = _trials(tmp_path)
    interrupted = [t for t in before if t.state.name == "FAIL" and "error" not in t.user_attrs]
    assert before[0].state.name == "COMPLETE" and all(t.state.name != "RUNNING" for t in before)
    # Trial 1 is interrupted, unless the signal came during a storage write at its
    # very end: then it finishes and is recorded, and the sweep stops before the next.
    assert interrupted or all(t.state.name in ("COMPLETE", "PRUNED") for t in before)

    result = _sweep(*args, "--trials", "3")
    assert result.exit_code == 0, result.output
    after = _trials(tmp_path)
    assert [t.number for t in after] == list(range(len(after)))  # numbering continues, nothing duplicated
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in after) == 3
    assert after[0].values == before[0].values and min(t.number for t in after[len(before) :]) == len(before)
    assert ("interrupted" in result.output) == bool(interrupted)


def _wait_for_running_trial(tmp_path: Path, number: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        if (tmp_path / "sweeps" / STUDY / "study.db").is_file():
            try:
                trials = _trials(tmp_path)
            except KeyError:  # the study is being created
                trials = []
            if any(t.number >= number and t.state.name == "RUNNING" for t in trials):
                return
        time.sleep(0.05)
    raise AssertionError("the sweep never started its second trial")


def test_two_workers_share_one_study_on_postgresql(prepared: Path, tmp_path: Path) -> None:
    url = os.environ.get("RECSYS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("RECSYS_TEST_POSTGRES_URL is not set: .ci/run starts a PostgreSQL server and sets it")
    name = f"pg-{uuid.uuid4().hex[:8]}"
    args = _args(prepared, tmp_path, "trainer.max_epochs=3")
    result = _sweep(*args, "--trials", "6", "--workers", "2", "--storage", url, "--study", name)
    assert result.exit_code == 0, result.output
    trials = _trials(tmp_path, storage=url, name=name)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.state.name == "COMPLETE" for t in trials) == 6
    assert all(t.state.name != "RUNNING" for t in trials)
    assert len({t.user_attrs["pid"] for t in trials if "pid" in t.user_attrs}) == 2  # both workers trained
    optuna.delete_study(study_name=name, storage=url)


def test_a_grid_on_a_journal_storage_stops_when_exhausted(prepared: Path, tmp_path: Path) -> None:
    grid = [
        "sweep/sampler=grid",
        "~sweep.params.model.lr",
        "+sweep.params.model.lr={type:categorical,choices:[0.01,0.05]}",
        "sweep.params.model.dim.choices=[8,16]",
    ]
    journal = f"journal:{tmp_path / 'study.log'}"
    result = _sweep(*_args(prepared, tmp_path, *grid), "--trials", "10", "--storage", journal)
    assert result.exit_code == 0, result.output
    trials = _trials(tmp_path, storage=journal)
    assert sorted((t.params["model.lr"], t.params["model.dim"]) for t in trials) == [
        (0.01, 8),
        (0.01, 16),
        (0.05, 8),
        (0.05, 16),
    ]
    assert "stopped: grid exhausted" in result.output


def test_two_objectives_keep_a_pareto_front(prepared: Path, tmp_path: Path) -> None:
    both = ["sweep.metrics=[val/ndcg@10,val/coverage@10]", "sweep.directions=maximize"]
    result = _sweep(*_args(prepared, tmp_path, *both), "--trials", "3")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sweeps" / STUDY
    summary = json.loads((folder / "best.json").read_text())
    assert summary["directions"] == ["maximize", "maximize"] and summary["pareto"]
    assert set(summary["pareto"][0]["values"]) == {"val/ndcg@10", "val/coverage@10"}
    assert (folder / "plots" / "pareto_front.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["+sweep.params.model.heads={type:int,low:1,high:2}"], "does not fit the train config"),
        (["sweep.metrics=[val/ndcg@15]"], "needs 15 in eval.ks"),
        (["sweep.metrics=[val/accuracy@10]"], "is not a validation metric"),
        (["model.lr=0.1"], "this key is searched by the sweep"),
        (["part=test"], "the sweep sets part itself"),
    ],
)
def test_a_sweep_that_cannot_work_fails_before_any_trial(
    prepared: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = _sweep(*_args(prepared, tmp_path, *extra))
    assert result.exit_code == 1 and message in result.output
    assert len(result.output.strip().splitlines()) <= 3  # one error, no traceback
    assert not (tmp_path / "sweeps").exists()


def test_a_model_without_a_sweep_preset_names_the_presets_there_are(tmp_path: Path) -> None:
    result = _sweep(f"sweeps_dir={tmp_path}", "model=ease")
    assert result.exit_code == 1 and "Could not find 'sweep/ease'" in result.output and "sasrec" in result.output
