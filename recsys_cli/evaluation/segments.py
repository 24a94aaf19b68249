"""Who a model serves well, and which items it shows: metrics per group.

A mean over all users hides the groups it averages: a model can be good on
heavy users and useless on newcomers, or show only the head of the catalogue.
User groups (demographics, activity, cold start) get every per-user metric
averaged within the group; item groups (category, popularity tier) get their
share of exposure against their share of interactions, and the recall of the
window's positives that fall in the group.

A `Grouping` is a code per row (user or item) into a tuple of labels, so every
breakdown is one sparse product or one bincount over arrays, never a loop over
users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

UNKNOWN = "unknown"
OTHER = "other"
# Items the model never saw in training: never recommended, but they can be in the
# window's positives (new products), so the item tables keep a row for them.
UNSEEN = "not in training"
COLD, WARM = "cold-start", "warm"


@dataclass(frozen=True)
class Grouping:
    """Row i (a user or an item) belongs to group `labels[codes[i]]`."""

    name: str
    labels: tuple[str, ...]
    codes: np.ndarray

    def __post_init__(self) -> None:
        if self.codes.size and (self.codes.min() < 0 or self.codes.max() >= len(self.labels)):
            raise ValueError(f"grouping {self.name!r}: codes outside 0..{len(self.labels) - 1}")

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=self.n_groups)

    def indicator(self) -> sp.csr_matrix:
        """(rows, groups) 0/1 membership, for group sums as one sparse product."""
        n = self.codes.size
        return sp.csr_matrix((np.ones(n), (np.arange(n), self.codes)), shape=(n, self.n_groups))

    def row_labels(self) -> np.ndarray:
        return np.asarray(self.labels, dtype=object)[self.codes] if self.codes.size else np.zeros(0, dtype=object)


def from_values(name: str, values: pl.Series | Sequence[str | None], max_groups: int = 50) -> Grouping:
    """Group rows by a categorical attribute. Missing values form `unknown`; past
    the `max_groups` most frequent values the rest are pooled as `other`, so a
    high-cardinality attribute (zip code) stays readable. Labels are sorted, which
    orders buckets such as `18-24`, `25-34`.

    >>> g = from_values("gender", ["F", "M", None, "F"])
    >>> g.labels, g.codes.tolist()
    (('F', 'M', 'unknown'), [0, 1, 2, 0])
    """
    series = pl.Series(name, values).cast(pl.String)
    present = series.drop_nulls()
    counts = present.value_counts(name="n").sort(["n", name], descending=[True, False])
    kept = sorted(counts[name].head(max_groups).to_list())
    pooled = counts.height > len(kept)
    labels = (*kept, *([OTHER] if pooled else []), *([UNKNOWN] if series.null_count() else []))
    index = {label: i for i, label in enumerate(labels)}
    column = pl.col(name)
    code = column.replace_strict(kept, list(range(len(kept))), default=index.get(OTHER, 0), return_dtype=pl.Int64)
    coded = series.to_frame().select(pl.when(column.is_null()).then(index.get(UNKNOWN, 0)).otherwise(code))
    codes = coded.to_series().to_numpy()
    return Grouping(name, labels, np.asarray(codes, dtype=np.int64))


def item_attribute(name: str, values: pl.Series | Sequence[str | None], max_groups: int = 50) -> Grouping:
    """Group items 1..n by an attribute (`values` for those items, in index order);
    the unknown item 0 gets its own `not in training` group."""
    inner = from_values(name, values, max_groups)
    codes = np.concatenate([[inner.n_groups], inner.codes]).astype(np.int64)
    return Grouping(name, (*inner.labels, UNSEEN), codes)


def new_products(is_new: np.ndarray) -> Grouping:
    """Items flagged new (launched shortly before the cutoff) against the rest;
    item 0 stands for products the model never saw."""
    codes = np.where(np.asarray(is_new, dtype=bool), 1, 0).astype(np.int64)
    codes[0] = 2
    return Grouping("new_products", ("established", "new", UNSEEN), codes)


def activity(interactions: np.ndarray, edges: Sequence[int], name: str = "activity") -> Grouping:
    """Bucket users by their number of training interactions: `0` (no history),
    then one bucket per edge interval, e.g. edges [5, 20] -> 0, 1-4, 5-19, 20+.

    >>> activity(np.array([0, 1, 4, 5, 30]), [5, 20]).row_labels().tolist()
    ['0', '1-4', '1-4', '5-19', '20+']
    """
    bounds = [1, *(int(e) for e in edges)]
    if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"activity edges must be increasing integers above 1, got {list(edges)}")
    labels = ["0"]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        labels.append(str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}")
    labels.append(f"{bounds[-1]}+")
    x = np.asarray(interactions)
    codes = np.where(x <= 0, 0, np.searchsorted(np.asarray(bounds), x, side="right"))
    return Grouping(name, tuple(labels), codes.astype(np.int64))


def cold_start(cold: np.ndarray) -> Grouping:
    return Grouping("cold_start", (WARM, COLD), np.asarray(cold, dtype=np.int64))


def popularity_tiers(popularity: np.ndarray, cuts: Mapping[str, float], tail: str = "tail") -> Grouping:
    """Head, torso, tail by cumulative share of training interactions: items,
    most popular first, belong to the first tier whose cut their predecessors'
    share has not reached (cuts {head: 0.5, torso: 0.8}: the items that make the
    first half of interactions are head, the next 30% torso, the rest tail).
    Items nobody interacted with, and the unknown item 0, are `not in training`.

    >>> popularity_tiers(np.array([0, 6, 3, 1, 0]), {"head": 0.5, "torso": 0.8}).row_labels().tolist()
    ['not in training', 'head', 'torso', 'tail', 'not in training']
    """
    names, bounds = list(cuts), np.asarray(list(cuts.values()), dtype=np.float64)
    if bounds.size and (np.any(np.diff(bounds) <= 0) or bounds[0] <= 0 or bounds[-1] >= 1):
        raise ValueError(f"popularity tier cuts must increase strictly inside (0, 1), got {dict(cuts)}")
    pop = np.asarray(popularity, dtype=np.float64).copy()
    pop[0] = 0.0
    order = np.argsort(-pop, kind="stable")
    ranked = pop[order]
    before = (np.cumsum(ranked) - ranked) / max(ranked.sum(), 1e-300)
    codes = np.empty(pop.size, dtype=np.int64)
    codes[order] = np.searchsorted(bounds, before, side="right")
    codes[pop <= 0] = len(names) + 1
    return Grouping("popularity_tier", (*names, tail, UNSEEN), codes)


def user_table(grouping: Grouping, columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per group: users, share of users and the mean of every per-user
    column (NaN values, such as a calibration error where a user got no
    probabilities, are left out of that column's mean)."""
    names = list(columns)
    counts = grouping.counts()
    rows = [
        {"group": label, "users": int(n), "share": float(n / max(counts.sum(), 1))}
        for label, n in zip(grouping.labels, counts, strict=True)
    ]
    if not names:
        return rows
    values = np.column_stack([np.asarray(columns[c], dtype=np.float64) for c in names])
    valid = ~np.isnan(values)
    members = grouping.indicator().T.tocsr()
    sums = members @ np.where(valid, values, 0.0)
    seen = members @ valid.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(seen > 0, sums / np.maximum(seen, 1), np.nan)
    for row, group_means in zip(rows, means, strict=True):
        row |= {name: float(v) for name, v in zip(names, group_means, strict=True)}
    return rows


