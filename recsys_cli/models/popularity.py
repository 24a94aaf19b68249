"""Popularity baselines: global, recent (a trailing window) and per segment.

They are strong on shop data, where demand moves fast, and every personalised
model must be measured against them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.retrieval import SparseScores
from recsys_cli.models.state import check_range, check_vector, tensor
from recsys_cli.models.validation import Targets


class Popularity(SparseScores, Recommender):
    """Items by how many users interacted with them before the cutoff."""

    def _fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> None:
        assert self.popularity is not None
        self.item_scores = self.popularity.copy()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (users.size, self.item_scores.size)).copy()

    def _prior(self) -> np.ndarray:
        return self.item_scores

    def _part(self, users: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((users.size, self.item_scores.size), dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        assert self.items is not None
        self.item_scores = check_vector(state, "item_scores", len(self.items))


class RecentPopularity(Popularity):
    """Items by events in the `window_days` before the cutoff (from the point-in-time
    item aggregates), ties broken by all-time popularity."""

    def __init__(self, window_days: float = 7, events: Sequence[str] = ("view", "add_to_cart", "purchase")) -> None:
        super().__init__(window_days=window_days, events=list(events))
        self.window_days, self.events = window_days, list(events)

    def _fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> None:
        assert self.popularity is not None and data.item_features is not None
        columns = [f"n_{e}_{self.window_days:g}d" for e in self.events]
        missing = [c for c in columns if c not in data.item_features.columns]
        if missing:
            raise ConfigError(
                f"recent popularity needs item features {missing}; add {self.window_days:g} to features.windows_days"
            )
        recent = data.item_features.select(Col.ITEM, pl.sum_horizontal(columns).fill_null(0).alias("n"))
        index = data.item_index(recent[Col.ITEM])
        scores = np.zeros(data.n_items, dtype=np.float32)
        np.add.at(scores, index, recent["n"].to_numpy().astype(np.float32))
        scores[0] = 0
        tie_break = self.popularity / (self.popularity.max() + 1)
        self.item_scores = scores + tie_break


class SegmentPopularity(Popularity):
    """Items by popularity among users who share an attribute (region, age bucket...);
    users without the attribute get global popularity."""

    sparse_scores = False  # one prior per segment, not one for all

    def __init__(self, attribute: str = "region") -> None:
        super().__init__(attribute=attribute)
        self.attribute = attribute

    def _fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> None:
        assert self.popularity is not None
        if data.user_features is None or self.attribute not in data.user_features.columns:
            raise ConfigError(f"segment popularity: the users table has no '{self.attribute}' column")
        values = data.user_features.select(Col.USER, pl.col(self.attribute).cast(pl.String))
        codes = values[self.attribute].fill_null("").rank("dense").cast(pl.Int64).to_numpy()  # 1..n_segments
        segment = np.zeros(data.n_users, dtype=np.int64)
        index = data.user_index(values[Col.USER])
        segment[index[index > 0]] = codes[index > 0]
        onehot = sp.csr_matrix((np.ones(data.n_users, np.float32), (np.arange(data.n_users), segment)))
        per_segment = np.asarray((onehot.T @ data.interacted()).todense(), dtype=np.float32)
        per_segment[0] = self.popularity  # unknown segment: global popularity
        tie_break = self.popularity / (self.popularity.max() + 1)
        self.segment_scores, self.user_segment = per_segment + tie_break, segment

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.segment_scores[self.user_segment[users]]

    def _state(self) -> dict[str, np.ndarray]:
        return {"segment_scores": self.segment_scores, "user_segment": self.user_segment}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        assert self.users is not None and self.items is not None
        self.segment_scores = tensor(state, "segment_scores", (None, len(self.items)), "f")
        segments = self.segment_scores.shape[0]
        self.user_segment = check_range(state, "user_segment", (len(self.users),), 0, segments)
