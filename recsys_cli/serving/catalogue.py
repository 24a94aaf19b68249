"""The package's item table as flat numpy arrays in the model's item index space,
so a request's business rules are a handful of array lookups over its candidates
instead of a polars query each.

Row `i` of every array describes the model's item `i`; row 0 is the unknown item
(the vocabulary's OOV bucket) and holds "nothing known". Unknown values are NaN
for numbers and -1 for codes, so comparisons with them are simply false: an item
of unknown stock is never "out of stock", one of unknown launch never "new".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col
from recsys_cli.registry.package_tables import INDEX

UNKNOWN = 0  # the item index of an id the model does not know
NO_CODE = -1  # the code of an unknown category or brand


@dataclass
class Catalogue:
    """Item attributes by model item index (see the module docstring).

    `category` and `brand` are codes into `category_names` and `brand_names`
    (sorted), -1 where unknown. `stock` may be changed in place (`update_stock`);
    the rest is fixed for the life of a package.
    """

    item_ids: np.ndarray  # object (str); "" at row 0
    category: np.ndarray  # int32 codes
    category_names: np.ndarray  # object (str)
    brand: np.ndarray  # int32 codes
    brand_names: np.ndarray  # object (str)
    price: np.ndarray  # float64, NaN unknown
    stock: np.ndarray  # float64, NaN unknown (float so that unknown needs no mask)
    launched_at: np.ndarray  # float64 unix seconds, NaN unknown
    _lookup: dict[str, int] = field(repr=False)

    @classmethod
    def from_items(cls, items: pl.DataFrame) -> Catalogue:
        """From a package's `items.parquet` (`registry/package_tables.item_table`):
        `item_id`, `index` (1..n), `category`, `brand`, `price`, `stock`, `launched_at`."""
        rows = items[INDEX].cast(pl.Int64).to_numpy()
        size = int(rows.max()) + 1 if len(rows) else 1
        ids = np.full(size, "", dtype=object)
        ids[rows] = items[Col.ITEM].to_numpy()
        category, category_names = _codes(items[Col.CATEGORY], rows, size)
        brand, brand_names = _codes(items[Col.BRAND], rows, size)
        launched = items[Col.LAUNCHED_AT].dt.epoch("us").cast(pl.Float64) / 1e6
        return cls(
            item_ids=ids,
            category=category,
            category_names=category_names,
            brand=brand,
            brand_names=brand_names,
            price=_numbers(items[Col.PRICE], rows, size),
            stock=_numbers(items[Col.STOCK], rows, size),
            launched_at=_numbers(launched, rows, size),
            _lookup=dict(zip(items[Col.ITEM].to_list(), rows.tolist(), strict=True)),
        )

    def __len__(self) -> int:
        """Rows, the unknown item's included (the model's number of items)."""
        return len(self.item_ids)

    def item_index(self, ids: Iterable[str]) -> np.ndarray:
        """The model's index of each id (int64), 0 for an id the catalogue lacks."""
        get = self._lookup.get
        return np.fromiter((get(i, UNKNOWN) for i in ids), dtype=np.int64)

    def ids(self, index: np.ndarray) -> list[str]:
        """The item ids of model indices, as a JSON-ready list."""
        return self.item_ids[index].tolist()

    def code(self, column: str, value: str) -> int:
        """The code of a category or brand name, -1 when no item has it."""
        names = self.category_names if column == Col.CATEGORY else self.brand_names
        at = int(np.searchsorted(names, value))  # names are sorted
        return at if at < len(names) and names[at] == value else NO_CODE

    def names(self, column: str, codes: np.ndarray) -> list[str | None]:
        """The category or brand names of codes, None for -1 (JSON-ready)."""
        names = self.category_names if column == Col.CATEGORY else self.brand_names
        return [None if c == NO_CODE else names[c] for c in codes.tolist()]

    def codes(self, column: str, values: Sequence[str]) -> np.ndarray:
        """The codes of several names (int32), names no item has left out."""
        found = (self.code(column, v) for v in values)
        return np.fromiter((c for c in found if c != NO_CODE), dtype=np.int32)

    def update_stock(self, ids: Sequence[str], stock: Sequence[float | None]) -> int:
        """Set the stock of known items (None: unknown); returns how many were
        known. Ids the catalogue lacks are skipped: a stock feed may run ahead of
        the model."""
        index = self.item_index(ids)
        values = np.array([np.nan if s is None else s for s in stock], dtype=np.float64)
        known = index != UNKNOWN
        self.stock[index[known]] = values[known]
        return int(known.sum())


def _codes(column: pl.Series, rows: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes into the sorted distinct names (-1 for null), laid out by item index."""
    names = column.drop_nulls().unique().sort()
    codes = column.cast(pl.Enum(names)).to_physical().cast(pl.Int32).fill_null(NO_CODE).to_numpy()
    laid = np.full(size, NO_CODE, dtype=np.int32)
    laid[rows] = codes
    return laid, np.array(names.to_list(), dtype=object)


def _numbers(column: pl.Series, rows: np.ndarray, size: int) -> np.ndarray:
    """A float64 array by item index, NaN where null or absent."""
    laid = np.full(size, np.nan)
    laid[rows] = column.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return laid