def item_table(
    grouping: Grouping,
    recs: np.ndarray,
    hit: np.ndarray,
    truth: sp.csr_matrix,
    popularity: np.ndarray,
    ks: Sequence[int],
) -> list[dict[str, Any]]:
    """One row per item group: catalogue items, share of training interactions,
    share of the window's positives, and per k its share of the recommendation
    slots (`exposure@k`), that share over its interaction share (`exposure_ratio@k`:
    1 means exposed as much as it is used) and the recall of its positives."""
    g, codes = grouping.n_groups, grouping.codes
    items = np.bincount(codes[1:], minlength=g)
    weights = np.asarray(popularity, dtype=np.float64).copy()
    weights[0] = 0.0  # the unknown item stands for many products; it has no training interactions of its own
    interactions = np.bincount(codes, weights=weights, minlength=g)
    interaction_share = interactions / max(interactions.sum(), 1e-300)
    # Truth columns past the catalogue are items the model never saw: the unknown item's group.
    positive_items = np.where(truth.indices < codes.size, truth.indices, 0)
    positives = np.bincount(codes[positive_items], minlength=g).astype(np.float64)
    rec_codes = codes[recs]
    rows: list[dict[str, Any]] = [
        {
            "group": label,
            "items": int(items[j]),
            "interaction_share": float(interaction_share[j]),
            "positive_share": float(positives[j] / max(positives.sum(), 1)),
        }
        for j, label in enumerate(grouping.labels)
    ]
    for k in ks:
        shown = np.bincount(rec_codes[:, :k].ravel(), minlength=g) / max(rec_codes[:, :k].size, 1)
        found = np.bincount(rec_codes[:, :k][hit[:, :k]], minlength=g)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(interaction_share > 0, shown / interaction_share, np.nan)
            recall = np.where(positives > 0, found / positives, np.nan)
        for j, row in enumerate(rows):
            row |= {
                f"exposure@{k}": float(shown[j]),
                f"exposure_ratio@{k}": float(ratio[j]),
                f"recall@{k}": float(recall[j]),
            }
    return rows
