"""Which MLflow run each command writes: one run per `recsys train` run; for a
sweep one parent run per study, one nested run per trial (the trial's train run
writes into it), and the best configuration's refit nested beside them.

A context variable carries the sweep's parent and the trial's run down to
`recsys_cli.tasks.train.run`, so a trial is the same train task as on the command
line, with no second training path. MLflow is imported only when a config asks
for it (`settings` is None otherwise).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from recsys_cli.tracking import names
from recsys_cli.tracking.settings import Settings, settings

# Tags that say what a run is, for people in the UI and for `Tracker.find`.
KIND, MODEL, PART, RUN, STUDY, TRIAL, OUTCOME = (
    f"recsys.{k}" for k in ("kind", "model", "part", "run", "study", "trial", "outcome")
)
# The run folder's small files; per_user.parquet (one row per user) and the fitted
# model stay in the folder.
RUN_FILES = ("metrics.json", "config.yaml", "environment.json", "selection.json")
# A sweep folder's summary files, on the study's parent run.
STUDY_FILES = ("best.json", "best_overrides.txt", "experiment.yaml", "trials.json")


@dataclass(frozen=True)
class _Scope:
    parent: str | None = None  # new runs nest under this run (a study's)
    adopt: str | None = None  # train runs write into this run (a trial's) instead of opening one


_SCOPE: ContextVar[_Scope | None] = ContextVar("tracking_scope", default=None)


class TrainRun:
    """What `recsys train` hands its tracked run once the run folder is published."""

    def __init__(self, tracker: Any = None, run_id: str | None = None) -> None:
        self.tracker, self.run_id = tracker, run_id

    def finish(self, folder: Path, metrics: Mapping[str, float]) -> None:
        """The run's metrics, its small files and where its folder is."""
        if self.tracker is None or self.run_id is None:
            return
        self.tracker.log_metrics(self.run_id, names.metrics(metrics))
        self.tracker.log_files(self.run_id, [folder / f for f in RUN_FILES if (folder / f).is_file()])
        self.tracker.set_tags(self.run_id, {RUN: str(Path(folder).resolve())})


class TrialRun:
    """A sweep trial's run: its value(s) once the trial's train run is scored."""

    def __init__(self, tracker: Any = None, run_id: str | None = None) -> None:
        self.tracker, self.run_id = tracker, run_id

    def value(self, values: Mapping[str, float]) -> None:
        if self.tracker is None or self.run_id is None:
            return
        if len(values) == 1:
            self.tracker.log_metrics(self.run_id, {"trial/value": next(iter(values.values()))})
        else:
            self.tracker.log_metrics(self.run_id, {f"trial/value/{names.metric_key(k)}": v for k, v in values.items()})


@contextmanager
def train_run(cfg: DictConfig, name: str, lightning: bool) -> Iterator[TrainRun]:
    """The tracked run of one `recsys train` run (`name`: the model's folder name),
    open while the model fits: a new run, or the sweep trial's run it belongs to.
    With `lightning`, the shared training loop logs each epoch into it. Ended as
    FINISHED when the block completes, FAILED or KILLED when it raises."""
    found = settings(cfg)
    if found is None:
        yield TrainRun()
        return
    from recsys_cli.tracking.client import Tracker

    tracker = Tracker(found)
    scope = _SCOPE.get() or _Scope()
    owned = scope.adopt is None
    tags = {MODEL: name, PART: str(cfg.part)}
    if scope.adopt is None:
        run_id = tracker.start(found.run_name or f"{name}-{cfg.part}", tags | {KIND: "train"}, scope.parent)
    else:
        run_id = scope.adopt
        tracker.set_tags(run_id, tags)
    try:
        tracker.log_params(run_id, names.params(cfg))
        with _epoch_logger(tracker, run_id, lightning):
            yield TrainRun(tracker, run_id)
    except BaseException as exc:
        if owned:
            tracker.end(run_id, status_of(exc))
        raise
    if owned:
        tracker.end(run_id, "FINISHED")


