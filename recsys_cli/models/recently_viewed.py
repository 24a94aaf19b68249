"""Re-targeting: the items a user looked at lately, scored by recency and frequency.

In a shop the best recommendation is often a product the visitor already viewed
and did not buy: they come back for it. Every event of the user's stored sequence
adds its type's weight, decayed exponentially by its age (half-life in days,
measured back from the user's latest event); items the user interacted
with always rank above the others, which follow by popularity so a ranking is
complete. Which items may be recommended at all follows the target's
`seen_events` (`Recommender.seen`): with the default `engagement` target viewed
items stay recommendable, and this model is what finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys_cli.models.base import Recommender
from recsys_cli.models.clickstream import decayed_popularity, event_log, normalised
from recsys_cli.models.data import TrainData
from recsys_cli.models.retrieval import SparseScores
from recsys_cli.models.state import check_csr, check_vector, csr_tensors
from recsys_cli.models.validation import Targets

EVENT_WEIGHTS = {"view": 1.0, "click": 1.0, "add_to_cart": 2.0, "remove_from_cart": 0.5, "rating": 1.0}
# The prior's largest value: below 1, so an item met always outranks one never met.
PRIOR = 0.5


class RecentlyViewed(SparseScores, Recommender):
    """score = 1 + sum over the user's events on the item of weight(type) * 0.5 **
    (age_days / half_life_days) for items met (age from the user's latest event), plus for every item a popularity
    prior below 1 (the same weights decayed with `popularity_half_life_days`), so an
    item met always outranks one never met and the rest follow what the shop is
    busy with. Items the user bought are not re-targeted when `skip_purchased`
    (repeat purchases are rare in most shops)."""

    def __init__(
        self,
        half_life_days: float = 1.0,
        event_weights: Mapping[str, float] | None = None,
        skip_purchased: bool = True,
        popularity_half_life_days: float | None = 7.0,
    ) -> None:
        weights = dict(EVENT_WEIGHTS if event_weights is None else event_weights)
        super().__init__(
            half_life_days=half_life_days,
            event_weights=weights,
            skip_purchased=skip_purchased,
            popularity_half_life_days=popularity_half_life_days,
        )
        self.half_life_days, self.event_weights = half_life_days, weights
        self.skip_purchased, self.popularity_half_life_days = skip_purchased, popularity_half_life_days

    def _fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> None:
        assert self.popularity is not None
        log = event_log(data, self.event_weights)
        # Age from the user's own latest event: a visitor back after a month still
        # gets their items in the order of that visit (from the cutoff, every weight
        # of a month-old visit would round to nothing).
        starts = _starts(log.users)
        runs = np.diff(np.append(starts, log.users.size))
        last_seen = np.repeat(np.maximum.reduceat(log.seconds, starts), runs) if starts.size else log.seconds
        age_days = (last_seen - log.seconds) / 86_400.0
        decayed = log.weights * np.power(0.5, age_days / self.half_life_days)
        shape = (data.n_users, data.n_items)
        recency = sp.csr_matrix((decayed, (log.users, log.items)), shape=shape)  # duplicates add up
        met = sp.csr_matrix((np.ones(log.users.size), (log.users, log.items)), shape=shape)
        met.data[:] = 1.0
        if self.skip_purchased:
            bought = log.events == "purchase"
            purchased = sp.csr_matrix((np.ones(int(bought.sum())), (log.users[bought], log.items[bought])), shape=shape)
            met = met - met.multiply(purchased > 0)
        profile = (met.multiply(recency) + met).tocsr()  # 1 + decayed sum, only where met
        profile.eliminate_zeros()
        self.profile = profile.astype(np.float32)
        recent = decayed_popularity(log, data.n_items, self.popularity_half_life_days)
        # All-time users break the ties of items the recent log never met.
        self.prior = PRIOR * normalised(normalised(recent) + 1e-3 * normalised(self.popularity))

    def _score(self, users: np.ndarray) -> np.ndarray:
        scores = np.broadcast_to(self.prior, (users.size, self.prior.size)).copy()
        return scores + self.profile[users].toarray()

    def _score_history(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray:
        """The stored profile with each new event's weight added at its item, undecayed
        (it is the latest); an item bought just now leaves the profile when
        `skip_purchased`."""
        row = np.asarray(self.profile[user].todense(), dtype=np.float64).ravel()
        weights = np.array([self.event_weights.get(e, 0.0) for e in events], dtype=np.float64)
        counted = weights > 0
        met = np.unique(items[counted])
        row[met] = np.maximum(row[met], 1.0)  # a met item scores 1 + its weights
        np.add.at(row, items[counted], weights[counted])
        if self.skip_purchased:
            row[items[np.asarray(events) == "purchase"]] = 0.0
        return self.prior + row

    def _prior(self) -> np.ndarray:
        return self.prior

    def _part(self, users: np.ndarray) -> sp.csr_matrix:
        return self.profile[users]

    def _state(self) -> dict[str, np.ndarray]:
        return {"prior": self.prior} | csr_tensors("profile", self.profile)

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        assert self.users is not None and self.items is not None
        self.prior = check_vector(state, "prior", len(self.items))
        self.profile = check_csr(state, "profile", (len(self.users), len(self.items)))


def _starts(users: np.ndarray) -> np.ndarray:
    """Index of each user's first event in a log grouped by user."""
    starts = np.ones(users.size, bool)
    starts[1:] = users[1:] != users[:-1]
    return np.flatnonzero(starts)
