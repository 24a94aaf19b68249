"""The shared study: which trials use up the budget, a trial's place in the
queue, refusing a different search under the same name, and trials left running
by a worker that died."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from recsys_cli.errors import ConfigError
from recsys_cli.sweep.storage import default_url, open_storage, redact
from recsys_cli.sweep.study import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    PRUNED,
    RUNNING,
    SKIPPED,
    best_trials,
    mark_orphans,
    open_study,
    outcome,
    place,
    records,
    spent,
)

# Tests drive trials by hand (ask/tell); sweeps run them through Study.optimize.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")

SPEC = {"metrics": ["val/ndcg@10"], "directions": ["maximize"], "params": {"x": {"type": "float"}}, "overrides": []}


@pytest.fixture
def storage(tmp_path: Path) -> object:
    return open_storage(default_url(tmp_path))


def _study(
    storage: object, spec: dict[str, object] = SPEC, enqueue: list[dict[str, float]] | None = None
) -> optuna.Study:
    return open_study(storage, "s", spec, optuna.samplers.RandomSampler(seed=0), None, enqueue or [])


def _finish(study: optuna.Study, kind: str) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    if kind == COMPLETE:
        study.tell(trial, 0.5)
    elif kind == PRUNED:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif kind == FAILED:
        trial.set_user_attr("error", "ValueError: bad")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    elif kind == INTERRUPTED:
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    elif kind == SKIPPED:
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return trial


def test_interrupted_and_skipped_trials_do_not_use_up_the_budget(storage: object) -> None:
    study = _study(storage)
    for kind in (COMPLETE, PRUNED, FAILED, INTERRUPTED, SKIPPED):
        _finish(study, kind)
    study.ask()  # still running
    trials = study.get_trials()
    assert [outcome(t) for t in trials] == [COMPLETE, PRUNED, FAILED, INTERRUPTED, SKIPPED, RUNNING]
    assert spent(trials) == 4  # complete, pruned, failed, running


def test_a_trial_knows_how_many_budget_trials_come_before_it(storage: object) -> None:
    study = _study(storage, enqueue=[{"x": 0.1}])  # trial 0 waits in the queue
    _finish(study, COMPLETE)  # takes the queued trial 0
    _finish(study, INTERRUPTED)  # 1
    study.enqueue_trial({"x": 0.2})  # 2, waiting: it will run, so it counts
    trials = study.get_trials()
    assert place(trials, 3) == 2  # trial 0 and the queued trial 2, not the interrupted 1


def test_a_study_started_with_another_search_is_refused(storage: object) -> None:
    _study(storage)
    _study(storage)  # the same search joins
    other = {**SPEC, "params": {"x": {"type": "int"}}}
    with pytest.raises(ConfigError, match=r"study 's' was started with other settings \(params differ\)"):
        _study(storage, other)


def test_the_order_of_overrides_does_not_make_another_search(storage: object) -> None:
    _study(storage, {**SPEC, "overrides": ["model=sasrec", "data=movielens100k"]})
    _study(storage, {**SPEC, "overrides": ["data=movielens100k", "model=sasrec"]})
    with pytest.raises(ConfigError, match=r"\(overrides differ\)"):
        _study(storage, {**SPEC, "overrides": ["data=movielens100k", "model=two_tower"]})


def test_trials_to_run_first_are_queued_once(storage: object) -> None:
    _study(storage, enqueue=[{"x": 0.25}])
    _finish(_study(storage, enqueue=[{"x": 0.25}]), COMPLETE)
    study = _study(storage, enqueue=[{"x": 0.25}])
    assert [t.params for t in study.get_trials()] == [{"x": 0.25}]


def test_a_running_trial_whose_worker_exited_is_marked_interrupted(storage: object) -> None:
    study = _study(storage)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan, alive, remote = study.ask(), study.ask(), study.ask()
    for trial, pid, host in (
        (orphan, int(dead.stdout), socket.gethostname()),
        (alive, os.getppid(), socket.gethostname()),
        (remote, int(dead.stdout), "another-machine"),
    ):
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid", pid)
    assert mark_orphans(study, storage) == [orphan.number]
    states = {t.number: outcome(t) for t in study.get_trials()}
    assert states == {orphan.number: INTERRUPTED, alive.number: RUNNING, remote.number: RUNNING}


def test_best_trials_are_the_pareto_front_ordered_by_the_first_objective(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "maximize"])
    for values in ([0.1, 0.9], [0.3, 0.2], [0.2, 0.1], [0.25, 0.5]):
        study.add_trial(optuna.trial.create_trial(values=values))
    assert [t.values for t in best_trials(study)] == [[0.3, 0.2], [0.25, 0.5], [0.1, 0.9]]
    assert best_trials(optuna.create_study()) == []


def test_records_leave_out_skipped_trials_and_explain_the_others(storage: object) -> None:
    study = _study(storage)
    _finish(study, FAILED)
    _finish(study, SKIPPED)
    pruned = study.ask()
    pruned.suggest_float("x", 0, 1)
    pruned.report(0.1, step=0)
    pruned.report(0.1, step=1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    rows = records(study.get_trials())
    assert [(r.number, r.outcome, r.note) for r in rows] == [
        (0, FAILED, "ValueError: bad"),
        (2, PRUNED, "pruned after epoch 2"),
    ]


def test_a_storage_url_is_shown_without_its_password() -> None:
    assert redact("postgresql+psycopg://me:s3cret@db:5432/optuna") == "postgresql+psycopg://me:***@db:5432/optuna"


def test_an_unreachable_storage_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"storage postgresql\+psycopg://me:\*\*\*@127.0.0.1:1/x: "):
        open_storage("postgresql+psycopg://me:pw@127.0.0.1:1/x")
