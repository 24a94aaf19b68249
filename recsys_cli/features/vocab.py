"""Categorical vocabularies with a frequency threshold and an out-of-vocabulary
bucket, so ids unseen at training time (new users, new products) map to a known
index at serving time.

Index 0 is the OOV bucket; known values follow by descending frequency, ties by
value, so the same history always gives the same indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

OOV = "<oov>"


@dataclass(frozen=True)
class Vocabulary:
    tokens: tuple[str, ...]  # tokens[0] is OOV

    @classmethod
    def fit(cls, values: pl.Series, min_count: int = 1) -> Vocabulary:
        return cls.from_counts(values.drop_nulls().cast(pl.String).value_counts(name="n"), min_count)

    @classmethod
    def from_counts(cls, counts: pl.DataFrame, min_count: int = 1) -> Vocabulary:
        """From a (value, count) frame, as a group-by gives it."""
        value, n = counts.columns[0], counts.columns[1]
        counts = counts.filter(pl.col(value).is_not_null()).with_columns(pl.col(value).cast(pl.String))
        kept = counts.filter(pl.col(n) >= min_count).sort([n, value], descending=[True, False])
        return cls((OOV, *kept[value].to_list()))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, column: str) -> pl.Expr:
        """Index of each value; unseen or null values get 0."""
        known = pl.Series(self.tokens[1:], dtype=pl.String)
        return (
            pl.col(column)
            .cast(pl.String)
            .replace_strict(
                known, pl.int_range(1, len(self.tokens), eager=True).cast(pl.UInt32), default=0, return_dtype=pl.UInt32
            )
        )

    def to_json(self) -> dict[str, object]:
        return {"oov_index": 0, "size": len(self.tokens), "tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, payload: dict[str, object]) -> Vocabulary:
        tokens = payload["tokens"]
        assert isinstance(tokens, list)
        return cls(tuple(str(t) for t in tokens))
