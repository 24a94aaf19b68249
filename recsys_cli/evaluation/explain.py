"""Why a two-stage ranker ranks as it does, on labelled candidate pairs.

The pairs are the ones the ranker scores in production (every generator's
candidates of a user), labelled by the window's ground truth, so every figure is
about the question the ranker answers: feature importance (tree gain and splits,
contributions to these predictions, the ranking quality each feature is worth),
partial dependence of the engagement probability on the top features, and how
well the probabilities separate (precision-recall) and match (reliability) what
users then did.

Gain, splits and per-prediction contributions exist for the LightGBM backend
only; permutation importance and partial dependence need just a scorer and cover
the neural one as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.evaluation import calibration as cal
from recsys_cli.evaluation.dependence import grid, individual_curves
from recsys_cli.evaluation.importance import contributions, permutation_importance, shares, tree_importance
from recsys_cli.evaluation.ranker_view import RankerView
from recsys_cli.models.candidates import Pairs

LIST_K = 10  # candidate-list NDCG@10, as the ranker's early stopping
OTHER, EXPECTED = "(other features)", "(expected value)"
CONTRIBUTION_COLUMNS = [
    Col.USER,
    Col.ITEM,
    "rank",
    "raw_score",
    "probability",
    "engaged",
    "feature",
    "value",
    "contribution",
]


@dataclass(frozen=True)
class Settings:
    top: int = 8  # features drawn, tabled and kept per prediction
    k: int = 10  # each user's list whose predictions are broken down
    grid_points: int = 20
    dependence_rows: int = 4000  # pairs sampled for the partial-dependence curves
    permutation_rows: int = 30_000  # pairs at most (of whole users) for permutation importance
    contribution_rows: int = 10_000  # pairs sampled for the mean |contribution|
    bins: int = 15
    curve_points: int = 200
    seed: int = 0


@dataclass
class Labelled:
    """Candidate pairs of the sampled users with the learner's input, scores and labels."""

    pairs: Pairs
    x: np.ndarray
    raw: np.ndarray
    probability: np.ndarray
    engaged: np.ndarray  # bool


@dataclass
class Explanation:
    summary: dict[str, Any]
    contributions: pl.DataFrame  # CONTRIBUTION_COLUMNS; empty for the neural backend


def labelled_pairs(view: RankerView, users: np.ndarray, truth: sp.csr_matrix) -> Labelled:
    """The ranker's candidates of `users` (vocabulary indices), each labelled by
    whether the user engaged with it in the window (`truth` row i is users[i])."""
    pairs = view.pairs(users)
    engaged = np.asarray(truth[pairs.rows, pairs.items]).ravel() > 0
    x = view.matrix(pairs)
    raw = view.raw(x)
    return Labelled(pairs, x, raw, view.probability(raw), engaged)


def explain(view: RankerView, data: Labelled, user_ids: np.ndarray, item_ids: np.ndarray, s: Settings) -> Explanation:
    """Every figure of the explanation (`user_ids`/`item_ids`: the token of each
    vocabulary index, for the contributions table)."""
    rng = np.random.default_rng(s.seed)
    table, sizes = _importance(view, data, s, rng)
    key = "gain" if view.is_lightgbm else "permutation_ndcg_drop"
    order = np.argsort(-np.asarray(table[key]), kind="stable")
    notes = [] if view.is_lightgbm else ["gain, split counts and contributions are LightGBM-only; this is a DCN ranker"]
    summary = {
        "backend": view.backend,
        "calibration_method": str(view.model.params["calibration"]),
        "pairs": _counts(data),
        "ranked_by": key,
        "importance_sample": sizes,
        "importance": [{name: _item(v[i]) for name, v in table.items()} for i in order],
        "partial_dependence": _dependence(view, data, order[: s.top], s, rng),
        "precision_recall": precision_recall(data.probability, data.engaged, s.curve_points),
        "calibration": _calibration(data, s.bins),
        "settings": vars(s),
        "notes": notes,
    }
    frame = _contribution_frame(view, data, user_ids, item_ids, s) if view.is_lightgbm else _empty_frame()
    return Explanation(summary, frame)


