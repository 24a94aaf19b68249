"""Duplicate detection and day windows of the second ingest pass."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_cli.data.events import (
    SRC,
    day_parts,
    day_windows,
    duplicate_mask,
    parse_events,
    rejected_rows,
    shard_pseudonyms,
    user_pseudonyms,
    valid_rows,
    write_day,
)
from recsys_cli.data.personal import Personal
from recsys_cli.data.pseudonymise import PiiKey
from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.data.sources.base import RAGGED, TableSpec


def frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    """(user, item, second) rows; other contract columns null."""
    df = pl.DataFrame(
        {
            Col.USER: [r[0] for r in rows],
            Col.ITEM: [r[1] for r in rows],
            Col.TS: [datetime(2026, 1, 1, 0, 0, r[2], tzinfo=UTC) for r in rows],
        }
    )
    others = [pl.lit(None, dtype=t).alias(c) for c, t in EVENTS_SCHEMA.items() if c not in df.columns]
    return df.with_columns(others).select(EVENTS_SCHEMA.names()).sort(Col.TS, maintain_order=True)


def test_only_later_exact_copies_are_duplicates() -> None:
    df = frame([("u1", "i1", 1), ("u1", "i1", 1), ("u2", "i1", 1), ("u1", "i2", 2), ("u1", "i1", 3), ("u1", "i1", 1)])
    # sorted by ts (stable): rows at second 1 keep their order: u1i1, u1i1(dup), u2i1, u1i1(dup)
    assert duplicate_mask(df).to_list() == [False, True, False, True, False, False]


def test_equal_times_with_different_values_are_kept() -> None:
    df = frame([("u1", "i1", 5), ("u2", "i1", 5), ("u1", "i2", 5)])
    assert not duplicate_mask(df).any()


def test_windows_hold_whole_days_up_to_the_row_budget(tmp_path: Path) -> None:
    days = [date(2026, 1, 1)] * 3 + [date(2026, 1, 2)] * 2 + [date(2026, 1, 3)] * 5 + [date(2026, 1, 4)]
    (tmp_path / "events").mkdir()
    pl.DataFrame({Col.DATE: days, SRC: [0] * len(days)}).write_parquet(tmp_path / "events" / "f00000.parquet")
    assert day_windows(tmp_path, max_rows=5) == [
        (date(2026, 1, 1), date(2026, 1, 2)),
        (date(2026, 1, 3), date(2026, 1, 3)),  # a day above the budget stays whole
        (date(2026, 1, 4), date(2026, 1, 4)),
    ]
    assert day_windows(tmp_path, max_rows=100) == [(date(2026, 1, 1), date(2026, 1, 4))]


def test_a_shards_pseudonyms_are_the_whole_inputs_for_its_values() -> None:
    """What lets the Spark engine pseudonymise day by day: HMAC per value, so a
    shard's own table agrees with the table over every id; ids of `as_is` files
    (already pseudonyms) get none."""
    key = PiiKey(b"k" * 32, is_development=False)
    everyone = user_pseudonyms(pl.Series(["u1", "u2", "u3", "u4"]), key)
    shard = pl.DataFrame(
        {Col.USER: ["u3", "u1", "u3", "p9"], "ip": ["1.2.3.4", None, "5.6.7.8", "1.2.3.4"], SRC: [0, 0, 0, 1]},
        schema_overrides={SRC: pl.UInt16},
    )
    users, hashed = shard_pseudonyms(shard, key, frozenset({"ip", "gone"}), as_is=frozenset({1}))
    assert users.sort("raw").rows() == everyone.filter(pl.col("raw").is_in(["u1", "u3"])).rows()
    assert list(hashed) == ["ip"] and hashed["ip"]["raw"].to_list() == ["1.2.3.4", "5.6.7.8"]


def test_a_retried_day_writer_replaces_its_own_file_and_never_reads_it_as_the_lakes(tmp_path: Path) -> None:
    day = date(2026, 1, 2)
    write_day(pl.DataFrame({"x": [1]}), tmp_path, day, run=1)
    write_day(pl.DataFrame({"x": [2, 3]}), tmp_path, day, run=2)
    write_day(pl.DataFrame({"x": [4, 5]}), tmp_path, day, run=2)  # a retried task
    folder = tmp_path / f"date={day}"
    assert sorted(p.name for p in folder.iterdir()) == ["part-00001.parquet", "part-00002.parquet"]
    assert pl.read_parquet(folder / "part-00002.parquet")["x"].to_list() == [4, 5]
    assert day_parts(tmp_path, day, run=2) == [folder / "part-00001.parquet"]
    assert day_parts(tmp_path, date(2026, 1, 3), run=2) == []


# ------------------------------------------------------------------ the row validator, on arbitrary text

COLUMNS = (Col.USER, Col.ITEM, Col.EVENT, Col.TS, Col.PRICE, Col.QUANTITY, Col.VALUE, Col.SESSION)
LOW, HIGH = datetime(1990, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
TRICKY = [
    "",
    " ",
    "\t",
    " u1 ",
    "u\n1",
    "u\x001",
    "\ufffd",
    "view",
    " VIEW ",
    "purchase",
    "rating",
    "wishlist",
    "2026-01-01",
    "2026-01-01T10:00:00Z",
    "2026-01-01 10:00:00.123+02",
    "20260101T1000",
    "2026-02-30",
    "1767261600",
    "0",
    "-1",
    "2.5",
    "1e300",
    "inf",
    "-inf",
    "NaN",
    "1e12",
    "999999999999999999999",
    "[1]",
    '{"a": 1}',
]
cell = st.one_of(st.none(), st.text(max_size=25), st.sampled_from(TRICKY))
reader = st.one_of(st.none(), st.sampled_from(["ragged_row", "unterminated_quote", "too_few_fields"]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(*(cell for _ in COLUMNS), reader), min_size=1, max_size=15))
def test_every_row_is_written_or_quarantined_with_a_reason(rows: list[tuple[str | None, ...]]) -> None:
    schema = {**dict.fromkeys(COLUMNS, pl.String), RAGGED: pl.String}
    raw = pl.DataFrame(rows, schema=schema, orient="row").with_row_index(Col.LINE, offset=2).lazy()
    parsed = parse_events(raw, TableSpec(rating_scale=(1, 5)), LOW, HIGH)
    good = valid_rows(parsed, 0, Personal(), ()).collect()
    bad = rejected_rows(parsed, Path("events.csv"), Personal()).collect()
    assert good.height + bad.height == len(rows)
    reasons = bad[Col.REASON]
    assert reasons.null_count() == 0 and (reasons.str.len_bytes() > 0).all()
    assert sorted([*good[Col.LINE], *bad[Col.LINE]]) == list(range(2, len(rows) + 2))
    # What is written keeps the contract: real ids, a known type, a time in range, sane numbers.
    for column in (Col.USER, Col.ITEM):
        ids = good[column]
        assert ids.null_count() == 0 and (ids.str.strip_chars() == ids).all()
        assert not ids.str.contains(r"[\x00-\x1f\x7f]").any() and (ids.str.len_bytes() > 0).all()
    assert good[Col.EVENT].null_count() == 0
    assert good[Col.TS].is_between(LOW, HIGH).all()
    for column in (Col.PRICE, Col.QUANTITY, Col.VALUE):
        values = good[column].drop_nulls().cast(pl.Float64)
        assert values.is_finite().all() and (values >= 0).all() and (values <= 1e12).all()
    ratings = good.filter(pl.col(Col.EVENT) == "rating")[Col.VALUE]
    assert ratings.null_count() == 0 and ratings.is_between(1, 5).all()
