"""Error slices: where a model loses to a baseline, by user segment and item group.

A mean difference over all users says which model is better, not for whom. The
per-user differences (model minus baseline, on the users both scored) are
averaged within every user segment the evaluation already defines (`segments`:
cold start, activity bands, demographics); for item groups (popularity tier,
category, new products) each user's outcome is the recall of their window
positives that fall in the group, for the model and for the baseline, over the
users who have such positives.

Every slice's interval comes from one paired bootstrap over users (the draws
of `bootstrap.paired_bootstrap` with the same seed: `intervals.resample`), each
slice mean being a ratio of two resampled sums, so no slice costs a bootstrap of
its own and no loop runs over users. A slice "loses" when its whole interval lies
below zero; slices smaller than `min_users` are listed last and never judged,
since a handful of users gives a tight but meaningless interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from recsys_cli.evaluation import intervals
from recsys_cli.evaluation.bootstrap import PairedBootstrap, paired_bootstrap
from recsys_cli.evaluation.segments import Grouping

USERS, ITEMS = "users", "items"
LOSES, WINS, NO_EVIDENCE, TOO_FEW = "loses", "wins", "no evidence", "too few users"


@dataclass(frozen=True)
class Positives:
    """The window's positives of the compared users, one entry per (user, item)
    pair: the user's row, the item's index in the item groupings (0 for an item
    they do not know: `segments.UNSEEN`), and whether each top-k list holds it."""

    user: np.ndarray
    item: np.ndarray
    found_model: np.ndarray
    found_baseline: np.ndarray


@dataclass(frozen=True)
class Slice:
    """Model and baseline means in one group, and the paired difference's interval.
    For item slices the means are recalls of the group's positives, averaged over
    the users holding some (`positives` counts them)."""

    kind: str  # users | items
    by: str  # the grouping: activity, cold_start, category, popularity_tier...
    group: str
    users: int
    positives: int | None
    model: float
    baseline: float
    difference: float
    low: float
    high: float
    verdict: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ErrorSlices:
    overall: PairedBootstrap  # every compared user, the slices' reference
    slices: tuple[Slice, ...]  # biggest loss first


def error_slices(
    model: np.ndarray,
    baseline: np.ndarray,
    user_groupings: Sequence[Grouping],
    positives: Positives | None = None,
    item_groupings: Sequence[Grouping] = (),
    *,
    min_users: int = 20,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ErrorSlices:
    """Paired model - baseline differences per slice, sorted with the biggest losses first.

    `model` and `baseline` are one per-user metric for the same users in the same
    order; user groupings have a code per user, item groupings a code per item
    index of `positives.item`. Groups nobody is in are left out.

    >>> from recsys_cli.evaluation.segments import cold_start
    >>> r = error_slices(np.array([0.0, 0.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0, 1.0]),
    ...                  [cold_start(np.array([1, 1, 0, 0]))], min_users=1, resamples=200)
    >>> [(s.group, s.difference, s.verdict) for s in r.slices]
    [('cold-start', -1.0, 'loses'), ('warm', 0.5, 'no evidence')]
    """
    a, b = np.asarray(model, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    overall = paired_bootstrap(a, b, resamples, seed, confidence)  # also checks the shapes
    parts = [_user_part(g, a, b) for g in user_groupings]
    if positives is not None:
        _check_positives(positives, a.size)
        parts += [_item_part(g, positives, a.size) for g in item_groupings]
    if not parts:
        return ErrorSlices(overall, ())
    draws = intervals.resample(
        (a - b)[:, None],
        resamples,
        seed,
        sp.hstack([p.numerators for p in parts]).tocsr(),
        sp.hstack([p.members for p in parts]).tocsr(),
    ).ratios
    low, high = (np.where(np.abs(x) < _NOISE, 0.0, x) for x in intervals.percentile_interval(draws, confidence))
    rows = _rows(parts, low, high, min_users)
    return ErrorSlices(overall, tuple(sorted(rows, key=_loss_order)))


# Resampled slice means carry float32 rounding (`intervals.resample`): an interval end
# within this of zero is zero, so a slice where the lists tie is never "wholly below".
_NOISE = 1e-7


def _loss_order(s: Slice) -> tuple[bool, float, str, str, str]:
    """Judged slices first, biggest loss first; then those too small to judge."""
    return (s.verdict == TOO_FEW, s.difference, s.kind, s.by, s.group)


@dataclass(frozen=True)
class _Part:
    """One grouping's slices: per-user membership, differences and means behind them."""

    kind: str
    grouping: Grouping
    members: sp.csr_matrix  # (users, groups) 1 where the user counts in the group
    numerators: sp.csr_matrix  # (users, groups) the user's model - baseline difference there
    model: np.ndarray  # (groups,) means
    baseline: np.ndarray
    positives: np.ndarray | None  # (groups,) positives, item slices only