def _counts(data: Labelled) -> dict[str, Any]:
    users = np.unique(data.pairs.rows)
    with_positive = np.unique(data.pairs.rows[data.engaged])
    return {
        "users": int(users.size),
        "users_with_positive": int(with_positive.size),
        "pairs": int(data.engaged.size),
        "positives": int(data.engaged.sum()),
        "positive_rate": float(data.engaged.mean()) if data.engaged.size else None,
    }


def _importance_rows(rows: np.ndarray, limit: int) -> np.ndarray:
    """The pairs of the first sampled users (a random sample already) up to `limit` pairs."""
    keep = np.arange(rows.size) < limit
    last = rows[keep][-1] if keep.any() else -1
    return np.flatnonzero(rows <= last) if rows.size > limit else np.arange(rows.size)


def _importance(
    view: RankerView, data: Labelled, s: Settings, rng: np.random.Generator
) -> tuple[dict[str, Any], dict[str, int]]:
    """Per feature: gain, splits and their shares, mean |contribution| over a sample
    of pairs (LightGBM), and the rise of the candidate lists' losses when the
    feature is shuffled (whole lists of the first sampled users: both are costly,
    a model scoring or a SHAP pass over the pairs each time)."""
    subset = _importance_rows(data.pairs.rows, s.permutation_rows)
    x, group, engaged = data.x[subset], data.pairs.rows[subset], data.engaged[subset]

    def losses(matrix: np.ndarray) -> np.ndarray:
        from recsys_cli.models.dcn import grouped_ndcg

        raw = view.raw(matrix)
        return np.array([-grouped_ndcg(group, raw, engaged, LIST_K), cal.log_loss(view.probability(raw), engaged)])

    rises = permutation_importance(losses, x, range(x.shape[1]), rng)
    sizes = {"permutation_pairs": int(subset.size), "permutation_users": int(np.unique(group).size)}
    table: dict[str, Any] = {"feature": np.asarray(view.names, dtype=object)}
    if view.is_lightgbm:
        gain, split = tree_importance(view.boosters)
        sample = rng.choice(data.x.shape[0], min(data.x.shape[0], s.contribution_rows), replace=False)
        mean_abs = np.abs(contributions(view.boosters, data.x[np.sort(sample)])[:, :-1]).mean(axis=0)
        sizes["contribution_pairs"] = int(sample.size)
        table |= {
            "gain": gain,
            "gain_share": shares(gain),
            "split": split,
            "split_share": shares(split),
            "mean_abs_contribution": mean_abs,
            "contribution_share": shares(mean_abs),
        }
    table |= {"permutation_ndcg_drop": rises[:, 0], "permutation_log_loss_rise": rises[:, 1]}
    return table, sizes


