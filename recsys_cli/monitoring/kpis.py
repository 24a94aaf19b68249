"""Business KPIs over time, from the lake alone, with which model was in production.

A stakeholder asks "did engagement move after we promoted version 7?". The answer
needs the shop's own numbers per day or ISO week (Monday to Sunday, UTC), an
interval around each (a dip on a quiet day is mostly noise), and the registry's
promotions drawn on the same time axis.

The unit is the session: a user's `session_id`, or the user's UTC day where the log
has none (as `recsys abtest` counts them). A session belongs to the period of its
first event, and everything in it (carts, purchases, revenue) counts there. The
lake has no order ids, so an order is a purchasing session: the average order value
is revenue per purchasing session. Revenue is unit price times quantity over
purchase events; the price is the event's, else the item table's (a purchase
without a quantity is one unit).

Intervals:

- a proportion of independent units (sessions converting, cohort users returning,
  catalogue items bought) gets a Wilson score interval, which stays inside [0, 1]
  and is honest for small counts and rates near 0 or 1:
  `(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`, no continuity
  correction (scipy's `binomtest(...).proportion_ci(method="wilson")`, vectorised
  here; the tests hold the two equal);
- a mean or ratio of sums (revenue per session, sessions per user, new-product
  share of purchase lines, which cluster in sessions) gets a percentile interval
  from a Poisson bootstrap over its units (sessions, or users): each unit is
  weighted by a Poisson(1) draw per replicate. Units with identical values in a
  period are one cell drawn as Poisson(count), which is the same distribution
  and makes the work scale with the distinct values, not the sessions.

Catalogue coverage divides the distinct items bought in a period by the items
available by its end: items of the item table launched before it (or with no
launch date), and items of the log first seen before it. A product counts as new
when it was launched less than `new_days` days before the purchase.

Promotions come from the registry's alias history (`monitoring/promotions.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from recsys_cli.data.schema import Col, Timestamp
from recsys_cli.errors import RecsysError
from recsys_cli.evaluation.intervals import percentile_interval, poisson_bootstrap, wilson_interval
from recsys_cli.monitoring.promotions import Promotion, as_promotions, instant, production_at

Period = Literal["day", "week"]
EVERY: dict[str, str] = {"day": "1d", "week": "1w"}  # Polars truncates "1w" to Mondays: ISO weeks
STEP: dict[str, timedelta] = {"day": timedelta(days=1), "week": timedelta(weeks=1)}
KIND = "kpis"  # the output folder's kind (registry/outputs.py)
KPIS_JSON = "kpis.json"
FORMAT_VERSION = 1

PERIOD_START, KPI, VALUE, LOW, HIGH, N = "period_start", "kpi", "value", "low", "high", "n"
COHORT, WEEK, USERS, ACTIVE = "cohort_start", "week", "users", "active"

SESSIONS_PER_USER = "sessions_per_user"
CONVERSION = "conversion_rate"
ADD_TO_CART = "add_to_cart_rate"
ABANDONMENT = "cart_abandonment_rate"
AOV = "average_order_value"
REVENUE_PER_SESSION = "revenue_per_session"
COVERAGE = "catalogue_coverage"
NEW_SHARE = "new_product_share"
RETENTION = "retention"

# What each KPI divides, its interval and what `n` counts: the legend of kpis.json.
DEFINITIONS: dict[str, dict[str, str]] = {
    SESSIONS_PER_USER: {"of": "sessions / active users", "interval": "bootstrap over users", "n": "active users"},
    CONVERSION: {"of": "sessions with a purchase / sessions", "interval": "wilson", "n": "sessions"},
    ADD_TO_CART: {"of": "sessions with an add_to_cart / sessions", "interval": "wilson", "n": "sessions"},
    ABANDONMENT: {
        "of": "sessions with an add_to_cart and no purchase / sessions with an add_to_cart",
        "interval": "wilson",
        "n": "sessions with an add_to_cart",
    },
    AOV: {"of": "revenue / purchasing sessions", "interval": "bootstrap over sessions", "n": "purchasing sessions"},
    REVENUE_PER_SESSION: {"of": "revenue / sessions", "interval": "bootstrap over sessions", "n": "sessions"},
    COVERAGE: {
        "of": "distinct items bought / catalogue items available by the period's end",
        "interval": "wilson",
        "n": "catalogue items available",
    },
    NEW_SHARE: {
        "of": "purchase lines of products launched < new_days days before / purchase lines",
        "interval": "bootstrap over sessions",
        "n": "purchase lines",
    },
}
KPI_NAMES: tuple[str, ...] = tuple(DEFINITIONS)

_CARTED, _BOUGHT, _REVENUE, _LINES, _NEW = "_carted", "_bought", "_revenue", "_lines", "_new"
_ONE = "_one"


class KpiError(RecsysError):
    """The KPI report cannot be computed from what it was given."""


# -- the lake as sessions ---------------------------------------------------------------------------------------


def _every(period: str) -> str:
    """Polars' truncation for `period`, refusing any other period by name."""
    if period not in EVERY:
        raise KpiError(f"period {period!r}: expected one of {', '.join(EVERY)}")
    return EVERY[period]


