from datetime import UTC, datetime

import polars as pl
import pytest

from recsys_cli.data.expressions import event_reason, map_event_type, parse_number, parse_timestamp
from recsys_cli.data.sources.base import RAGGED, TimestampSpec

UTC_DT = pl.Datetime("us", "UTC")


@pytest.mark.parametrize(
    ("unit", "raw", "expected"),
    [
        ("s", "881250949", datetime(1997, 12, 4, 15, 55, 49, tzinfo=UTC)),
        ("s", "881250949.0", datetime(1997, 12, 4, 15, 55, 49, tzinfo=UTC)),
        ("ms", "1433221332117", datetime(2015, 6, 2, 5, 2, 12, 117000, tzinfo=UTC)),
        ("iso", "2026-01-01T10:00:00Z", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("iso", "2026-01-01T10:00:00+02:00", datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("iso", "yesterday", None),
        ("s", "12abc", None),
    ],
)
def test_parse_timestamp_units(unit: str, raw: str, expected: datetime | None) -> None:
    out = pl.select(parse_timestamp(pl.lit(raw), TimestampSpec(unit=unit)).alias("t"))["t"]
    assert out.dtype == UTC_DT
    assert out[0] == expected


def test_event_types_map_case_insensitively_and_unknown_become_null() -> None:
    raw = pl.Series(["view", "AddToCart", "transaction", "wishlist"])
    out = pl.select(map_event_type(pl.lit(raw), {"addtocart": "add_to_cart", "transaction": "purchase"}))
    assert out.to_series().cast(pl.String).to_list() == ["view", "add_to_cart", "purchase", None]


def test_integers_reject_fractions() -> None:
    out = pl.select(parse_number(pl.lit(pl.Series(["2", "2.0", "2.5", "x"])), pl.Int32()))
    assert out.to_series().to_list() == [2, 2, None, None]


def _row(**kw: object) -> dict[str, object]:
    base = {
        "user_id": "u",
        "item_id": "i",
        "event_type": "view",
        "ts": "2026-01-01T00:00:00Z",
        "price": None,
        RAGGED: None,
    }
    return base | kw


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (_row(), None),
        (_row(**{RAGGED: "too_few_fields"}), "too_few_fields"),
        (_row(**{RAGGED: "ragged_row"}), "ragged_row"),  # the reader's own reason comes first
        (_row(user_id="u\n2"), "bad_id"),  # a line break in an id: a record that swallowed the next
        (_row(item_id="i\x00"), "bad_id"),
        (_row(price="inf"), "bad_number:price"),
        (_row(price="NaN"), "bad_number:price"),
        (_row(price="1e300"), "bad_number:price"),
        (_row(ts="2026-01-01 10:00"), None),
        (_row(item_id="caf\ufffd"), "invalid_utf8"),
        (_row(user_id=None), "missing:user_id"),
        (_row(item_id=None), "missing:item_id"),
        (_row(event_type=None), "missing:event_type"),
        (_row(event_type="wishlist"), "unknown_event_type"),
        (_row(ts=None), "missing:ts"),
        (_row(ts="01/02/2026"), "bad_timestamp"),
        (_row(ts="1970-01-01T00:00:00Z"), "timestamp_out_of_range"),
        (_row(ts="2099-01-01T00:00:00Z"), "timestamp_out_of_range"),
        (_row(price="cheap"), "bad_number:price"),
        (_row(price="-1.5"), "negative:price"),
        (_row(user_id=None, ts="bad"), "missing:user_id"),  # the first broken rule is reported
    ],
)
def test_event_reason_names_the_first_broken_rule(row: dict[str, object], reason: str | None) -> None:
    df = pl.DataFrame([row], schema=dict.fromkeys(row, pl.String))
    df = df.with_columns(
        parse_timestamp(pl.col("ts"), TimestampSpec()).alias("ts__p"),
        map_event_type(pl.col("event_type"), None).alias("event_type__p"),
        parse_number(pl.col("price"), pl.Float64()).alias("price__p"),
    )
    raw = ["user_id", "item_id", "event_type", "ts", "price"]
    low, high = datetime(1990, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
    out = df.select(event_reason(raw, low, high).alias("r"))["r"][0]
    assert out == reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-02", datetime(2026, 1, 2, tzinfo=UTC)),
        ("2026-01-02T10:00", datetime(2026, 1, 2, 10, tzinfo=UTC)),
        ("2026-01-02 10:00", datetime(2026, 1, 2, 10, tzinfo=UTC)),
        ("2026-01-02T10:00:05", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),  # naive = UTC
        ("2026-01-02 10:00:05.5", datetime(2026, 1, 2, 10, 0, 5, 500000, tzinfo=UTC)),
        ("2026-01-02T10:00:05.123456789Z", datetime(2026, 1, 2, 10, 0, 5, 123456, tzinfo=UTC)),
        ("2026-01-02T10:00:05Z", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),
        ("2026-01-02t10:00:05z", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),
        ("2026-01-02T12:00:05+02:00", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),
        ("2026-01-02T12:00:05+0200", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),
        ("2026-01-02T12:00:05+02", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),
        ("2026-01-02T04:30:05-05:30", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),
        ("2026-01-02 12:00:05 +02:00", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),
        ("2026-01-02T10:00:05,25Z", datetime(2026, 1, 2, 10, 0, 5, 250000, tzinfo=UTC)),
        (" 2026-01-02T10:00:05Z ", datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)),
        ("02/01/2026", None),
        ("2026-13-01", None),
        ("2026-02-30T10:00:00Z", None),
        ("2026-01-02T25:00:00Z", None),
        ("1767261600", None),
    ],
)
def test_every_iso_8601_spelling_parses_row_by_row(raw: str, expected: datetime | None) -> None:
    """One file may mix spellings: each row is read on its own, not by the first row's format."""
    values = pl.Series(["2026-01-02T10:00:00Z", raw])  # another spelling first, as Polars would infer from
    out = pl.select(parse_timestamp(pl.lit(values), TimestampSpec()).alias("t"))["t"]
    assert out.dtype == UTC_DT
    assert out.to_list() == [datetime(2026, 1, 2, 10, tzinfo=UTC), expected]


