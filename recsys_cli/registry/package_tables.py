"""The tables a package carries beside the model: the item table, the user
snapshot and the vocabularies, in the model's own index space.

A service answers with item ids and applies business rules (stock, new-product
slots, category diversity) to them, and looks users up by the pseudonym it is
given; these tables are what it reads for that, keyed by the vocabulary tokens
of the fitted model so that row `index` is the model's own index. Columns the
lake does not have are null: nothing is invented.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.features.vocab import Vocabulary

INDEX = "index"
NEW_PRODUCT = "new_product"
# The item table's columns and types, in order.
ITEM_COLUMNS: dict[str, pl.DataType] = {
    Col.ITEM: pl.String(),
    INDEX: pl.UInt32(),
    Col.CATEGORY: pl.String(),
    Col.BRAND: pl.String(),
    Col.PRICE: pl.Float64(),
    Col.STOCK: pl.Int64(),
    Col.LAUNCHED_AT: Timestamp,
    NEW_PRODUCT: pl.Boolean(),
}
# Feature tables of a fold's part (features/build.py) the user snapshot is made of.
USER_FEATURES, SEQUENCES = "user_features.parquet", "sequences.parquet"
SnapshotUsers = Literal["all", "model"]


def vocab_frame(tokens: Sequence[str]) -> pl.LazyFrame:
    """A vocabulary's tokens with their index, the OOV bucket (index 0) left out."""
    return pl.LazyFrame(
        {"token": list(tokens[1:]), INDEX: pl.int_range(1, len(tokens), dtype=pl.UInt32, eager=True)},
        schema={"token": pl.String, INDEX: pl.UInt32},
    )


def item_table(
    tokens: Sequence[str], catalog: pl.LazyFrame | None, cutoff: datetime, new_product_days: float
) -> pl.DataFrame:
    """One row per item the model knows (`index` its column in the model's scores):
    the catalogue's category, brand, price, stock and launch time as the lake holds
    them, and `new_product`: launched within `new_product_days` before the cutoff
    (null where the launch time is unknown)."""
    items = vocab_frame(tokens).rename({"token": Col.ITEM})
    attributes = [c for c in ITEM_COLUMNS if c not in (Col.ITEM, INDEX, NEW_PRODUCT)]
    if catalog is not None:
        names = set(catalog.collect_schema().names())
        present = [pl.col(c).cast(ITEM_COLUMNS[c]) for c in attributes if c in names]
        items = items.join(catalog.select(pl.col(Col.ITEM).cast(pl.String), *present), on=Col.ITEM, how="left")
    have = set(items.collect_schema().names())
    items = items.with_columns(pl.lit(None, dtype=ITEM_COLUMNS[c]).alias(c) for c in attributes if c not in have)
    since = pl.lit(cutoff - timedelta(days=new_product_days), dtype=Timestamp)
    new = pl.col(Col.LAUNCHED_AT) >= since
    return items.with_columns(new.alias(NEW_PRODUCT)).select(list(ITEM_COLUMNS)).sort(INDEX).collect()


def user_snapshot(features: Path, users: Vocabulary, scope: SnapshotUsers, sequences: bool) -> pl.DataFrame:
    """Each user's point-in-time features and (with `sequences`) recent sequence as
    the run's feature set computed them at its cutoff, read from that feature set
    (`features/build.py`), never recomputed; `index` is the user's row in the model
    (0: a user the model does not know). `scope="model"` keeps only known users."""
    table = pl.scan_parquet(features / USER_FEATURES)
    if sequences:
        recent = pl.scan_parquet(features / SEQUENCES)
        clash = (set(recent.collect_schema().names()) & set(table.collect_schema().names())) - {Col.USER}
        if clash:
            raise ValueError(f"{features}: user features and sequences share columns {sorted(clash)}")
        table = table.join(recent, on=Col.USER, how="full", coalesce=True)
    table = table.with_columns(users.encode(Col.USER).alias(INDEX))
    if scope == "model":
        table = table.filter(pl.col(INDEX) > 0)
    return table.select(Col.USER, INDEX, pl.exclude(Col.USER, INDEX)).sort(Col.USER).collect()


def write_vocab(folder: Path, vocabularies: dict[str, Vocabulary]) -> None:
    """`<name>.json` per vocabulary, the shape `Vocabulary.to_json` gives (index 0 the OOV bucket)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, vocab in vocabularies.items():
        (folder / f"{name}.json").write_text(json.dumps(vocab.to_json(), indent=1) + "\n")
