"""One Optuna study shared by every worker of a sweep: opening it, guarding it
against a different search, counting its trial budget, and reading its trials.

The budget (`--trials N`) is the number of trials the *study* should hold, not the
number this process runs: a restarted sweep continues up to N, and several workers
on several machines stop together at N. Trials are numbered by the storage in
creation order, so a trial knows its place in the queue; one created past the
budget in a race between workers is recorded as skipped and never trained.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from recsys_cli.errors import ConfigError

SPEC_ATTR = "recsys.spec"
# Trial outcomes, from the trial state and the user attributes the objective sets.
COMPLETE, PRUNED, FAILED, RUNNING, WAITING = "complete", "pruned", "failed", "running", "waiting"
INTERRUPTED, SKIPPED = "interrupted", "skipped"
# Outcomes that use up the budget: an interrupted or skipped trial does not, so a
# restarted sweep runs it again (with new parameters).
SPENT = frozenset({COMPLETE, PRUNED, FAILED, RUNNING})


def open_study(
    storage: Any, name: str, spec: Mapping[str, Any], sampler: Any, pruner: Any, enqueue: Sequence[Mapping[str, Any]]
) -> Any:
    """Create the study or join it. A study started with another search (model,
    search space, objectives, overrides) is refused rather than mixed; the trials
    to try first are queued once, when the study is new."""
    import optuna

    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=list(spec["directions"]),
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    recorded = study.user_attrs.get(SPEC_ATTR)
    if recorded is None:
        study.set_user_attr(SPEC_ATTR, dict(spec))
    elif _normal(recorded) != _normal(spec):
        ours, theirs = _normal(spec), _normal(recorded)
        changed = ", ".join(k for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k))
        raise ConfigError(
            f"study {name!r} was started with other settings ({changed} differ); "
            "rerun it with the same model, sweep and overrides, or name a new study with --study"
        )
    if not study.get_trials(deepcopy=False):
        for params in enqueue:
            study.enqueue_trial(dict(params), skip_if_exists=True)
    return study


def _normal(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A spec as compared: the order of overrides of different keys does not matter."""
    return {**spec, "overrides": sorted(spec.get("overrides") or [])}


def load_study(storage: Any, name: str) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        known = f"; studies there: {', '.join(names)}" if names else "; it holds no study"
        raise ConfigError(f"no study {name!r} in this storage{known}") from None


def outcome(trial: Any) -> str:
    """What happened to a trial, in the words the tables use."""
    state = trial.state.name
    if state == "FAIL":
        if trial.user_attrs.get("surplus"):
            return SKIPPED
        return FAILED if "error" in trial.user_attrs else INTERRUPTED
    return {"COMPLETE": COMPLETE, "PRUNED": PRUNED, "RUNNING": RUNNING, "WAITING": WAITING}[state]


def spent(trials: Sequence[Any]) -> int:
    """Trials that count against the budget, those still running included."""
    return sum(outcome(t) in SPENT for t in trials)


def place(trials: Sequence[Any], number: int) -> int:
    """How many budget-using trials come before trial `number`; queued ones count,
    as they will run."""
    return sum(t.number < number and outcome(t) in SPENT | {WAITING} for t in trials)


def mark_orphans(study: Any, storage: Any) -> list[int]:
    """Fail the running trials whose worker on this host has exited (killed before it
    could record anything): without a heartbeat, as with the journal storage, they
    would hold the budget forever. Returns their numbers."""
    import optuna

    host, study_id = socket.gethostname(), storage.get_study_id_from_name(study.study_name)
    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or attrs.get("pid") in (None, os.getpid()) or _alive(attrs["pid"], trial):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "interrupted", "its worker exited")
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        orphans.append(trial.number)
    return orphans


def _alive(pid: int, trial: Any) -> bool:
    """The worker process still runs (and is the same process, not a reused pid)."""
    import psutil

    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return False
    return trial.datetime_start is None or started <= trial.datetime_start.timestamp() + 1


def best_trials(study: Any) -> list[Any]:
    """The best trial, or the Pareto front of a multi-objective study ordered by its
    first objective; empty until a trial completes."""
    if len(study.directions) == 1:
        try:
            return [study.best_trial]
        except ValueError:
            return []
    front = list(study.best_trials)
    maximise = study.directions[0].name == "MAXIMIZE"
    return sorted(front, key=lambda t: t.values[0], reverse=maximise)


@dataclass
class TrialRecord:
    """One trial as tables and JSON show it."""

    number: int
    outcome: str
    values: list[float] | None
    params: dict[str, Any]
    started: str | None
    duration_s: float | None
    note: str
    run: str | None
    worker: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def records(trials: Sequence[Any], now: datetime | None = None) -> list[TrialRecord]:
    """Every trial but the skipped ones (never trained), by number."""
    now = now or datetime.now()
    out = []
    for t in sorted(trials, key=lambda t: t.number):
        kind = outcome(t)
        if kind == SKIPPED:
            continue
        end = t.datetime_complete or (now if kind == RUNNING else None)
        duration = (end - t.datetime_start).total_seconds() if t.datetime_start and end else None
        attrs = t.user_attrs
        worker = f"{attrs['host']}:{attrs['pid']}" if "host" in attrs and "pid" in attrs else None
        out.append(
            TrialRecord(
                number=t.number,
                outcome=kind,
                values=list(t.values) if t.values is not None else None,
                params=dict(t.params),
                started=t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
                duration_s=duration,
                note=_note(t, kind),
                run=attrs.get("run"),
                worker=worker,
            )
        )
    return out


def _note(trial: Any, kind: str) -> str:
    attrs = trial.user_attrs
    if kind == FAILED:
        return str(attrs["error"])
    if kind == INTERRUPTED:
        reason = attrs.get("interrupted")
        return f"interrupted ({reason})" if isinstance(reason, str) else "interrupted"
    if kind == PRUNED and trial.intermediate_values:
        return f"pruned after epoch {max(trial.intermediate_values) + 1}"
    if kind == COMPLETE and attrs.get("best_epoch") is not None:
        return f"best epoch {int(attrs['best_epoch'])}"
    return ""
