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
        counts = values.drop_nulls().cast(pl.String).value_counts(name="n")
        kept = counts.filter(pl.col("n") >= min_count).sort(["n", counts.columns[0]], descending=[True, False])
        return cls((OOV, *kept[counts.columns[0]].to_list()))

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
