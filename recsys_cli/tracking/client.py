"""The one place that imports MLflow: a tracking store and its experiment, reached
through `MlflowClient` (explicit run ids, no process-wide active run, so nested
sweep trials and Lightning's logger write exactly where they are told)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recsys_cli.errors import RecsysError
from recsys_cli.tracking.settings import Settings, sqlite_path

INSTALL = "pip install '.[mlflow]'"
RUNNING, FINISHED, FAILED, KILLED = "RUNNING", "FINISHED", "FAILED", "KILLED"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting: the UI folds children under it
PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch


class TrackingError(RecsysError):
    """The experiment tracker cannot be used as configured (not installed, a store
    that refuses, an experiment that was deleted)."""


def require() -> Any:
    """The `mlflow` module, or one line saying how to install it."""
    try:
        import mlflow
    except ImportError as exc:
        raise TrackingError(f"logger=mlflow needs MLflow, which is not installed: {INSTALL}") from exc
    # Schema migrations and experiment creation log at INFO: not our output.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


@contextmanager
def _refusals(uri: str) -> Iterator[None]:
    """MLflow's refusals (a bad URI, the file store it no longer opens by default, a
    server that is down) as one line naming the store."""
    from mlflow.exceptions import MlflowException

    from recsys_cli.sweep.storage import redact

    try:
        yield
    except MlflowException as exc:
        text = str(exc.message if hasattr(exc, "message") else exc).strip().splitlines()
        raise TrackingError(f"MLflow tracking store {redact(uri)}: {text[0] if text else type(exc).__name__}") from exc


class Tracker:
    """One tracking store and experiment. Runs are created, written and ended by id."""

    def __init__(self, settings: Settings) -> None:
        require()
        from mlflow.tracking import MlflowClient

        self.settings = settings
        database = sqlite_path(settings.tracking_uri)
        if database is not None:  # SQLite creates the file, not its folder
            database.parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(settings.tracking_uri)
        self._experiment: str | None = None

    @property
    def experiment_id(self) -> str:
        """The configured experiment, created on first use (by another process at the
        same moment too: a sweep's workers)."""
        if self._experiment is None:
            with _refusals(self.settings.tracking_uri):
                self._experiment = self._get_or_create()
        return self._experiment

    def _get_or_create(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self._named()
        if found is not None:
            return found
        try:
            return str(self.client.create_experiment(self.settings.experiment_name, self.settings.artifact_location))
        except MlflowException:
            found = self._named()  # created meanwhile by another process
            if found is None:
                raise
            return found

    def _named(self) -> str | None:
        name = self.settings.experiment_name
        found = self.client.get_experiment_by_name(name)
        if found is None:
            return None
        if found.lifecycle_stage == "deleted":
            raise TrackingError(
                f"MLflow experiment {name!r} was deleted in {self.settings.tracking_uri}: restore it "
                "(mlflow experiments restore) or set logger.experiment_name"
            )
        return str(found.experiment_id)

    def start(self, name: str, tags: Mapping[str, str], parent: str | None = None) -> str:
        """A new run (nested under `parent` when given), with MLflow's context tags
        (source, git commit, user) beside ours."""
        from mlflow.tracking.context.registry import resolve_tags

        given = dict(tags) | ({PARENT_TAG: parent} if parent else {})
        with _refusals(self.settings.tracking_uri):
            run = self.client.create_run(self.experiment_id, run_name=name, tags=resolve_tags(given))
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        with _refusals(self.settings.tracking_uri):
            for i in range(0, len(items), PARAMS_PER_BATCH):
                self.client.log_batch(run_id, params=items[i : i + PARAMS_PER_BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        with _refusals(self.settings.tracking_uri):
            for i in range(0, len(items), PARAMS_PER_BATCH):
                self.client.log_batch(run_id, metrics=items[i : i + PARAMS_PER_BATCH])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        with _refusals(self.settings.tracking_uri):
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)

    def log_files(self, run_id: str, files: Sequence[Path]) -> None:
        with _refusals(self.settings.tracking_uri):
            for path in files:
                self.client.log_artifact(run_id, str(path))

    def end(self, run_id: str, status: str) -> None:
        with _refusals(self.settings.tracking_uri):
            self.client.set_terminated(run_id, status)

    def reopen(self, run_id: str) -> None:
        """A run going on again (a resumed sweep's parent)."""
        with _refusals(self.settings.tracking_uri):
            self.client.update_run(run_id, status=RUNNING)

    def find(self, tags: Mapping[str, str]) -> str | None:
        """The newest run of the experiment whose tags hold `tags` (plain names and
        values: letters, digits, `._-`)."""
        where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        with _refusals(self.settings.tracking_uri):
            found = self.client.search_runs(
                [self.experiment_id], where, max_results=1, order_by=["attributes.start_time DESC"]
            )
        return str(found[0].info.run_id) if found else None
