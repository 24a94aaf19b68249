"""User-category affinity: shops' tastes follow categories.

A visitor who browsed running shoes wants running shoes, and which ones is best
told by what sells in that category now. The model is the mixture

    score(u, i) = (1 - g) * P(category(i) | u) * P(i | category(i)) + g * P(i)

with P(c | u) the user's share of interaction weight in category c (the feature
set's weights, already decayed with `features.half_life_days`), P(i | c) the
item's share of its category's recent popularity and P(i) its share of the whole
shop's, both from the stored sequences' events weighted by type and decayed by
`half_life_days`. The global term `g` ranks the items of a user's categories by
sales and gives users with no category signal a popularity ranking. Items
without a category form one category of their own. Everything is sparse: the
user x category table holds one entry per category a user touched (the ranker's
dense `candidates.category_affinity` would need 9 GB for a shop of 1.4M visitors
and 1,700 categories).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.base import Recommender
from recsys_cli.models.clickstream import DEFAULT_EVENT_WEIGHTS, decayed_popularity, event_log, normalised
from recsys_cli.models.data import TrainData
from recsys_cli.models.retrieval import SparseScores, sparse_lookup
from recsys_cli.models.state import check_csr, check_range, check_vector, csr_tensors, tensor
from recsys_cli.models.validation import Targets


class CategoryAffinity(SparseScores, Recommender):
    def __init__(
        self,
        half_life_days: float | None = 7.0,
        event_weights: Mapping[str, float] | None = None,
        global_weight: float = 0.05,
    ) -> None:
        if not 0 <= global_weight <= 1:
            raise ValueError(f"global_weight must lie in [0, 1], got {global_weight}")
        weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
        super().__init__(half_life_days=half_life_days, event_weights=weights, global_weight=global_weight)
        self.half_life_days, self.event_weights, self.global_weight = half_life_days, weights, global_weight

    def _fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> None:
        assert self.popularity is not None
        category = item_categories(data)
        n_categories = int(category.max()) + 1
        onehot = sp.csr_matrix(
            (np.ones(category.size, np.float32), (np.arange(category.size), category)),
            shape=(category.size, n_categories),
        )
        self.affinity = _row_shares(data.matrix @ onehot)
        recent = decayed_popularity(event_log(data, self.event_weights), data.n_items, self.half_life_days)
        # All-time users break ties among items the recent log never met, in every
        # category; the last term keeps every share defined.
        item_pop = normalised(recent) + 1e-3 * normalised(self.popularity) + 1e-6
        item_pop[0] = 0.0
        per_category = np.bincount(category, weights=item_pop, minlength=n_categories)
        self.item_category = category
        self.within = (item_pop / np.maximum(per_category[category], 1e-30)).astype(np.float32)
        self.prior = (self.global_weight * item_pop / max(item_pop.sum(), 1e-30)).astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        shares = self.affinity[users].toarray()  # (batch, n_categories), mostly zeros
        return (1 - self.global_weight) * shares[:, self.item_category] * self.within + self.prior

    def _score_history(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray:
        """Category shares with the new events' weights counted: the stored shares
        weigh as many units as the items the user had met, each new event its type's
        weight."""
        shares = np.asarray(self.affinity[user].todense(), dtype=np.float64).ravel()
        met = float(self.seen[user].nnz) if user > 0 and self.seen is not None else 0.0
        weights = np.array([self.event_weights.get(e, 0.0) for e in events], dtype=np.float64)
        merged = shares * met + np.bincount(self.item_category[items], weights=weights, minlength=shares.size)
        total = merged.sum()
        shares = (merged / total if total > 0 else merged).astype(np.float32)
        return np.float32(1 - self.global_weight) * shares[self.item_category] * self.within + self.prior

    def _prior(self) -> np.ndarray:
        return self.prior

    def _proposals(self, users: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first depth(u) items of each category the user touched: within a
        category the score follows the item's popularity, whatever the user's share,
        so no deeper item of it can enter the user's top list."""
        order, starts, sizes = self._category_lists()
        touched = self.affinity[users].tocoo()
        take = np.minimum(depth[touched.row], sizes[touched.col])
        rows = np.repeat(touched.row.astype(np.int64), take)
        offset = np.arange(rows.size) - np.repeat(np.cumsum(take) - take, take)
        return rows, order[np.repeat(starts[touched.col], take) + offset]

    def _pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        unique, row = np.unique(users, return_inverse=True)
        shares = sparse_lookup(self.affinity[unique], row, self.item_category[items]).astype(np.float32)
        # The dense score's operations in its order and precision (float32), so both agree to the bit.
        return np.float32(1 - self.global_weight) * shares * self.within[items] + self.prior[items]

    def _category_lists(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items grouped by category, each group by (within-category share desc,
        index asc); where each group starts, and its size. Cached per fit."""
        cached = self.derived.get("category_lists")
        if cached is None:
            n_categories = int(self.item_category.max()) + 1 if self.item_category.size else 1
            index = np.arange(self.item_category.size)
            order = np.lexsort((index, -self.within.astype(np.float64), self.item_category))
            sizes = np.bincount(self.item_category, minlength=n_categories).astype(np.int64)
            cached = self.derived["category_lists"] = (order, np.cumsum(sizes) - sizes, sizes)
        return cached

    def _state(self) -> dict[str, np.ndarray]:
        return csr_tensors("affinity", self.affinity) | {
            "item_category": self.item_category,
            "within": self.within,
            "prior": self.prior,
        }

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        assert self.users is not None and self.items is not None
        n_items = len(self.items)
        self.within = check_vector(state, "within", n_items)
        self.prior = check_vector(state, "prior", n_items)
        codes = tensor(state, "item_category", (n_items,), "iu")
        n_categories = int(codes.max()) + 1 if codes.size else 1  # categories are those of the items
        self.item_category = check_range(state, "item_category", (n_items,), 0, n_categories).astype(np.int64)
        self.affinity = check_csr(state, "affinity", (len(self.users), n_categories))


def item_categories(data: TrainData) -> np.ndarray:
    """(n_items,) category index of every item (the feature set's category
    vocabulary, as the ranker's side tables encode it); 0 = none or unknown."""
    out = np.zeros(data.n_items, np.int64)
    table = data.item_features
    if table is None or Col.CATEGORY not in table.columns:
        return out
    vocab = data.vocabularies.get(Col.CATEGORY) or Vocabulary.fit(table[Col.CATEGORY])
    coded = table.select(data.items.encode(Col.ITEM).alias("i"), vocab.encode(Col.CATEGORY).alias("c"))
    coded = coded.filter(pl.col("i") > 0)
    out[coded["i"].to_numpy().astype(np.int64)] = coded["c"].to_numpy().astype(np.int64)
    return out


def _row_shares(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Each row divided by its sum (empty rows stay empty), float32."""
    m = sp.csr_matrix(matrix, dtype=np.float32)
    m.eliminate_zeros()
    totals = np.asarray(m.sum(axis=1)).ravel()
    m.data /= np.repeat(np.where(totals > 0, totals, 1.0), np.diff(m.indptr)).astype(np.float32)
    return m
