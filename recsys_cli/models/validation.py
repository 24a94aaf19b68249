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
    """Evaluated users and their ground truth.

    `truth` has one row per user and one column per relevant item: columns
    0..n_items-1 are the vocabulary's items (column 0, the unknown item, is never
    set), and each distinct item the vocabulary does not hold (a product new in
    the window) gets a column of its own past them. A row's count is therefore the
    user's true number of relevant items, which the ideal DCG and recall divide by;
    no model can recommend the extra columns, so those items are always misses.
    """

    users: np.ndarray  # vocabulary index of each evaluated user
    truth: sp.csr_matrix  # (len(users), n_items + unknown items), rows aligned with `users`

    @classmethod
    def from_frame(cls, targets: pl.DataFrame, data: TrainData) -> Targets:
        """(user_id, item_id) pairs -> index space, each distinct pair once."""
        pairs = targets.select(Col.USER, pl.col(Col.ITEM).cast(pl.String).fill_null("")).unique()
        users = pairs[Col.USER].unique().sort()
        rows = pl.DataFrame({Col.USER: users}).with_row_index("row")
        coded = pairs.join(rows, on=Col.USER)
        coded = coded.with_columns(known=pl.Series(data.item_index(coded[Col.ITEM])))
        return cls(data.user_index(users), truth_matrix(coded, users.len(), data.n_items))


def truth_matrix(coded: pl.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """0/1 relevance from distinct (`row`, `item_id`) pairs with `known`, the item's
    vocabulary index (0 when unknown): an unknown item's column is n_items plus its
    rank among the unknown ids, so two new products never share a column."""
    unknown = pl.col("known") == 0
    coded = coded.with_columns(
        column=pl.when(unknown)
        .then(n_items - 1 + pl.col(Col.ITEM).rank("dense").over(unknown))
        .otherwise(pl.col("known"))
        .cast(pl.Int64)
    )
    n_unknown = coded.filter(unknown)[Col.ITEM].n_unique()
    return sp.csr_matrix(
        (np.ones(coded.height, np.float32), (coded["row"].to_numpy(), coded["column"].to_numpy())),
        shape=(n_users, n_items + n_unknown),
    )
