"""EASE (Steck, 2019): a closed-form item-item linear model with an L2 penalty.

B = I - P diagMat(1 / diag(P)), P = (X'X + λI)^-1. Dense in the number of items,
so refused above `max_items`.

λ is `l2` times the Gram matrix's mean diagonal (`l2_scale: mean_diag`) or `l2`
itself (`absolute`). The diagonal is each item's summed squared weight, so its
scale follows the data: unit MovieLens ratings put it near 60, a shop's decayed,
event-weighted clicks anywhere from 0.1 to 100. A relative λ means the same
amount of shrinkage on either; an absolute one tuned on one is wrong on the other.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from recsys_cli.errors import ConfigError
from recsys_cli.models.data import TrainData
from recsys_cli.models.selection import Grid, GridSelected
from recsys_cli.models.weighting import reweight

L2Scale = Literal["absolute", "mean_diag"]


class EASE(GridSelected):
    FITTED = ("b", "x")

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

    def _fit_point(self, data: TrainData) -> None:
        if data.n_items > self.max_items:
            raise ConfigError(f"EASE needs a dense {data.n_items:,}^2 matrix; above model.max_items={self.max_items:,}")
        x = reweight(data.matrix, self.weighting)
        gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
        diag = np.diag_indices_from(gram)
        gram[diag] += penalty(self.l2, self.l2_scale, gram.diagonal())
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[diag] = 0.0
        self.b, self.x = b.astype(np.float32), x

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.x[users] @ self.b)

    def _state(self) -> dict[str, np.ndarray]:
        x = self.x.tocsr()
        return {
            "b": self.b,
            "x_data": x.data,
            "x_indices": x.indices.astype(np.int64),
            "x_indptr": x.indptr.astype(np.int64),
        }

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        from recsys_cli.models.state import check_csr, tensor

        assert self.users is not None and self.items is not None
        n_users, n_items = len(self.users), len(self.items)
        self.b = tensor(state, "b", (n_items, n_items), "f")
        self.x = check_csr(state, "x", (n_users, n_items))


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
