"""The whole offline evaluation of one set of recommendation lists, from arrays.

`recsys evaluate` (and its benchmark) hand in the lists, the window's truth,
the training popularity and the user and item groupings; everything else is
computed here in one pass: the hits are looked up once, every metric becomes a
per-user array once, intervals come from one bootstrap over users that also
yields the group means behind the fairness gaps, and segments are sparse
group sums over those arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.evaluation import beyond, fairness, intervals, segments
from recsys_cli.evaluation.metrics import RANKING_METRICS, hits, ranking_metrics, relevant_counts
from recsys_cli.evaluation.probabilities import PER_USER as CALIBRATION_COLUMNS
from recsys_cli.evaluation.probabilities import slate_calibration


@dataclass(frozen=True)
class Settings:
    ks: Sequence[int] = (5, 10, 20, 50, 100)
    primary: str = "ndcg@10"
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    calibration_bins: int = 15
    popularity_tiers: Mapping[str, float] = field(default_factory=lambda: {"head": 0.5, "torso": 0.8})
    thresholds: fairness.Thresholds = field(default_factory=fairness.Thresholds)

    def __post_init__(self) -> None:
        ks = list(self.ks)
        if not ks or min(ks) < 1 or len(set(ks)) != len(ks):
            raise ValueError(f"eval.ks must be distinct positive cut-offs, got {ks}")
        name, _, k = self.primary.partition("@")
        if name not in RANKING_METRICS or not k.isdigit() or int(k) not in ks:
            raise ValueError(
                f"eval.primary must be one of {'/'.join(RANKING_METRICS)} at one of eval.ks {ks}, got {self.primary!r}"
            )

    @property
    def primary_k(self) -> int:
        return int(self.primary.partition("@")[2])


@dataclass
class Inputs:
    """Lists and what they are judged against; item arrays are indexed by item
    (index 0 is the unknown item), user arrays by row of `recs`."""

    recs: np.ndarray  # (users, L) item indices, best first
    # (users, items + unknown items) 1 where the user engaged in the window; columns past
    # the catalogue are items the model cannot know (models.validation.Targets)
    truth: sp.csr_matrix
    popularity: np.ndarray  # (items,) training users per item
    n_train_users: int
    user_groups: list[segments.Grouping]
    item_groups: list[segments.Grouping] = field(default_factory=list)
    categories: np.ndarray | None = None  # (items,) category code, for intra-list diversity
    new_items: np.ndarray | None = None  # (items,) True for new products
    probabilities: np.ndarray | None = None  # (users, L) engagement probability of each slot
    scored: np.ndarray | None = None  # (users,) whose probabilities are the model's own
    calibration_note: str = ""


@dataclass
class Evaluation:
    summary: dict[str, Any]  # JSON-ready
    per_user: dict[str, np.ndarray]  # every per-user metric, rows as in Inputs


def evaluate(inputs: Inputs, settings: Settings, reporter: Reporter | None = None) -> Evaluation:
    reporter = reporter or NullReporter()
    recs, truth = inputs.recs, inputs.truth
    ks = sorted(settings.ks)
    _check(inputs, ks)
    reporter.start("metrics per user", total=1)
    hit = hits(recs, truth)
    per_user = ranking_metrics(hit, relevant_counts(truth), ks)
    per_user |= beyond.per_user(recs, ks, inputs.popularity, inputs.n_train_users, inputs.categories, inputs.new_items)
    calibration, calibration_columns = _calibration(inputs, hit, settings)
    reporter.advance()

    tiers = segments.popularity_tiers(inputs.popularity, settings.popularity_tiers)
    item_groups = [tiers, *inputs.item_groups]
    boot = _bootstrap(inputs, settings, per_user, calibration_columns, reporter)
    reporter.start("segments and fairness", total=1)
    headline = {
        name: _interval(values.mean(), boot.headline[name], settings.confidence) for name, values in per_user.items()
    }
    user_tables = _user_tables(inputs.user_groups, per_user | calibration_columns, settings, boot)
    item_tables = {g.name: segments.item_table(g, recs, hit, truth, inputs.popularity, ks) for g in item_groups}
    overall = float(per_user[settings.primary].mean())
    gaps = fairness.user_gaps(
        user_tables, settings.primary, overall, boot.groups, settings.thresholds, settings.confidence
    )
    exposure = fairness.exposure_checks(item_tables, settings.primary_k, settings.thresholds)
    for name in calibration_columns:
        calibration[f"{name}_interval"] = _interval(calibration[name], boot.calibration[name], settings.confidence)
    reporter.advance()
    summary = {
        "users": {
            "evaluated": int(recs.shape[0]),
            "cold_start": int(_cold_count(inputs.user_groups)),
            "with_relevant_items": int((truth.getnnz(axis=1) > 0).sum()),
        },
        "items": {"catalogue": int(inputs.popularity.size - 1), "training_users": int(inputs.n_train_users)},
        "ks": ks,
        "primary": settings.primary,
        "bootstrap": {
            "unit": "user",
            "resamples": settings.resamples,
            "confidence": settings.confidence,
            "seed": settings.seed,
        },
        "headline": headline,
        "beyond": _set_level(inputs, ks, headline),
        "calibration": calibration,
        "segments": {"users": user_tables, "items": item_tables},
        "fairness": {"user_gaps": gaps, "exposure": exposure},
        "flags": fairness.flag_lines(gaps, exposure),
    }
    return Evaluation(summary, per_user | calibration_columns)


def _check(inputs: Inputs, ks: Sequence[int]) -> None:
    n, length = inputs.recs.shape
    if inputs.truth.shape[0] != n:
        raise ValueError(f"{n} lists but {inputs.truth.shape[0]} rows of truth")
    if n == 0:
        raise ValueError("no users to evaluate")
    if max(ks) > length:
        raise ValueError(f"eval.ks {list(ks)} go beyond the {length} items each list holds")
    for g in inputs.user_groups:
        if g.codes.size != n:
            raise ValueError(f"user grouping {g.name!r} has {g.codes.size} rows for {n} users")


def _calibration(inputs: Inputs, hit: np.ndarray, settings: Settings) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if inputs.probabilities is None:
        return {"available": False, "note": inputs.calibration_note}, {}
    scored = inputs.scored if inputs.scored is not None else np.ones(inputs.recs.shape[0], dtype=bool)
    if not scored.any():
        return {"available": False, "note": "no evaluated user was scored with probabilities"}, {}
    summary, columns = slate_calibration(inputs.probabilities, hit, scored, settings.calibration_bins)
    return {"available": True, "note": inputs.calibration_note, **summary}, columns


@dataclass
class _Boot:
    headline: dict[str, np.ndarray]  # metric -> resampled means
    calibration: dict[str, np.ndarray]  # column -> resampled pooled values
    groups: dict[str, np.ndarray]  # user grouping -> (resamples, groups) means of the primary metric


def _bootstrap(
    inputs: Inputs,
    settings: Settings,
    per_user: dict[str, np.ndarray],
    calibration: dict[str, np.ndarray],
    reporter: Reporter,
) -> _Boot:
    """One user bootstrap for everything: headline means, calibration over the
    scored users, and the primary metric's mean in every user group."""
    names = list(per_user)
    values = np.column_stack([per_user[n] for n in names])
    num, den = [], []
    for name in CALIBRATION_COLUMNS if calibration else ():
        scored = ~np.isnan(calibration[name])
        num.append(sp.csr_matrix(np.where(scored, calibration[name], 0.0)[:, None]))
        den.append(sp.csr_matrix(scored.astype(np.float64)[:, None]))
    primary = per_user[settings.primary]
    for g in inputs.user_groups:
        members = g.indicator()
        num.append(members.multiply(primary[:, None]).tocsr())
        den.append(members)
    reporter.start(f"bootstrap over users ({settings.resamples:,} resamples)", total=settings.resamples)
    draws = intervals.resample(
        values,
        settings.resamples,
        settings.seed,
        sp.hstack(num).tocsr() if num else None,
        sp.hstack(den).tocsr() if den else None,
        on_block=reporter.advance,
    )
    n_cal = len(CALIBRATION_COLUMNS) if calibration else 0
    bounds = np.cumsum([n_cal, *(g.n_groups for g in inputs.user_groups)])
    return _Boot(
        headline={name: draws.means[:, j] for j, name in enumerate(names)},
        calibration={name: draws.ratios[:, j] for j, name in enumerate(CALIBRATION_COLUMNS[:n_cal])},
        groups={g.name: draws.ratios[:, bounds[i] : bounds[i + 1]] for i, g in enumerate(inputs.user_groups)},
    )


