"""Shocks after a date: the synthetic shop's drift scenario.

The shop drifts slowly on its own (tastes turn from one category mix to another
over the period). A shock is a sudden change from one day on, so that a monitor
has something to flag and a retrain something to catch up with. Four kinds, any
number of each, none by default (`generator.shocks`, a list):

- `category_surge` (category, factor >= 1): the category's share of the day's
  sessions, and of the views drawn outside a session's category, is multiplied by
  `factor` (up to all of them), so its share of the views is too: sessions that
  would have gone elsewhere go to it, whoever their user (a trend reaches
  everyone; those who do not care for the category cart less of it);
- `price_shift` (factor, category or null for every item): the price is multiplied
  by `factor`, in the events' unit prices and in the price that discourages
  carting. The shop layout's `items.csv` is a snapshot of the catalogue at the
  log's start, so its `list_price` keeps the old price (features built before
  the date read nothing from after it); the RetailRocket layout's property
  history, which is timestamped, shows the new price from the date on;
- `new_products` (count, share, category or null): `count` products launched at
  the date (launched = its midnight), in `category` or spread like the catalogue,
  each a copy of an existing product of its category (price within noise, brand
  line, complements); from the date on `share` of all views are of one of them,
  by their own popularity, and carts and purchases follow as for any view;
- `taste_change` (segment, categories or null): users of the segment (any of
  age_bucket, gender, region) change their favourite and their taste: onto
  `categories` when given (a favourite among them, sessions spread evenly over
  them), else through a random cycle of the categories (every category's lovers
  now love another one, as strongly).

A shock starts at `start_day` (days after `generator.start`; at least 1, before
`n_days`) and lasts to the end. Shocks draw from generators of their own and new
products are appended to the catalogue with no demand before their date, so the
events before the first shock's date are the unshocked shop's, byte for byte,
and a shop without shocks keeps its bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import polars as pl

from recsys_cli.errors import ConfigError

if TYPE_CHECKING:
    from recsys_cli.data.synth import SynthConfig

SEGMENT_VALUES = {
    "age_bucket": ("18-24", "25-34", "35-44", "45-54", "55+"),
    "gender": ("F", "M", "X"),
    "region": ("north", "south", "east", "west", "central"),
}
MAX_FACTOR = 1_000.0
MAX_COUNT = 1_000_000
CATEGORY_NAME = re.compile(r"cat_(\d+)")


@dataclass(frozen=True)
class CategorySurge:
    """One category's share of the sessions and views, times `factor` (>= 1)."""

    KIND: ClassVar[str] = "category_surge"
    start_day: int
    category: int
    factor: float


@dataclass(frozen=True)
class PriceShift:
    """Prices of `category` (None: every item) times `factor`."""

    KIND: ClassVar[str] = "price_shift"
    start_day: int
    factor: float
    category: int | None = None


@dataclass(frozen=True)
class NewProducts:
    """`count` products launched on the day, drawing `share` of the views from then on."""

    KIND: ClassVar[str] = "new_products"
    start_day: int
    count: int
    share: float
    category: int | None = None


@dataclass(frozen=True)
class TasteChange:
    """A segment's users move their taste: onto `categories`, or through a random cycle."""

    KIND: ClassVar[str] = "taste_change"
    start_day: int
    segment: Mapping[str, str]
    categories: tuple[int, ...] | None = None


Shock = CategorySurge | PriceShift | NewProducts | TasteChange
KINDS: dict[str, type[Shock]] = {cls.KIND: cls for cls in (CategorySurge, PriceShift, NewProducts, TasteChange)}


def describe(shock: Shock) -> dict[str, Any]:
    """A shock as its config reads (for the shop's manifest), kind first."""
    values = asdict(shock)
    if isinstance(shock, TasteChange):
        values["segment"] = dict(shock.segment)
    return {"kind": shock.KIND, **values}


# --------------------------------------------------------------------------- parsing


