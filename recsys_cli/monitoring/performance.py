"""Performance and fairness drift: is the production model still as good as it was?

The model is scored twice under one protocol: on the window just after its
training cutoff (what it scored when it was fresh) and on the newest window of
the lake. Both use the split's ground truth (`splits.targets.ground_truth`), the
evaluation's index space with items the model cannot know as misses
(`models.validation.Targets`) and the shared metric code
(`evaluation.metrics.ranking_metrics`), so the reference window reproduces what
`recsys evaluate` measured on the same window.

The two windows hold different users, so a change is judged with an
independent-samples bootstrap: each window's users are resampled on their own
(`evaluation.intervals.resample`, a seed each) and the r-th resampled mean of one
is set against the r-th of the other. A drop is significant when the whole
interval of current - reference lies below zero; `min_relative_drop` adds a
floor on its size, since at a large shop's user counts a drop far too small to
act on is still significant.

Fairness drift reads the segment gap `recsys evaluate` reports
(`evaluation.fairness.user_gaps`: best minus worst segment on one metric) in
each window, over the segments large enough in both, and whether it widened:
the interval of the change in gap, from the same per-window resamples.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.errors import RecsysError
from recsys_cli.evaluation import intervals, segments
from recsys_cli.evaluation.fairness import Thresholds, user_gaps
from recsys_cli.evaluation.metrics import hits, ranking_metrics, relevant_counts
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets
from recsys_cli.monitoring.promotions import instant
from recsys_cli.splits.base import PART, TEST, TRAIN
from recsys_cli.splits.targets import TargetSpec, ground_truth


class PerformanceError(RecsysError):
    """A window that cannot be scored (empty, reversed), or a metric not computed."""


@dataclass
class WindowTruth(Targets):
    """One window's evaluated users and ground truth (rows aligned with `users`),
    the items recommendations must leave out for them, and what was left out of
    the truth and why (`counts`)."""

    # (len(users), n_items) 1 where the user had a seen event with the item before the
    # window: out of the truth, so out of the recommendations too (`window_scores`).
    excluded: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The counts, plus the share of known users' positives on items the model
        does not know: a staleness signal (products launched after its cutoff)."""
        known = self.counts["known_user_positives"]
        return self.counts | {"unknown_item_share": self.counts["unknown_item_positives"] / known if known else None}


def window_truth(
    events: pl.LazyFrame,
    users: Vocabulary,
    items: Vocabulary,
    start: datetime,
    end: datetime,
    target: TargetSpec,
    drop_unknown_items: bool = False,
) -> WindowTruth:
    """The target's positives of known users in [start, end), in the model's index space.

    What is left out, and why:

    - with `target.exclude_seen`, an item the user had a `target.seen_events` event
      with (by default the positive types; every type for a discovery target) at any
      time before `start` in the lake. The model's own `seen` stops at its cutoff,
      while the lake knows what the user did since; counting an item bought last
      week as a discovery would reward a stale model for re-recommending it. Those
      items are also returned as `excluded`, so `window_scores` keeps them out of
      the lists as well: both sides exclude the same, as in `recsys evaluate`.
    - users the model does not know (index 0): they get the popularity fallback, a
      different question (cold start); counted in `unknown_users`.
    - items the model does not know stay in the truth as misses (columns past the
      catalogue, as `recsys evaluate` does), so a stale catalogue lowers the score;
      `drop_unknown_items` leaves them out instead (and users left with nothing).
      Either way they are counted (`unknown_item_positives`).
    """
    start, end = instant(start), instant(end)
    if start >= end:
        raise PerformanceError(f"monitor window: start {start.isoformat()} must be before end {end.isoformat()}")
    ts = pl.col(Col.TS)
    assigned = events.filter(ts < end).with_columns(
        pl.when(ts < start).then(pl.lit(TRAIN)).otherwise(pl.lit(TEST)).alias(PART)
    )
    coded = [users.encode(Col.USER).alias("u"), items.encode(Col.ITEM).alias("i")]
    positives = ground_truth(assigned, target, TEST).select(Col.USER, Col.ITEM, *coded)
    in_window = assigned.filter((pl.col(PART) == TEST) & target.is_positive()).select(Col.USER, Col.ITEM).unique()
    seen = (
        assigned.filter((pl.col(PART) == TRAIN) & target.excluded())
        .select(Col.USER, Col.ITEM)
        .unique()
        .join(positives.filter(pl.col("u") > 0).select(Col.USER).unique(), on=Col.USER, how="semi")
        .select(Col.USER, *coded)
        .filter(pl.col("i") > 0)
    )
    truth, total, history = pl.collect_all([positives, in_window.select(pl.len()), seen])
    known = truth.filter(pl.col("u") > 0)
    if drop_unknown_items:
        known = known.filter(pl.col("i") > 0)
    if known.height == 0:
        raise PerformanceError(f"monitor window {start.date()}..{end.date()}: no positives of users the model knows")
    targets = Targets.from_frame(known.select(Col.USER, Col.ITEM), TrainData(users, items, sp.csr_matrix((0, 0))))
    unknown_users = truth.filter(pl.col("u") == 0)
    unknown_items = truth.filter((pl.col("u") > 0) & (pl.col("i") == 0))
    counts = {
        "users": int(targets.users.size),
        "positives": int(total.item()),
        "seen_excluded": int(total.item() - truth.height),
        "unknown_users": int(unknown_users[Col.USER].n_unique()),
        "unknown_user_positives": unknown_users.height,
        "known_user_positives": truth.height - unknown_users.height,
        "unknown_items": int(unknown_items[Col.ITEM].n_unique()),
        "unknown_item_positives": unknown_items.height,
    }
    excluded = _rows_matrix(history, known[Col.USER].unique().sort(), len(items))
    return WindowTruth(targets.users, targets.truth, excluded, counts)


