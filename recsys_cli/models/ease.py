"""EASE (Steck, 2019): a closed-form item-item linear model with an L2 penalty.

B = I - P diagMat(1 / diag(P)), P = (X'X + λI)^-1. Dense in the number of items,
so refused above `max_items`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys_cli.errors import ConfigError
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets


class EASE(Recommender):
    def __init__(self, l2: float = 500.0, max_items: int = 30_000) -> None:
        super().__init__(l2=l2, max_items=max_items)
        self.l2, self.max_items = l2, max_items

    def _fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> None:
        if data.n_items > self.max_items:
            raise ConfigError(f"EASE needs a dense {data.n_items:,}^2 matrix; above model.max_items={self.max_items:,}")
        x = data.matrix
        gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
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