def _user_part(grouping: Grouping, a: np.ndarray, b: np.ndarray) -> _Part:
    if grouping.codes.size != a.size:
        raise ValueError(f"user grouping {grouping.name!r} has {grouping.codes.size} rows for {a.size} users")
    members = grouping.indicator()
    counts = np.maximum(grouping.counts(), 1)
    return _Part(
        USERS,
        grouping,
        members,
        members.multiply((a - b)[:, None]).tocsr(),
        (members.T @ a) / counts,
        (members.T @ b) / counts,
        None,
    )


def _item_part(grouping: Grouping, positives: Positives, n_users: int) -> _Part:
    """Per user and group: positives held, and the share each list found (recall)."""
    g = grouping.n_groups
    cell = positives.user * g + grouping.codes[positives.item]
    held, found_a, found_b = (
        np.bincount(cell, weights=w, minlength=n_users * g).reshape(n_users, g)
        for w in (None, positives.found_model.astype(np.float64), positives.found_baseline.astype(np.float64))
    )
    member = held > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall_a = np.where(member, found_a / np.maximum(held, 1), 0.0)
        recall_b = np.where(member, found_b / np.maximum(held, 1), 0.0)
    counts = np.maximum(member.sum(axis=0), 1)
    return _Part(
        ITEMS,
        grouping,
        sp.csr_matrix(member.astype(np.float64)),
        sp.csr_matrix(recall_a - recall_b),
        recall_a.sum(axis=0) / counts,
        recall_b.sum(axis=0) / counts,
        held.sum(axis=0).astype(np.int64),
    )


def _check_positives(p: Positives, n_users: int) -> None:
    sizes = {p.user.size, p.item.size, p.found_model.size, p.found_baseline.size}
    if len(sizes) != 1:
        raise ValueError("positives: user, item and found arrays must have one length")
    if p.user.size and (p.user.min() < 0 or p.user.max() >= n_users):
        raise ValueError(f"positives: user rows must lie in 0..{n_users - 1}")


def _rows(parts: Sequence[_Part], low: np.ndarray, high: np.ndarray, min_users: int) -> list[Slice]:
    rows, column = [], 0
    for part in parts:
        users = np.asarray(part.members.sum(axis=0)).ravel().astype(np.int64)
        for j, label in enumerate(part.grouping.labels):
            lo, hi = float(low[column + j]), float(high[column + j])
            if users[j] > 0:
                rows.append(
                    Slice(
                        kind=part.kind,
                        by=part.grouping.name,
                        group=label,
                        users=int(users[j]),
                        positives=None if part.positives is None else int(part.positives[j]),
                        model=float(part.model[j]),
                        baseline=float(part.baseline[j]),
                        difference=float(part.model[j] - part.baseline[j]),
                        low=lo,
                        high=hi,
                        verdict=_verdict(int(users[j]), lo, hi, min_users),
                    )
                )
        column += part.grouping.n_groups
    return rows


def _verdict(users: int, low: float, high: float, min_users: int) -> str:
    if users < min_users:
        return TOO_FEW
    if high < 0:
        return LOSES
    if low > 0:
        return WINS
    return NO_EVIDENCE
