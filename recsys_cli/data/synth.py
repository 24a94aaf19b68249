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

Clickstream knobs (all off by default, so the default shop keeps its bytes) shape
a shop like a real clickstream: views dominating (`cart_scale`, `click_share`),
one-day visitors (`casual_share`), item-to-item complements (`complement_share`)
and re-targeting (`retarget_share`); see `synth_clickstream.py`. `layout` writes
the same shop in RetailRocket's public layout instead (`synth_layouts.py`).
`shocks` (none by default) change the shop suddenly from a day on, the drift
scenario a monitor must flag: a category surge, a price shift, a wave of new
products, a change of taste in one segment (`synth_shocks.py`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data import synth_layouts, synth_shocks
from recsys_cli.data.synth_clickstream import UserMemory, casual_visits, complement_items, follow_complements
from recsys_cli.errors import ConfigError
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
VIEW_STOP = 0.42  # a session ends after each view with this chance: 2.4 views per session
LAYOUTS = ("shop", "retailrocket")
SHOP_TABLES = ("users", "items", "events")
RETAILROCKET_TABLES = ("item_properties_part1", "item_properties_part2", "category_tree", "events")
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
    # Sizes derived from n_events where n_users / n_items are 0.
    events_per_user: float = 40.0
    events_per_item: float = 100.0
    popularity_shape: float = 1.1  # Pareto shape of item popularity: larger, a flatter catalogue
    # Clickstream knobs; the defaults are the original shop's funnel.
    views_per_session: float = 0.0  # mean views per session; 0: the shop's 1 / VIEW_STOP
    click_share: float = 0.2  # share of views that also log a click
    cart_scale: float = 1.0  # multiplies every view's chance of being carted: < 1 lets views dominate
    casual_share: float = 0.0  # share of users active on one day only, for one or two sessions
    complement_share: float = 0.0  # chance the next view is a complement of the previous item (or last purchase)
    n_complements: int = 4  # complement items per item
    retarget_share: float = 0.0  # share of sessions that open on an item viewed on an earlier day
    retarget_boost: float = 3.0  # multiplies the chance of carting a re-targeted item
    layout: str = "shop"  # shop: users/items/events CSV; retailrocket: RetailRocket's public layout
    # Sudden changes from a day on (synth_shocks.py): shocks, or mappings as YAML gives them.
    shocks: tuple[synth_shocks.Shock, ...] = ()

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"generator.layout: {self.layout!r}; known: {', '.join(LAYOUTS)}")
        if 0 < self.views_per_session < 1:
            raise ConfigError(f"generator.views_per_session: {self.views_per_session}; 0 (the default) or at least 1")
        shocks = synth_shocks.parse_shocks(self.shocks, self.n_days, self.n_categories)
        object.__setattr__(self, "shocks", shocks)  # frozen: the checked shocks replace the raw list

    def sizes(self) -> tuple[int, int]:
        users = self.n_users or int(max(200, self.n_events // self.events_per_user))
        items = self.n_items or int(min(200_000, max(300, self.n_events // self.events_per_item)))
        return users, items

    def events_per_session(self) -> float:
        """Events a session yields on average, to size each day's sessions. The
        original funnel's is measured; other funnels use an estimate biased low
        (carts count for little), so days are over- rather than under-filled."""
        if (self.views_per_session, self.click_share, self.cart_scale, self.layout) == (0.0, 0.2, 1.0, "shop"):
            return EVENTS_PER_SESSION
        views = self.views_per_session or 1 / VIEW_STOP
        clicks = self.click_share if self.layout == "shop" else 0.0
        return views * (1 + clicks + 0.08 * self.cart_scale)


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
    item_brand: np.ndarray | None = None
    item_stock: np.ndarray | None = None
    # Clickstream structure, None where its knob is off (see synth_clickstream.py).
    complements: np.ndarray | None = None  # (n_items, n_complements) item ids
    casual: np.ndarray | None = None  # per user: visits on one day only
    casual_users: np.ndarray | None = None  # the casual sessions' users, ordered by day
    casual_bounds: np.ndarray | None = None  # day d's casual sessions: casual_users[bounds[d]:bounds[d + 1]]
    shocks: synth_shocks.ShockPlan | None = None  # None: a shop without shocks


def generate(cfg: SynthConfig, out_dir: Path | str, reporter: Reporter | None = None) -> dict[str, int]:
    """Write the shop's raw files and a manifest into `out_dir`; return row counts.

    Layout `shop`: `users.csv`, `items.csv`, `events.csv`; layout `retailrocket`:
    RetailRocket's `events.csv`, `item_properties_part1/2.csv`, `category_tree.csv`.
    Only a folder that is new, empty or an earlier synthetic shop is written into
    (`registry.outputs.claim`, kind synth): these names would overwrite someone's
    own export. Two generators of one folder run one after the other (its lock).
    """
    from recsys_cli.data.lake import MANIFEST, write_json

    with owned(out_dir, SYNTH):
        earlier = _earlier_tables(Path(out_dir) / MANIFEST)
        counts = _generate(cfg, Path(out_dir), reporter)
        for name in earlier - set(counts):  # an earlier shop of the other layout: its files would be read too
            (Path(out_dir) / f"{name}.csv").unlink(missing_ok=True)
        write_json(Path(out_dir) / MANIFEST, {KIND: SYNTH, "generator": _settings(cfg), "rows": counts})
    return counts


def _settings(cfg: SynthConfig) -> dict[str, object]:
    """The generator's settings for the manifest; `shocks` only where there are some,
    so a shop without shocks keeps the manifest it had before they existed."""
    settings = asdict(cfg)
    shocks = settings.pop("shocks")
    return {**settings, "shocks": [synth_shocks.describe(s) for s in cfg.shocks]} if shocks else settings


def _earlier_tables(manifest: Path) -> set[str]:
    """The tables an earlier synthetic shop in this folder wrote (its manifest's row counts)."""
    import json

    try:
        rows = json.loads(manifest.read_text()).get("rows", {})
    except (OSError, ValueError, AttributeError):
        return set()
    return (
        {str(name) for name in rows if str(name) in SHOP_TABLES + RETAILROCKET_TABLES}
        if isinstance(rows, dict)
        else set()
    )


def _generate(cfg: SynthConfig, out_dir: Path | str, reporter: Reporter | None = None) -> dict[str, int]:
    """Write the layout's files into `out_dir`; return row counts.

    Files are written under temporary names and renamed at the end, so an
    interrupted run never leaves a half-written dataset that looks complete.
    """
    reporter = reporter or NullReporter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _build_world(cfg)
    retailrocket = cfg.layout == "retailrocket"
    if retailrocket:
        tables = synth_layouts.retailrocket_tables(cfg, world)
    else:
        tables = {"users": world.users, "items": world.items}
    tmp = {name: out / f".{name}.csv.tmp" for name in (*tables, "events")}
    for name, frame in tables.items():
        frame.write_csv(tmp[name], datetime_format=TS_FORMAT)
    day_targets = _events_per_day(cfg)
    memory = UserMemory(world.user_weight.size) if cfg.complement_share or cfg.retarget_share else None
    transactions = 0
    reporter.start(f"generating {cfg.n_events:,} events", total=cfg.n_events)
    written = 0
    try:
        with open(tmp["events"], "wb") as fh:
            for day, target in enumerate(day_targets):
                day_log = _day_log(cfg, world, day, int(target), memory)
                if retailrocket:
                    frame, n_transactions = synth_layouts.retailrocket_events(cfg, world, day_log, transactions)
                    transactions += n_transactions
                else:
                    frame = _assemble(cfg, world, day_log)
                frame = (synth_layouts.retailrocket_dirt if retailrocket else _with_dirt)(
                    cfg, day_log.rng, frame, day_log.n_dup
                )
                frame.write_csv(fh, include_header=day == 0, datetime_format=TS_FORMAT)
                written += frame.height
                reporter.advance(frame.height)
        for name, path in tmp.items():
            os.replace(path, out / f"{name}.csv")
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return {**{name: frame.height for name, frame in tables.items()}, "events": written}


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
    item_pop = rng.pareto(cfg.popularity_shape, n_items) + 0.02
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
    launched = _day_offsets_to_ts(start, launch_day, rng.integers(0, 86_400, n_items))
    items = _items_frame(0, item_cat, item_brand, item_price, stock, launched)
    # Clickstream structure comes from a generator of its own: the default shop's draws stay as they were.
    aux = np.random.default_rng([cfg.seed, 1_000_003, 1])
    complements = (
        complement_items(aux, item_cat, item_pop, cfg.n_categories, cfg.n_complements)
        if cfg.complement_share > 0
        else None
    )
    casual = casual_visits(aux, signup_day, cfg.n_days, cfg.casual_share) if cfg.casual_share > 0 else (None,) * 3
    world = _World(
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
        item_brand,
        stock,
        complements,
        *casual,
    )
    return _with_shocks(cfg, world) if cfg.shocks else world


def _items_frame(
    first: int, cat: np.ndarray, brand: np.ndarray, price: np.ndarray, stock: np.ndarray, launched: pl.Series
) -> pl.DataFrame:
    """The shop layout's catalogue rows of items numbered from `first`."""
    return pl.DataFrame(
        {
            "sku": _ids("P", 0, np.arange(first, first + cat.size)),
            "category": [f"cat_{c:02d}" for c in cat],
            "brand": [f"brand_{b:03d}" for b in brand],
            "list_price": price,
            "stock": stock,
            "launched": launched,
        }
    )


def _with_shocks(cfg: SynthConfig, w: _World) -> _World:
    """The world with the shocks' launched products appended to its catalogue (no
    popularity of their own: they are drawn only through their wave's share) and
    the plan each day consults. A generator of its own keeps the shop's draws."""
    rng = np.random.default_rng([cfg.seed, 1_000_003, 3])
    first = w.item_cat.size
    new = synth_shocks.new_items(rng, cfg, w.item_cat, w.item_price)
    launched = _day_offsets_to_ts(w.start, new.launch_day, np.zeros(new.cat.size, np.int64))
    items = _items_frame(first, new.cat, new.brand, new.price, new.stock, launched)
    return replace(
        w,
        item_cat=np.concatenate([w.item_cat, new.cat]),
        item_pop=np.concatenate([w.item_pop, np.zeros(new.cat.size)]),
        item_price=np.concatenate([w.item_price, new.price]),
        item_launch_day=np.concatenate([w.item_launch_day, new.launch_day]),
        items=pl.concat([w.items, items]),
        item_brand=np.concatenate([np.asarray(w.item_brand), new.brand]),
        item_stock=np.concatenate([np.asarray(w.item_stock), new.stock]),
        complements=None if w.complements is None else np.concatenate([w.complements, w.complements[new.template]]),
        shocks=synth_shocks.plan(rng, cfg.shocks, w.users, new, first, cfg.n_categories),
    )


@dataclass
class _DayLog:
    """One day's events before a layout writes them: parallel arrays over every
    generated event, `order` the written ones in time order (the day's first
    `target - n_dup`), and the generator the layout goes on drawing from."""

    day: int
    rng: np.random.Generator
    s_user: np.ndarray
    sess: np.ndarray
    item: np.ndarray
    kind: np.ndarray
    ts: np.ndarray
    qty: np.ndarray
    value: np.ndarray
    order: np.ndarray
    n_dup: int


def _day_log(cfg: SynthConfig, w: _World, day: int, target: int, memory: UserMemory | None) -> _DayLog:
    """The day's events; with another funnel than the original, a day that comes
    out short of its target is drawn again with more sessions (a generator of its
    own per try), so the file still holds exactly `n_events` rows."""
    per_session = cfg.events_per_session()
    log = _day_events(cfg, w, day, target, per_session, memory, attempt=0)
    attempt = 0
    while per_session != EVENTS_PER_SESSION and log.order.size < target - log.n_dup and attempt < 8:
        attempt += 1
        log = _day_events(cfg, w, day, target, per_session / 1.5**attempt, memory, attempt)
    if memory is not None:
        o = log.order
        kind = log.kind[o]
        memory.remember(log.s_user[log.sess[o]], log.item[o], kind == "view", kind == "purchase")
    return log


def _day_events(
    cfg: SynthConfig,
    w: _World,
    day: int,
    target: int,
    per_session: float,
    memory: UserMemory | None,
    attempt: int,
) -> _DayLog:
    """All events of one day: sessions → views (and clicks) → carts → purchases → ratings."""
    rng = np.random.default_rng([cfg.seed, day] if attempt == 0 else [cfg.seed, day, 1000 + attempt])
    aux = np.random.default_rng([cfg.seed, day, 1] if attempt == 0 else [cfg.seed, day, 1, attempt])
    n_sessions = max(1, int(np.ceil(target / per_session * 1.15)))
    lam = cfg.drift * day / max(cfg.n_days - 1, 1)
    affinity = (1 - lam) * w.affinity_from + lam * w.affinity_to

    active = w.user_signup_day <= day
    if w.casual is None or w.casual_users is None or w.casual_bounds is None:
        s_user = _sample(rng, np.where(active, w.user_weight, 0.0), n_sessions)
    else:  # the day's casual visitors, then regulars drawn by weight
        casual = w.casual_users[w.casual_bounds[day] : w.casual_bounds[day + 1]]
        regular = _sample(rng, np.where(active & ~w.casual, w.user_weight, 0.0), max(0, n_sessions - casual.size))
        s_user = np.concatenate([casual, regular])
        n_sessions = s_user.size
    s_fav, s_taste = _session_tastes(w, day, s_user, affinity)
    s_cat = np.where(rng.random(n_sessions) < cfg.favourite_share, s_fav, _sample_rows(rng, s_taste))
    shock_rng = np.random.default_rng([cfg.seed, day, 3, attempt])  # the shocks' own draws
    if w.shocks is not None:
        s_cat = w.shocks.surge_sessions(shock_rng, day, s_cat)
    opener = np.full(n_sessions, -1, dtype=np.int64)
    retargeted = np.zeros(n_sessions, dtype=bool)
    if memory is not None:
        opener, retargeted = _session_openers(cfg, w, aux, memory, s_user, day)
        s_cat = np.where(opener >= 0, w.item_cat[np.maximum(opener, 0)], s_cat)
    s_start = (
        day * 86_400
        + rng.choice(24, n_sessions, p=HOUR_WEIGHT / HOUR_WEIGHT.sum()) * 3600
        + rng.integers(0, 3600, n_sessions)
    )

    n_views = 1 + rng.geometric(1 / cfg.views_per_session if cfg.views_per_session else VIEW_STOP, n_sessions) - 1
    v_sess = np.repeat(np.arange(n_sessions), n_views)
    in_cat = rng.random(v_sess.size) < 0.8
    v_item = _sample_items(rng, w, day, np.where(in_cat, s_cat[v_sess], -1))
    if w.shocks is not None:  # new products take their share of the views
        v_item = w.shocks.launch(shock_rng, day, v_item)
    v_boost = np.ones(v_sess.size)
    if memory is not None:
        first = np.searchsorted(v_sess, np.arange(n_sessions))  # every session has a first view
        v_item[first] = np.where(opener >= 0, opener, v_item[first])
        v_boost[first[retargeted]] = cfg.retarget_boost
    if w.complements is not None and cfg.complement_share > 0:
        v_item = follow_complements(aux, w.complements, w.item_launch_day, day, v_sess, v_item, cfg.complement_share)
    v_ts = s_start[v_sess] + _within_session_offsets(rng, v_sess, 40.0)

    taste = s_taste[v_sess, w.item_cat[v_item]] / s_taste.max(axis=1)[v_sess]
    fav = w.item_cat[v_item] == s_fav[v_sess]
    price_penalty = np.clip(np.log1p(_prices(w, day)[v_item]) / 8, 0, 0.5)
    base = 0.04 + 0.35 * taste + 0.12 * fav - 0.1 * price_penalty
    if memory is not None:
        base = base * v_boost
    p_cart = np.clip(base * cfg.cart_scale, 0.01 * min(cfg.cart_scale, 1.0), 0.8)
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
    k_idx = np.flatnonzero(rng.random(v_sess.size) < cfg.click_share)

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
    if cfg.layout == "retailrocket":  # its log knows views, carts and transactions only
        parts = [p for p in parts if p["kind"] in ("view", "add_to_cart", "purchase")]
    n_dup = int(rng.binomial(target, cfg.duplicate_share))
    sess = np.concatenate([p["sess"] for p in parts])
    ts = np.concatenate([p["ts"] for p in parts])
    # Keep the day's first `target` events in time order; events of sessions that run
    # past midnight stay with the day that started them, as in batched log exports.
    return _DayLog(
        day=day,
        rng=rng,
        s_user=s_user,
        sess=sess,
        item=np.concatenate([p["item"] for p in parts]),
        kind=np.concatenate([np.full(len(p["sess"]), p["kind"]) for p in parts]),
        ts=ts,
        qty=np.concatenate([p["qty"] for p in parts]),
        value=np.concatenate([p["value"] for p in parts]),
        order=np.lexsort((sess, ts))[: target - n_dup],
        n_dup=n_dup,
    )


def _session_tastes(w: _World, day: int, s_user: np.ndarray, affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each session's favourite category and taste row (its user's cluster's
    affinity), after the day's taste changes."""
    fav, taste = w.user_fav[s_user], affinity[w.user_cluster[s_user]]
    return (fav, taste) if w.shocks is None else w.shocks.tastes(day, s_user, fav, taste)


def _prices(w: _World, day: int) -> np.ndarray:
    """The items' prices on `day`: the list prices, times any price shift begun by then."""
    factor = None if w.shocks is None else w.shocks.price_factor(day, w.item_cat)
    return w.item_price if factor is None else np.round(w.item_price * factor, 2)


def _session_openers(
    cfg: SynthConfig, w: _World, rng: np.random.Generator, memory: UserMemory, s_user: np.ndarray, day: int
) -> tuple[np.ndarray, np.ndarray]:
    """The item each session opens on (-1: an ordinary first view) and whether it
    is a re-targeted one: an item the user viewed on an earlier day and did not
    buy (`retarget_share` of sessions, where there is one), else, with
    `complement_share`, a launched complement of the user's last purchase."""
    n = s_user.size
    recent = memory.pick_recent(rng, s_user) if cfg.retarget_share else np.full(n, -1, dtype=np.int64)
    retargeted = (rng.random(n) < cfg.retarget_share) & (recent >= 0)
    opener = np.where(retargeted, recent, -1)
    if w.complements is not None and cfg.complement_share:
        bought = memory.last_bought[s_user]
        pick = w.complements[np.maximum(bought, 0), rng.integers(0, w.complements.shape[1], n)]
        follow = ~retargeted & (bought >= 0) & (rng.random(n) < cfg.complement_share)
        follow &= w.item_launch_day[pick] <= day
        opener = np.where(follow, pick, opener)
    return opener, retargeted


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


def _assemble(cfg: SynthConfig, w: _World, log: _DayLog) -> pl.DataFrame:
    """The shop layout's rows of the day's written events."""
    rng, order = log.rng, log.order
    kind, item = log.kind, log.item
    user = log.s_user[log.sess[order]]
    discount = np.where(rng.random(order.size) < 0.1, 0.85, 1.0)
    is_money = np.isin(kind[order], ("add_to_cart", "purchase"))
    qty_s = pl.Series(log.qty[order])
    price_s = pl.Series(np.round(_prices(w, log.day)[item[order]] * discount, 2))
    frame = pl.DataFrame(
        {
            "event_time": w.start
            + pl.Series(log.ts[order] * 1_000_000 + rng.integers(0, 1000, order.size) * 1000).cast(pl.Duration("us")),
            "customer_id": _ids("C", 0, user),
            "sku": _ids("P", 0, item[order]),
            "event": kind[order],
            "session": f"d{log.day}s" + pl.Series(log.sess[order]).cast(pl.String),
            "rating": pl.Series(log.value[order]).fill_nan(None),
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
    """Items by popularity among those launched, within `category` (-1: any category,
    where a category surge raises its category's share).

    New products get a launch boost that fades over two weeks.
    """
    age = day - w.item_launch_day
    weight = np.where(age >= 0, w.item_pop * (1 + 4 * np.exp(-np.maximum(age, 0) / 14)), 0.0)
    anywhere = weight if w.shocks is None else w.shocks.surge_items(day, weight, w.item_cat)
    out = np.empty(category.size, dtype=np.int64)
    any_cat = category < 0
    out[any_cat] = _sample(rng, anywhere, int(any_cat.sum()))
    order = np.argsort(w.item_cat, kind="stable")
    bounds = np.searchsorted(w.item_cat[order], np.arange(w.affinity_from.shape[1] + 1))
    for cat in np.unique(category[~any_cat]):
        members = order[bounds[cat] : bounds[cat + 1]]
        mask = category == cat
        if members.size == 0 or weight[members].sum() == 0:
            out[mask] = _sample(rng, anywhere, int(mask.sum()))
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
