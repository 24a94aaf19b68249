"""Business re-ranking: the last stage of a request, between the model's scores
and the answer (`conf/serve/rules/`, schema `schemas/serve_rules.py`).

A merchandising team states what it wants shown (in stock, its pushes, fewer
last units, variety, new launches) and needs to see what each rule did to one
answer; so every step is a few numpy operations over the candidates' model item
indices, and `explain` records each step's effect with item ids and scores.

The steps, in order (the `order` of the explain record):

    filters           the request's own: categories, price range (drop)
    in_stock_only     stock <= 0 dropped; the request's flag overrides the rule's
    boosts            score x factor for a brand or category
    low_stock         score x factor for a known stock below a threshold
    max_per_category  at most N per category, the next best of others move up
    new_products      up to N places for recent launches, at the end of the answer

A factor moves a score the same way whatever its sign (`scale`), so the rules
mean the same for calibrated probabilities and for raw dot products. Ties are
broken by item index, so the same request always gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_cli.data.schema import Col
from recsys_cli.schemas.serve_rules import NewProducts, Rules
from recsys_cli.serving.catalogue import NO_CODE, UNKNOWN, Catalogue

DAY = 86_400.0
ORDER = ["filters", "in_stock_only", "boosts", "low_stock", "max_per_category", "new_products"]


@dataclass(frozen=True)
class Filters:
    """A request's own narrowing of its answer. `in_stock_only=None` leaves the
    decision to the rules; true or false overrides them for this request (a
    back-office view may want to see what is sold out)."""

    categories: list[str] | None = None
    price_min: float | None = None
    price_max: float | None = None
    in_stock_only: bool | None = None


@dataclass(frozen=True)
class Reranked:
    """The answer's model item indices and scores after the rules, best first (at
    most k; fewer when fewer candidates survive), what each rule did (None unless
    asked), and each item's score as the model gave it (a calibrated probability
    stays one there, whatever a boost did to its ranking score)."""

    items: np.ndarray  # int64
    scores: np.ndarray  # float64
    explain: dict[str, Any] | None
    model_scores: np.ndarray  # float64


def scale(scores: np.ndarray, factor: float) -> np.ndarray:
    """Scores moved by a factor: down for factor < 1, up for factor > 1, whether a
    score is positive or negative (a negative one is divided instead)."""
    return np.where(scores >= 0, scores * factor, scores / factor)


def ranked(items: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The order of candidates: score descending, then item index ascending."""
    return np.lexsort((items, -scores))


def admissible(items: np.ndarray, catalogue: Catalogue, rules: Rules, filters: Filters) -> np.ndarray:
    """Which items the request's filters and the stock rule let through (bool):
    what a fallback's top-up must also respect."""
    keep = (items > UNKNOWN) & (items < len(catalogue))
    items = np.where(keep, items, UNKNOWN)  # out-of-range indices read row 0
    for mask in _filter_masks(items, catalogue, filters).values():
        keep &= mask
    if _in_stock(rules, filters)[0]:
        keep &= ~(catalogue.stock[items] <= 0)
    return keep


def rerank(
    items: np.ndarray,
    scores: np.ndarray,
    k: int,
    catalogue: Catalogue,
    rules: Rules,
    filters: Filters,
    now: float,
    explain: bool = True,
) -> Reranked:
    """The top `k` of the scored candidates after the request's filters and the
    business rules (module docstring); `now` (unix seconds) decides what is new.
    Duplicate candidates keep their best score; unknown items (index 0) and NaN
    scores are dropped."""
    step = _Steps(catalogue, explain)
    items, scores = step.clean(np.asarray(items, dtype=np.int64), np.asarray(scores, dtype=np.float64))
    given = _Given(items, scores)
    items, scores = step.filters(items, scores, filters)
    items, scores = step.in_stock(items, scores, rules, filters)
    scores = step.boosts(items, scores, rules)
    scores = step.low_stock(items, scores, rules)
    order = ranked(items, scores)
    items, scores = items[order], scores[order]
    items, scores = step.category_cap(items, scores, rules.max_per_category, k)
    items, scores = step.new_products(items, scores, rules.new_products, k, now)
    record = {"order": ORDER, "candidates": step.received, "returned": len(items), **step.log} if explain else None
    return Reranked(items, scores, record, given.scores_of(items))


