"""A weighted blend of several models' scores, its weights chosen on validation.

Different model families are right about different users: on MovieLens-100K's
leave-last-one-out protocol SASRec reads the order of a user's history, while
EASE reads which films are rated together, which the held-out film of a burst of
ratings (many share one second) mostly is. Their scores live on unrelated scales
(a softmax logit, a regression weight), so each member's scores are standardised
per user over the items that user has not seen (z-scores) before the weighted
sum: a weight then means the same on any data set, and adding a constant or
scaling one member's scores changes nothing.

The first member weighs 1; every other member's weight is fixed (`weights`) or
chosen from `grid` on the validation window by NDCG@10, like the closed-form
models' grids (models/selection.py). A fit with validation targets also lets
each member choose for itself (SASRec stops early on it, EASE may search its l2).
Everything chosen is reported in `selected` under the member's config keys
(`members.sasrec.trainer.max_epochs`, `weights.ease`), so the refit on train +
validation (part=test) pins all of it and fits nothing else differently.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsys_cli.errors import ConfigError
from recsys_cli.evaluation.metrics import per_user
from recsys_cli.models.base import META, Recommender
from recsys_cli.models.classes import build_nested, plain_spec
from recsys_cli.models.data import TrainData
from recsys_cli.models.selection import MONITOR_K
from recsys_cli.models.topk import top_indices
from recsys_cli.models.validation import Targets

# Users scored at once while choosing weights: one dense (users x items) row block per member.
_BATCH_USERS = 1024


class Blend(Recommender):
    def __init__(
        self,
        members: Mapping[str, Mapping[str, Any]],
        weights: Mapping[str, float] | None = None,
        grid: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        specs = {str(k): plain_spec(v) for k, v in (members or {}).items() if v is not None}
        if len(specs) < 2:
            raise ConfigError("model.members: a blend needs at least two members")
        others = list(specs)[1:]
        weights = {str(k): float(v) for k, v in (weights or {}).items()}
        grid = {str(k): [float(x) for x in v] for k, v in (grid or {}).items()}
        for where, keys in (("model.weights", weights), ("model.grid", grid)):
            unknown = sorted(set(keys) - set(others))
            if unknown:
                raise ConfigError(
                    f"{where}: {', '.join(unknown)} is not a member after the first "
                    f"(the first, {list(specs)[0]}, weighs 1); members: {', '.join(others)}"
                )
        for key, value in [*weights.items(), *((f"{k}[]", x) for k, v in grid.items() for x in v)]:
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"model.weights.{key}: weights must be finite and >= 0, got {value}")
        if any(not v for v in grid.values()):
            raise ConfigError("model.grid: every member's list of weights must be non-empty")
        weights = {name: weights.get(name, 1.0) for name in others}
        super().__init__(members=specs, weights=weights, **({"grid": grid} if grid else {}))
        self.grid = grid
        self.members: dict[str, Recommender] = {name: _instantiate(spec, name) for name, spec in specs.items()}

    @property
    def chooses_on_validation(self) -> bool:
        return bool(self.grid) or any(m.chooses_on_validation for m in self.members.values())

    def _fit(self, data: TrainData, validation: Targets | None, workdir: Path | None) -> None:
        from recsys_cli.registry.selection import pins_epochs

        selected: dict[str, Any] = {}
        seconds = cpu = 0.0
        for name, model in self.members.items():
            wall, clock = time.perf_counter(), time.process_time()
            model.fit(data, validation, workdir / name if workdir is not None else None)
            taken = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - clock}
            # A member that stopped early took this long to its best epoch; the rest of
            # its patience is not what the blend needs.
            seconds += model.diagnostics.get("seconds_to_best_epoch", taken["seconds"])
            cpu += model.diagnostics.get("cpu_seconds_to_best_epoch", taken["cpu_seconds"])
            self.diagnostics |= {f"{name}/{k}": v for k, v in model.diagnostics.items()}
            self.diagnostics |= {f"{name}/fit_{k}": v for k, v in taken.items()}
            if validation is not None:
                selected |= {f"members.{name}.{k}": v for k, v in model.selected.items()}
                best = getattr(model, "best_epoch", None)
                if best is not None and pins_epochs(model):
                    selected[f"members.{name}.trainer.max_epochs"] = int(best)
                    self.diagnostics[f"{name}/best_epoch"] = float(best)
        start, clock = time.perf_counter(), time.process_time()
        if self.grid and validation is not None and validation.users.size:
            chosen = self._choose(validation)
            self.params["weights"] = {**self.params["weights"], **chosen}
            selected |= {f"weights.{k}": v for k, v in chosen.items()}
        self.diagnostics["seconds_to_best_epoch"] = seconds + time.perf_counter() - start
        self.diagnostics["cpu_seconds_to_best_epoch"] = cpu + time.process_time() - clock
        self.selected = selected

    def _choose(self, validation: Targets) -> dict[str, float]:
        """The grid point whose blend ranks the validation users best by NDCG@10 (ties
        keep the earlier point); each member's z-scores are computed once per batch."""
        names = list(self.grid)
        points = [dict(zip(names, values, strict=True)) for values in itertools.product(*self.grid.values())]
        fixed = self.params["weights"]
        totals = np.zeros(len(points))
        for rows, (z, unseen) in self._batches(validation.users):
            truth = validation.truth[rows]
            for i, point in enumerate(points):
                top = top_indices(np.where(unseen, _blend(z, {**fixed, **point}), -np.inf), MONITOR_K)
                totals[i] += per_user(top, truth, MONITOR_K)["ndcg"].sum()
        scores = totals / validation.users.size
        best = int(np.argmax(scores))  # the first of equals
        for point, score in zip(points, scores, strict=True):
            label = ",".join(f"{k}={v:g}" for k, v in point.items())
            self.diagnostics[f"grid/{label}/val_ndcg@10"] = float(score)
        self.diagnostics["selected/val_ndcg@10"] = float(scores[best])
        self.diagnostics |= {f"selected/weights.{k}": float(v) for k, v in points[best].items()}
        return points[best]

    def _batches(self, users: np.ndarray) -> Iterator[tuple[slice, tuple[dict[str, np.ndarray], np.ndarray]]]:
        for start in range(0, users.size, _BATCH_USERS):
            rows = slice(start, min(start + _BATCH_USERS, users.size))
            yield rows, self._zscores(users[rows])

    def _zscores(self, users: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each member's scores standardised per user over the items they have not
        seen (index 0, the unknown item, is never one), and that (users, items) mask;
        seen items are scaled alike, so a ranking that keeps them (exclude_seen=False)
        stays consistent."""
        assert self.seen is not None
        unseen = np.ones((users.size, len(self.items or ())), dtype=bool)
        unseen[:, 0] = False
        seen = self.seen[users]
        unseen[np.repeat(np.arange(users.size), np.diff(seen.indptr)), seen.indices] = False
        count = np.maximum(unseen.sum(axis=1, keepdims=True), 1)
        out = {}
        for name, model in self.members.items():
            scores = np.asarray(model._score(users), dtype=np.float64)
            scores = np.where(np.isfinite(scores), scores, 0.0)
            mean = np.where(unseen, scores, 0.0).sum(axis=1, keepdims=True) / count
            var = np.where(unseen, (scores - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / count
            out[name] = (scores - mean) / np.sqrt(np.maximum(var, 1e-24))
        return out, unseen

    def _score(self, users: np.ndarray) -> np.ndarray:
        z, _ = self._zscores(np.asarray(users, dtype=np.int64))
        return _blend(z, self.params["weights"]).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {f"{name}.{k}": v for name, model in self.members.items() for k, v in model._state().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        for name, model in self.members.items():
            model.users, model.items, model.popularity, model.seen = self.users, self.items, self.popularity, self.seen
            prefix = f"{name}."
            model._load_state({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})


def _blend(z: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The first member's z-scores plus every other member's times its weight."""
    names = list(z)
    out = z[names[0]].copy()
    for name in names[1:]:
        if weights.get(name, 0.0):
            out += weights[name] * z[name]
    return out


def _instantiate(spec: Mapping[str, Any], name: str) -> Recommender:
    """A member from its `{_target_, **params}` spec (`classes.build_nested`)."""
    model: Recommender = build_nested(spec, f"{META}: params.members.{name}")
    return model