def parse_shocks(raw: Iterable[Any], n_days: int, n_categories: int) -> tuple[Shock, ...]:
    """The shocks of a generator config (mappings as YAML gives them, or shocks),
    checked against the period and the catalogue: a mistake is one line naming
    the field, `generator.shocks[i].key`."""
    if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Iterable):
        raise ConfigError(f"generator.shocks: {raw!r}; must be a list of shocks ({', '.join(KINDS)})")
    shocks = tuple(_parse(f"generator.shocks[{i}]", item, n_days, n_categories) for i, item in enumerate(raw))
    share = sum(s.share for s in shocks if isinstance(s, NewProducts))
    if share >= 1:
        raise ConfigError(f"generator.shocks: the new_products shares add up to {share:g}; they must stay below 1")
    return shocks


def _parse(where: str, item: Any, n_days: int, n_categories: int) -> Shock:
    if isinstance(item, CategorySurge | PriceShift | NewProducts | TasteChange):
        item = describe(item)
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: {item!r}; must be a mapping with a kind ({', '.join(KINDS)})")
    kind = item.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: {kind!r}; known: {', '.join(KINDS)}")
    cls = KINDS[kind]
    names = [f.name for f in fields(cls)]
    for key in item:
        if key != "kind" and key not in names:
            raise ConfigError(f"{where}.{key}: not a key of a {kind} shock; its keys: kind, {', '.join(names)}")
    for f in fields(cls):
        if f.default is MISSING and f.name not in item:
            raise ConfigError(f"{where}.{f.name}: required for a {kind} shock")
    checked = {key: _value(f"{where}.{key}", key, value, n_days, n_categories) for key, value in item.items()}
    checked.pop("kind")
    if kind == CategorySurge.KIND and checked["factor"] < 1:
        raise ConfigError(f"{where}.factor: {checked['factor']!r}; a surge's factor must be >= 1")
    return cls(**checked)


def _value(where: str, key: str, value: Any, n_days: int, n_categories: int) -> Any:
    """One key's value, checked (and a category name turned into its index)."""
    if key == "kind":
        return value
    if key == "category":
        return None if value is None else _category(where, value, n_categories)
    if key == "categories":
        return _categories(where, value, n_categories)
    if key == "segment":
        return _segment(where, value)
    whole = isinstance(value, int) and not isinstance(value, bool)
    number = whole or (isinstance(value, float) and math.isfinite(value))
    ok, rule = {
        "start_day": (
            lambda: whole and 1 <= value < n_days,
            f"must be a whole day from 1 to n_days - 1 ({n_days - 1})",
        ),
        "factor": (lambda: number and 0 < value <= MAX_FACTOR, f"must be a number > 0 and <= {MAX_FACTOR:g}"),
        "count": (lambda: whole and 1 <= value <= MAX_COUNT, f"must be a whole number from 1 to {MAX_COUNT}"),
        "share": (lambda: number and 0 < value < 1, "must be a number > 0 and < 1"),
    }[key]
    if not ok():
        raise ConfigError(f"{where}: {value!r}; {rule}")
    return float(value) if key in ("factor", "share") else value


def _category(where: str, value: Any, n_categories: int) -> int:
    """A category's index (3) or its name in items.csv (cat_03)."""
    match = CATEGORY_NAME.fullmatch(value) if isinstance(value, str) else None
    index = int(match.group(1)) if match else value
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < n_categories):
        raise ConfigError(
            f"{where}: {value!r}; must be a category index from 0 to {n_categories - 1} or its name (cat_03)"
        )
    return index


def _categories(where: str, value: Any, n_categories: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable) or not list(value):
        raise ConfigError(f"{where}: {value!r}; must be a non-empty list of categories (or null: a random cycle)")
    return tuple(_category(f"{where}[{i}]", v, n_categories) for i, v in enumerate(value))