def period_start(at: datetime, period: Period) -> datetime:
    """The start of the day or ISO week (Monday, UTC) holding `at`."""
    day = instant(at).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if _every(period) == "1w" else day


def _column(schema: pl.Schema, name: str, dtype: pl.DataType) -> pl.Expr:
    return pl.col(name).cast(dtype) if name in schema else pl.lit(None, dtype).alias(name)


def _catalogue(items: pl.LazyFrame | pl.DataFrame | None) -> pl.LazyFrame:
    """item_id, list price and launch time of the item table (an empty one without it)."""
    if items is None:
        return pl.LazyFrame(schema={Col.ITEM: pl.String, "_list_price": pl.Float64, Col.LAUNCHED_AT: Timestamp})
    lf = items.lazy()
    schema = lf.collect_schema()
    return lf.select(
        pl.col(Col.ITEM).cast(pl.String),
        _column(schema, Col.PRICE, pl.Float64()).alias("_list_price"),
        _column(schema, Col.LAUNCHED_AT, Timestamp).alias(Col.LAUNCHED_AT),
    ).unique(Col.ITEM, keep="first", maintain_order=True)


def _events(
    events: pl.LazyFrame, items: pl.LazyFrame | pl.DataFrame | None, period: str, new_days: int
) -> pl.LazyFrame:
    """The events with their session key, their session's period, and per purchase
    its revenue and whether the product was new."""
    schema = events.collect_schema()
    session = pl.coalesce(
        _column(schema, Col.SESSION, pl.String()),
        pl.col(Col.USER) + pl.lit("@") + pl.col(Col.TS).dt.date().cast(pl.String),
    )
    quantity = _column(schema, Col.QUANTITY, pl.Int64()).fill_null(1).clip(lower_bound=1)
    bought = pl.col(Col.EVENT).cast(pl.String) == "purchase"
    price = pl.coalesce(Col.PRICE, "_list_price", pl.lit(0.0))
    launched = pl.col(Col.LAUNCHED_AT)
    new = bought & launched.is_not_null() & (launched > pl.col(Col.TS) - pl.duration(days=new_days))
    columns = (Col.USER, Col.ITEM, Col.EVENT, Col.TS)
    return (
        events.select(*columns, session.alias(Col.SESSION), _column(schema, Col.PRICE, pl.Float64()), quantity)
        .join(_catalogue(items), on=Col.ITEM, how="left")
        .with_columns(
            pl.col(Col.TS).min().over(Col.USER, Col.SESSION).dt.truncate(_every(period)).alias(PERIOD_START),
            (pl.col(Col.EVENT).cast(pl.String) == "add_to_cart").alias(_CARTED),
            bought.alias(_BOUGHT),
            pl.when(bought).then(price * pl.col(Col.QUANTITY)).otherwise(0.0).alias(_REVENUE),
            new.alias(_NEW),
        )
    )


