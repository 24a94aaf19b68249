"""ItemKNN: items similar to what the user interacted with, by cosine similarity
of their interaction columns with shrinkage, keeping the `k` nearest per item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets


class ItemKNN(Recommender):
    def __init__(self, k: int = 100, shrink: float = 10.0) -> None:
        super().__init__(k=k, shrink=shrink)
        self.k, self.shrink = k, shrink

    def _fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> None:
        x = data.matrix.tocsc().astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        sim = (x.T @ x).tocsr().astype(np.float32)
        sim.setdiag(0)
        sim.eliminate_zeros()
        coo = sim.tocoo()
        coo.data = coo.data / (norms[coo.row] * norms[coo.col] + self.shrink)
        self.sim = _top_k_per_row(coo.tocsr(), self.k)
        self.x = data.matrix.tocsr()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.x[users] @ self.sim.T).todense())

    def _state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, m in (("sim", self.sim), ("x", self.x)):
            out |= {
                f"{name}_data": m.data,
                f"{name}_indices": m.indices.astype(np.int64),
                f"{name}_indptr": m.indptr.astype(np.int64),
            }
        return out

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        n_items = state["sim_indptr"].size - 1
        self.sim = sp.csr_matrix(
            (state["sim_data"], state["sim_indices"], state["sim_indptr"]), shape=(n_items, n_items)
        )
        self.x = sp.csr_matrix(
            (state["x_data"], state["x_indices"], state["x_indptr"]), shape=(state["x_indptr"].size - 1, n_items)
        )


def _top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (vectorised over rows by sorting once)."""
    coo = m.tocoo()
    order = np.lexsort((-coo.data, coo.row))
    rows, cols, vals = coo.row[order], coo.col[order], coo.data[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(rows.size) - starts) < k
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=m.shape)