def _segment(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{where}: {value!r}; must map one or more of {', '.join(SEGMENT_VALUES)} to a value")
    for attribute, v in value.items():
        if attribute not in SEGMENT_VALUES:
            raise ConfigError(f"{where}.{attribute}: not a user attribute; known: {', '.join(SEGMENT_VALUES)}")
        if v not in SEGMENT_VALUES[attribute]:
            raise ConfigError(f"{where}.{attribute}: {v!r}; known: {', '.join(SEGMENT_VALUES[attribute])}")
    return {str(k): str(v) for k, v in value.items()}


# --------------------------------------------------------------------------- the world's side


@dataclass(frozen=True)
class NewItems:
    """The products every `new_products` shock launches, appended to the catalogue
    in shock order: their category, price, brand, stock, launch day, the existing
    product each copies (for its complements) and their popularity."""

    cat: np.ndarray
    price: np.ndarray
    brand: np.ndarray
    stock: np.ndarray
    launch_day: np.ndarray
    template: np.ndarray
    pop: np.ndarray


def new_items(rng: np.random.Generator, cfg: SynthConfig, item_cat: np.ndarray, item_price: np.ndarray) -> NewItems:
    """Draw the launched products: each copies a random existing product of its
    category (any product where the shock names none) within price noise."""
    waves = [s for s in cfg.shocks if isinstance(s, NewProducts)]
    parts = [_wave(rng, wave, item_cat) for wave in waves]
    cat = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    template = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    brands_per_cat = max(1, cfg.n_brands // cfg.n_categories)
    return NewItems(
        cat=cat,
        price=np.round(item_price[template] * np.exp(rng.normal(0, 0.2, cat.size)), 2),
        brand=cat * brands_per_cat + rng.integers(0, brands_per_cat, cat.size),
        stock=1 + rng.poisson(40, cat.size),
        launch_day=np.repeat([w.start_day for w in waves], [w.count for w in waves]).astype(np.int64),
        template=template,
        pop=rng.pareto(cfg.popularity_shape, cat.size) + 0.02,
    )


def _wave(rng: np.random.Generator, wave: NewProducts, item_cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(category, template product) of each product of one wave."""
    pool = np.arange(item_cat.size) if wave.category is None else np.flatnonzero(item_cat == wave.category)
    if pool.size == 0:  # an empty category: templates from the whole catalogue, in the named category
        pool = np.arange(item_cat.size)
    template = pool[rng.integers(0, pool.size, wave.count)]
    cat = item_cat[template] if wave.category is None else np.full(wave.count, wave.category)
    return cat.astype(np.int64), template


@dataclass(frozen=True)
class _Wave:
    start_day: int
    share: float
    items: np.ndarray
    weight: np.ndarray  # the wave's popularity, summing to its share


@dataclass(frozen=True)
class _Turn:
    start_day: int
    members: np.ndarray  # per user: in the segment
    cycle: np.ndarray | None  # old category -> new category (a random cycle); else the two below
    favourite: np.ndarray | None  # per user: the new favourite among `categories`
    taste: np.ndarray | None  # the new taste row: even over `categories`


@dataclass(frozen=True)
class ShockPlan:
    """The shocks resolved against the shop: what each day of generation asks of them."""

    surges: tuple[CategorySurge, ...]
    prices: tuple[PriceShift, ...]
    waves: tuple[_Wave, ...]
    turns: tuple[_Turn, ...]

    def surge_sessions(self, rng: np.random.Generator, day: int, category: np.ndarray) -> np.ndarray:
        """The sessions' categories with each surging category's share of them
        multiplied by its factor (all of them at most): sessions elsewhere move to
        it at random, whoever their user, as when a trend reaches everyone."""
        for surge in (s for s in self.surges if day >= s.start_day):
            share = float(np.mean(category == surge.category)) if category.size else 0.0
            move = (_surged(share, surge.factor) - share) / (1 - share) if share < 1 else 0.0
            category = np.where(rng.random(category.size) < move, surge.category, category)
        return category

    def surge_items(self, day: int, weight: np.ndarray, item_cat: np.ndarray) -> np.ndarray:
        """Item weights with each surging category's share of the total multiplied
        by its factor (all of it at most), the others scaled down to make room."""
        for surge in (s for s in self.surges if day >= s.start_day):
            inside = item_cat == surge.category
            share = weight[inside].sum() / weight.sum() if weight.sum() > 0 else 0.0
            if 0 < share < 1:
                target = _surged(share, surge.factor)
                weight = weight * np.where(inside, target / share, (1 - target) / (1 - share))
        return weight

    def price_factor(self, day: int | np.ndarray, item_cat: np.ndarray) -> np.ndarray | None:
        """Per item (or per (day, item) pair where `day` is an array over items): the
        factor its price carries; None where no price shift has started by then."""
        days = np.broadcast_to(np.asarray(day), item_cat.shape)
        live = [s for s in self.prices if (days >= s.start_day).any()]
        if not live:
            return None
        factor = np.ones(item_cat.size)
        for shift in live:
            hit = days >= shift.start_day
            if shift.category is not None:
                hit = hit & (item_cat == shift.category)
            factor = np.where(hit, factor * shift.factor, factor)
        return factor

    def tastes(
        self, day: int, s_user: np.ndarray, fav: np.ndarray, affinity: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each session's favourite and taste row (over categories) after the taste changes of `day`."""
        for turn in self.turns:
            hit = turn.members[s_user] if day >= turn.start_day else np.zeros(s_user.size, dtype=bool)
            if not hit.any():
                continue
            fav, affinity = fav.copy(), affinity.copy()
            if turn.cycle is not None:
                fav[hit] = turn.cycle[fav[hit]]
                affinity[hit] = affinity[hit][:, np.argsort(turn.cycle)]  # new[:, cycle[c]] = old[:, c]
            elif turn.favourite is not None and turn.taste is not None:
                fav[hit] = turn.favourite[s_user[hit]]
                affinity[hit] = turn.taste
        return fav, affinity

    def launch(self, rng: np.random.Generator, day: int, item: np.ndarray) -> np.ndarray:
        """The views with the launched products' share of them redrawn among those products."""
        live = [w for w in self.waves if day >= w.start_day]
        if not live:
            return item
        pool = np.concatenate([w.items for w in live])
        weight = np.concatenate([w.weight for w in live])
        switch = np.flatnonzero(rng.random(item.size) < weight.sum())
        out = item.copy()
        out[switch] = rng.choice(pool, switch.size, p=weight / weight.sum())
        return out


def _surged(share: float, factor: float) -> float:
    return min(1.0, share * factor)


def plan(
    rng: np.random.Generator,
    shocks: tuple[Shock, ...],
    users: pl.DataFrame,
    new: NewItems,
    first_new: int,
    n_categories: int,
) -> ShockPlan:
    """Resolve the shocks: the launched products' ids (from `first_new` on, in shock
    order) and popularity, each taste change's segment and its new tastes."""
    waves, at = [], first_new
    for wave in (s for s in shocks if isinstance(s, NewProducts)):
        pop = new.pop[at - first_new : at - first_new + wave.count]
        waves.append(_Wave(wave.start_day, wave.share, np.arange(at, at + wave.count), wave.share * pop / pop.sum()))
        at += wave.count
    turns = tuple(_turn(rng, s, users, n_categories) for s in shocks if isinstance(s, TasteChange))
    return ShockPlan(
        surges=tuple(s for s in shocks if isinstance(s, CategorySurge)),
        prices=tuple(s for s in shocks if isinstance(s, PriceShift)),
        waves=tuple(waves),
        turns=turns,
    )


def _turn(rng: np.random.Generator, change: TasteChange, users: pl.DataFrame, n_categories: int) -> _Turn:
    members = users.select(
        pl.all_horizontal([pl.col(attribute) == value for attribute, value in change.segment.items()])
    ).to_series()
    if change.categories is None:
        order = rng.permutation(n_categories)
        cycle = np.empty(n_categories, dtype=np.int64)
        cycle[order] = np.roll(order, -1)  # one cycle through every category: none keeps its lovers
        return _Turn(change.start_day, members.to_numpy(), cycle, None, None)
    chosen = np.array(change.categories, dtype=np.int64)
    taste = np.zeros(n_categories)
    np.add.at(taste, chosen, 1.0 / chosen.size)
    favourite = chosen[rng.integers(0, chosen.size, users.height)]
    return _Turn(change.start_day, members.to_numpy(), None, favourite, taste)