def session_frame(
    events: pl.LazyFrame, items: pl.LazyFrame | pl.DataFrame | None = None, period: str = "day", new_days: int = 30
) -> pl.LazyFrame:
    """One row per session: its period, user, whether it carted and bought, its
    revenue, purchase lines and purchase lines of new products."""
    return (
        _events(events, items, period, new_days)
        .group_by(PERIOD_START, Col.USER, Col.SESSION)
        .agg(
            pl.col(_CARTED).any(),
            pl.col(_BOUGHT).any(),
            pl.col(_REVENUE).sum(),
            pl.col(_BOUGHT).sum().cast(pl.Int64).alias(_LINES),
            pl.col(_NEW).sum().cast(pl.Int64),
        )
    )


def _queries(
    events: pl.LazyFrame, items: pl.LazyFrame | pl.DataFrame | None, period: str, new_days: int
) -> list[pl.LazyFrame]:
    """Sessions; distinct items bought per period; each item's availability."""
    sessions = session_frame(events, items, period, new_days)
    marked = _events(events, items, period, new_days)
    bought = marked.filter(pl.col(_BOUGHT)).group_by(PERIOD_START).agg(pl.col(Col.ITEM).n_unique().alias("_k"))
    # Available from its launch (always, without one) if the item table lists it, else from its first event;
    # never after its first event, so an item bought in a period is available in it.
    seen = (
        events.group_by(Col.ITEM)
        .agg(pl.col(Col.TS).min().alias("_seen"))
        .with_columns(pl.col(Col.ITEM).cast(pl.String))
    )
    listed = _catalogue(items).select(Col.ITEM, Col.LAUNCHED_AT, pl.lit(True).alias("_listed"))
    available = seen.join(listed, on=Col.ITEM, how="full", coalesce=True).select(
        pl.when(pl.col("_listed") & pl.col(Col.LAUNCHED_AT).is_null())
        .then(None)
        .otherwise(pl.min_horizontal(Col.LAUNCHED_AT, "_seen"))
        .alias("_from")
    )
    return [sessions, bought, available]


Ratio = tuple[pl.Expr, pl.Expr, pl.Expr]  # numerator, denominator (per unit) and what n counts (per period)


def _ratio_kpis(
    units: pl.DataFrame, ratios: dict[str, Ratio], boot: tuple[int, int, float], stream: int
) -> list[pl.DataFrame]:
    """Ratios of sums per period over `units` (one row each), with intervals from
    one shared Poisson bootstrap (`stream` keeps its draws apart from other units')."""
    n_resamples, seed, confidence = boot
    units = units.with_columns(pl.lit(1, pl.Int64).alias(_ONE))
    periods = units.select(pl.col(PERIOD_START).unique().sort())
    parts = list(ratios.values())
    nums, dens = [f"_num{j}" for j in range(len(parts))], [f"_den{j}" for j in range(len(parts))]
    values = [num.cast(pl.Float64).alias(nums[j]) for j, (num, _, _) in enumerate(parts)]
    values += [den.cast(pl.Float64).alias(dens[j]) for j, (_, den, _) in enumerate(parts)]
    cells = (
        units.select(PERIOD_START, *values)
        .group_by(PERIOD_START, *nums, *dens)
        .agg(pl.len().alias("_count"))
        .join(periods.with_row_index("_g"), on=PERIOD_START)
        .sort("_g", *nums, *dens)
    )
    draws = poisson_bootstrap(
        cells["_g"].to_numpy().astype(np.int64),
        cells.select(nums).to_numpy(),
        cells.select(dens).to_numpy(),
        cells["_count"].to_numpy(),
        periods.height,
        n_resamples,
        [seed, stream],
    )
    point = units.group_by(PERIOD_START).agg(
        *[num.sum().alias(nums[j]) for j, (num, _, _) in enumerate(parts)],
        *[den.sum().alias(dens[j]) for j, (_, den, _) in enumerate(parts)],
        *[n.alias(f"_n{j}") for j, (_, _, n) in enumerate(parts)],
    )
    frames = []
    for j, kpi in enumerate(ratios):
        low, high = percentile_interval(draws[:, :, j], confidence)
        frames.append(
            periods.with_columns(pl.Series(LOW, low, nan_to_null=True), pl.Series(HIGH, high, nan_to_null=True))
            .join(point, on=PERIOD_START)
            .select(
                PERIOD_START,
                pl.lit(kpi).alias(KPI),
                pl.when(pl.col(dens[j]) > 0).then(pl.col(nums[j]) / pl.col(dens[j])).alias(VALUE),
                LOW,
                HIGH,
                pl.col(f"_n{j}").cast(pl.Int64).alias(N),
            )
        )
    return frames