def _rows_matrix(pairs: pl.DataFrame, user_ids: pl.Series, n_items: int) -> sp.csr_matrix:
    """(len(user_ids), n_items) 1 at each (user, item index `i`) pair, rows in `user_ids` order."""
    rows = pl.DataFrame({Col.USER: user_ids}).with_row_index("row")
    coded = pairs.join(rows, on=Col.USER)
    return sp.csr_matrix(
        (np.ones(coded.height, np.float32), (coded["row"].to_numpy(), coded["i"].to_numpy())),
        shape=(user_ids.len(), n_items),
    )


def window_scores(
    model: Recommender,
    users: np.ndarray,
    truth: sp.csr_matrix,
    k: int | Sequence[int] = 10,
    batch: int = 4096,
    exclude: sp.csr_matrix | None = None,
) -> dict[str, np.ndarray]:
    """Every ranking metric (`ndcg@k`, `recall@k`, `precision@k`, `hitrate@k`,
    `mrr@k`, `map@k`) per user, at each k, from the model's top lists over the
    whole catalogue; `exclude` (a `WindowTruth.excluded`) is kept out of the lists
    on top of the model's own `seen`."""
    ks = [k] if isinstance(k, int) else sorted(set(k))
    assert model.items is not None
    if not ks or min(ks) < 1 or max(ks) > len(model.items) - 1:
        raise PerformanceError(f"monitor k {ks}: must lie in 1..{len(model.items) - 1}, the items the model knows")
    recs = _rank(model, np.asarray(users, dtype=np.int64), max(ks), batch, _new_exclusions(model, users, exclude))
    return ranking_metrics(hits(recs, truth), relevant_counts(truth), ks)


def _new_exclusions(model: Recommender, users: np.ndarray, exclude: sp.csr_matrix | None) -> sp.csr_matrix | None:
    """The exclusions the model does not already make itself (what happened after its cutoff)."""
    if exclude is None or exclude.nnz == 0:
        return None
    if model.seen is not None:
        exclude = (exclude - exclude.multiply(model.seen[np.asarray(users)] > 0)).tocsr()
        exclude.eliminate_zeros()
    return exclude if exclude.nnz else None


def _rank(model: Recommender, users: np.ndarray, k: int, batch: int, exclude: sp.csr_matrix | None) -> np.ndarray:
    """Top-k per user, a batch at a time; with exclusions each batch asks for as many
    more items as its users have exclusions and keeps the first k allowed ones."""
    parts = [np.zeros((0, k), np.int64)]
    for start in range(0, users.size, batch):
        rows = slice(start, start + batch)
        extra = exclude[rows] if exclude is not None else None
        more = int(extra.getnnz(axis=1).max()) if extra is not None and extra.nnz else 0
        top, _ = model.recommend(users[rows], k + more)
        if more:
            allowed_first = np.argsort(hits(top, extra), axis=1, kind="stable")
            top = np.take_along_axis(top, allowed_first, axis=1)
        parts.append(top[:, :k].astype(np.int64))
    return np.concatenate(parts)


