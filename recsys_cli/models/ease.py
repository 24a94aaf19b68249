"""EASE (Steck, 2019): a closed-form item-item linear model with an L2 penalty.

B = I - P diagMat(1 / diag(P)), P = (X'X + λI)^-1. Dense in the number of items:
a shop's catalogue of 25k items would need three 5 GB matrices and minutes of
inversion, so above `max_items` the model covers the `max_items` items the most
users interacted with (where nearly all of the signal is) and ranks the others
below every covered item, by popularity.

λ is `l2` times the Gram matrix's mean diagonal (`l2_scale: mean_diag`) or `l2`
itself (`absolute`). The diagonal is each item's summed squared weight, so its
scale follows the data: unit MovieLens ratings put it near 60, a shop's decayed,
event-weighted clicks anywhere from 0.1 to 100. A relative λ means the same
amount of shrinkage on either; an absolute one tuned on one is wrong on the other.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recsys_cli.errors import ConfigError
from recsys_cli.models.data import TrainData
from recsys_cli.models.history import with_items
from recsys_cli.models.selection import Grid, GridSelected
from recsys_cli.models.weighting import reweight

L2Scale = Literal["absolute", "mean_diag"]


class EASE(GridSelected):
    FITTED = ("b", "x", "kept")

    def __init__(
        self,
        l2: float = 500.0,
        l2_scale: L2Scale = "absolute",
        weighting: str = "raw",
        max_items: int = 30_000,
        grid: Grid | None = None,
    ) -> None:
        super().__init__(grid=grid, l2=l2, l2_scale=l2_scale, weighting=weighting, max_items=max_items)
        self.l2, self.l2_scale, self.weighting, self.max_items = l2, l2_scale, weighting, max_items
        self.kept: np.ndarray | None = None  # the covered items when the catalogue exceeds max_items

    def _fit_point(self, data: TrainData) -> None:
        if self.max_items < 1:
            raise ConfigError(f"model.max_items must be at least 1, got {self.max_items}")
        x = reweight(data.matrix, self.weighting)
        self.kept = covered_items(x, self.max_items)
        modelled = x if self.kept is None else x[:, self.kept]
        gram = np.asarray((modelled.T @ modelled).todense(), dtype=np.float64)
        diag = np.diag_indices_from(gram)
        gram[diag] += penalty(self.l2, self.l2_scale, gram.diagonal())
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[diag] = 0.0
        self.b, self.x = b.astype(np.float32), x

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._scores_of(self.x[users])

    def _score_history(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray:
        """The user's row with each new item counted once more (a view and a purchase
        alike: the weights the model was fitted on are the feature set's, which a live
        event does not have), through the same item-item weights."""
        return self._scores_of(with_items(self.x[[user]], items))

    def _scores_of(self, x: sp.csr_matrix) -> np.ndarray:
        if self.kept is None:
            return np.asarray(x @ self.b)
        covered = np.asarray(x[:, self.kept] @ self.b)
        # Every other item below the user's lowest covered score, in popularity order.
        assert self.popularity is not None
        floor = (covered.min(axis=1, initial=0.0) - 1.0)[:, None]
        scores = floor + 0.5 * (self.popularity / max(float(self.popularity.max()), 1.0))[None, :]
        scores[:, self.kept] = covered
        return scores.astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        from recsys_cli.models.state import csr_tensors

        x = self.x.tocsr()
        covered = {} if self.kept is None else {"kept": self.kept.astype(np.int64)}
        return covered | {"b": self.b} | csr_tensors("x", x)

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        from recsys_cli.models.state import check_csr, check_range, tensor

        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        self.kept = check_range(state, "kept", (None,), 0, n_items) if "kept" in state else None
        k = n_items if self.kept is None else self.kept.size
        self.b = tensor(state, "b", (k, k), "f")
        self.x = check_csr(state, "x", (n_users, n_items))


def covered_items(x: sp.csr_matrix, max_items: int) -> np.ndarray | None:
    """The `max_items` items the most users interacted with, in index order (ties
    to the lower index); None when the whole catalogue fits."""
    if x.shape[1] <= max_items:
        return None
    users_per_item = np.diff(x.tocsc().indptr)
    return np.sort(np.argsort(-users_per_item, kind="stable")[:max_items])


def penalty(l2: float, scale: Any, diagonal: np.ndarray) -> float:
    """λ added to the Gram matrix's diagonal: `l2` itself, or `l2` times the mean
    diagonal over the items anyone interacted with (empty columns, such as the
    unknown item's, would drag the mean towards 0)."""
    if scale == "absolute":
        return float(l2)
    if scale == "mean_diag":
        used = diagonal[diagonal > 0]
        return float(l2) * (float(used.mean()) if used.size else 1.0)
    raise ConfigError(f"model.l2_scale must be absolute or mean_diag, got {scale!r}")
