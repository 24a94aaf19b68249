"""How users respond to an item once they look at it, fitted on the history.

Three stages, each a probability per (user, item):

    click     the user opens the item          (click events among exposures)
    cart      ... and puts it in the cart      (cart events among exposures)
    purchase  ... and buys it                  (purchases among carted exposures)

Each stage is the item's own rate in the history, shrunk towards the shop's rate
by `prior_strength` pseudo-exposures (so an item seen twice is not "100%
attractive"), moved on the logit scale by the user's affinity for the item's
category: log of the user's (smoothed) share of exposures in that category over
the shop's share. How much affinity matters is not assumed: an intercept and a
weight per stage are fitted by logistic regression on the last
`holdout_fraction` of the history, with rates and affinities computed from the
part before it, as they would be when the simulation starts. A weight near zero
says the shop's logs show no personal taste for that stage (the synthetic shop's
clicks, for instance, are random); the simulator then rewards only item quality.

The cart stage is measured among all exposures, not among clicks: in most logs a
product page view (the exposure) is what a click on a slate leads to, and users
cart from it whether or not a separate click event was logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.special import expit, logit

from recsys_cli.abtest import AbTestError
from recsys_cli.abtest.logs import PURCHASE_QTY, Catalog
from recsys_cli.data.schema import EVENT_TYPES, Col

STAGES = ("click", "cart", "purchase")
ROW = "row"
_EPS = 1e-6


@dataclass(frozen=True)
class FunnelSpec:
    click_events: Sequence[str] = ("click",)
    cart_events: Sequence[str] = ("add_to_cart",)
    purchase_events: Sequence[str] = ("purchase",)
    prior_strength: float = 20.0
    affinity_prior: float = 5.0
    holdout_fraction: float = 0.2
    ridge: float = 1.0

    def __post_init__(self) -> None:
        events = [*self.click_events, *self.cart_events, *self.purchase_events]
        unknown = sorted(set(events) - set(EVENT_TYPES))
        if unknown:
            raise AbTestError(f"simulator.funnel: unknown event types {unknown}; known: {list(EVENT_TYPES)}")
        if not 0 < self.holdout_fraction < 1 or self.prior_strength <= 0 or self.affinity_prior <= 0:
            raise AbTestError("simulator.funnel: holdout_fraction must be in (0, 1) and the priors positive")

    def stage_events(self) -> tuple[Sequence[str], ...]:
        return self.click_events, self.cart_events, self.purchase_events


@dataclass(frozen=True)
class Affinity:
    """Users' exposure counts per category (row 0: a user without history)."""

    counts: sp.csr_matrix  # (n_users + 1, n_categories)
    totals: np.ndarray  # (n_users + 1,) exposures per user
    share: np.ndarray  # the shop's share of exposures per category
    prior: float

    @classmethod
    def fit(cls, users: np.ndarray, categories: np.ndarray, n_users: int, n_categories: int, prior: float) -> Affinity:
        counts = sp.csr_matrix(
            (np.ones(users.size, np.float64), (users, categories)), shape=(n_users + 1, n_categories)
        )
        counts.sum_duplicates()
        total = np.bincount(categories, minlength=n_categories).astype(np.float64)
        per_user = np.asarray(counts.sum(axis=1)).ravel()
        return cls(counts, per_user, (total + 1) / (total.sum() + n_categories), prior)

    @classmethod
    def empty(cls, n_categories: int) -> Affinity:
        """No user history: every affinity is 0."""
        return cls.fit(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, n_categories, 1.0)

    def score(self, users: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """log((n_uc + s p_c) / ((n_u + s) p_c)), shaped like `categories`; 0 for a
        user without history, positive where the user leans towards the category.
        `users` has one entry per row of `categories` (a slate) or per entry."""
        users = np.asarray(users)
        rows = (users if users.shape == categories.shape else np.broadcast_to(users[:, None], categories.shape)).ravel()
        cols = categories.ravel()
        n_uc = np.asarray(self.counts[rows, cols]).ravel()
        n_u = self.totals[rows]
        p_c = self.share[cols]
        z = np.log((n_uc + self.prior * p_c) / ((n_u + self.prior) * p_c))
        return z.reshape(categories.shape)


@dataclass(frozen=True)
class Funnel:
    """The fitted world: per-item stage logits, the affinity terms, prices."""

    item_logit: np.ndarray  # (n_items, 3)
    intercept: np.ndarray  # (3,)
    weight: np.ndarray  # (3,) per unit of affinity
    affinity: Affinity
    category: np.ndarray  # (n_items,)
    price: np.ndarray  # (n_items,)
    mean_quantity: float = 1.0
    users: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={Col.USER: pl.String, ROW: pl.Int64}))
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def user_rows(self, ids: pl.Series) -> np.ndarray:
        """Affinity row per user id; 0 for users without history."""
        frame = pl.DataFrame({Col.USER: ids.cast(pl.String)})
        coded = frame.join(self.users, on=Col.USER, how="left", maintain_order="left")
        return coded[ROW].fill_null(0).to_numpy().astype(np.int64)

    def probabilities(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(*items.shape, 3) stage probabilities; 0 where items is -1 (an empty slot)."""
        valid = items >= 0
        safe = np.where(valid, items, 0)
        eta = self.item_logit[safe] + self.intercept
        if np.any(self.weight != 0):
            eta = eta + self.weight * self.affinity.score(users, self.category[safe])[..., None]
        return np.where(valid[..., None], expit(eta), 0.0)


@dataclass(frozen=True)
class _Exposures:
    """Exposures in index space: affinity row, catalog index, outcomes and trials."""

    user: np.ndarray
    item: np.ndarray
    y: np.ndarray  # (n, 3)
    den: np.ndarray  # (n, 3)

    def subset(self, mask: np.ndarray) -> _Exposures:
        return _Exposures(self.user[mask], self.item[mask], self.y[mask], self.den[mask])


def fit_funnel(history: pl.DataFrame, catalog: Catalog, spec: FunnelSpec) -> Funnel:
    """Rates from the whole history; affinity weights from its last part (see module)."""
    users = history[Col.USER].unique().sort()
    table = pl.DataFrame({Col.USER: users}).with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    user = history.join(table, on=Col.USER, how="left", maintain_order="left")[ROW].to_numpy()
    y, den = stage_outcomes(history, spec)
    _require_events(y, spec)
    data = _Exposures(user, catalog.index(history[Col.ITEM]), y, den)
    ts = history[Col.TS].dt.epoch("us").to_numpy()
    past = ts < np.quantile(ts, 1 - spec.holdout_fraction)
    intercept, weight, fit_report = _fit_weights(spec, catalog, data.subset(past), data.subset(~past))
    return Funnel(
        item_logit=item_logits(data, catalog.size, spec.prior_strength),
        intercept=intercept,
        weight=weight,
        affinity=_affinity(data, catalog, users.len(), spec.affinity_prior),
        category=catalog.category,
        price=catalog.price,
        mean_quantity=_mean_quantity(history),
        users=table,
        diagnostics={
            "exposures": history.height,
            "users": users.len(),
            "holdout_exposures": int((~past).sum()),
            "stages": fit_report,
        },
    )


def stage_outcomes(exposures: pl.DataFrame, spec: FunnelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) outcome and (n, 3) "counts towards this stage" flags per exposure."""
    hit = [exposures.select(pl.any_horizontal(list(events))).to_series().to_numpy() for events in spec.stage_events()]
    y = np.column_stack(hit)
    everyone = np.ones(exposures.height, dtype=bool)
    den = np.column_stack([everyone, everyone, y[:, 1] | y[:, 2]])
    return y, den


def item_logits(data: _Exposures, n_items: int, prior: float) -> np.ndarray:
    """(n_items, 3) logit of each item's stage rate shrunk towards the shop's rate:
    (hits + prior * rate) / (trials + prior)."""
    item, y, den = data.item, data.y, data.den
    out = np.empty((n_items, len(STAGES)))
    for s in range(len(STAGES)):
        trials = np.bincount(item[den[:, s]], minlength=n_items).astype(np.float64)
        hits = np.bincount(item[den[:, s]], weights=y[den[:, s], s], minlength=n_items)
        rate = hits.sum() / max(trials.sum(), 1.0)
        out[:, s] = (hits + prior * rate) / (trials + prior)
    return logit(np.clip(out, _EPS, 1 - _EPS))


def fit_offset_logistic(
    offset: np.ndarray, z: np.ndarray, y: np.ndarray, ridge: float = 1.0, iterations: int = 50
) -> tuple[float, float]:
    """Intercept and slope of P(y) = sigmoid(offset + b + w z) by Newton's method with
    a small ridge (so a stage without holdout events stays at b = w = 0).

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=20_000)
    >>> y = rng.random(20_000) < expit(-1.0 + 0.8 * z)
    >>> b, w = fit_offset_logistic(np.zeros(20_000), z, y, ridge=0.0)
    >>> round(b, 1), round(w, 1)
    (-1.0, 0.8)
    """
    x = np.column_stack([np.ones_like(z), z]) if z.size and np.ptp(z) > 0 else np.ones((z.size, 1))
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = expit(offset + x @ beta)
        gradient = x.T @ (y - p) - ridge * beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.abs(step).max() < 1e-9:
            break
    return float(beta[0]), float(beta[1]) if beta.size > 1 else 0.0


def _fit_weights(
    spec: FunnelSpec, catalog: Catalog, past: _Exposures, holdout: _Exposures
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Per stage, (b, w) on the holdout exposures, with the holdout log loss of the
    item rates alone and with the affinity term, to show what the term buys."""
    logits = item_logits(past, catalog.size, spec.prior_strength)
    n_users = int(max(holdout.user.max(initial=0), past.user.max(initial=0)))
    z = _affinity(past, catalog, n_users, spec.affinity_prior).score(holdout.user, catalog.category[holdout.item])
    intercept, weight, report = np.zeros(len(STAGES)), np.zeros(len(STAGES)), {}
    for s, name in enumerate(STAGES):
        rows = holdout.den[:, s]
        offset, target = logits[holdout.item[rows], s], holdout.y[rows, s].astype(np.float64)
        intercept[s], weight[s] = fit_offset_logistic(offset, z[rows], target, spec.ridge)
        fitted = offset + intercept[s] + weight[s] * z[rows]
        report[name] = {
            "events": list(spec.stage_events()[s]),
            "holdout_trials": int(rows.sum()),
            "holdout_rate": float(target.mean()) if rows.any() else None,
            "intercept": float(intercept[s]),
            "affinity_weight": float(weight[s]),
            "holdout_log_loss_items": _log_loss(target, offset),
            "holdout_log_loss_fitted": _log_loss(target, fitted),
        }
    return intercept, weight, report


def _affinity(data: _Exposures, catalog: Catalog, n_users: int, prior: float) -> Affinity:
    n_categories = int(catalog.category.max(initial=0)) + 1
    return Affinity.fit(data.user, catalog.category[data.item], n_users, n_categories, prior)


def _log_loss(y: np.ndarray, eta: np.ndarray) -> float | None:
    if y.size == 0:
        return None
    p = np.clip(expit(eta), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _require_events(y: np.ndarray, spec: FunnelSpec) -> None:
    for s, name in enumerate(STAGES):
        if not y[:, s].any():
            events = list(spec.stage_events()[s])
            raise AbTestError(
                f"simulator: no {name} events {events} in the history before the experiment; "
                f"set abtest.simulator.funnel.{name}_events to event types the lake has"
            )


def _mean_quantity(history: pl.DataFrame) -> float:
    bought = history.filter(pl.col("purchase"))[PURCHASE_QTY]
    return float(bought.mean()) if bought.len() else 1.0  # type: ignore[arg-type]