def _dependence(
    view: RankerView, data: Labelled, columns: np.ndarray, s: Settings, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Partial dependence of the raw score and of the calibrated probability on each
    column, over a sample of pairs, with the 10th-90th percentile band of the
    individual probability curves."""
    rows = data.x.shape[0]
    sample = np.sort(rng.choice(rows, min(rows, s.dependence_rows), replace=False)) if rows else np.zeros(0, int)
    x = data.x[sample]
    out = []
    for column in columns:
        values = grid(x[:, column], s.grid_points, bool(view.categorical[column]))
        raw = individual_curves(view.raw, x, int(column), values)
        probability = view.probability(raw.ravel()).reshape(raw.shape)
        out.append(
            {
                "feature": view.names[column],
                "categorical": bool(view.categorical[column]),
                "rows": int(sample.size),
                "grid": values.tolist(),
                "mean_raw": raw.mean(axis=0).tolist(),
                "mean_probability": probability.mean(axis=0).tolist(),
                "ice_low": np.percentile(probability, 10, axis=0).tolist(),
                "ice_high": np.percentile(probability, 90, axis=0).tolist(),
            }
        )
    return out


def precision_recall(probability: np.ndarray, engaged: np.ndarray, points: int = 200) -> dict[str, Any]:
    """Average precision and the precision-recall curve (thinned to about `points`
    points) of the probabilities as a detector of engagement; the base rate is
    the precision of guessing."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    base = float(engaged.mean()) if engaged.size else None
    if not engaged.any() or engaged.all():
        return {"available": False, "base_rate": base, "note": "the pairs hold no positive (or no negative) label"}
    precision, recall, _ = precision_recall_curve(engaged, probability)
    keep = np.unique(np.linspace(0, precision.size - 1, min(points, precision.size)).round().astype(int))
    return {
        "available": True,
        "average_precision": float(average_precision_score(engaged, probability)),
        "base_rate": base,
        "precision": precision[keep].tolist(),
        "recall": recall[keep].tolist(),
    }


def _calibration(data: Labelled, bins: int) -> dict[str, Any]:
    p, y = data.probability, data.engaged.astype(np.float64)
    if p.size == 0:
        return {"available": False, "note": "no candidate pairs"}
    return {
        "available": True,
        "pairs": int(p.size),
        "bins": bins,
        "ece": cal.expected_calibration_error(p, y, bins),
        "brier": cal.brier_score(p, y),
        "log_loss": cal.log_loss(p, y),
        "predicted": float(p.mean()),
        "observed": float(y.mean()),
        "reliability": cal.reliability(p, y, bins),
    }


def top_of_lists(rows: np.ndarray, items: np.ndarray, raw: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of each user's first k candidates in the ranker's order (raw score
    down, item index breaking ties) and their 1-based ranks.

    >>> top_of_lists(np.array([0, 0, 0, 1]), np.array([5, 6, 7, 5]), np.array([0.1, 0.9, 0.5, 0.2]), 2)
    (array([1, 2, 3]), array([1, 2, 1]))
    """
    order = np.lexsort((items, -raw, rows))
    sorted_rows = rows[order]
    starts = np.r_[0, np.flatnonzero(sorted_rows[1:] != sorted_rows[:-1]) + 1] if rows.size else np.zeros(0, int)
    sizes = np.diff(np.r_[starts, rows.size])
    rank = np.arange(rows.size) - np.repeat(starts, sizes) + 1
    keep = rank <= k
    return order[keep], rank[keep]


def _contribution_frame(
    view: RankerView, data: Labelled, user_ids: np.ndarray, item_ids: np.ndarray, s: Settings
) -> pl.DataFrame:
    """Long table of each sampled user's top-k predictions broken down: the `top`
    features that moved each one most (either way), the rest summed as one row, and
    the expected value; a prediction's rows sum to its raw score."""
    index, rank = top_of_lists(data.pairs.rows, data.pairs.items, data.raw, s.k)
    parts = contributions(view.boosters, data.x[index])
    n, top = index.size, min(s.top, data.x.shape[1])
    strongest = np.argsort(-np.abs(parts[:, :-1]), axis=1, kind="stable")[:, :top]
    picked = np.take_along_axis(parts, strongest, axis=1)
    values = np.take_along_axis(data.x[index], strongest, axis=1).astype(np.float64)
    rest = parts[:, :-1].sum(axis=1) - picked.sum(axis=1)
    names = np.asarray(view.names, dtype=object)
    features = np.column_stack([names[strongest], np.full(n, OTHER, object), np.full(n, EXPECTED, object)])
    width = top + 2
    frame = pl.DataFrame(
        {
            Col.USER: np.repeat(user_ids[data.pairs.users[index]], width).tolist(),
            Col.ITEM: np.repeat(item_ids[data.pairs.items[index]], width).tolist(),
            "rank": np.repeat(rank, width),
            "raw_score": np.repeat(data.raw[index], width),
            "probability": np.repeat(data.probability[index], width),
            "engaged": np.repeat(data.engaged[index], width),
            "feature": features.ravel().tolist(),
            "value": np.column_stack([values, np.full((n, 2), np.nan)]).ravel(),
            "contribution": np.column_stack([picked, rest, parts[:, -1]]).ravel(),
        },
        schema_overrides={Col.USER: pl.String, Col.ITEM: pl.String, "feature": pl.String, "rank": pl.Int32},
    )
    return frame.with_columns(pl.col("value").fill_nan(None)).sort(Col.USER, "rank", maintain_order=True)


def _empty_frame() -> pl.DataFrame:
    schema = {c: pl.Float64 for c in CONTRIBUTION_COLUMNS} | {
        Col.USER: pl.String,
        Col.ITEM: pl.String,
        "rank": pl.Int32,
        "engaged": pl.Boolean,
        "feature": pl.String,
    }
    return pl.DataFrame(schema=schema)


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
