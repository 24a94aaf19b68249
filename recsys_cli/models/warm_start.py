"""Warm start: a model fitted on a newer window begins from the previous model's
learned rows instead of from scratch (`Recommender.warm_start`).

A newer window's vocabularies differ from the old ones (new users and products,
some gone, and indices reshuffled, since they follow frequency), so rows are
carried over by token, never by index. A token the previous model never met
gets a row from what the new data says about it: an item the mean of its
category's known items, a user the mean of the items in their history. Only
numpy, scipy and polars here: ALS's warm start must not load the Lightning stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.data import TrainData


class WarmStartError(ConfigError):
    """A model cannot start from the previous one as asked (a closed-form model, another
    class, another embedding size): fit it from scratch instead."""


@dataclass(frozen=True)
class RowMap:
    """Where each row of a table indexed by the new vocabulary comes from in the
    previous model's table."""

    # (len(new),) the previous row of each new row; -1 for a token the previous model
    # never met. Row 0, the out-of-vocabulary bucket, comes from row 0.
    source: np.ndarray

    @classmethod
    def between(cls, previous: Vocabulary, new: Vocabulary) -> RowMap:
        """Rows matched by token.

        >>> RowMap.between(Vocabulary(("<oov>", "a", "b")), Vocabulary(("<oov>", "b", "c"))).source
        array([ 0,  2, -1])
        """
        index = pl.DataFrame({"t": new.tokens}).select(previous.encode("t"))["t"].to_numpy().astype(np.int64)
        source = np.where(index > 0, index, -1)
        source[0] = 0
        return cls(source)

    @property
    def kept(self) -> np.ndarray:
        """Bool per new row: carried over from the previous table."""
        return self.source >= 0

    @property
    def new(self) -> np.ndarray:
        """Indices of the rows the previous model never met."""
        return np.flatnonzero(self.source < 0)

    def carry(self, previous: np.ndarray, fill: np.ndarray) -> np.ndarray:
        """(len(new), d) float32: the previous rows where kept, `fill`'s rows elsewhere."""
        out = np.array(fill, dtype=np.float32, copy=True)
        kept = self.kept
        out[kept] = previous[self.source[kept]]
        return out

    def counts(self, previous_size: int) -> dict[str, float]:
        """How many rows were carried, are new, and were dropped (tokens gone from the
        new window), OOV row left out: evidence for the retrain's record."""
        carried = int(self.kept[1:].sum())
        return {"carried": float(carried), "new": float(self.new.size), "dropped": float(previous_size - 1 - carried)}


def copy_weights(previous: Mapping[str, Any], into: dict[str, Any], skip: Iterable[str], what: str) -> None:
    """Every weight of `previous` but `skip` (tables sized by the data, carried by
    token elsewhere) into `into`, as it is; a weight `into` lacks or holds in another
    shape means another architecture (`what` names the settings that make it), which
    a warm start cannot continue from."""
    skipped = set(skip)
    for name, value in previous.items():
        if name in skipped:
            continue
        if name not in into or tuple(into[name].shape) != tuple(value.shape):
            raise WarmStartError(
                f"{name} differs from the previous model's ({what} changed): a warm start keeps the "
                "architecture; fit from scratch to change it"
            )
        into[name] = value


def mean_rows(weights: sp.csr_matrix, table: np.ndarray) -> np.ndarray:
    """(n, d) float32 per row of `weights` (n, len(table)): the weighted mean of
    `table`'s rows, zero where the row carries no weight."""
    totals = np.asarray(weights.sum(axis=1)).ravel()
    sums = np.asarray(weights @ table, dtype=np.float64)
    means = np.divide(sums, totals[:, None], out=np.zeros_like(sums), where=totals[:, None] > 0)
    return means.astype(np.float32)


def history_means(data: TrainData, users: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
    """(len(users), d) the mean row of the items each user met in `data`: where a
    new user's vector starts, pointing at what they chose."""
    return mean_rows(data.interacted()[users], item_rows)


def category_means(data: TrainData, item_rows: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(n_items, d) per item: the mean row of the `known` items of its category
    (`data.item_features`' category column); zero for an item without a category or
    whose category has no known item. A new product starts where its shelf is."""
    members = category_matrix(data)
    if members.shape[1] == 0:
        return np.zeros_like(item_rows, dtype=np.float32)
    known_members = sp.diags(known.astype(np.float32)) @ members
    return np.asarray(members @ mean_rows(known_members.T.tocsr(), item_rows), dtype=np.float32)


def category_matrix(data: TrainData) -> sp.csr_matrix:
    """(n_items, n_categories) 1 where the item is in the category; no columns where
    the data has no item categories."""
    features = data.item_features
    if features is None or Col.CATEGORY not in features.columns or Col.ITEM not in features.columns:
        return sp.csr_matrix((data.n_items, 0), dtype=np.float32)
    coded = (
        features.select(
            data.items.encode(Col.ITEM).cast(pl.Int64).alias("i"),
            pl.col(Col.CATEGORY).cast(pl.String).rank("dense").cast(pl.Int64).alias("c"),
        )
        .filter((pl.col("i") > 0) & pl.col("c").is_not_null())
        .unique("i", keep="first", maintain_order=True)
    )
    rows, cols = coded["i"].to_numpy(), coded["c"].to_numpy() - 1
    n_categories = int(cols.max()) + 1 if cols.size else 0
    return sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(data.n_items, n_categories))
