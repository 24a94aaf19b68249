"""ItemKNN: items similar to what the user interacted with, by cosine similarity
of their interaction columns with shrinkage, keeping the `k` nearest per item.

With `last_n`, only the user's most recent items count ("what goes with what I
just watched"), a strong next-item signal that the whole-history profile blurs.

With `reach`, an item passes its score on to at most `reach` items: the ones it is
most similar to among those that keep it as a neighbour. Popular items are hubs,
in the neighbour lists of most of the catalogue (at 10M events one sat in 56k of
82k items' lists), so without a cap a user's scores reach most of the catalogue
and cost grows with it; with one, a user's scores reach at most `reach` items per
history item. A one-item history keeps its exact top `reach`.

With `max_history`, the similarities are learnt from each user's `max_history`
strongest interactions at most (equal weights: the lower item index); scoring
still reads the whole history. The co-occurrence product costs the sum of the
squared history lengths, which a few very long histories dominate: on the demo
shop that sum grew 9.5x from 3M to 10M events for 3.3x the users (the longest
history 986 then 3,069 items).

`weighting` (models/weighting.py) sets what the similarities are computed from:
the feature set's weights as they are (`raw`), or a scale-free reading of them
(binary, log, or BM25/TF-IDF with heavy users down-weighted). The shrinkage is
added to the product of two items' norms, so its meaning depends on that scale
too: with `binary`, a norm is the root of the item's number of users.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_cli.errors import ConfigError
from recsys_cli.models.data import TrainData
from recsys_cli.models.history import latest_distinct, with_items
from recsys_cli.models.retrieval import SparseScores
from recsys_cli.models.selection import Grid, GridSelected
from recsys_cli.models.state import check_csr, csr_tensors
from recsys_cli.models.weighting import reweight

# Entries of one block of the item-item product (rows x n_items at most): about 300 MB.
_BLOCK_ENTRIES = 1 << 24
# Rows whose stored share passes this are selected densely, about 2^22 floats at a time.
_DENSE_SELECT = 0.02
_DENSE_ROWS_FLOATS = 1 << 22


class ItemKNN(SparseScores, GridSelected):
    FITTED = ("sim", "x")

    def __init__(
        self,
        k: int = 100,
        shrink: float = 10.0,
        last_n: int | None = None,
        weighting: str = "raw",
        reach: int | None = None,
        max_history: int | None = None,
        grid: Grid | None = None,
    ) -> None:
        for name, value in (("reach", reach), ("max_history", max_history)):
            if value is not None and value < 1:
                raise ConfigError(f"item_knn: {name} must be a positive number of items or null, got {value}")
        super().__init__(
            grid=grid, k=k, shrink=shrink, last_n=last_n, weighting=weighting, reach=reach, max_history=max_history
        )
        self.k, self.shrink, self.last_n, self.weighting = k, shrink, last_n, weighting
        self.reach, self.max_history = reach, max_history

    def _fit_point(self, data: TrainData) -> None:
        x = reweight(data.matrix, self.weighting).tocsr()
        # Shared with every item-kNN fitted on the same data with the same settings
        # (a ranker's whole-history and last-items generators): 27 CPU s at 82k items.
        key = ("item_knn.neighbours", self.weighting, self.k, self.shrink, self.max_history)
        if key not in data.derived:
            learnt_from = x if self.max_history is None else cap_rows(x, self.max_history)
            data.derived[key] = neighbours(learnt_from, self.k, self.shrink)
        self.sim = data.derived[key]
        # The transposed, reach-cut neighbours are shared the same way (both generators
        # of a ranker cut the same matrix at every labelled window).
        cut = (*key, "transposed", self.reach)
        if cut not in data.derived:
            data.derived[cut] = transposed(self.sim, self.reach)
        self.derived["sim_t"] = data.derived[cut]
        self.x = x if self.last_n is None else _recent_profile(data, self.last_n)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.x[users] @ self._sim_t()).todense())

    def _score_history(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray:
        """The neighbours of the user's items with the new ones in: each counted once
        more, or, with `last_n`, the latest new items replacing the stored ones."""
        if self.last_n is None:
            profile = with_items(self.x[[user]], items)
        else:
            latest = latest_distinct(items, self.last_n)
            stored = self.x[[user]] if latest.size < self.last_n else sp.csr_matrix((1, self.x.shape[1]))
            profile = with_items(stored, latest)
            profile.data[:] = 1.0
        return np.asarray((profile @ self._sim_t()).todense()).ravel()

    def _sim_t(self) -> sp.csr_matrix:
        """The neighbour matrix transposed, in CSR, once per fit: a product with the
        lazy `sim.T` converted all of it on every call (46 ms at 82k items). Row i
        holds the items i passes its score on to, cut to the `reach` strongest."""
        cached = self.derived.get("sim_t")
        if cached is None:
            cached = self.derived["sim_t"] = transposed(self.sim, self.reach)
        return cached

    def _prior(self) -> np.ndarray:
        return np.zeros(self.sim.shape[0], dtype=np.float32)

    def _part(self, users: np.ndarray) -> sp.csr_matrix:
        return (self.x[users] @ self._sim_t()).tocsr()

    def _state(self) -> dict[str, np.ndarray]:
        return csr_tensors("sim", self.sim) | csr_tensors("x", self.x)

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        self.sim = check_csr(state, "sim", (n_items, n_items))
        self.x = check_csr(state, "x", (n_users, n_items))


def neighbours(x: sp.csr_matrix, k: int, shrink: float, budget: int = _BLOCK_ENTRIES) -> sp.csr_matrix:
    """(n_items, n_items): each item's k most similar other items by shrunk cosine
    over the users' rows of `x`.

    The full item-item product has up to n_items^2 entries (89k items at 10M events
    held 18 GB before its top-k was taken), so it is built a block of item rows at a
    time, each block cut to its top k before the next: memory stays at one block of
    about `budget` entries plus the kept neighbours, whatever the catalogue. Each
    entry is the same sum in the same order as in the whole product."""
    n_items = x.shape[1]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    xt = x.T.tocsr()
    step = max(1, budget // max(n_items, 1))
    blocks = []
    for start in range(0, n_items, step):
        # Scaled where the product left its entries: a round trip through (row, col)
        # pairs sorted every block's entries, a third of the fit at 82k items.
        block = (xt[start : start + step] @ x).tocsr()
        rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), np.diff(block.indptr)) + start
        cols = block.indices
        vals = block.data.astype(np.float32) / (norms[rows] * norms[cols] + shrink)
        vals[rows == cols] = 0.0  # an item is not its own neighbour
        block = sp.csr_matrix((vals, cols, block.indptr), shape=block.shape)
        block.eliminate_zeros()
        blocks.append(_top_k_per_row(block, k))
    if not blocks:
        return sp.csr_matrix((0, n_items), dtype=np.float64)
    return sp.vstack(blocks, format="csr")


def transposed(sim: sp.csr_matrix, reach: int | None) -> sp.csr_matrix:
    """`sim.T` in CSR, each row cut to its `reach` largest entries (`cap_rows`)."""
    t = sim.T.tocsr()
    t.sort_indices()
    return t if reach is None else cap_rows(t, reach)


def cap_rows(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's k largest entries, equal ones by lower column, in CSR with sorted
    indices. Only the rows longer than k are sorted: a few hubs
    or heavy users (at 82k items the median row of the transposed neighbours holds
    7 entries, the longest 56k)."""
    m = m.tocsr()
    m.sort_indices()
    counts = np.diff(m.indptr)
    if not (counts > k).any():
        return m
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), counts)
    long = np.flatnonzero(counts[rows] > k)
    order = long[np.lexsort((m.indices[long], -m.data[long], rows[long]))]
    place = np.arange(order.size) - np.searchsorted(rows[order], rows[order], side="left")
    keep = counts[rows] <= k
    keep[order[place < k]] = True
    indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, k))])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


