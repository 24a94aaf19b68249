"""User-response simulators: what a user does with the slate an arm shows them.

A simulator is fitted on the logs, then plays sessions: for each session, the user
and the slate (catalog indices, best first, -1 for an empty slot) go in; clicks,
carts, purchases and revenue come out. The experiment picks one by `_target_`
(`conf/abtest/simulator/`); any class with `fit(logs)`, `simulate(users, slates,
rng)` and `describe()` can be plugged in.

The two shipped ones share the funnel (`abtest.funnel`: click, cart and purchase
propensities fitted on the history) and differ in how position biases clicks:

- `PositionBasedModel` (PBM): the user examines rank r with probability
  r^-eta, independently of the other ranks, and clicks an examined item with its
  attractiveness (Joachims et al. 2017 simulate clicks this way);
- `CascadeModel`: the user scans top-down, clicks an attractive item and then
  stops (or goes on with probability `continue_after_click`, the dependent click
  model), and walks away from an unattractive one with probability 1 - `patience`
  (Craswell et al. 2008; Guo et al. 2009).

After a click the funnel decides whether the item is carted and bought; a bought
item is worth its price times a quantity of 1 + Poisson(mean logged quantity - 1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.special import expit

from recsys_cli.abtest import AbTestError
from recsys_cli.abtest.funnel import Funnel, FunnelSpec, fit_funnel
from recsys_cli.abtest.logs import Logs

N_UNIFORMS = 4  # per slot: examination / continuation, attraction, cart, purchase


@dataclass(frozen=True)
class SessionOutcomes:
    """Per simulated session: slots shown, items clicked, carted and bought, revenue."""

    impressions: np.ndarray
    clicks: np.ndarray
    carts: np.ndarray
    purchases: np.ndarray
    revenue: np.ndarray

    @classmethod
    def concat(cls, parts: list[SessionOutcomes]) -> SessionOutcomes:
        fields = ("impressions", "clicks", "carts", "purchases", "revenue")
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


class ResponseSimulator(ABC):
    """fit(logs) once, then simulate(users, slates, rng) for any number of sessions."""

    @abstractmethod
    def fit(self, logs: Logs) -> ResponseSimulator: ...

    @abstractmethod
    def simulate(self, users: pl.Series, slates: np.ndarray, rng: np.random.Generator) -> SessionOutcomes: ...

    @abstractmethod
    def describe(self, slate_size: int) -> dict[str, Any]: ...


class FunnelSimulator(ResponseSimulator):
    """A click model in front of the fitted funnel; subclasses supply the click model."""

    def __init__(self, funnel: FunnelSpec | None = None, world: Funnel | None = None) -> None:
        self.spec = funnel or FunnelSpec()
        self.world = world  # given directly by tests and callers with a hand-made world

    def fit(self, logs: Logs) -> FunnelSimulator:
        self.world = fit_funnel(logs.history, logs.catalog, self.spec)
        return self

    def simulate(self, users: pl.Series, slates: np.ndarray, rng: np.random.Generator) -> SessionOutcomes:
        world = self._world()
        valid = slates >= 0
        probs = world.probabilities(world.user_rows(users), slates)
        u = rng.random((*slates.shape, N_UNIFORMS))
        click = valid & self._clicks(probs[..., 0], u[..., 0], u[..., 1])
        cart = click & (u[..., 2] < probs[..., 1])
        bought = cart & (u[..., 3] < probs[..., 2])
        extra = rng.poisson(max(world.mean_quantity - 1.0, 0.0), slates.shape)
        quantity = np.where(bought, 1 + extra, 0)
        revenue = (world.price[np.where(valid, slates, 0)] * quantity).sum(axis=1)
        return SessionOutcomes(valid.sum(1), click.sum(1), cart.sum(1), bought.sum(1), revenue)

    @abstractmethod
    def click_probabilities(self, attract: np.ndarray) -> np.ndarray:
        """P(click) per slot given each slot's attractiveness, in closed form: what
        `simulate` draws from, for checks and for planning."""

    def describe(self, slate_size: int) -> dict[str, Any]:
        world = self._world()
        return {
            "simulator": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": self._params(),
            "examination": self.examination_curve(slate_size).round(6).tolist(),
            "mean_quantity": world.mean_quantity,
            "funnel": world.diagnostics,
        }

    def examination_curve(self, slate_size: int) -> np.ndarray:
        """P(a rank is looked at) when every item is as attractive as the shop's
        typical item: r^-eta for the PBM, the chance of scanning that far for the
        cascade (which depends on the items above)."""
        world = self._world()
        typical = float(expit(np.median(world.item_logit[:, 0]) + world.intercept[0]))
        attract = np.full(slate_size, typical)
        return self.click_probabilities(attract) / typical

    def _world(self) -> Funnel:
        if self.world is None:
            raise AbTestError(f"{type(self).__name__} is not fitted; call fit(logs) first")
        return self.world

    @abstractmethod
    def _clicks(self, attract: np.ndarray, u_scan: np.ndarray, u_attract: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _params(self) -> dict[str, float]: ...


class PositionBasedModel(FunnelSimulator):
    """P(click at rank r) = r^-eta * attractiveness."""

    def __init__(self, eta: float = 1.0, funnel: FunnelSpec | None = None, world: Funnel | None = None) -> None:
        if eta < 0:
            raise AbTestError(f"simulator.eta must be >= 0 (0: no position bias), got {eta}")
        super().__init__(funnel, world)
        self.eta = eta

    def examination(self, slate_size: int) -> np.ndarray:
        return np.arange(1, slate_size + 1, dtype=np.float64) ** -self.eta

    def click_probabilities(self, attract: np.ndarray) -> np.ndarray:
        return self.examination(attract.shape[-1]) * attract

    def _clicks(self, attract: np.ndarray, u_scan: np.ndarray, u_attract: np.ndarray) -> np.ndarray:
        return (u_scan < self.examination(attract.shape[-1])) & (u_attract < attract)

    def _params(self) -> dict[str, float]:
        return {"eta": self.eta}


class CascadeModel(FunnelSimulator):
    """Top-down scan: click an attractive item, then stop (or continue with
    `continue_after_click`); past an unattractive one, continue with `patience`."""

    def __init__(
        self,
        continue_after_click: float = 0.0,
        patience: float = 0.9,
        funnel: FunnelSpec | None = None,
        world: Funnel | None = None,
    ) -> None:
        if not (0 <= continue_after_click <= 1 and 0 <= patience <= 1):
            raise AbTestError("simulator: continue_after_click and patience are probabilities in [0, 1]")
        super().__init__(funnel, world)
        self.continue_after_click = continue_after_click
        self.patience = patience

    def click_probabilities(self, attract: np.ndarray) -> np.ndarray:
        go_on = attract * self.continue_after_click + (1 - attract) * self.patience
        reached = np.cumprod(np.concatenate([np.ones_like(attract[..., :1]), go_on[..., :-1]], axis=-1), axis=-1)
        return reached * attract

    def _clicks(self, attract: np.ndarray, u_scan: np.ndarray, u_attract: np.ndarray) -> np.ndarray:
        attractive = u_attract < attract
        # One uniform decides whether the user moves on, against the probability of
        # the branch taken (after a click, or past an item left alone).
        go_on = u_scan < np.where(attractive, self.continue_after_click, self.patience)
        first = np.ones_like(go_on[..., :1], dtype=bool)
        reached = np.logical_and.accumulate(np.concatenate([first, go_on[..., :-1]], axis=-1), axis=-1)
        return reached & attractive

    def _params(self) -> dict[str, float]:
        return {"continue_after_click": self.continue_after_click, "patience": self.patience}
