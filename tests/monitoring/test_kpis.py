"""Business KPIs on a hand-written shop log whose every number is worked out here.

The log (UTC; `sN` session ids, s7 logged without one):

    Mon 2026-01-05  s1 u1  view i1, cart i1, buy i1 x2 at 10.00            -> 20.00
                    s2 u2  view i2, cart i2                                 (abandoned)
                    s3 u1  view i3
                    s4 u3  cart i2 at 23:50; after midnight buy i2 (list price 20, new)
                           and i3 at 5.00                                   -> 25.00
    Tue 2026-01-06  s5 u4  view i9, buy i9 at 8.00 (i9 not in the item table) -> 8.00
                    s6 u2  cart i1, remove i1                               (abandoned)
    Mon 2026-01-12  -- u1  view i4, buy i4 x3 at 8.00 (new)                 -> 24.00
                    s8 u5  view i1, rate i1
    Mon 2026-01-19  s9 u3  view i1;  s10 u5 view i2

Catalogue: i1 (2025), i2 (launched 2026-01-01), i3 (no launch date), i4 (2026-01-10),
i5 (2026-02-01), i6 (2025, never bought); i9 counts from its first event (Jan 6).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from recsys_cli.data.schema import EVENTS_SCHEMA, Col, Timestamp
from recsys_cli.evaluation.intervals import poisson_bootstrap, wilson_interval
from recsys_cli.monitoring import kpis, promotions
from recsys_cli.monitoring.kpis import (
    ABANDONMENT,
    ADD_TO_CART,
    AOV,
    CONVERSION,
    COVERAGE,
    KPI_NAMES,
    NEW_SHARE,
    REVENUE_PER_SESSION,
    SESSIONS_PER_USER,
)
from recsys_cli.monitoring.promotions import Promotion

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (session, user, item, event, ts, price, quantity)
LOG = [
    ("s1", "u1", "i1", "view", "2026-01-05T09:00:00", None, None),
    ("s1", "u1", "i1", "add_to_cart", "2026-01-05T09:01:00", 10.0, 1),
    ("s1", "u1", "i1", "purchase", "2026-01-05T09:05:00", 10.0, 2),
    ("s2", "u2", "i2", "view", "2026-01-05T10:00:00", None, None),
    ("s2", "u2", "i2", "add_to_cart", "2026-01-05T10:02:00", 20.0, 1),
    ("s3", "u1", "i3", "view", "2026-01-05T18:00:00", None, None),
    ("s4", "u3", "i2", "add_to_cart", "2026-01-05T23:50:00", 20.0, 1),
    ("s4", "u3", "i2", "purchase", "2026-01-06T00:10:00", None, None),
    ("s4", "u3", "i3", "purchase", "2026-01-06T00:11:00", 5.0, 1),
    ("s5", "u4", "i9", "view", "2026-01-06T12:00:00", None, None),
    ("s5", "u4", "i9", "purchase", "2026-01-06T12:05:00", 8.0, 1),
    ("s6", "u2", "i1", "add_to_cart", "2026-01-06T15:00:00", 10.0, 1),
    ("s6", "u2", "i1", "remove_from_cart", "2026-01-06T15:01:00", None, None),
    (None, "u1", "i4", "view", "2026-01-12T08:00:00", None, None),
    (None, "u1", "i4", "purchase", "2026-01-12T08:03:00", 8.0, 3),
    ("s8", "u5", "i1", "view", "2026-01-12T20:00:00", None, None),
    ("s8", "u5", "i1", "rating", "2026-01-12T21:00:00", None, None),
    ("s9", "u3", "i1", "view", "2026-01-19T07:00:00", None, None),
    ("s10", "u5", "i2", "view", "2026-01-19T09:00:00", None, None),
]
ITEMS = [
    ("i1", 10.0, "2025-06-01T00:00:00"),
    ("i2", 20.0, "2026-01-01T00:00:00"),
    ("i3", 5.0, None),
    ("i4", 8.0, "2026-01-10T00:00:00"),
    ("i5", 3.0, "2026-02-01T00:00:00"),
    ("i6", 4.0, "2025-01-01T00:00:00"),
]
MON5, TUE6, MON12, MON19 = (datetime(2026, 1, d, tzinfo=UTC) for d in (5, 6, 12, 19))

# Every KPI by hand: (value, n) per day.
DAILY = {
    SESSIONS_PER_USER: {MON5: (4 / 3, 3), TUE6: (1.0, 2), MON12: (1.0, 2), MON19: (1.0, 2)},
    CONVERSION: {MON5: (2 / 4, 4), TUE6: (1 / 2, 2), MON12: (1 / 2, 2), MON19: (0.0, 2)},
    ADD_TO_CART: {MON5: (3 / 4, 4), TUE6: (1 / 2, 2), MON12: (0.0, 2), MON19: (0.0, 2)},
    ABANDONMENT: {MON5: (1 / 3, 3), TUE6: (1.0, 1), MON12: (None, 0), MON19: (None, 0)},
    AOV: {MON5: (45 / 2, 2), TUE6: (8.0, 1), MON12: (24.0, 1), MON19: (None, 0)},
    REVENUE_PER_SESSION: {MON5: (45 / 4, 4), TUE6: (8 / 2, 2), MON12: (24 / 2, 2), MON19: (0.0, 2)},
    # available by the day's end: i1 i2 i3 i6; + i9 (seen Jan 6); + i4 (launched Jan 10)
    COVERAGE: {MON5: (3 / 4, 4), TUE6: (1 / 5, 5), MON12: (1 / 6, 6), MON19: (0.0, 6)},
    NEW_SHARE: {MON5: (1 / 3, 3), TUE6: (0.0, 1), MON12: (1.0, 1), MON19: (None, 0)},
}
WEEKLY = {
    SESSIONS_PER_USER: {MON5: (6 / 4, 4), MON12: (1.0, 2), MON19: (1.0, 2)},
    CONVERSION: {MON5: (3 / 6, 6), MON12: (1 / 2, 2), MON19: (0.0, 2)},
    ADD_TO_CART: {MON5: (4 / 6, 6), MON12: (0.0, 2), MON19: (0.0, 2)},
    ABANDONMENT: {MON5: (2 / 4, 4), MON12: (None, 0), MON19: (None, 0)},
    AOV: {MON5: (53 / 3, 3), MON12: (24.0, 1), MON19: (None, 0)},
    REVENUE_PER_SESSION: {MON5: (53 / 6, 6), MON12: (24 / 2, 2), MON19: (0.0, 2)},
    COVERAGE: {MON5: (4 / 6, 6), MON12: (1 / 6, 6), MON19: (0.0, 6)},
    NEW_SHARE: {MON5: (1 / 4, 4), MON12: (1.0, 1), MON19: (None, 0)},
}


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def events() -> pl.LazyFrame:
    session, user, item, event, ts, price, quantity = zip(*LOG, strict=True)
    frame = pl.DataFrame(
        {
            Col.USER: user,
            Col.ITEM: item,
            Col.EVENT: event,
            Col.TS: [_ts(t) for t in ts],
            Col.SESSION: session,
            Col.VALUE: [4.0 if e == "rating" else None for e in event],
            Col.QUANTITY: quantity,
            Col.PRICE: price,
            Col.SOURCE: ["test"] * len(LOG),
        },
        schema=EVENTS_SCHEMA,
    )
    return frame.lazy()


@pytest.fixture
def items() -> pl.LazyFrame:
    item, price, launched = zip(*ITEMS, strict=True)
    return pl.LazyFrame(
        {Col.ITEM: item, Col.PRICE: price, Col.LAUNCHED_AT: [_ts(t) for t in launched]},
        schema={Col.ITEM: pl.String, Col.PRICE: pl.Float64, Col.LAUNCHED_AT: Timestamp},
    )


def _expected(by_kpi: dict[str, dict[datetime, tuple[float | None, int]]]) -> pl.DataFrame:
    rows = [(start, kpi, value, n) for kpi in KPI_NAMES for start, (value, n) in by_kpi[kpi].items()]
    return pl.DataFrame(
        rows,
        schema={kpis.PERIOD_START: Timestamp, kpis.KPI: pl.String, kpis.VALUE: pl.Float64, kpis.N: pl.Int64},
        orient="row",
    )


@pytest.mark.parametrize(("period", "by_kpi"), [("day", DAILY), ("week", WEEKLY)])
def test_every_kpi_per_period_matches_the_hand_count(
    events: pl.LazyFrame, items: pl.LazyFrame, period: str, by_kpi: dict
) -> None:
    table = kpis.kpi_table(events, items, period=period, n_resamples=200)  # type: ignore[arg-type]
    assert table.columns == [kpis.PERIOD_START, kpis.KPI, kpis.VALUE, kpis.LOW, kpis.HIGH, kpis.N]
    got = table.select(kpis.PERIOD_START, kpis.KPI, kpis.VALUE, kpis.N)
    assert_frame_equal(got, _expected(by_kpi), check_exact=False, rel_tol=1e-12)


def test_without_an_item_table_items_count_from_their_first_event(events: pl.LazyFrame) -> None:
    table = kpis.kpi_table(events, None, period="day", n_resamples=20)
    keys = table[kpis.KPI] + "@" + table[kpis.PERIOD_START].dt.day().cast(pl.String)
    value = dict(zip(keys, table[kpis.VALUE], strict=True))
    assert value[f"{COVERAGE}@5"] == 1.0  # i1 i2 i3 bought, the only items seen by then
    assert value[f"{COVERAGE}@6"] == pytest.approx(1 / 4)  # i9, among i1 i2 i3 i9
    assert value[f"{AOV}@5"] == pytest.approx((20 + 5) / 2)  # i2 logged without a price and none listed
    assert table.filter(pl.col(kpis.KPI) == NEW_SHARE)[kpis.VALUE].drop_nulls().to_list() == [0.0, 0.0, 0.0]


def test_a_log_without_sessions_is_refused(events: pl.LazyFrame) -> None:
    with pytest.raises(kpis.KpiError, match="no session"):
        kpis.kpi_table(events.filter(pl.lit(False)), None)


def test_a_session_counts_in_the_period_of_its_first_event(events: pl.LazyFrame, items: pl.LazyFrame) -> None:
    sessions = kpis.session_frame(events, items, "day").collect()
    s4 = sessions.filter(pl.col(Col.SESSION) == "s4").row(0, named=True)
    assert s4[kpis.PERIOD_START] == MON5  # carted at 23:50, bought after midnight
    assert s4["_revenue"] == pytest.approx(25.0)  # i2 at the item table's price, one unit
    # a session without an id is the user's UTC day
    assert sessions.filter(pl.col(Col.SESSION) == "u1@2026-01-12").height == 1


@pytest.mark.parametrize(("k", "n"), [(7, 10), (0, 4), (4, 4), (1, 3), (55, 200)])
def test_wilson_interval_is_scipys(k: int, n: int) -> None:
    low, high = wilson_interval([k], [n], 0.95)
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low[0], high[0]) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_interval_known_value_and_empty_trials() -> None:
    low, high = wilson_interval([7, 0], [10, 0])
    assert (round(float(low[0]), 4), round(float(high[0]), 4)) == (0.3968, 0.8922)  # Wilson (1927), 7 of 10
    assert np.isnan(low[1]) and np.isnan(high[1])


def test_proportions_carry_their_wilson_interval(events: pl.LazyFrame, items: pl.LazyFrame) -> None:
    table = kpis.kpi_table(events, items, period="week", n_resamples=50)
    row = table.filter((pl.col(kpis.KPI) == CONVERSION) & (pl.col(kpis.PERIOD_START) == MON5)).row(0, named=True)
    expected = stats.binomtest(3, 6).proportion_ci(method="wilson")
    assert (row[kpis.LOW], row[kpis.HIGH]) == pytest.approx((expected.low, expected.high))


BOOTSTRAPPED = [SESSIONS_PER_USER, AOV, REVENUE_PER_SESSION, NEW_SHARE]


def test_bootstrap_intervals_hold_the_estimate_and_repeat_for_a_seed(events: pl.LazyFrame, items: pl.LazyFrame) -> None:
    first = kpis.kpi_table(events, items, period="day", n_resamples=300, seed=7)
    again = kpis.kpi_table(events, items, period="day", n_resamples=300, seed=7)
    assert_frame_equal(first, again)
    boot = first.filter(pl.col(kpis.KPI).is_in(BOOTSTRAPPED) & pl.col(kpis.VALUE).is_not_null())
    assert boot.height == 4 + 3 + 4 + 3  # undefined ones left out: no purchase on Jan 19
    assert boot.filter(~pl.col(kpis.VALUE).is_between(kpis.LOW, kpis.HIGH)).height == 0
    wide = boot.filter(pl.col(kpis.HIGH) > pl.col(kpis.LOW))  # periods with more than one distinct unit
    assert wide.height >= 3


def test_poisson_bootstrap_draws_follow_the_seed() -> None:
    cells = (np.array([0, 0, 0]), np.array([0.0, 5.0, 20.0]), np.ones(3), np.array([3, 2, 1]), 1)
    first, again, other = (poisson_bootstrap(*cells, n_resamples=50, seed=s) for s in (1, 1, 2))
    assert np.array_equal(first, again, equal_nan=True)
    assert not np.array_equal(first, other, equal_nan=True)


def test_poisson_bootstrap_of_a_constant_ratio_is_that_ratio() -> None:
    draws = poisson_bootstrap(
        np.array([0, 0, 1]), np.array([2.0, 4.0, 3.0]), np.array([1.0, 2.0, 1.0]), np.array([5, 7, 50]), 2, 100
    )
    assert draws.shape == (100, 2)
    assert np.allclose(draws[:, 0], 2.0) and np.allclose(draws[:, 1], 3.0)


def test_cohort_retention_by_hand(events: pl.LazyFrame) -> None:
    table = kpis.cohort_retention(events)
    # cohort of Jan 5: u1 u2 u3 u4; u1 back in week 1, u3 in week 2. Cohort of Jan 12: u5, back in week 1.
    expected = pl.DataFrame(
        {
            kpis.COHORT: [MON5, MON5, MON12],
            kpis.WEEK: [1, 2, 1],
            kpis.USERS: [4, 4, 1],
            kpis.ACTIVE: [1, 1, 1],
            kpis.VALUE: [0.25, 0.25, 1.0],
        },
        schema_overrides={kpis.COHORT: Timestamp},
    )
    assert_frame_equal(table.drop(kpis.LOW, kpis.HIGH), expected)
    low, high = wilson_interval([1, 1, 1], [4, 4, 1])
    assert table[kpis.LOW].to_list() == pytest.approx(low.tolist())
    assert table[kpis.HIGH].to_list() == pytest.approx(high.tolist())


PROMOTIONS = [
    ("2026-01-06T12:00:00+00:00", "shop", 2),
    (datetime(2026, 1, 1, 9), "shop", 1),  # naive: read as UTC
    ("2026-01-13T08:30:00Z", "shop", 1, "rollback"),
]


def test_promotions_are_placed_on_their_periods(events: pl.LazyFrame, items: pl.LazyFrame) -> None:
    table = kpis.kpi_table(events, items, period="day", n_resamples=20)
    retention = kpis.cohort_retention(events)
    daily = kpis.kpis_json(table, retention, PROMOTIONS, period="day")
    assert [(p["version"], p["period_start"]) for p in daily["promotions"]] == [
        (1, "2026-01-01T00:00:00+00:00"),
        (2, "2026-01-06T00:00:00+00:00"),
        (1, "2026-01-13T00:00:00+00:00"),
    ]
    # in production at each day's start: v2 came at noon on Jan 6, the rollback on Jan 13
    assert [p["version"] for p in daily["production"]] == [1, 1, 2, 1]
    weekly = kpis.kpis_json(kpis.kpi_table(events, items, "week", n_resamples=20), retention, PROMOTIONS, "week")
    assert [p["period_start"][:10] for p in weekly["promotions"]] == ["2025-12-29", "2026-01-05", "2026-01-12"]
    assert [p["version"] for p in weekly["production"]] == [1, 2, 1]


def test_no_promotion_before_a_period_leaves_it_unattributed() -> None:
    later = promotions.as_promotions([("2026-01-10T00:00:00Z", "shop", 4)])
    assert promotions.production_at(later, [MON5, MON12]) == [None, later[0]]


def test_promotions_from_the_registry_alias_history(tmp_path: Path) -> None:
    from recsys_cli.registry.store import Registry
    from tests.registry.stores import make_package

    registry = Registry(str(tmp_path / "registry"))
    for _ in range(2):
        registry.push(make_package(tmp_path / "pkg", name="shop"))
    registry.promote("shop", 1, "production")
    registry.promote("shop", 2, "production")
    registry.rollback("shop", "production")
    registry.promote("shop", 2, "staging")
    moves = promotions.promotions_from_registry(str(tmp_path / "registry"), "shop")
    assert [(m.name, m.version, m.action) for m in moves] == [
        ("shop", 1, "promote"),
        ("shop", 2, "promote"),
        ("shop", 1, "rollback"),
    ]
    assert all(m.at.tzinfo is not None for m in moves)
    assert promotions.promotions_from_registry(str(tmp_path / "registry"), "shop", alias="canary") == []


def test_an_unknown_period_is_refused_by_name(events: pl.LazyFrame) -> None:
    with pytest.raises(kpis.KpiError, match="period 'month'"):
        kpis.kpi_table(events, None, period="month")  # type: ignore[arg-type]


def test_report_writes_json_and_one_png_per_kpi(events: pl.LazyFrame, items: pl.LazyFrame, tmp_path: Path) -> None:
    out = tmp_path / "kpis"
    summary = kpis.write_kpi_report(events, items, PROMOTIONS, out, "week", 30, n_resamples=50)
    assert json.loads((out / kpis.KPIS_JSON).read_text()) == summary
    assert summary["kind"] == kpis.KIND and summary["period"] == "week" and summary["new_days"] == 30
    assert list(summary["kpis"]) == list(KPI_NAMES)
    assert summary["kpis"][AOV][0]["value"] == pytest.approx(53 / 3)
    assert summary["kpis"][ABANDONMENT][1]["value"] is None
    assert len(summary["retention"]) == 3
    for name in [*KPI_NAMES, kpis.RETENTION]:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == kpis.KIND
    assert {e["path"] for e in manifest["outputs"]} == {
        kpis.KPIS_JSON,
        *(f"{n}.png" for n in [*KPI_NAMES, "retention"]),
    }


def test_report_is_replaced_whole_or_not_at_all(
    events: pl.LazyFrame, items: pl.LazyFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys_cli.data import lake
    from recsys_cli.monitoring import kpi_plots

    out = tmp_path / "kpis"
    monkeypatch.setattr(kpi_plots, "kpi_pngs", lambda *a, **k: {"one": PNG_MAGIC})  # figures are tested above
    kpis.write_kpi_report(events, items, [], out, "week", n_resamples=10)

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(lake, "write_sealed", crash)
        with pytest.raises(OSError, match="disk full"):
            kpis.write_kpi_report(events, items, [], out, "day", n_resamples=10)
    assert json.loads((out / kpis.KPIS_JSON).read_text())["period"] == "week"
    kpis.write_kpi_report(events, items, [], out, "day", 7, n_resamples=10)
    assert json.loads((out / kpis.KPIS_JSON).read_text())["period"] == "day"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kpis"]  # no staging folder left beside it


def test_report_refuses_a_folder_it_did_not_write(events: pl.LazyFrame, tmp_path: Path) -> None:
    from recsys_cli.errors import OutputError

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(OutputError):
        kpis.write_kpi_report(events, None, [], tmp_path / "notes", n_resamples=10)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_promotion_figure_is_a_png_with_a_line_per_promotion(events: pl.LazyFrame, items: pl.LazyFrame) -> None:
    from recsys_cli.monitoring import kpi_plots

    table = kpis.kpi_table(events, items, "day", n_resamples=20)
    png = kpi_plots.kpi_png(table, CONVERSION, [Promotion(datetime(2026, 1, 6, 12, tzinfo=UTC), "shop", 2)], "day")
    assert png[:8] == PNG_MAGIC