class _Given:
    """The candidates' own scores, looked up by item after the rules reordered them."""

    def __init__(self, items: np.ndarray, scores: np.ndarray) -> None:
        self.sorter = np.argsort(items)
        self.items, self.scores = items[self.sorter], scores[self.sorter]

    def scores_of(self, items: np.ndarray) -> np.ndarray:
        return self.scores[np.searchsorted(self.items, items)]


def _in_stock(rules: Rules, filters: Filters) -> tuple[bool, str]:
    """Whether out-of-stock items are dropped, and who decided."""
    if filters.in_stock_only is not None:
        return filters.in_stock_only, "request"
    return rules.in_stock_only, "rules"


def _filter_masks(items: np.ndarray, catalogue: Catalogue, filters: Filters) -> dict[str, np.ndarray]:
    """Per request filter, the items it keeps; an unknown price never passes a price filter."""
    masks = {}
    if filters.categories is not None:
        masks["category"] = np.isin(catalogue.category[items], catalogue.codes(Col.CATEGORY, filters.categories))
    price = catalogue.price[items]
    if filters.price_min is not None:
        masks["price_min"] = price >= filters.price_min
    if filters.price_max is not None:
        masks["price_max"] = price <= filters.price_max
    return masks


class _Steps:
    """The rules' steps over (items, scores), each noting its effect in `log`
    when explaining (nothing is built otherwise: the common request stays cheap)."""

    def __init__(self, catalogue: Catalogue, explain: bool) -> None:
        self.cat, self.explain = catalogue, explain
        self.log: dict[str, Any] = {}
        self.received = 0

    def clean(self, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.received = len(items)
        usable = (items > UNKNOWN) & (items < len(self.cat)) & ~np.isnan(scores)
        items, scores = items[usable], scores[usable]
        order = ranked(items, scores)
        items, scores = items[order], scores[order]
        first = np.unique(items, return_index=True)[1]  # the best-scored copy of each
        kept = np.zeros(len(items), dtype=bool)
        kept[first] = True
        return items[kept], scores[kept]

    def filters(self, items: np.ndarray, scores: np.ndarray, filters: Filters) -> tuple[np.ndarray, np.ndarray]:
        masks = _filter_masks(items, self.cat, filters)
        keep = np.ones(len(items), dtype=bool)
        dropped: dict[str, list[str]] = {}
        for name, mask in masks.items():
            if self.explain:
                dropped[name] = self.cat.ids(items[keep & ~mask])
            keep &= mask
        if self.explain:
            given = {k: v for k, v in vars(filters).items() if k != "in_stock_only" and v is not None}
            self.log["filters"] = {"given": given, "dropped": dropped}
        return items[keep], scores[keep]

    def in_stock(
        self, items: np.ndarray, scores: np.ndarray, rules: Rules, filters: Filters
    ) -> tuple[np.ndarray, np.ndarray]:
        on, decided_by = _in_stock(rules, filters)
        out = self.cat.stock[items] <= 0 if on else np.zeros(len(items), dtype=bool)
        if self.explain:
            self.log["in_stock_only"] = {"on": on, "decided_by": decided_by, "dropped": self.cat.ids(items[out])}
        return items[~out], scores[~out]

    def boosts(self, items: np.ndarray, scores: np.ndarray, rules: Rules) -> np.ndarray:
        done = []
        for boost in rules.boosts:
            codes = self.cat.category if boost.column == Col.CATEGORY else self.cat.brand
            code = self.cat.code(boost.column, boost.equals)
            hit = (codes[items] == code) & (code != NO_CODE)
            new = np.where(hit, scale(scores, boost.factor), scores)
            if self.explain:
                done.append({**boost.model_dump(), "boosted": self._moves(items, scores, new, hit)})
            scores = new
        if self.explain:
            self.log["boosts"] = done
        return scores

    def low_stock(self, items: np.ndarray, scores: np.ndarray, rules: Rules) -> np.ndarray:
        rule = rules.low_stock
        if rule is None:
            if self.explain:
                self.log["low_stock"] = {"on": False}
            return scores
        stock = self.cat.stock[items]
        low = stock < rule.below  # NaN (unknown) is never low
        new = np.where(low, scale(scores, rule.factor), scores)
        if self.explain:
            moves = self._moves(items, scores, new, low)
            for move, units in zip(moves, stock[low].tolist(), strict=True):
                move["stock"] = int(units)
            self.log["low_stock"] = {"on": True, **rule.model_dump(), "demoted": moves}
        return new

    def category_cap(
        self, items: np.ndarray, scores: np.ndarray, cap: int | None, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if cap is None:
            if self.explain:
                self.log["max_per_category"] = {"on": False}
            return items, scores
        codes = self.cat.category[items]
        keep = (_rank_within(codes) < cap) | (codes == NO_CODE)
        if self.explain:
            # Reported: the items the cap took out of what would otherwise be the answer.
            cut = ~keep & (np.arange(len(items)) < k)
            names = self.cat.names(Col.CATEGORY, codes[cut])
            shown = [{"item": i, "category": c} for i, c in zip(self.cat.ids(items[cut]), names, strict=True)]
            self.log["max_per_category"] = {"on": True, "cap": cap, "cut": shown, "cut_total": int((~keep).sum())}
        return items[keep], scores[keep]

    def new_products(
        self, items: np.ndarray, scores: np.ndarray, rule: NewProducts | None, k: int, now: float
    ) -> tuple[np.ndarray, np.ndarray]:
        if rule is None or rule.slots == 0:
            if self.explain:
                self.log["new_products"] = {"on": False}
            return items[:k], scores[:k]
        launched = self.cat.launched_at[items]
        new = (launched >= now - rule.days * DAY) & (launched <= now)
        on_merit = np.flatnonzero(new[:k])
        wanted = max(min(rule.slots, k) - len(on_merit), 0)
        promoted = (np.flatnonzero(new[k:]) + k)[:wanted]
        older = np.flatnonzero(~new[:k])
        displaced = older[len(older) - len(promoted) :] if len(promoted) else older[:0]
        keep = np.ones(min(k, len(items)), dtype=bool)
        keep[displaced] = False
        final = np.concatenate([np.flatnonzero(keep), promoted])
        if self.explain:
            self.log["new_products"] = {
                "on": True,
                **rule.model_dump(),
                "on_merit": self.cat.ids(items[on_merit]),
                "promoted": self._scored(items[promoted], scores[promoted]),
                "displaced": self.cat.ids(items[displaced]),
            }
        return items[final], scores[final]

    def _moves(self, items: np.ndarray, old: np.ndarray, new: np.ndarray, hit: np.ndarray) -> list[dict[str, Any]]:
        """One {item, old, new} per changed item (explain only)."""
        pairs = zip(self.cat.ids(items[hit]), old[hit].tolist(), new[hit].tolist(), strict=True)
        return [{"item": i, "old": o, "new": n} for i, o, n in pairs]

    def _scored(self, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        return [{"item": i, "score": s} for i, s in zip(self.cat.ids(items), scores.tolist(), strict=True)]


def _rank_within(codes: np.ndarray) -> np.ndarray:
    """Each position's rank among the earlier positions of the same code (0 first)."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    grouped = codes[order]
    starts = np.r_[True, grouped[1:] != grouped[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(codes)), 0))
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes)) - first
    return rank
