"""Choosing a closed-form model's settings on the validation window, inside `fit`.

A closed-form fit takes seconds, so instead of one fixed setting (tuned on
MovieLens ratings, wrong for a shop's clickstream) a model can fit a small grid
and keep the point whose recommendations score best on the validation targets
`recsys train` passes to `fit` (part=val): NDCG@10, the metric the Lightning
models stop early on, computed the same way (seen items masked, `per_user`).

The chosen point is `model.selected` ({config key under `model.`: value}); a
refit on train + validation (part=test, no targets) pins it and fits that point
alone. Without validation targets (that refit, a ranker's candidate generators)
the configured values are fitted as they are.
"""

from __future__ import annotations

import itertools
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsys_cli.errors import ConfigError
from recsys_cli.evaluation.metrics import per_user
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets

MONITOR_K = 10  # the same NDCG@10 the Lightning models monitor (models/lightning.py)
Grid = Mapping[str, Sequence[Any]]


def grid_points(grid: Grid | None) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the order written (the first
    key varies slowest); [] for no grid.

    >>> grid_points({"l2": [1, 2], "weighting": ["raw"]})
    [{'l2': 1, 'weighting': 'raw'}, {'l2': 2, 'weighting': 'raw'}]
    """
    if not grid:
        return []
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def validation_ndcg(model: Recommender, validation: Targets, k: int = MONITOR_K, batch: int = 4096) -> float:
    """Mean NDCG@k of the model's top-k (what `recommend` returns: seen items
    masked as the target says) against the validation truth."""
    users = validation.users
    recs = [model.recommend(users[i : i + batch], k)[0] for i in range(0, users.size, batch)]
    return float(per_user(np.concatenate(recs), validation.truth, k)["ndcg"].mean())


class GridSelected(Recommender):
    """A model whose `_fit_point` fits with its current settings (attributes named
    like its config keys) and whose `grid` ({key: [values]}) is searched on the
    validation window. Subclasses name the attributes a fit produces in `FITTED`,
    so the best point's fit is kept without a refit."""

    FITTED: tuple[str, ...] = ()

    def __init__(self, grid: Grid | None = None, **params: Any) -> None:
        grid = {str(k): list(v) for k, v in (grid or {}).items()}
        # `grid` joins the saved params only when set: a model.json stays loadable by
        # a class that has no grid (implicit's BPR shares this base).
        super().__init__(**params, **({"grid": grid} if grid else {}))
        for key, values in grid.items():
            if key not in params or key == "grid":
                raise ConfigError(f"model.grid.{key}: not a setting of {type(self).__name__}")
            if not values:
                raise ConfigError(f"model.grid.{key}: an empty list of values")
        self.grid = grid

    @property
    def chooses_on_validation(self) -> bool:
        return bool(self.grid)

    @abstractmethod
    def _fit_point(self, data: TrainData) -> None:
        """Fit with the settings the attributes hold now."""

    def _fit(self, data: TrainData, validation: Targets | None, workdir: Path | None) -> None:
        points = grid_points(self.grid)
        if not points or validation is None or validation.users.size == 0:
            self._fit_point(data)
            return
        best: tuple[float, dict[str, Any], dict[str, Any]] | None = None
        start = time.perf_counter()
        for point in points:
            self._set(point)
            self.derived = {}  # lookups cached from the previous point's fitted state
            self._fit_point(data)
            score = validation_ndcg(self, validation)
            if best is None or score > best[0]:  # ties keep the earlier point
                best = (score, point, {name: getattr(self, name) for name in self.FITTED})
        assert best is not None
        score, point, fitted = best
        self._set(point)
        for name, value in fitted.items():
            setattr(self, name, value)
        self.derived = {}
        self.params |= point  # the saved model states the values it was fitted with
        self.selected = dict(point)
        self.diagnostics["selected/val_ndcg@10"] = score
        self.diagnostics["selected/points"] = float(len(points))
        self.diagnostics["selected/seconds"] = time.perf_counter() - start
        for key, value in point.items():
            # metrics are numbers: a word-valued choice is reported as `selected/key=word` 1
            numeric = isinstance(value, bool | int | float)
            self.diagnostics[f"selected/{key}" if numeric else f"selected/{key}={value}"] = (
                float(value) if numeric else 1.0
            )

    def _set(self, point: Mapping[str, Any]) -> None:
        for key, value in point.items():
            setattr(self, key, value)
