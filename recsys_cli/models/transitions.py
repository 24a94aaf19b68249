"""Item transitions: what a shop's visitors look at next, and what goes with it.

From each user's stored sequence, every item j met within `window` positions
after item i, and within `max_gap_minutes` of it (one visit, not last month's),
counts as a transition i -> j, weighted 1 / distance and by the event type of j
(a cart after i says more than a view). The reverse direction j -> i counts
`backward` as much: items met together go with each other (complements). Counts
are normalised per source item,

    sim(i, j) = C(i, j) / ((out(i) + shrink) * in(j) ** popularity_damping),

a shrunk P(next = j | i), optionally damped towards lift so best-sellers do not
follow everything, and only the `neighbours` strongest successors of each item
are kept. A user is scored by their `last_n` most recent distinct items, the
latest weighted 1, the one before `recency`, then `recency ** 2`...; every item
also gets a tiny recent-popularity term, so a ranking is always complete.

Fit cost and memory are linear in the stored events (times `window`): the
transition table is built sparse and never as a dense n_items x n_items matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys_cli.models.base import Recommender
from recsys_cli.models.clickstream import (
    DEFAULT_EVENT_WEIGHTS,
    EventLog,
    decayed_popularity,
    event_log,
    normalised,
    recent_distinct,
)
from recsys_cli.models.data import TrainData
from recsys_cli.models.history import latest_distinct
from recsys_cli.models.item_knn import _top_k_per_row
from recsys_cli.models.retrieval import SparseScores
from recsys_cli.models.state import check_csr, check_vector, csr_tensors
from recsys_cli.models.validation import Targets

# Largest value of the popularity term, far below any transition score it sits under.
PRIOR = 1e-4


class ItemTransitions(SparseScores, Recommender):
    def __init__(
        self,
        window: int = 5,
        max_gap_minutes: float = 60.0,
        backward: float = 1.0,
        event_weights: Mapping[str, float] | None = None,
        shrink: float = 5.0,
        popularity_damping: float = 0.0,
        neighbours: int = 100,
        last_n: int = 10,
        recency: float = 0.7,
        popularity_half_life_days: float | None = 7.0,
    ) -> None:
        weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
        super().__init__(
            window=window,
            max_gap_minutes=max_gap_minutes,
            backward=backward,
            event_weights=weights,
            shrink=shrink,
            popularity_damping=popularity_damping,
            neighbours=neighbours,
            last_n=last_n,
            recency=recency,
            popularity_half_life_days=popularity_half_life_days,
        )
        self.window, self.max_gap_minutes, self.backward = window, max_gap_minutes, backward
        self.event_weights, self.shrink, self.popularity_damping = weights, shrink, popularity_damping
        self.neighbours, self.last_n, self.recency = neighbours, last_n, recency
        self.popularity_half_life_days = popularity_half_life_days

    def _fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> None:
        assert self.popularity is not None
        log = event_log(data, self.event_weights)
        counts = self._transitions(*_collapse_repeats(log), data.n_items)
        self.sim = _top_k_per_row(self._normalise(counts), self.neighbours).astype(np.float32)
        users, items, rank = recent_distinct(log, self.last_n)
        weight = np.power(self.recency, rank.astype(np.float64))
        self.profile = sp.csr_matrix((weight, (users, items)), shape=(data.n_users, data.n_items), dtype=np.float32)
        recent = decayed_popularity(log, data.n_items, self.popularity_half_life_days)
        self.prior = PRIOR * normalised(normalised(recent) + 1e-3 * normalised(self.popularity))

    def _transitions(self, log: EventLog, left_at: np.ndarray, n_items: int) -> sp.csr_matrix:
        """C(i, j): weighted transitions within `window` positions and the gap (from
        leaving i, `left_at`, to reaching j), both ways."""
        src, dst, val = [], [], []
        max_gap = self.max_gap_minutes * 60.0
        for d in range(1, self.window + 1):  # a loop over distances, each step vectorised
            a, b = np.arange(log.users.size - d), np.arange(d, log.users.size)
            keep = (
                (log.users[a] == log.users[b])
                & (log.items[a] != log.items[b])
                & (log.seconds[b] - left_at[a] <= max_gap)
                & (log.weights[b] > 0)
            )
            a, b = a[keep], b[keep]
            w = log.weights[b] / d
            src += [log.items[a], log.items[b]]
            dst += [log.items[b], log.items[a]]
            val += [w, self.backward * w]
        rows, cols, vals = (np.concatenate(x) if x else np.zeros(0) for x in (src, dst, val))
        counts = sp.csr_matrix((vals, (rows.astype(np.int64), cols.astype(np.int64))), shape=(n_items, n_items))
        counts.sum_duplicates()
        counts.eliminate_zeros()
        return counts

    def _normalise(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """C(i, j) / ((out(i) + shrink) * in(j) ** damping), entry by entry."""
        out_weight = np.asarray(counts.sum(axis=1)).ravel()
        in_weight = np.asarray(counts.sum(axis=0)).ravel()
        coo = counts.tocoo()
        denominator = (out_weight[coo.row] + self.shrink) * np.power(
            np.maximum(in_weight[coo.col], 1e-12), self.popularity_damping
        )
        coo.data = coo.data / denominator
        return coo.tocsr()

    def _score(self, users: np.ndarray) -> np.ndarray:
        scores = np.asarray((self.profile[users] @ self.sim).todense(), dtype=np.float32)
        return scores + self.prior

    def _score_history(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray:
        """The profile of the latest `last_n` distinct items with the new ones first:
        the items the visitor met a moment ago lead to their neighbours."""
        weights = np.array([self.event_weights.get(e, 0.0) for e in events], dtype=np.float64)
        row = self.profile[user]
        stored = row.indices[np.argsort(-row.data, kind="stable")]  # latest first
        latest = latest_distinct(np.concatenate([stored[::-1], items[weights > 0]]), self.last_n)
        profile = sp.csr_matrix(
            (np.power(self.recency, np.arange(latest.size, dtype=np.float64)), (np.zeros(latest.size, int), latest)),
            shape=(1, self.sim.shape[0]),
            dtype=np.float32,
        )
        return np.asarray((profile @ self.sim).todense(), dtype=np.float32).ravel() + self.prior

    def _prior(self) -> np.ndarray:
        return self.prior

    def _part(self, users: np.ndarray) -> sp.csr_matrix:
        return (self.profile[users] @ self.sim).tocsr()

    def _state(self) -> dict[str, np.ndarray]:
        return {"prior": self.prior} | csr_tensors("sim", self.sim) | csr_tensors("profile", self.profile)

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        self.prior = check_vector(state, "prior", n_items)
        self.sim = check_csr(state, "sim", (n_items, n_items))
        self.profile = check_csr(state, "profile", (n_users, n_items))


def _collapse_repeats(log: EventLog) -> tuple[EventLog, np.ndarray]:
    """One event per run of the same item within a user (view, click, cart of one
    product), so a product's own funnel neither counts as a transition nor uses up
    the window: its strongest weight and its first time, and the run's last time."""
    n = log.users.size
    if n == 0:
        return log, log.seconds
    starts = np.ones(n, bool)
    starts[1:] = (log.users[1:] != log.users[:-1]) | (log.items[1:] != log.items[:-1])
    first = np.flatnonzero(starts)
    last = np.append(first[1:], n) - 1
    collapsed = EventLog(
        log.users[first],
        log.items[first],
        np.maximum.reduceat(log.weights, first),
        log.events[first],
        log.seconds[first],
    )
    return collapsed, log.seconds[last]
