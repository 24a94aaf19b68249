"""Side tables land on the id vocabulary's rows, on one scale, with unknowns at 0."""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.side_features import encode_side, quantile_buckets, standardise

KEYS = Vocabulary(("<oov>", "i1", "i2", "i3", "i4"))


def table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": ["i2", "i1", "i3", "stranger"],
            "category": ["shoes", "hats", "shoes", "hats"],
            "title": ["a", "b", "c", "d"],  # unique per row: an identifier, not a feature
            "price": [10.0, None, 1000.0, 5.0],
        }
    )


def test_rows_follow_the_vocabulary_and_unknowns_are_zero() -> None:
    side = encode_side(table(), "item_id", KEYS, {}, buckets={"price": 2})
    assert side.names == ("category", "price_bucket", "price")
    category = side.vocabularies["category"]
    assert side.categorical[KEYS.tokens.index("i2"), 0] == category.tokens.index("shoes")
    assert side.categorical[KEYS.tokens.index("i1"), 0] == category.tokens.index("hats")
    assert (side.categorical[[0, 4]] == 0).all() and (side.numeric[[0, 4]] == 0).all()  # OOV row, i4 absent
    assert side.categorical[KEYS.tokens.index("i1"), 1] == 0  # missing price: unknown bucket


def test_a_second_cutoff_reuses_the_columns_and_indices_of_the_first() -> None:
    first = encode_side(table(), "item_id", KEYS, {})
    later = table().with_columns(pl.col("category").reverse())
    second = encode_side(later, "item_id", KEYS, {}, like=first)
    assert second.cardinalities == first.cardinalities
    assert second.vocabularies["category"] is first.vocabularies["category"]


def test_counts_are_log_compressed_then_standardised() -> None:
    counts = np.append(np.arange(1.0, 101.0), [1e6, np.nan])[:, None]
    z = standardise(counts)[:, 0]
    known = z[:-1]
    assert abs(known.mean()) < 1e-5 and abs(known.std() - 1) < 1e-4 and z[-1] == 0  # missing -> the mean
    plain = (counts[:-1, 0] - counts[:-1, 0].mean()) / counts[:-1, 0].std()
    # One best-seller does not flatten every other item: they keep their spread.
    assert known[:100].std() > 5 * plain[:100].std()


def test_quantile_buckets() -> None:
    np.testing.assert_array_equal(quantile_buckets(np.array([1.0, 2.0, 3.0, 4.0, np.nan]), 2), [1, 1, 2, 2, 0])
