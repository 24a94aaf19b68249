"""The first stage of a two-stage recommender: candidates and their features.

Several retrieval models each propose their top items for a user; the union is
re-ranked by a second stage that sees far more than any one of them: every
generator's score and rank, the item's point-in-time popularity, age, rating and
trend, the user's activity and demographics, and how much of the user's history
falls in the item's category. Everything here is computed from one feature set
(one cutoff), so the same code builds training pairs at earlier cutoffs and
serving pairs at the latest one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.side_features import SideFeatures, encode_side

ITEM_BUCKETS = {"price": 10, "age_days": 8, "release_year": 8}


@dataclass
class Pairs:
    """Candidate (user, item) pairs, grouped by user in the order users were asked."""

    rows: np.ndarray  # (n,) position of the pair's user in the users asked for
    users: np.ndarray  # (n,) user index
    items: np.ndarray  # (n,) item index
    numeric: np.ndarray  # (n, n_numeric) float32
    categorical: np.ndarray  # (n, n_categorical) int64


FIELDS = ("rows", "users", "items", "numeric", "categorical")


@dataclass
class SideTables:
    """A feature set's user and item tables in index space, plus each user's share
    of history per item category."""

    users: SideFeatures
    items: SideFeatures
    affinity: np.ndarray  # (n_users, n_categories) float32
    item_category: np.ndarray  # (n_items,) category index, 0 = none

    @classmethod
    def of(cls, data: TrainData, like: SideTables | None = None) -> SideTables:
        users = encode_side(
            data.user_features, Col.USER, data.users, data.vocabularies, like=like.users if like else None
        )
        items = encode_side(
            data.item_features,
            Col.ITEM,
            data.items,
            data.vocabularies,
            ITEM_BUCKETS,
            like=like.items if like else None,
        )
        category = (
            items.categorical[:, items.names.index(Col.CATEGORY)]
            if Col.CATEGORY in items.names
            else np.zeros(data.n_items, np.int64)
        )
        return cls(users, items, category_affinity(data.matrix, category), category)

    def cardinalities(self, n_items: int) -> tuple[int, ...]:
        """Embedding sizes of `Pairs.categorical`: item id, then item and user columns."""
        return (n_items, *self.items.cardinalities, *self.users.cardinalities)


def category_affinity(matrix: sp.csr_matrix, category: np.ndarray) -> np.ndarray:
    """Share of each user's interaction weight that falls in each category."""
    n_categories = int(category.max()) + 1 if category.size else 1
    onehot = sp.csr_matrix(
        (np.ones(category.size, np.float32), (np.arange(category.size), category)), shape=(category.size, n_categories)
    )
    per_category = np.asarray((matrix @ onehot).todense(), dtype=np.float32)
    total = per_category.sum(axis=1, keepdims=True)
    return np.divide(per_category, total, out=np.zeros_like(per_category), where=total > 0)


def candidate_pairs(
    generators: Mapping[str, Recommender],
    tables: SideTables,
    users: np.ndarray,
    n_candidates: int,
    batch: int = 256,
) -> Pairs:
    """Union of every generator's top `n_candidates` unseen items for each user,
    with the features of each pair."""
    parts = [
        _batch_pairs(generators, tables, users[i : i + batch], n_candidates, i) for i in range(0, users.size, batch)
    ]
    if not parts:
        n_num = 3 * len(generators) + 1 + tables.items.numeric.shape[1] + tables.users.numeric.shape[1]
        n_cat = 1 + tables.items.categorical.shape[1] + tables.users.categorical.shape[1]
        return Pairs(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, n_num), np.float32),
            np.zeros((0, n_cat), np.int64),
        )
    return Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))


def _batch_pairs(
    generators: Mapping[str, Recommender], tables: SideTables, users: np.ndarray, n: int, offset: int
) -> Pairs:
    scores, tops = {}, {}
    for name, model in generators.items():
        scores[name] = model.score(users)
        top, top_scores = model.top_k(scores[name].copy(), users, n)
        tops[name] = np.where(np.isfinite(top_scores), top, 0)  # 0: seen or unknown, never a candidate
    union = np.sort(np.concatenate(list(tops.values()), axis=1), axis=1)
    keep = union > 0
    keep[:, 1:] &= union[:, 1:] != union[:, :-1]
    row, col = np.nonzero(keep)
    items = union[row, col]

    numeric = []
    for name, model_scores in scores.items():
        own = model_scores[row, items]
        best = np.take_along_axis(model_scores, tops[name][:, :1], axis=1)[:, 0][row]
        # Rank within this generator's list (n + 1 when it did not propose the item).
        match = tops[name][row] == items[:, None]
        rank = np.where(match.any(axis=1), match.argmax(axis=1) + 1, n + 1)
        numeric += [own, own - best, np.log(rank)]
    numeric.append(tables.affinity[users[row], tables.item_category[items]])
    return Pairs(
        row + offset,
        users[row],
        items,
        np.concatenate(
            [np.stack(numeric, axis=1), tables.items.numeric[items], tables.users.numeric[users[row]]], axis=1
        ).astype(np.float32),
        np.concatenate([items[:, None], tables.items.categorical[items], tables.users.categorical[users[row]]], axis=1),
    )
