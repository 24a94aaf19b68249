"""Validation targets in index space: who is evaluated and what is relevant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.models.data import TrainData


@dataclass
class Targets:
    users: np.ndarray  # vocabulary index of each evaluated user
    truth: sp.csr_matrix  # (len(users), n_items), rows aligned with `users`

    @classmethod
    def from_frame(cls, targets: pl.DataFrame, data: TrainData) -> Targets:
        """(user_id, item_id) pairs -> index space. Items unknown to the vocabulary land
        in column 0: counted as relevant, never recommendable (new products)."""
        users = targets[Col.USER].unique().sort()
        rows = pl.DataFrame({Col.USER: users}).with_row_index("row")
        coded = targets.join(rows, on=Col.USER)
        item = data.item_index(coded[Col.ITEM])
        truth = sp.csr_matrix(
            (np.ones(coded.height, np.float32), (coded["row"].to_numpy(), item)), shape=(users.len(), data.n_items)
        )
        truth.sum_duplicates()
        truth.data[:] = 1.0
        return cls(data.user_index(users), truth)
