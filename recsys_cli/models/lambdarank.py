"""LambdaMART through LightGBM, the ranker stage's second backend: its settings,
the checks that name a bad one at construction, a grid of them, one fit with
early stopping on held-out users' candidate lists, and the k-fold cross-validation
over users that can choose a grid point."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from recsys_cli.errors import ConfigError
from recsys_cli.models.candidates import Pairs
from recsys_cli.models.dcn import grouped_ndcg

# (feature matrix, group, label, weight or None) with rows grouped by (window, user),
# in order. A weight scales a row's gradient (all rows of a list share one).
Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]

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


class PointFit(NamedTuple):
    booster: Any
    trees: int  # the number to predict with
    raw: np.ndarray  # scores of the held-out rows
    ndcg: float  # the held-out users' candidate-list NDCG@10 (0 without held-out rows)


def fit_point(
    options: Mapping[str, Any],
    train: Rows,
    held: Rows,
    categorical: Sequence[int],
    patience: int,
    names: Sequence[str] | None = None,
) -> PointFit:
    """One booster fitted on `train`, early-stopped on the held-out groups' NDCG@10
    after 10 x patience rounds (none when patience is 0), and scored on them. `names`:
    the columns' names, which the booster keeps (its text model lists them)."""
    import lightgbm as lgb

    ranker = lgb.LGBMRanker(**options)
    fit: dict[str, Any] = {"group": group_sizes(train[1]), "categorical_feature": list(categorical)}
    if train[3] is not None:
        fit["sample_weight"] = train[3]
    if names is not None:
        fit["feature_name"] = list(names)
    if held[2].size and patience > 0:
        fit |= {
            "eval_X": held[0],
            "eval_y": held[2],
            "eval_group": [group_sizes(held[1])],
            "eval_at": [10],
            "callbacks": [lgb.early_stopping(10 * patience, verbose=False)],
        }
    ranker.fit(train[0], train[2], **fit)
    trees = int(ranker.best_iteration_ or options["n_estimators"])
    raw = np.asarray(ranker.booster_.predict(held[0], num_iteration=trees), dtype=np.float64)
    return PointFit(ranker.booster_, trees, raw, grouped_ndcg(held[1], raw, held[2], 10) if held[2].size else 0.0)