def _proportion_kpi(counts: pl.DataFrame, kpi: str, confidence: float) -> pl.DataFrame:
    """From (period_start, _k, n): k/n with its Wilson interval."""
    low, high = wilson_interval(counts["_k"].to_numpy(), counts[N].to_numpy(), confidence)
    return counts.select(
        PERIOD_START,
        pl.lit(kpi).alias(KPI),
        pl.when(pl.col(N) > 0).then(pl.col("_k") / pl.col(N)).alias(VALUE),
        pl.Series(LOW, low, nan_to_null=True),
        pl.Series(HIGH, high, nan_to_null=True),
        pl.col(N).cast(pl.Int64),
    )


# -- the tables -------------------------------------------------------------------------------------------------


def _kpis_from(
    sessions: pl.DataFrame, bought: pl.DataFrame, available: pl.DataFrame, period: str, boot: tuple[int, int, float]
) -> pl.DataFrame:
    if sessions.height == 0:
        raise KpiError("the events hold no session; no KPI to compute")
    confidence = boot[2]
    counts = sessions.group_by(PERIOD_START).agg(
        pl.len().alias(N),
        pl.col(_BOUGHT).sum().alias("_bought"),
        pl.col(_CARTED).sum().alias("_carted"),
        (pl.col(_CARTED) & ~pl.col(_BOUGHT)).sum().alias("_left"),
    )
    users = sessions.group_by(PERIOD_START, Col.USER).agg(pl.len().alias("_sessions"))
    per_user = {SESSIONS_PER_USER: (pl.col("_sessions"), pl.col(_ONE), pl.len())}
    per_session = {
        AOV: (pl.col(_REVENUE), pl.col(_BOUGHT), pl.col(_BOUGHT).sum()),
        REVENUE_PER_SESSION: (pl.col(_REVENUE), pl.col(_ONE), pl.len()),
        NEW_SHARE: (pl.col(_NEW), pl.col(_LINES), pl.col(_LINES).sum()),
    }
    frames = dict(zip(per_user, _ratio_kpis(users, per_user, boot, 0), strict=True))
    frames |= dict(zip(per_session, _ratio_kpis(sessions, per_session, boot, 1), strict=True))
    frames |= {
        CONVERSION: _proportion_kpi(counts.rename({"_bought": "_k"}), CONVERSION, confidence),
        ADD_TO_CART: _proportion_kpi(counts.rename({"_carted": "_k"}), ADD_TO_CART, confidence),
        ABANDONMENT: _proportion_kpi(
            counts.select(PERIOD_START, pl.col("_left").alias("_k"), pl.col("_carted").alias(N)),
            ABANDONMENT,
            confidence,
        ),
        COVERAGE: _proportion_kpi(_coverage_counts(counts, bought, available, period), COVERAGE, confidence),
    }
    return pl.concat([frames[k].sort(PERIOD_START) for k in KPI_NAMES]).with_columns(pl.col(N).fill_null(0))


