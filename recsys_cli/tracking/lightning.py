"""Lightning's `MLFlowLogger` on a run this package already opened: the shared
training loop (models/lightning.py, through `FIT_LOGGERS`) writes each epoch's
training loss and validation NDCG@10 into the run, one step per epoch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recsys_cli.tracking.client import Tracker
from recsys_cli.tracking.names import metric_key

# Per-epoch values under their own names: the run's final `val/ndcg_at_10` (every
# user, the whole catalogue, from metrics.json) is a different number than the
# early-stopping monitor, and one name holds one series.
CURVE = "epochs/"


def epoch_logger(tracker: Tracker, run_id: str) -> Any:
    """An `MLFlowLogger` writing into `run_id`. It neither logs params (the resolved
    config is logged once, by the run) nor ends the run (its owner does, after the
    metrics and files of the finished run folder are in)."""
    from lightning.pytorch.loggers import MLFlowLogger
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    class EpochLogger(MLFlowLogger):  # type: ignore[misc]
        @rank_zero_only  # type: ignore[misc]
        def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
            values = dict(metrics)
            epoch = values.pop("epoch", None)  # Lightning adds the epoch to what the module logs
            step = int(epoch) + 1 if epoch is not None else step  # epochs trained so far, like best_epoch
            super().log_metrics({CURVE + metric_key(k): v for k, v in values.items()}, step)

        @rank_zero_only  # type: ignore[misc]
        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            return None

        @rank_zero_only  # type: ignore[misc]
        def finalize(self, status: str = "success") -> None:
            return None

    settings = tracker.settings
    return EpochLogger(experiment_name=settings.experiment_name, tracking_uri=settings.tracking_uri, run_id=run_id)
