"""The objective of a sweep: one trial is one `recsys train part=val` run with the
trial's parameters as overrides, through `recsys_cli.tasks.train.run` itself.

A trial that raises is recorded as failed with its error message and the sweep
goes on; Ctrl-C (or SIGTERM) records the running trial as interrupted and stops.
"""

from __future__ import annotations

import math
import os
import socket
from typing import Any

from recsys_cli.sweep.interrupts import interrupt_callback, raise_if_pending
from recsys_cli.sweep.plan import SweepPlan
from recsys_cli.sweep.study import place

ERROR_CHARS = 2000


class BudgetReached(Exception):
    """Another worker filled the study's trial budget while this trial was created."""


class Objective:
    """Callable for `study.optimize`. With `report`, the shared Lightning loop gets
    Optuna's pruning callback, which records validation NDCG@10 after every epoch
    (learning curves for the plots) and stops the trial when the study's pruner
    says so (never, with the `none` pruner)."""

    def __init__(self, plan: SweepPlan, report: bool) -> None:
        from pathlib import Path

        self.plan, self.report = plan, report
        self.space = plan.space()
        self.config_dir = Path(plan.config_dir)

    def __call__(self, trial: Any) -> float | list[float]:
        import optuna

        try:
            return self._run(trial)
        except (optuna.TrialPruned, BudgetReached):
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            # Lightning turns Ctrl-C inside a fit into sys.exit(1); Optuna records a
            # trial as failed only for an exception or KeyboardInterrupt.
            trial.set_user_attr("interrupted", True)
            raise KeyboardInterrupt from exc
        except Exception as exc:
            trial.set_user_attr("error", _message(exc))
            raise

    def _run(self, trial: Any) -> float | list[float]:
        from recsys_cli import tracking
        from recsys_cli.config import compose
        from recsys_cli.models.lightning import FIT_CALLBACKS
        from recsys_cli.tasks import train

        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        if os.environ.get("CUDA_VISIBLE_DEVICES"):
            trial.set_user_attr("gpu", os.environ["CUDA_VISIBLE_DEVICES"])
        if place(trial.study.get_trials(deepcopy=False), trial.number) >= self.plan.trials:
            trial.set_user_attr("surplus", True)
            raise BudgetReached(f"the study already holds {self.plan.trials} trials")
        params = self.space.suggest(trial)
        cfg = compose("train", self.plan.trial_overrides(params), self.config_dir)
        token = FIT_CALLBACKS.set(self._callbacks(trial))
        try:
            # logger=mlflow: the trial is a run nested under the study's, written by its train run.
            with tracking.trial_run(cfg, self.plan.study, trial.number, self.plan.tracking) as tracked:
                raise_if_pending()
                values = self._values(trial, train.run(cfg))
                tracked.value(dict(zip(self.plan.metrics, values, strict=True)))
        finally:
            FIT_CALLBACKS.reset(token)
        return values[0] if len(values) == 1 else values

    def _values(self, trial: Any, result: Any) -> list[float]:
        """The objective's values of a finished train run, recorded on the trial."""
        trial.set_user_attr("run", str(result.run))
        trial.set_user_attr("metrics", result.metrics)
        if "best_epoch" in result.metrics:
            trial.set_user_attr("best_epoch", int(result.metrics["best_epoch"]))
        values = [result.metrics[m] for m in self.plan.metrics]
        bad = [m for m, v in zip(self.plan.metrics, values, strict=True) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"{', '.join(bad)} is not a finite number")
        return values

    def _callbacks(self, trial: Any) -> tuple[Any, ...]:
        if not self.report:
            return (interrupt_callback(),)
        from optuna_integration import PyTorchLightningPruningCallback

        from recsys_cli.models.lightning import MONITOR

        return (interrupt_callback(), PyTorchLightningPruningCallback(trial, monitor=MONITOR))


def _message(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"