@pytest.mark.parametrize("raw", ["inf", "-inf", "Infinity", "NaN", "nan", "1e300", "-1e300", "1e13"])
def test_numbers_that_are_not_finite_or_absurdly_large_are_not_numbers(raw: str) -> None:
    for dtype in (pl.Float64(), pl.Int32()):
        assert pl.select(parse_number(pl.lit(raw), dtype)).item() is None


def test_plausible_numbers_parse_with_surrounding_spaces() -> None:
    out = pl.select(parse_number(pl.lit(pl.Series([" 9.5 ", "1e3", "-2", "1000000000000"])), pl.Float64()))
    assert out.to_series().to_list() == [9.5, 1000.0, -2.0, 1e12]


def test_ratings_outside_a_declared_scale_are_quarantined() -> None:
    df = pl.DataFrame(
        {"user_id": "u", "item_id": "i", "event_type": "rating", "ts": "2026-01-01", "value": ["0", "3", "5.5", "5"]}
    ).with_columns(pl.lit(None, dtype=pl.String).alias(RAGGED))
    df = df.with_columns(
        parse_timestamp(pl.col("ts"), TimestampSpec()).alias("ts__p"),
        map_event_type(pl.col("event_type"), None).alias("event_type__p"),
        parse_number(pl.col("value"), pl.Float64()).alias("value__p"),
    )
    raw = ["user_id", "item_id", "event_type", "ts", "value"]
    low, high = datetime(1990, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
    reasons = df.select(event_reason(raw, low, high, rating_scale=(1, 5)).alias("r"))["r"].to_list()
    assert reasons == ["out_of_scale:value", None, "out_of_scale:value", None]
    assert df.select(event_reason(raw, low, high).alias("r"))["r"].to_list() == [None] * 4  # no scale: no bound