def performance_drift(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_relative_drop: float = 0.0,
) -> dict[str, Any]:
    """Per metric (those of both windows): each window's mean with its interval,
    current - reference and current / reference - 1 with theirs, and
    `significant_drop`: the difference's whole interval below 0 and a relative
    drop of at least `min_relative_drop`. `dropped` lists the metrics that did.
    JSON-ready (undefined values are None)."""
    names = [m for m in reference if m in current]
    if not names:
        raise PerformanceError("performance drift: the two windows share no metric")
    windows = zip((reference, current), _seeds(seed), ("reference", "current"), strict=True)
    draws = [_window_means(values, names, resamples, s, label) for values, s, label in windows]
    metrics = {}
    for j, name in enumerate(names):
        ref, cur = float(np.mean(reference[name])), float(np.mean(current[name]))
        ref_draws, cur_draws = draws[0][:, j], draws[1][:, j]
        difference = _estimate(cur - ref, cur_draws - ref_draws, confidence)
        relative = _estimate(_relative(cur, ref), _relative(cur_draws, ref_draws), confidence)
        drop = -relative["value"] if relative["value"] is not None else None
        significant = bool(difference["high"] is not None and difference["high"] < 0)
        significant &= drop is not None and drop >= min_relative_drop
        metrics[name] = {
            "reference": _estimate(ref, ref_draws, confidence),
            "current": _estimate(cur, cur_draws, confidence),
            "difference": difference,
            "relative": relative,
            "relative_change": relative["value"],
            "significant_drop": significant,
        }
    return {
        "users": {"reference": int(np.size(reference[names[0]])), "current": int(np.size(current[names[0]]))},
        "bootstrap": {"unit": "user", "resamples": resamples, "confidence": confidence, "seed": seed},
        "min_relative_drop": min_relative_drop,
        "metrics": metrics,
        "dropped": [name for name, m in metrics.items() if m["significant_drop"]],
    }


def _seeds(seed: int) -> tuple[int, int]:
    """A seed per window: one seed for both would draw the same user positions in two
    windows of one size, pairing users who are not pairs."""
    ref, cur = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2))
    return ref, cur


def _window_means(
    values: Mapping[str, np.ndarray], names: Sequence[str], resamples: int, seed: int, label: str
) -> np.ndarray:
    table = np.column_stack([np.asarray(values[n], dtype=np.float64) for n in names])
    if table.shape[0] == 0:
        raise PerformanceError(f"performance drift: the {label} window has no evaluated users")
    return intervals.resample(table, resamples, seed).means


def _relative(a: Any, b: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, np.divide(a, np.where(b != 0, b, 1.0)) - 1.0, np.nan)


def _estimate(value: Any, draws: np.ndarray, confidence: float) -> dict[str, float | None]:
    low, high = intervals.interval(draws, confidence)
    return {"value": _number(value), "low": _number(low), "high": _number(high)}


def _number(value: Any) -> float | None:
    x = float(value)
    return x if np.isfinite(x) else None


def segment_drift(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    ref_segments: np.ndarray | Sequence[str | None],
    cur_segments: np.ndarray | Sequence[str | None],
    metric: str = "ndcg@10",
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_users: int = 20,
    min_relative_widening: float = 0.0,
    attribute: str = "segment",
    max_groups: int = 50,
) -> dict[str, Any]:
    """Fairness drift of one user attribute (`ref_segments`/`cur_segments`: a label
    per evaluated user, None for unknown) on `metric`.

    Per segment, its users, mean and interval in each window and the change. The
    gap (best minus worst segment, as `recsys evaluate` reports it) is taken over
    the segments with at least `min_users` users in both windows, not `unknown`,
    so both windows compare the same segments; `gap_widened` is true when the change
    in gap has its whole interval above 0 and grew by at least
    `min_relative_widening` of the reference gap. JSON-ready.
    """
    values = [_metric(window, metric, label) for window, label in ((reference, "reference"), (current, "current"))]
    labels = [pl.Series(np.asarray(s, dtype=object)).cast(pl.String) for s in (ref_segments, cur_segments)]
    for v, s, label in zip(values, labels, ("reference", "current"), strict=True):
        if v.size != s.len():
            raise PerformanceError(f"segment drift: {s.len()} {label} segment labels for {v.size} users")
    grouping = segments.from_values(attribute, pl.concat(labels), max_groups)
    cut = values[0].size
    groupings = [
        segments.Grouping(attribute, grouping.labels, codes) for codes in (grouping.codes[:cut], grouping.codes[cut:])
    ]
    seeds = _seeds(seed)
    tables = [segments.user_table(g, {metric: v}) for g, v in zip(groupings, values, strict=True)]
    draws = [_group_means(g, v, resamples, s) for g, v, s in zip(groupings, values, seeds, strict=True)]
    eligible = [
        j
        for j, label in enumerate(grouping.labels)
        if label != segments.UNKNOWN and min(t[j]["users"] for t in tables) >= max(min_users, 1)
    ]
    gaps = [
        _gap(attribute, metric, [t[j] for j in eligible], d[:, eligible], v, confidence)
        for t, d, v in zip(tables, draws, values, strict=True)
    ]
    change = _gap_change(draws, eligible, gaps, confidence, min_relative_widening)
    rows = [_segment_row(metric, j, j in eligible, tables, draws, confidence) for j in range(grouping.n_groups)]
    return {
        "attribute": attribute,
        "metric": metric,
        "min_users": min_users,
        "bootstrap": {"unit": "user", "resamples": resamples, "confidence": confidence, "seed": seed},
        "segments": rows,
        "reference_gap": gaps[0],
        "current_gap": gaps[1],
        **change,
    }


