"""The catalogue a service reranks with: the package's item table laid out by the
model's item index (row 0 the unknown item), unknown values as NaN or -1 so that
no rule mistakes them for a value, ids looked up to indices, stock updated live."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from recsys_cli.registry.package_tables import ITEM_COLUMNS
from recsys_cli.serving.catalogue import NO_CODE, UNKNOWN, Catalogue

LAUNCH = datetime(2026, 3, 1, tzinfo=UTC)


def items() -> pl.DataFrame:
    """Three items, stored out of index order, one with every attribute unknown."""
    return pl.DataFrame(
        {
            "item_id": ["shoe", "hat", "mystery"],
            "index": [2, 1, 3],
            "category": ["shoes", "hats", None],
            "brand": ["acme", "acme", None],
            "price": [50.0, 20.0, None],
            "stock": [0, 7, None],
            "launched_at": [LAUNCH, None, None],
            "new_product": [True, None, None],
        },
        schema=ITEM_COLUMNS,
    )


def test_rows_follow_the_model_index_and_row_zero_is_the_unknown_item() -> None:
    cat = Catalogue.from_items(items())
    assert len(cat) == 4
    assert cat.item_ids.tolist() == ["", "hat", "shoe", "mystery"]
    assert cat.ids(np.array([2, 1])) == ["shoe", "hat"]
    assert np.isnan(cat.price[0]) and np.isnan(cat.stock[0]) and cat.category[0] == NO_CODE


def test_attributes_by_index_unknowns_are_nan_or_minus_one() -> None:
    cat = Catalogue.from_items(items())
    assert cat.category_names.tolist() == ["hats", "shoes"]
    assert cat.category.tolist() == [NO_CODE, 0, 1, NO_CODE]
    assert cat.brand.tolist() == [NO_CODE, 0, 0, NO_CODE]
    assert cat.price[1:3].tolist() == [20.0, 50.0] and np.isnan(cat.price[3])
    assert cat.stock[1:3].tolist() == [7.0, 0.0] and np.isnan(cat.stock[3])
    assert cat.launched_at[2] == LAUNCH.timestamp() and np.isnan(cat.launched_at[1])


def test_ids_map_to_indices_and_an_unknown_id_to_zero() -> None:
    cat = Catalogue.from_items(items())
    assert cat.item_index(["mystery", "nope", "hat"]).tolist() == [3, UNKNOWN, 1]
    assert cat.item_index([]).tolist() == []


def test_names_and_codes_round_trip_and_an_absent_name_has_no_code() -> None:
    cat = Catalogue.from_items(items())
    assert cat.code("category", "shoes") == 1 and cat.code("brand", "acme") == 0
    assert cat.code("category", "socks") == NO_CODE
    assert cat.codes("category", ["socks", "hats"]).tolist() == [0]
    assert cat.names("category", np.array([1, NO_CODE])) == ["shoes", None]


def test_stock_updates_in_place_and_skips_ids_the_model_does_not_know() -> None:
    cat = Catalogue.from_items(items())
    assert cat.update_stock(["shoe", "nope", "hat"], [4, 9, None]) == 2
    assert cat.stock[2] == 4.0 and np.isnan(cat.stock[1])


def test_an_empty_item_table_gives_only_the_unknown_row() -> None:
    cat = Catalogue.from_items(items().clear())
    assert len(cat) == 1 and cat.item_index(["hat"]).tolist() == [UNKNOWN]
