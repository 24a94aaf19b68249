"""A synthetic shop whose raw logs look like a real one's, with structure planted
for models to find.

Why synthetic: tests and demos need data with a known answer. The planted signal:
users belong to taste clusters tied to their demographics and have a favourite
category; sessions stay mostly within one category; carting and rating depend on
taste. A popularity model sees none of that. Tastes drift over the period and
new products keep arriving, so time-aware evaluation matters.

The log is generated one day at a time from a generator seeded by (seed, day),
appended to CSV, so memory stays flat from 10 thousand to 100 million events and
the same seed always gives the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.registry.outputs import KIND, SYNTH, owned

AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55+")
AGE_P = (0.18, 0.32, 0.24, 0.15, 0.11)
GENDERS = ("F", "M", "X")
GENDER_P = (0.49, 0.48, 0.03)
REGIONS = ("north", "south", "east", "west", "central")
REGION_P = (0.22, 0.25, 0.18, 0.2, 0.15)
CHANNELS = ("web", "app")
# Monday..Sunday: weekends shop more.
WEEKDAY_FACTOR = np.array([0.92, 0.9, 0.94, 1.0, 1.08, 1.22, 1.18])
# Sessions by hour of day (UTC): a night trough and an evening peak.
HOUR_WEIGHT = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 7, 7, 6, 6, 6, 7, 9, 11, 12, 11, 8, 4], dtype=float)
EVENTS_PER_SESSION = 3.1  # measured mean of the funnel below; sizes the number of sessions
TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"


@dataclass(frozen=True)
class SynthConfig:
    """Size and behaviour of the synthetic shop. Sizes of 0 are derived from n_events."""

    n_events: int = 50_000
    n_days: int = 90
    start: str = "2026-01-01"
    n_users: int = 0
    n_items: int = 0
    n_categories: int = 24
    n_brands: int = 60
    n_clusters: int = 8
    new_item_share: float = 0.3
    drift: float = 0.6
    favourite_share: float = 0.4
    duplicate_share: float = 0.003
    dirty_share: float = 0.001
    seed: int = 42

    def sizes(self) -> tuple[int, int]:
        users = self.n_users or max(200, self.n_events // 40)
        items = self.n_items or int(min(200_000, max(300, self.n_events // 100)))
        return users, items


@dataclass(frozen=True)
class _World:
    """Everything fixed for the whole period: users, items and taste matrices."""

    start: datetime
    user_cluster: np.ndarray
    user_fav: np.ndarray
    user_weight: np.ndarray
    user_signup_day: np.ndarray
    user_app: np.ndarray
    item_cat: np.ndarray
    item_pop: np.ndarray
    item_price: np.ndarray
    item_launch_day: np.ndarray
    affinity_from: np.ndarray
    affinity_to: np.ndarray
    users: pl.DataFrame
    items: pl.DataFrame


def generate(cfg: SynthConfig, out_dir: Path | str, reporter: Reporter | None = None) -> dict[str, int]:
    """Write `users.csv`, `items.csv`, `events.csv` and a manifest into `out_dir`; return row counts.

    Only a folder that is new, empty or an earlier synthetic shop is written into
    (`registry.outputs.claim`, kind synth): these names would overwrite someone's
    own export. Two generators of one folder run one after the other (its lock).
    """
    from recsys_cli.data.lake import MANIFEST, write_json

    with owned(out_dir, SYNTH):
        counts = _generate(cfg, Path(out_dir), reporter)
        write_json(Path(out_dir) / MANIFEST, {KIND: SYNTH, "generator": asdict(cfg), "rows": counts})
    return counts


def _generate(cfg: SynthConfig, out_dir: Path | str, reporter: Reporter | None = None) -> dict[str, int]:
    """Write `users.csv`, `items.csv` and `events.csv` into `out_dir`; return row counts.

    Files are written under temporary names and renamed at the end, so an
    interrupted run never leaves a half-written dataset that looks complete.
    """
    reporter = reporter or NullReporter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _build_world(cfg)
    tmp = {name: out / f".{name}.csv.tmp" for name in ("users", "items", "events")}
    world.users.write_csv(tmp["users"], datetime_format=TS_FORMAT)
    world.items.write_csv(tmp["items"], datetime_format=TS_FORMAT)
    day_targets = _events_per_day(cfg)
    reporter.start(f"generating {cfg.n_events:,} events", total=cfg.n_events)
    written = 0
    try:
        with open(tmp["events"], "wb") as fh:
            for day, target in enumerate(day_targets):
                frame = _day_events(cfg, world, day, int(target))
                frame.write_csv(fh, include_header=day == 0, datetime_format=TS_FORMAT)
                written += frame.height
                reporter.advance(frame.height)
        for name, path in tmp.items():
            os.replace(path, out / f"{name}.csv")
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return {"users": world.users.height, "items": world.items.height, "events": written}


def _events_per_day(cfg: SynthConfig) -> np.ndarray:
    start = date.fromisoformat(cfg.start)
    weekday = np.array([(start + timedelta(days=d)).weekday() for d in range(cfg.n_days)])
    growth = 1.0 + 0.3 * np.arange(cfg.n_days) / max(cfg.n_days - 1, 1)
    weight = WEEKDAY_FACTOR[weekday] * growth
    raw = cfg.n_events * weight / weight.sum()
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(raw - counts)[::-1][: cfg.n_events - counts.sum()]] += 1
    return counts


def _build_world(cfg: SynthConfig) -> _World:
    rng = np.random.default_rng([cfg.seed, 1_000_003])
    n_users, n_items = cfg.sizes()
    start = datetime.fromisoformat(cfg.start).replace(tzinfo=UTC)

    age = rng.choice(len(AGE_BUCKETS), n_users, p=AGE_P)
    gender = rng.choice(len(GENDERS), n_users, p=GENDER_P)
    region = rng.choice(len(REGIONS), n_users, p=REGION_P)
    # Each demographic profile leans towards a few taste clusters.
    n_profiles = len(AGE_BUCKETS) * len(GENDERS) * len(REGIONS)
    profile_taste = rng.dirichlet(np.full(cfg.n_clusters, 0.25), n_profiles)
    profile = (age * len(GENDERS) + gender) * len(REGIONS) + region
    user_cluster = _sample_rows(rng, profile_taste[profile])
    affinity_from = rng.dirichlet(np.full(cfg.n_categories, 0.15), cfg.n_clusters)
    affinity_to = affinity_from[:, rng.permutation(cfg.n_categories)]
    user_fav = _sample_rows(rng, affinity_from[user_cluster])
    user_weight = rng.pareto(1.6, n_users) + 0.05
    # 60% signed up in the year before the log starts, the rest during it.
    before = rng.random(n_users) < 0.6
    signup_day = np.where(before, -rng.integers(1, 366, n_users), rng.integers(0, max(cfg.n_days, 1), n_users))
    signup_at = _day_offsets_to_ts(start, signup_day, rng.integers(0, 86_400, n_users))
    user_app = rng.random(n_users) < 0.35 + 0.3 * (age < 2)

    cat_weight = rng.dirichlet(np.full(cfg.n_categories, 2.0))
    item_cat = rng.choice(cfg.n_categories, n_items, p=cat_weight)
    brands_per_cat = max(1, cfg.n_brands // cfg.n_categories)
    item_brand = item_cat * brands_per_cat + rng.integers(0, brands_per_cat, n_items)
    cat_price = np.exp(rng.normal(3.3, 0.8, cfg.n_categories))
    item_price = np.round(cat_price[item_cat] * np.exp(rng.normal(0, 0.45, n_items)), 2) + 0.99
    item_pop = rng.pareto(1.1, n_items) + 0.02
    new = rng.random(n_items) < cfg.new_item_share
    launch_day = np.where(new, rng.integers(0, max(cfg.n_days, 1), n_items), -rng.integers(1, 720, n_items))
    stock = np.where(rng.random(n_items) < 0.05, 0, rng.poisson(40, n_items))

    users = pl.DataFrame(
        {
            "customer_id": _ids("C", n_users),
            "signup_date": signup_at,
            "age_bucket": np.array(AGE_BUCKETS)[age],
            "gender": np.array(GENDERS)[gender],
            "region": np.array(REGIONS)[region],
            "email": [f"customer{i}@example.com" for i in range(n_users)],
            "phone": [f"+1-555-{i % 10_000_000:07d}" for i in range(n_users)],
        }
    )
    items = pl.DataFrame(
        {
            "sku": _ids("P", n_items),
            "category": [f"cat_{c:02d}" for c in item_cat],
            "brand": [f"brand_{b:03d}" for b in item_brand],
            "list_price": item_price,
            "stock": stock,
            "launched": _day_offsets_to_ts(start, launch_day, rng.integers(0, 86_400, n_items)),
        }
    )
    return _World(
        start,
        user_cluster,
        user_fav,
        user_weight,
        signup_day,
        user_app,
        item_cat,
        item_pop,
        item_price,
        launch_day,
        affinity_from,
        affinity_to,
        users,
        items,
    )


def _day_events(cfg: SynthConfig, w: _World, day: int, target: int) -> pl.DataFrame:
    """All events of one day: sessions → views (and clicks) → carts → purchases → ratings."""
    rng = np.random.default_rng([cfg.seed, day])
    n_sessions = max(1, int(np.ceil(target / EVENTS_PER_SESSION * 1.15)))
    lam = cfg.drift * day / max(cfg.n_days - 1, 1)
    affinity = (1 - lam) * w.affinity_from + lam * w.affinity_to

    active = w.user_signup_day <= day
    s_user = _sample(rng, np.where(active, w.user_weight, 0.0), n_sessions)
    s_cluster = w.user_cluster[s_user]
    s_cat = np.where(
        rng.random(n_sessions) < cfg.favourite_share, w.user_fav[s_user], _sample_rows(rng, affinity[s_cluster])
    )
    s_start = (
        day * 86_400
        + rng.choice(24, n_sessions, p=HOUR_WEIGHT / HOUR_WEIGHT.sum()) * 3600
        + rng.integers(0, 3600, n_sessions)
    )

    n_views = 1 + rng.geometric(0.42, n_sessions) - 1
    v_sess = np.repeat(np.arange(n_sessions), n_views)
    in_cat = rng.random(v_sess.size) < 0.8
    v_item = _sample_items(rng, w, day, np.where(in_cat, s_cat[v_sess], -1))
    v_ts = s_start[v_sess] + _within_session_offsets(rng, v_sess, 40.0)

    taste = affinity[s_cluster[v_sess], w.item_cat[v_item]] / affinity[s_cluster[v_sess]].max(axis=1)
    fav = w.item_cat[v_item] == w.user_fav[s_user[v_sess]]
    price_penalty = np.clip(np.log1p(w.item_price[v_item]) / 8, 0, 0.5)
    p_cart = np.clip(0.04 + 0.35 * taste + 0.12 * fav - 0.1 * price_penalty, 0.01, 0.8)
    carted = rng.random(v_sess.size) < p_cart
    c_idx = np.flatnonzero(carted)
    c_ts = v_ts[c_idx] + rng.integers(5, 90, c_idx.size)
    bought = rng.random(c_idx.size) < 0.42 + 0.2 * taste[c_idx]
    removed = ~bought & (rng.random(c_idx.size) < 0.3)
    b_idx = c_idx[bought]
    session_end = np.zeros(n_sessions, dtype=np.int64)
    np.maximum.at(session_end, v_sess[c_idx], c_ts)
    b_ts = session_end[v_sess[b_idx]] + rng.integers(30, 300, b_idx.size)
    r_idx = b_idx[rng.random(b_idx.size) < 0.15]
    r_val = np.clip(np.round(2.4 + 2.2 * taste[r_idx] + rng.normal(0, 0.7, r_idx.size)), 1, 5)
    k_idx = np.flatnonzero(rng.random(v_sess.size) < 0.2)

    parts = [
        _part(v_sess, v_item, v_ts, "view"),
        _part(v_sess[k_idx], v_item[k_idx], v_ts[k_idx] - rng.integers(1, 4, k_idx.size), "click"),
        _part(v_sess[c_idx], v_item[c_idx], c_ts, "add_to_cart", qty=np.ones(c_idx.size, np.int64)),
        _part(
            v_sess[c_idx[removed]],
            v_item[c_idx[removed]],
            c_ts[removed] + rng.integers(20, 600, removed.sum()),
            "remove_from_cart",
        ),
        _part(v_sess[b_idx], v_item[b_idx], b_ts, "purchase", qty=1 + rng.poisson(0.25, b_idx.size)),
        _part(
            v_sess[r_idx],
            v_item[r_idx],
            b_ts[np.isin(b_idx, r_idx)] + rng.integers(600, 4 * 3600, r_idx.size),
            "rating",
            value=r_val,
        ),
    ]
    n_dup = int(rng.binomial(target, cfg.duplicate_share))
    events = _assemble(cfg, w, rng, parts, s_user, day, target - n_dup)
    return _with_dirt(cfg, rng, events, n_dup)


def _part(
    sess: np.ndarray,
    item: np.ndarray,
    ts: np.ndarray,
    kind: str,
    qty: np.ndarray | None = None,
    value: np.ndarray | None = None,
) -> dict[str, np.ndarray | str]:
    n = sess.size
    return {
        "sess": sess,
        "item": item,
        "ts": ts,
        "kind": kind,
        "qty": qty if qty is not None else np.zeros(n, np.int64),
        "value": value if value is not None else np.full(n, np.nan),
    }


def _assemble(
    cfg: SynthConfig, w: _World, rng: np.random.Generator, parts: list[dict], s_user: np.ndarray, day: int, target: int
) -> pl.DataFrame:
    sess = np.concatenate([p["sess"] for p in parts])
    item = np.concatenate([p["item"] for p in parts])
    kind = np.concatenate([np.full(p["sess"].size, p["kind"]) for p in parts])
    ts = np.concatenate([p["ts"] for p in parts])
    qty = np.concatenate([p["qty"] for p in parts])
    value = np.concatenate([p["value"] for p in parts])
    # Keep the day's first `target` events in time order; events of sessions that run
    # past midnight stay with the day that started them, as in batched log exports.
    order = np.lexsort((sess, ts))[:target]
    user = s_user[sess[order]]
    discount = np.where(rng.random(order.size) < 0.1, 0.85, 1.0)
    is_money = np.isin(kind[order], ("add_to_cart", "purchase"))
    qty_s = pl.Series(qty[order])
    price_s = pl.Series(np.round(w.item_price[item[order]] * discount, 2))
    frame = pl.DataFrame(
        {
            "event_time": w.start
            + pl.Series(ts[order] * 1_000_000 + rng.integers(0, 1000, order.size) * 1000).cast(pl.Duration("us")),
            "customer_id": _ids("C", 0, user),
            "sku": _ids("P", 0, item[order]),
            "event": kind[order],
            "session": f"d{day}s" + pl.Series(sess[order]).cast(pl.String),
            "rating": pl.Series(value[order]).fill_nan(None),
            "qty": pl.select(pl.when(qty_s > 0).then(qty_s)).to_series(),
            "unit_price": pl.select(pl.when(pl.Series(is_money)).then(price_s)).to_series(),
            "channel": np.where(w.user_app[user], "app", "web"),
            "ip": _fake_ips(user),
        }
    )
    return frame


def _with_dirt(cfg: SynthConfig, rng: np.random.Generator, events: pl.DataFrame, n_dup: int) -> pl.DataFrame:
    """Real logs have client retries (exact duplicates) and broken rows; so do ours."""
    n = events.height
    dup = np.zeros(n, dtype=bool)
    dup[rng.choice(n, min(n_dup, n), replace=False)] = True
    dirty = np.flatnonzero(rng.random(n) < cfg.dirty_share)
    kinds = rng.integers(0, 4, dirty.size)
    rows = events.with_row_index("_i")
    fix = pl.DataFrame({"_i": dirty.astype(np.uint32), "_k": kinds})
    rows = rows.join(fix, on="_i", how="left").with_columns(
        pl.when(pl.col("_k") == 0).then(None).otherwise(pl.col("customer_id")).alias("customer_id"),
        pl.when(pl.col("_k") == 1).then(pl.lit("unknown_action")).otherwise(pl.col("event")).alias("event"),
        pl.when(pl.col("_k") == 2)
        .then(-pl.col("unit_price").fill_null(9.99))
        .otherwise(pl.col("unit_price"))
        .alias("unit_price"),
        pl.when(pl.col("_k") == 3).then(pl.lit(None, dtype=pl.String)).otherwise(pl.col("sku")).alias("sku"),
    )
    rows = pl.concat([rows, rows.filter(pl.Series(dup))]).sort("_i", maintain_order=True)
    return rows.drop("_i", "_k")


def _sample(rng: np.random.Generator, weight: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weight)
    return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), weight.size - 1)


def _sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n, k) probability matrix, vectorised."""
    cdf = np.cumsum(probs, axis=1)
    u = np.asarray(rng.random(probs.shape[0]))[:, None] * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=1), probs.shape[1] - 1)