def _metric(window: Mapping[str, np.ndarray], metric: str, label: str) -> np.ndarray:
    if metric not in window:
        raise PerformanceError(f"segment drift: no {metric!r} in the {label} window; computed: {sorted(window)}")
    values = np.asarray(window[metric], dtype=np.float64)
    if values.size == 0:
        raise PerformanceError(f"segment drift: the {label} window has no evaluated users")
    return values


def _group_means(grouping: segments.Grouping, values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, groups) bootstrap means of each group, drawn jointly over the window's users."""
    members = grouping.indicator()
    numerators = members.multiply(values[:, None]).tocsr()
    return intervals.resample(values[:, None], resamples, seed, numerators, members).ratios


def _gap(
    attribute: str, metric: str, rows: list[dict[str, Any]], draws: np.ndarray, values: np.ndarray, confidence: float
) -> dict[str, Any] | None:
    """`user_gaps`'s best, worst and gap with its interval, over the given segments only."""
    found = user_gaps(
        {attribute: rows},
        metric,
        float(values.mean()),
        {attribute: draws},
        Thresholds(max_relative_gap=None, gap_attributes=[], min_group_users=0),
        confidence,
    )
    if not found:
        return None
    keep = ("groups", "best", "best_value", "worst", "worst_value", "gap", "low", "high", "relative_gap")
    return {key: _number(found[0][key]) if isinstance(found[0][key], float) else found[0][key] for key in keep}


def _gap_change(
    draws: list[np.ndarray],
    eligible: list[int],
    gaps: list[dict[str, Any] | None],
    confidence: float,
    min_relative_widening: float,
) -> dict[str, Any]:
    if gaps[0] is None or gaps[1] is None:
        return {"gap_change": None, "relative_gap_change": None, "gap_widened": False}
    with warnings.catch_warnings():  # a resample that drew no user of any segment has no gap: NaN, ignored
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = [np.nanmax(d[:, eligible], axis=1) - np.nanmin(d[:, eligible], axis=1) for d in draws]
    change = _estimate(gaps[1]["gap"] - gaps[0]["gap"], spread[1] - spread[0], confidence)
    relative = _number(_relative(gaps[1]["gap"], gaps[0]["gap"]))
    grew = relative is None or relative >= min_relative_widening  # from a zero gap, any widening counts
    widened = change["low"] is not None and change["low"] > 0 and grew
    return {"gap_change": change, "relative_gap_change": relative, "gap_widened": bool(widened)}


def _segment_row(
    metric: str, j: int, in_gap: bool, tables: list[list[dict[str, Any]]], draws: list[np.ndarray], confidence: float
) -> dict[str, Any]:
    """One segment in both windows, and current - reference with its interval."""
    ref, cur = (t[j] for t in tables)
    return {
        "segment": ref["group"],
        "in_gap": in_gap,
        "reference": {"users": ref["users"], **_estimate(ref[metric], draws[0][:, j], confidence)},
        "current": {"users": cur["users"], **_estimate(cur[metric], draws[1][:, j], confidence)},
        "difference": _estimate(cur[metric] - ref[metric], draws[1][:, j] - draws[0][:, j], confidence),
    }
