"""One worker's trial loop: join the study, then run trials one at a time until
the study holds its budget of trials, the deadline passes, a grid is exhausted,
or the worker is interrupted."""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys_cli.errors import ConfigError
from recsys_cli.sweep.interrupts import deferred_interrupts, raise_if_pending
from recsys_cli.sweep.objective import Objective
from recsys_cli.sweep.plan import SweepPlan
from recsys_cli.sweep.storage import open_storage
from recsys_cli.sweep.study import mark_orphans, open_study, spent

BUDGET, TIMEOUT, EXHAUSTED, INTERRUPTED = "budget", "timeout", "grid exhausted", "interrupted"


@dataclass(frozen=True)
class LoopOutcome:
    stopped: str
    ran: int


def run_trials(plan: SweepPlan, worker: int = 0) -> LoopOutcome:
    """Trials until a limit is reached. Interruption (Ctrl-C, SIGTERM) records the
    running trial as interrupted and returns; other errors of a trial are recorded
    on it and the loop goes on."""
    storage = open_storage(plan.storage)
    existing = _trial_count(storage, plan.study)
    sampler, pruner = build_sampler(plan, worker, existing), build_pruner(plan)
    enqueue = plan.space().check_enqueued(plan.sweep.get("enqueue") or [])
    study = open_study(storage, plan.study, plan.spec(), sampler, pruner, enqueue)
    # Optuna takes per-epoch reports (and prunes) in single-objective studies only.
    objective, ran = Objective(plan, report=len(plan.metrics) == 1), 0
    with deferred_interrupts():
        try:
            while True:
                raise_if_pending()
                mark_orphans(study, storage)  # a worker here killed outright releases its trial at once
                stop = _limit_reached(plan, study)
                if stop:
                    return LoopOutcome(stop, ran)
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
                ran += 1
        except KeyboardInterrupt:
            return LoopOutcome(INTERRUPTED, ran)


def _limit_reached(plan: SweepPlan, study: Any) -> str | None:
    if spent(study.get_trials(deepcopy=False)) >= plan.trials:
        return BUDGET
    if plan.deadline is not None and time.time() >= plan.deadline:
        return TIMEOUT
    exhausted = getattr(study.sampler, "is_exhausted", None)
    if exhausted is not None and exhausted(study):
        return EXHAUSTED
    return None


def build_sampler(plan: SweepPlan, worker: int, existing: int) -> Any:
    """The configured sampler, seeded so that a fresh one-process sweep repeats
    exactly, while parallel workers and restarts draw different random points
    (equal seeds would make workers propose the same startup trials)."""
    import optuna

    from recsys_cli.config import build

    seed = (plan.seed * 1_000_003 + worker * 10_007 + existing) % 2**31
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # TPE's `group`
            sampler = build(plan.sweep["sampler"], _plan_file(plan), seed=seed)
        if isinstance(sampler, functools.partial):  # the grid sampler: its grid is the search space
            sampler = sampler(search_space=plan.space().grid())
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"sweep.sampler: {type(exc).__name__}: {exc}") from exc
    return sampler


def prunable(plan: SweepPlan) -> bool:
    """Whether a pruner may stop this study's trials. The shared training loop
    reports one number per epoch, the validation NDCG@10 it early-stops on; a
    pruner reading it for another objective, or for a minimised one, would stop
    trials for the wrong reason. Optuna prunes single-objective studies only."""
    from recsys_cli.models.lightning import MONITOR

    return plan.metrics == [MONITOR] and plan.directions == ["maximize"]


def build_pruner(plan: SweepPlan) -> Any:
    import optuna

    from recsys_cli.config import build

    if not prunable(plan):
        return optuna.pruners.NopPruner()
    try:
        return build(plan.sweep["pruner"], _plan_file(plan))
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"sweep.pruner: {type(exc).__name__}: {exc}") from exc


def _plan_file(plan: SweepPlan) -> str:
    """Where the plan's sampler and pruner were read from (workers read plan.json)."""
    from recsys_cli.tasks.sweep import PLAN_JSON

    return str(Path(plan.out) / PLAN_JSON)


def _trial_count(storage: Any, name: str) -> int:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))
