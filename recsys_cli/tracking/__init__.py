"""Experiment tracking in the ecosystem's tool: with `logger=mlflow` (conf/logger/)
every `recsys train` run is also an MLflow run and a sweep is a parent run with a
nested run per trial, so a team that lives in the MLflow UI sees our runs there.

The run folder stays the record (sealed, verified, what `recsys recommend` and
`recsys export` read); the tracker gets a copy of what a person compares runs by:
the resolved config as params, the metrics, the small files of the run folder as
artifacts, and the Lightning models' per-epoch curves. MLflow is an optional extra
(`pip install .[mlflow]`), imported only when a config asks for it.
"""

from recsys_cli.tracking.runs import check, finish_study, nested_under, study_run, train_run, trial_run
from recsys_cli.tracking.settings import Settings, settings

__all__ = ["Settings", "check", "finish_study", "nested_under", "settings", "study_run", "train_run", "trial_run"]
