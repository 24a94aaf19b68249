"""User and item side tables turned into dense arrays a network can embed.

A feature set's `user_features` / `item_features` hold strings (demographics,
category, brand), counts and rates, and a few timestamps. Networks need every row
aligned with the id vocabulary, categoricals as indices (0 = unknown, as in the
vocabularies) and numbers on one scale. Heavy-tailed counts are log-compressed
before standardising so one best-seller does not flatten every other item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recsys_cli.features.vocab import Vocabulary


@dataclass(frozen=True)
class SideFeatures:
    categorical: np.ndarray  # (n_rows, n_cat) int64 indices, 0 = unknown or missing
    cardinalities: tuple[int, ...]  # embedding table size of each categorical column
    numeric: np.ndarray  # (n_rows, n_num) float32, standardised, missing = 0
    names: tuple[str, ...]  # categorical names, then numeric names
    # The vocabulary behind each string column: pass them back in to encode another
    # cutoff's table with the same indices.
    vocabularies: dict[str, Vocabulary] = field(default_factory=dict)
    # (2, n_num) the mean and spread `standardise` used per numeric column (signed
    # log scale): what turns a raw value into the table's units (`standardised`).
    scale: np.ndarray = field(default_factory=lambda: np.zeros((2, 0)))

    @classmethod
    def empty(cls, n_rows: int) -> SideFeatures:
        return cls(np.zeros((n_rows, 0), np.int64), (), np.zeros((n_rows, 0), np.float32), ())

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return self.names[len(self.cardinalities) :]


def encode_side(
    frame: pl.DataFrame | None,
    key: str,
    keys: Vocabulary,
    vocabularies: Mapping[str, Vocabulary],
    buckets: Mapping[str, int] | None = None,
    exclude: Sequence[str] = (),
    like: SideFeatures | None = None,
) -> SideFeatures:
    """Encode `frame` (one row per `key`) onto the rows of `keys`.

    String columns become indices through the feature set's vocabulary of that
    name, or one fitted here (near-unique ones such as titles are left out, as
    they would only repeat the id); columns named in `buckets` (price, age) also get a
    quantile-bucket categorical, which lets a network learn non-monotone effects
    that one standardised number hides. Rows of `keys` absent from `frame` get
    zeros: the unknown index and the mean of every numeric column. `like` encodes
    another cutoff's table with exactly the columns and vocabularies of an earlier
    encoding, so one network reads both.
    """
    n = len(keys)
    if frame is None or frame.height == 0:
        return SideFeatures.empty(n)
    frame = frame.with_columns(keys.encode(key).alias("_row")).filter(pl.col("_row") > 0)
    rows = frame["_row"].to_numpy().astype(np.int64)
    skip = {key, "_row", *exclude}
    if like is not None:
        strings, vocabularies = list(like.vocabularies), like.vocabularies
    else:
        strings = [
            c
            for c, t in frame.schema.items()
            if c not in skip
            and t in (pl.String, pl.Categorical)
            and (c in vocabularies or _not_an_identifier(frame[c]))
        ]
    numbers = [c for c, t in frame.schema.items() if c not in skip and t.is_numeric()]

    cat_columns, cards, used = [], [], {}
    for column in strings:
        vocab = used[column] = vocabularies.get(column) or Vocabulary.fit(frame[column])
        cat_columns.append(frame.select(vocab.encode(column))[column].to_numpy().astype(np.int64))
        cards.append(len(vocab))
    for column, n_buckets in (buckets or {}).items():
        if column in numbers:
            cat_columns.append(quantile_buckets(frame[column].cast(pl.Float64).to_numpy(), n_buckets))
            cards.append(n_buckets + 1)

    categorical = np.zeros((n, len(cat_columns)), np.int64)
    if cat_columns:
        categorical[rows] = np.stack(cat_columns, axis=1)
    numeric = np.zeros((n, len(numbers)), np.float32)
    scale = np.zeros((2, len(numbers)))
    if numbers:
        numeric[rows], scale = standardise_with_scale(frame.select(pl.col(numbers).cast(pl.Float64)).to_numpy())
    names = (*strings, *(f"{c}_bucket" for c in (buckets or {}) if c in numbers), *numbers)
    return SideFeatures(categorical, tuple(cards), numeric, names, used, scale)


def _not_an_identifier(column: pl.Series) -> bool:
    """Near-unique strings (titles, postcodes) would only repeat the id embedding."""
    return column.n_unique() <= max(2, column.len() // 2)


def quantile_buckets(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """1..n_buckets by quantile of the known values; missing values get 0."""
    out = np.zeros(values.size, np.int64)
    known = np.isfinite(values)
    if known.any():
        edges = np.quantile(values[known], np.linspace(0, 1, n_buckets + 1)[1:-1])
        out[known] = np.searchsorted(edges, values[known], side="right") + 1
    return out


def standardise(values: np.ndarray) -> np.ndarray:
    """Signed log1p, then zero mean and unit variance per column; missing -> 0 (the mean)."""
    return standardise_with_scale(values)[0]


def standardise_with_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`standardise`, and the (2, n_columns) mean and spread it used."""
    x = np.sign(values) * np.log1p(np.abs(values))
    known = np.isfinite(x)
    count = np.maximum(known.sum(axis=0), 1)
    mean = np.where(known, x, 0.0).sum(axis=0) / count
    std = np.sqrt((np.where(known, x - mean, 0.0) ** 2).sum(axis=0) / count)
    spread = np.where(std > 1e-9, std, 1.0)
    z = (x - mean) / spread
    return np.where(known, z, 0.0).astype(np.float32), np.stack([mean, spread])


def raw_values(z: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The raw values behind standardised ones (`standardise_with_scale`'s inverse)."""
    x = np.asarray(z, dtype=np.float64) * scale[1] + scale[0]
    return np.sign(x) * np.expm1(np.abs(x))


def standardised(raw: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Raw values in a table's units, with its own mean and spread."""
    x = np.sign(raw) * np.log1p(np.abs(raw))
    return ((x - scale[0]) / scale[1]).astype(np.float32)