def user_folds(users: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The cross-validation fold (0..k-1) of each row's user. Distinct users are
    shuffled by the seed and dealt in turn, so fold sizes differ by one user at most
    and a user sits in the same fold in every labelled window."""
    distinct, inverse = np.unique(users, return_inverse=True)
    if distinct.size < k:
        raise ConfigError(
            f"model.lightgbm_cv_folds={k}: the labelled windows hold only {distinct.size} user(s) to split into folds"
        )
    fold = np.empty(distinct.size, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(distinct.size)] = np.arange(distinct.size) % k
    return fold[inverse]


class CrossValidation(NamedTuple):
    fits: list[list[PointFit]]  # [point][fold]: fitted on all folds but one

    @property
    def ndcg(self) -> np.ndarray:
        """(points, folds) NDCG@10 on the fold left out."""
        return np.array([[fit.ndcg for fit in row] for row in self.fits])

    @property
    def trees(self) -> np.ndarray:
        """(points, folds) trees kept by early stopping."""
        return np.array([[fit.trees for fit in row] for row in self.fits], dtype=np.float64)

    def out_of_fold(self, point: int, fold: np.ndarray) -> np.ndarray:
        """Every row's score from the fit that held its user out."""
        raw = np.empty(fold.size)
        for j, fit in enumerate(self.fits[point]):
            raw[fold == j] = fit.raw
        return raw


def cross_validate(
    options: Sequence[Mapping[str, Any]],
    rows: Rows,
    fold: np.ndarray,
    categorical: Sequence[int],
    patience: int,
    names: Sequence[str] | None = None,
) -> CrossValidation:
    """Each point fitted on all folds but one, early-stopped on and scored by the
    one left out; the fits are kept, so the chosen point's can serve as an ensemble."""
    k = int(fold.max()) + 1
    fits: list[list[PointFit]] = [[] for _ in options]
    for j in range(k):
        out = fold == j
        train, held = subset_rows(rows, ~out), subset_rows(rows, out)
        for i, point in enumerate(options):
            fits[i].append(fit_point(point, train, held, categorical, patience, names))
    return CrossValidation(fits)


def subset_rows(rows: Rows, mask: np.ndarray) -> Rows:
    return rows[0][mask], rows[1][mask], rows[2][mask], None if rows[3] is None else rows[3][mask]


def recency_weights(group: np.ndarray, n_users: int, half_life: float | None) -> np.ndarray | None:
    """Each row's weight by the age of its labelled window: window j (0 the newest,
    the ranker's groups are user + j * n_users) weighs 0.5 ** (j / half_life), so
    older behaviour teaches less where tastes drift. None (every list alike)
    without a half-life."""
    if half_life is None:
        return None
    return np.power(0.5, (group // max(n_users, 1)) / float(half_life))


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


def check_cv_folds(folds: Any, grid: Mapping[str, Sequence[Any]], backend: str, ensemble: bool = False) -> None:
    """Cross-validation chooses among grid points, and may keep the chosen point's
    fold models as an ensemble: refuse settings where it would do neither (it would
    only multiply the fitting time)."""
    if folds is None:
        if ensemble:
            raise ConfigError(
                "model.lightgbm_cv_ensemble averages the cross-validation's fold models: set model.lightgbm_cv_folds"
            )
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"model.lightgbm_cv_folds: give an integer of 2 or more, or null, got {folds!r}")
    if backend != "lightgbm":
        raise ConfigError(f"model.lightgbm_cv_folds applies to backend=lightgbm only, not {backend!r}")
    if len(grid_points(grid)) < 2 and not ensemble:
        raise ConfigError(
            "model.lightgbm_cv_folds chooses among the points of model.lightgbm_grid: give a grid of two or more points"
        )


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


def point_diagnostics(point: Mapping[str, Any], ndcg: float, trees: float, scored_on: str) -> dict[str, float]:
    """A point's NDCG@10 where it was scored (`holdout` or `cv`) and its trees."""
    label = point_label(point)
    return {f"lightgbm_grid/{label}/{scored_on}_ndcg@10": ndcg, f"lightgbm_grid/{label}/trees": float(trees)}


def cv_diagnostics(points: Sequence[Mapping[str, Any]], ndcg: np.ndarray, trees: np.ndarray) -> dict[str, float]:
    """Each point's mean and spread of NDCG@10 over the folds, and its mean trees:
    the spread says how far apart two points must be to mean anything."""
    out = {"lightgbm_grid/cv_folds": float(ndcg.shape[1])}
    for point, scores, sizes in zip(points, ndcg, trees, strict=True):
        out |= point_diagnostics(point, float(scores.mean()), float(sizes.mean()), "cv")
        out[f"lightgbm_grid/{point_label(point)}/cv_ndcg@10_sd"] = float(scores.std())
    return out


def chosen_diagnostics(grid: Mapping[str, Sequence[Any]], point: Mapping[str, Any], index: int) -> dict[str, float]:
    """The chosen point as numbers: its position in declaration order, and each
    value (a string value by its position in that parameter's list)."""
    out = {"lightgbm_grid/chosen_point": float(index)}
    for key, value in point.items():
        number = float(list(grid[key]).index(value)) if isinstance(value, str) else float(value)
        out[f"lightgbm_grid/chosen/{key}"] = number
    return out


def feature_matrix(pairs: Pairs) -> np.ndarray:
    """float32, LightGBM's own precision: half the memory of float64, the same bins
    (the numeric features are float32 already; the codes are far below 2^24)."""
    return np.concatenate([pairs.numeric, pairs.categorical.astype(np.float32)], axis=1)


def categorical_columns(pairs: Pairs, leading_id: bool = True) -> list[int]:
    """LightGBM treats these columns as categories; the item id (the first categorical
    column, unless an ablation dropped it: `leading_id`) is left numeric, as a
    category with thousands of levels over few rows overfits."""
    start = pairs.numeric.shape[1]
    return list(range(start + int(leading_id), start + pairs.categorical.shape[1]))


def group_sizes(group: np.ndarray) -> np.ndarray:
    """Rows are grouped by (window, user) in order; LightGBM wants run lengths."""
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    return np.diff(np.r_[starts, group.size])