def _coverage_counts(counts: pl.DataFrame, bought: pl.DataFrame, available: pl.DataFrame, period: str) -> pl.DataFrame:
    """(period_start, _k distinct items bought, n items available by the period's end)."""
    starts = counts.select(PERIOD_START).sort(PERIOD_START)
    ends = (starts[PERIOD_START] + STEP[period]).dt.epoch("us").to_numpy()
    since = np.sort(available["_from"].drop_nulls().dt.epoch("us").to_numpy())
    always = available["_from"].null_count()
    n = always + np.searchsorted(since, ends, side="left")
    return (
        starts.with_columns(pl.Series(N, n, dtype=pl.Int64))
        .join(bought, on=PERIOD_START, how="left")
        .with_columns(pl.col("_k").fill_null(0))
    )


def kpi_table(
    events: pl.LazyFrame,
    items: pl.LazyFrame | pl.DataFrame | None = None,
    period: Period = "day",
    new_days: int = 30,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Every KPI per period: tidy rows (period_start, kpi, value, low, high, n),
    KPIs in `KPI_NAMES` order, periods ascending; value null where undefined (no
    purchase in the period for the average order value)."""
    sessions, bought, available = pl.collect_all(_queries(events, items, period, new_days))
    return _kpis_from(sessions, bought, available, period, (n_resamples, seed, confidence))


def retention_counts(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per weekly cohort (ISO week of a user's first event) and week k >= 1 after it,
    up to the log's last week: the cohort's users and how many had an event in week k."""
    weeks = events.select(Col.USER, pl.col(Col.TS).dt.truncate("1w").alias(WEEK)).unique()
    first = weeks.group_by(Col.USER).agg(pl.col(WEEK).min().alias(COHORT))
    after = ((pl.col(WEEK) - pl.col(COHORT)).dt.total_days() // 7).cast(pl.Int64)
    active = (
        weeks.join(first, on=Col.USER)
        .with_columns(after.alias(WEEK))
        .filter(pl.col(WEEK) >= 1)
        .group_by(COHORT, WEEK)
        .agg(pl.len().cast(pl.Int64).alias(ACTIVE))
    )
    last = weeks.select(pl.col(WEEK).max().alias("_last"))
    horizon = ((pl.col("_last") - pl.col(COHORT)).dt.total_days() // 7).cast(pl.Int64)
    return (
        first.group_by(COHORT)
        .agg(pl.len().cast(pl.Int64).alias(USERS))
        .join(last, how="cross")
        .with_columns(pl.int_ranges(1, horizon + 1, dtype=pl.Int64).alias(WEEK))
        .explode(WEEK)
        .filter(pl.col(WEEK).is_not_null())
        .join(active, on=[COHORT, WEEK], how="left")
        .select(COHORT, WEEK, USERS, pl.col(ACTIVE).fill_null(0))
        .sort(COHORT, WEEK)
    )


def _retention_from(counts: pl.DataFrame, confidence: float) -> pl.DataFrame:
    low, high = wilson_interval(counts[ACTIVE].to_numpy(), counts[USERS].to_numpy(), confidence)
    return counts.with_columns(
        (pl.col(ACTIVE) / pl.col(USERS)).alias(VALUE),
        pl.Series(LOW, low, nan_to_null=True),
        pl.Series(HIGH, high, nan_to_null=True),
    )


def cohort_retention(events: pl.LazyFrame, confidence: float = 0.95) -> pl.DataFrame:
    """Returning-user retention: (cohort_start, week, users, active, value, low, high),
    the share of each weekly cohort active k weeks after its first week, with its
    Wilson interval. The log's last week may be partial, which lowers its shares."""
    return _retention_from(retention_counts(events).collect(), confidence)


# -- kpis.json and the folder -----------------------------------------------------------------------------------


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: timestamps as ISO strings, NaN as null."""
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    times = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    out = frame.with_columns(pl.col(floats).fill_nan(None), pl.col(times).dt.to_string("%Y-%m-%dT%H:%M:%S%:z"))
    return out.to_dicts()


def kpis_json(
    table: pl.DataFrame,
    retention: pl.DataFrame,
    promotions: Iterable[Promotion | Sequence[Any]] = (),
    period: Period = "day",
    new_days: int = 30,
    bootstrap: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of kpis.json: every KPI's series, the cohort table, the promotions
    with the period each falls in, and the version in production at each period's start."""
    moves = as_promotions(promotions)
    starts = table[PERIOD_START].unique().sort().to_list()
    serving = production_at(moves, starts)
    return {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "period": period,
        "new_days": new_days,
        "bootstrap": dict(bootstrap or {}),
        "definitions": {k: dict(v) for k, v in DEFINITIONS.items()},
        "kpis": {k: _rows(table.filter(pl.col(KPI) == k).drop(KPI)) for k in KPI_NAMES},
        RETENTION: _rows(retention),
        "promotions": [{**p.to_json(), PERIOD_START: period_start(p.at, period).isoformat()} for p in moves],
        "production": [
            {PERIOD_START: s.isoformat(), "name": p.name if p else None, "version": p.version if p else None}
            for s, p in zip(starts, serving, strict=True)
        ],
    }


def kpi_report(
    events: pl.LazyFrame,
    items: pl.LazyFrame | pl.DataFrame | None,
    promotions: Iterable[Promotion | Sequence[Any]] = (),
    period: Period = "week",
    new_days: int = 30,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """kpis.json's content and the PNGs by name (one per KPI, and `retention`),
    from one pass over the events (every query collected together)."""
    from recsys_cli.monitoring.kpi_plots import kpi_pngs

    if new_days < 1 or n_resamples < 1 or not 0 < confidence < 1:
        raise KpiError(f"new_days {new_days} and n_resamples {n_resamples} must be >= 1, confidence in (0, 1)")
    moves = as_promotions(promotions)
    sessions, bought, available, counts = pl.collect_all(
        [*_queries(events, items, period, new_days), retention_counts(events)]
    )
    table = _kpis_from(sessions, bought, available, period, (n_resamples, seed, confidence))
    retention = _retention_from(counts, confidence)
    boot = {"method": "poisson", "resamples": n_resamples, "seed": seed, "confidence": confidence}
    return kpis_json(table, retention, moves, period, new_days, boot), kpi_pngs(
        table, retention, moves, period, confidence
    )


def write_kpi_report(
    events: pl.LazyFrame,
    items: pl.LazyFrame | pl.DataFrame | None,
    promotions: Iterable[Promotion | Sequence[Any]],
    out_dir: Path | str,
    period: Period = "week",
    new_days: int = 30,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    inputs: Iterable[Path | str | None] = (),
) -> dict[str, Any]:
    """Write kpis.json, `<kpi>.png`, retention.png and a sealed manifest.json to
    `out_dir`, built beside it and swapped in whole (`data.lake.staged_version`):
    a reader sees the previous report or this one. `out_dir` must be new, empty or
    an earlier KPI report, and overlap none of `inputs` (the lake). Returns kpis.json's content."""
    from recsys_cli.data.lake import staged_version, write_sealed
    from recsys_cli.registry.outputs import claim

    inputs = list(inputs)
    claim(out_dir, KIND, inputs)  # refuse a wrong folder before the work, not after
    summary, pngs = kpi_report(events, items, promotions, period, new_days, n_resamples, seed, confidence)
    with staged_version(Path(out_dir), KIND, inputs) as staging:
        for name, png in pngs.items():
            (staging / f"{name}.png").write_bytes(png)
        (staging / KPIS_JSON).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        write_sealed(staging, {"kind": KIND, "period": period, "new_days": new_days})
    return summary
