"""Hand-made worlds for the experiment: items whose click, cart and purchase
probabilities are set by the test, so every expected value is known exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import logit

from recsys_cli.abtest.funnel import Affinity, Funnel


def make_world(attract: np.ndarray, cart: float = 0.3, purchase: float = 0.5, price: float = 10.0) -> Funnel:
    """Items with the given attractiveness, one cart and purchase rate for all, one
    price, no personal taste (affinity weights 0) and always one item per purchase."""
    attract = np.asarray(attract, np.float64)
    n = attract.size
    logits = np.column_stack([logit(attract), np.full(n, logit(cart)), np.full(n, logit(purchase))])
    return Funnel(
        item_logit=logits,
        intercept=np.zeros(3),
        weight=np.zeros(3),
        affinity=Affinity.empty(1),
        category=np.zeros(n, np.int64),
        price=np.full(n, price),
        mean_quantity=1.0,
    )


@dataclass(frozen=True)
class Traffic:
    """Users and their sessions over a number of days, sessions in time order."""

    users: pl.Series
    session_user: np.ndarray
    session_day: np.ndarray
    n_days: int


def make_traffic(n_users: int, n_days: int = 10, sessions_per_user: float = 2.0, seed: int = 0) -> Traffic:
    """Each user comes 1 + Poisson(sessions_per_user - 1) times on random days."""
    rng = np.random.default_rng(seed)
    counts = 1 + rng.poisson(sessions_per_user - 1, n_users)
    user = np.repeat(np.arange(n_users), counts)
    day = rng.integers(0, n_days, user.size)
    order = np.lexsort((user, day))
    users = pl.Series("user_id", [f"user-{i:06d}" for i in range(n_users)])
    return Traffic(users, user[order], day[order], n_days)


def slates_of(items: list[int], n_users: int) -> np.ndarray:
    """The same slate for every user."""
    return np.tile(np.asarray(items, np.int64), (n_users, 1))