def _recent_profile(data: TrainData, last_n: int) -> sp.csr_matrix:
    """(n_users, n_items) with 1 for each of the user's last `last_n` items."""
    recent = data.sequence_matrix(last_n)
    rows, cols = np.nonzero(recent >= 0)
    profile = sp.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, recent[rows, cols])), shape=(data.n_users, data.n_items)
    )
    profile.data[:] = 1.0
    return profile


def _top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row, equal ones by lower column. Where the
    rows are dense enough (co-occurrences of a large shop: sorting every entry was
    three quarters of item-kNN's fit at 10M events) and every entry positive, the
    rows are selected densely, a few at a time (`models.topk`: the same rule);
    otherwise by sorting the entries of the rows longer than k (`cap_rows`)."""
    n_rows, n_cols = m.shape
    if m.nnz > _DENSE_SELECT * n_rows * n_cols and (m.data > 0).all() and k < n_cols:
        return _top_k_dense(m.tocsr(), k)
    return cap_rows(m, k)


def _top_k_dense(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """`_top_k_per_row` for positive entries, through dense rows: unstored entries
    are 0, below every stored one, and are dropped after the selection."""
    from recsys_cli.models.topk import top_indices

    n_rows, n_cols = m.shape
    step = max(1, _DENSE_ROWS_FLOATS // max(n_cols, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n_rows, step):
        dense = m[start : start + step].toarray()
        top = top_indices(dense, k)
        picked = np.take_along_axis(dense, top, axis=1)
        row, col = np.nonzero(picked > 0)
        rows.append(row + start)
        cols.append(top[row, col])
        vals.append(picked[row, col])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape, dtype=m.dtype
    )