def _interval(value: float, draws: np.ndarray, confidence: float) -> dict[str, float]:
    low, high = intervals.interval(draws, confidence)
    return {"value": float(value), "low": low, "high": high}


def _user_tables(
    groupings: Sequence[segments.Grouping], columns: dict[str, np.ndarray], settings: Settings, boot: _Boot
) -> dict[str, list[dict[str, Any]]]:
    """Every per-user metric per group, plus the primary metric's interval."""
    tables = {}
    for g in groupings:
        rows = segments.user_table(g, columns)
        low, high = intervals.percentile_interval(boot.groups[g.name], settings.confidence)
        for row, lo, hi in zip(rows, low, high, strict=True):
            row |= {f"{settings.primary}_low": float(lo), f"{settings.primary}_high": float(hi)}
        tables[g.name] = rows
    return tables


def _set_level(inputs: Inputs, ks: Sequence[int], headline: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Coverage and Gini at every k, and the popularity lift: the lists' mean
    popularity over the training level, minus 1 (its interval is the popularity
    interval rescaled, the reference being fixed)."""
    out: dict[str, Any] = dict(beyond.set_level(inputs.recs, ks, inputs.popularity.size))
    reference = beyond.training_popularity(inputs.popularity, inputs.n_train_users)
    out["training_popularity"] = reference
    for k in ks:
        pop = headline[f"popularity@{k}"]
        out[f"popularity_lift@{k}"] = (
            {key: v / reference - 1.0 for key, v in pop.items()}
            if reference > 0
            else {"value": float("nan"), "low": float("nan"), "high": float("nan")}
        )
    return out


def _cold_count(groupings: Sequence[segments.Grouping]) -> int:
    for g in groupings:
        if g.name == "cold_start":
            return int((g.codes == g.labels.index(segments.COLD)).sum())
    return 0