def _sample_items(rng: np.random.Generator, w: _World, day: int, category: np.ndarray) -> np.ndarray:
    """Items by popularity among those launched, within `category` (-1: any category).

    New products get a launch boost that fades over two weeks.
    """
    age = day - w.item_launch_day
    weight = np.where(age >= 0, w.item_pop * (1 + 4 * np.exp(-np.maximum(age, 0) / 14)), 0.0)
    out = np.empty(category.size, dtype=np.int64)
    any_cat = category < 0
    out[any_cat] = _sample(rng, weight, int(any_cat.sum()))
    order = np.argsort(w.item_cat, kind="stable")
    bounds = np.searchsorted(w.item_cat[order], np.arange(w.affinity_from.shape[1] + 1))
    for cat in np.unique(category[~any_cat]):
        members = order[bounds[cat] : bounds[cat + 1]]
        mask = category == cat
        if members.size == 0 or weight[members].sum() == 0:
            out[mask] = _sample(rng, weight, int(mask.sum()))
        else:
            out[mask] = members[_sample(rng, weight[members], int(mask.sum()))]
    return out


def _within_session_offsets(rng: np.random.Generator, sess: np.ndarray, mean_gap: float) -> np.ndarray:
    gaps = rng.exponential(mean_gap, sess.size).astype(np.int64) + 1
    cum = np.cumsum(gaps)
    first = np.searchsorted(sess, sess, side="left")
    return cum - cum[first]


def _ids(prefix: str, n: int, idx: np.ndarray | None = None) -> pl.Series:
    values = pl.Series(np.arange(n) if idx is None else idx).cast(pl.String).str.zfill(7)
    return prefix + values


def _day_offsets_to_ts(start: datetime, days: np.ndarray, seconds: np.ndarray) -> pl.Series:
    micros = (days.astype(np.int64) * 86_400 + seconds.astype(np.int64)) * 1_000_000
    return start + pl.Series(micros).cast(pl.Duration("us"))


def _fake_ips(user: np.ndarray) -> pl.Series:
    u = pl.Series(user.astype(np.int64))
    return (
        "10."
        + (u // 65_536 % 256).cast(pl.String)
        + "."
        + (u // 256 % 256).cast(pl.String)
        + "."
        + (u % 256).cast(pl.String)
    )
