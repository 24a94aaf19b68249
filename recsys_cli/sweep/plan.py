"""Everything a worker needs to run trials of a sweep, in a form that travels as
JSON to worker processes: the study, its storage, the user's overrides and the
resolved `sweep` config."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recsys_cli.sweep.search_space import Scalar, SearchSpace, to_override

TRIALS_DIR = "trials"
REFIT_DIR = "refit"
# Overrides that say where things are (or are reported: logger), not what is trained:
# machines sharing a study may keep their data in different places.
LOCATION_KEYS = ("paths", "runs_dir", "logger")


@dataclass(frozen=True)
class SweepPlan:
    study: str
    storage: str
    out: str
    config_dir: str
    overrides: list[str]
    sweep: dict[str, Any]
    trials: int
    deadline: float | None
    seed: int
    # logger=mlflow: the tracking store and the study's parent run the trials nest
    # under (recsys_cli/tracking/); None without a logger.
    tracking: dict[str, Any] | None = None

    @property
    def metrics(self) -> list[str]:
        return list(self.sweep["metrics"])

    @property
    def directions(self) -> list[str]:
        return list(self.sweep["directions"])

    @property
    def fixed(self) -> list[str]:
        return list(self.sweep.get("fixed") or [])

    def space(self) -> SearchSpace:
        return SearchSpace.from_config(self.sweep["params"])

    def experiment_overrides(self, params: Mapping[str, Scalar]) -> list[str]:
        """What `recsys train` needs to repeat a trial: the sweep's fixed overrides,
        then the user's (which win over them), then the trial's parameters."""
        return [*self.fixed, *self.overrides, *(to_override(k, v) for k, v in params.items())]

    def trial_overrides(self, params: Mapping[str, Scalar]) -> list[str]:
        # Progress bars of parallel trials would tear the live table apart.
        quiet = ["trainer.enable_progress_bar=false"]
        return [*self.experiment_overrides(params), *quiet, "part=val", f"runs_dir={Path(self.out) / TRIALS_DIR}"]

    def refit_overrides(self, params: Mapping[str, Scalar], best_epoch: float | None) -> list[str]:
        """Train + validation, scored on test, for as many epochs as the trial took
        to its best validation score (no early stopping without validation). The
        epochs come from the trial itself, so no validation run is looked for."""
        epochs = [f"trainer.max_epochs={int(best_epoch)}"] if best_epoch else []
        refit = [f"runs_dir={Path(self.out) / REFIT_DIR}", "refit_from=none"]
        return [*self.experiment_overrides(params), "part=test", *refit, *epochs]

    def spec(self) -> dict[str, Any]:
        """What makes two sweeps the same search, recorded on the study."""
        kept = [o for o in [*self.fixed, *self.overrides] if _key(o).split(".")[0] not in LOCATION_KEYS]
        spec = {
            "metrics": self.metrics,
            "directions": self.directions,
            "params": self.space().describe(),
            "overrides": kept,
        }
        return dict(json.loads(json.dumps(spec)))  # as the storage returns it: lists, not tuples

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> SweepPlan:
        return cls(**json.loads(text))


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").split("/")[0]