@contextmanager
def _epoch_logger(tracker: Any, run_id: str, lightning: bool) -> Iterator[None]:
    if not lightning:
        yield
        return
    from recsys_cli.models.lightning import FIT_LOGGERS
    from recsys_cli.tracking.lightning import epoch_logger

    token = FIT_LOGGERS.set((epoch_logger(tracker, run_id),))
    try:
        with warnings.catch_warnings():
            # Every value is logged once an epoch: Lightning's step-interval advice is moot.
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval")
            yield
    finally:
        FIT_LOGGERS.reset(token)


@contextmanager
def trial_run(cfg: DictConfig, study: str, number: int, parent: Mapping[str, Any] | None) -> Iterator[TrialRun]:
    """Trial `number` of `study` as a run nested under the study's run (`parent`,
    from `study_run`), which the trial's train run writes into. A pruned or
    interrupted trial's run ends KILLED, a failed one FAILED."""
    found = settings(cfg)
    if found is None:
        yield TrialRun()
        return
    from recsys_cli.tracking.client import Tracker

    tracker = Tracker(found)
    tags = {KIND: "trial", STUDY: study, TRIAL: str(number)}
    run_id = tracker.start(f"trial-{number}", tags, parent.get("run_id") if parent else None)
    token = _SCOPE.set(_Scope(adopt=run_id))
    try:
        yield TrialRun(tracker, run_id)
    except BaseException as exc:
        tracker.set_tags(run_id, {OUTCOME: _outcome(exc)})
        tracker.end(run_id, status_of(exc))
        raise
    finally:
        _SCOPE.reset(token)
    tracker.set_tags(run_id, {OUTCOME: "complete"})
    tracker.end(run_id, "FINISHED")


def check(cfg: DictConfig) -> None:
    """Refuse, before any work, a config asking for a tracker that is not installed."""
    if settings(cfg) is not None:
        from recsys_cli.tracking.client import require

        require()


def study_run(cfg: DictConfig, study: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parent run of a sweep's study: found again when the study is resumed (or
    joined from another machine), created otherwise with the search as params.
    Returns what the trials need to nest under it (the plan carries it to workers)."""
    found = settings(cfg)
    if found is None:
        return None
    from recsys_cli.tracking.client import Tracker

    tracker = Tracker(found)
    tags = {KIND: "study", STUDY: study}
    run_id = tracker.find(tags)
    if run_id is None:
        run_id = tracker.start(study, tags)
        tracker.log_params(run_id, names.params({"sweep": dict(spec)}))
    else:
        tracker.reopen(run_id)
    return found.to_json() | {"run_id": run_id}


def finish_study(parent: Mapping[str, Any] | None, folder: Path, best: Mapping[str, Any] | None, stopped: str) -> None:
    """The study's best value(s) and summary files on its run, which ends FINISHED
    (KILLED when the sweep was interrupted: a rerun resumes it)."""
    if not parent:
        return
    from recsys_cli.tracking.client import Tracker

    tracker = Tracker(Settings.from_json(dict(parent)))
    run_id = str(parent["run_id"])
    if best:
        tracker.log_metrics(run_id, {f"best/{names.metric_key(k)}": v for k, v in best["values"].items()})
        tracker.set_tags(run_id, {f"{TRIAL}.best": str(best["number"])})
    tracker.log_files(run_id, [folder / f for f in STUDY_FILES if (folder / f).is_file()])
    tracker.end(run_id, "KILLED" if stopped == "interrupted" else "FINISHED")


@contextmanager
def nested_under(parent: Mapping[str, Any] | None) -> Iterator[None]:
    """Train runs started in the block nest under `parent` (a study's refit)."""
    if not parent:
        yield
        return
    token = _SCOPE.set(_Scope(parent=str(parent["run_id"])))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def status_of(exc: BaseException) -> str:
    return "FAILED" if _outcome(exc) == "failed" else "KILLED"


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return "interrupted"
    return "pruned" if type(exc).__name__ == "TrialPruned" else "failed"
