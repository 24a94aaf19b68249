"""LambdaMART through LightGBM, the ranker stage's second backend: its settings,
the checks that name a bad one at construction, a grid of them, and one fit with
early stopping on the held-out users' candidate lists."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recsys_cli.errors import ConfigError
from recsys_cli.models.candidates import Pairs

LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "objective": "lambdarank",
    "n_estimators": 500,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


def fit_point(
    options: Mapping[str, Any],
    train: tuple[np.ndarray, Pairs, np.ndarray, np.ndarray],
    held: tuple[np.ndarray, Pairs, np.ndarray, np.ndarray],
    patience: int,
) -> tuple[Any, int]:
    """A fitted booster and the number of trees to predict with (early stopping on
    the held-out groups' NDCG@10 after 10 x patience rounds; none when patience is 0)."""
    import lightgbm as lgb

    ranker = lgb.LGBMRanker(**options)
    fit: dict[str, Any] = {"group": group_sizes(train[2]), "categorical_feature": categorical_columns(train[1])}
    if held[3].size and patience > 0:
        fit |= {
            "eval_X": held[0],
            "eval_y": held[3],
            "eval_group": [group_sizes(held[2])],
            "eval_at": [10],
            "callbacks": [lgb.early_stopping(10 * patience, verbose=False)],
        }
    ranker.fit(train[0], train[3], **fit)
    return ranker.booster_, int(ranker.best_iteration_ or options["n_estimators"])


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a {parameter: values} grid, the first key varying
    slowest (declaration order); one empty point for an empty grid."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def check_lightgbm(options: Mapping[str, Any], grid: Mapping[str, Any], backend: str) -> None:
    """Fail at construction, naming the key, rather than minutes into a fit:
    LightGBM itself only warns about a parameter it does not know."""
    if grid and backend != "lightgbm":
        raise ConfigError(f"model.lightgbm_grid applies to backend=lightgbm only, not {backend!r}")
    if not options and not grid:
        return
    known = lightgbm_parameters()
    for where, keys in (("model.lightgbm", options), ("model.lightgbm_grid", grid)):
        unknown = sorted(k for k in keys if k not in known)
        if unknown:
            raise ConfigError(f"{where}: unknown LightGBM parameter(s) {', '.join(unknown)}")
    for key, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"model.lightgbm_grid.{key}: give a non-empty list of values, got {values!r}")
        if any(not isinstance(v, bool | int | float | str) for v in values):
            raise ConfigError(f"model.lightgbm_grid.{key}: values must be numbers or strings, got {list(values)!r}")


def lightgbm_parameters() -> frozenset[str]:
    """Names LightGBM accepts: the scikit-learn wrapper's and every core parameter
    with its aliases (read from the library, so a new version's names count)."""
    import lightgbm as lgb

    names = set(lgb.LGBMRanker().get_params())
    aliases = getattr(getattr(lgb.basic, "_ConfigAliases", None), "_get_all_param_aliases", None)
    if aliases is not None:
        for name, others in aliases().items():
            names |= {name, *others}
    return frozenset(names)


def lightgbm_threads() -> int | None:
    """OMP_NUM_THREADS when set, else None (LightGBM's choice: every physical core).

    LightGBM's scikit-learn wrapper ignores the variable. On a busy 2-core machine
    its two OpenMP threads, spinning beside other work, made a MovieLens fit 6x
    slower and a 300-row fit 300x slower than one thread, for bit-identical trees
    (deterministic=true)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def point_label(point: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in point.items())


def point_diagnostics(point: Mapping[str, Any], score: float, iterations: int) -> dict[str, float]:
    label = point_label(point)
    return {f"lightgbm_grid/{label}/holdout_ndcg@10": score, f"lightgbm_grid/{label}/trees": float(iterations)}


def chosen_diagnostics(grid: Mapping[str, Sequence[Any]], point: Mapping[str, Any], index: int) -> dict[str, float]:
    """The chosen point as numbers: its position in declaration order, and each
    value (a string value by its position in that parameter's list)."""
    out = {"lightgbm_grid/chosen_point": float(index)}
    for key, value in point.items():
        number = float(list(grid[key]).index(value)) if isinstance(value, str) else float(value)
        out[f"lightgbm_grid/chosen/{key}"] = number
    return out


def feature_matrix(pairs: Pairs) -> np.ndarray:
    return np.concatenate([pairs.numeric.astype(np.float64), pairs.categorical.astype(np.float64)], axis=1)


def categorical_columns(pairs: Pairs) -> list[int]:
    """LightGBM treats these columns as categories; the item id is left numeric, as a
    category with thousands of levels over few rows overfits."""
    start = pairs.numeric.shape[1]
    return list(range(start + 1, start + pairs.categorical.shape[1]))


def group_sizes(group: np.ndarray) -> np.ndarray:
    """Rows are grouped by (window, user) in order; LightGBM wants run lengths."""
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    return np.diff(np.r_[starts, group.size])
