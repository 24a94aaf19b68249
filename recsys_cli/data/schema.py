"""The lake's data contract: column names, event types and table schemas.

Every module names columns through `Col`, so renaming a column is one edit here.
"""

from __future__ import annotations

from typing import Any

import polars as pl


class Col:
    USER = "user_id"
    ITEM = "item_id"
    EVENT = "event_type"
    TS = "ts"
    SESSION = "session_id"
    VALUE = "value"
    QUANTITY = "quantity"
    PRICE = "price"
    SOURCE = "source"
    DATE = "date"

    CATEGORY = "category"
    BRAND = "brand"
    STOCK = "stock"
    LAUNCHED_AT = "launched_at"
    SIGNUP_AT = "signup_at"

    # Lineage columns carried through ingest, never written to the lake's tables.
    FILE = "_file"
    LINE = "_line"
    REASON = "reason"
    TABLE = "table"


EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating")
EventType = pl.Enum(list(EVENT_TYPES))
Timestamp = pl.Datetime("us", "UTC")

_EVENT_COLUMNS: dict[str, Any] = {
    Col.USER: pl.String,
    Col.ITEM: pl.String,
    Col.EVENT: EventType,
    Col.TS: Timestamp,
    Col.SESSION: pl.String,
    Col.VALUE: pl.Float64,
    Col.QUANTITY: pl.Int32,
    Col.PRICE: pl.Float64,
    Col.SOURCE: pl.String,
}
EVENTS_SCHEMA = pl.Schema(_EVENT_COLUMNS)
EVENTS_REQUIRED: tuple[str, ...] = (Col.USER, Col.ITEM, Col.EVENT, Col.TS)
# Items and users have a small typed core (see data/tables.py) and keep any further
# attributes (demographics, genres, ...) as the source gives them.
