"""Matrix factorisation baselines from the `implicit` library: ALS (Hu, Koren and
Volinsky, 2008) and BPR (Rendle et al., 2009).

The CPU classes are named explicitly: implicit's factories would pick a CUDA
build when one is installed and silently change results. Both fits run under a
one-thread BLAS limit, as implicit recommends: its solvers parallelise over users
themselves, and a threaded BLAS both slows them down and makes the shared Gram
matrix depend on the machine's thread count. implicit is imported at the top
because the limit reaches only the BLAS libraries already loaded when it is set,
and importing implicit loads one more.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.selection import Grid, GridSelected
from recsys_cli.models.state import tensor
from recsys_cli.models.validation import Targets
from recsys_cli.models.warm_start import RowMap, WarmStartError
from recsys_cli.models.weighting import reweight


class _ImplicitMF(GridSelected):
    """Scores are user_factors @ item_factors.T; the state is the two factor arrays."""

    FITTED = ("user_factors", "item_factors")

    def _fit_point(self, data: TrainData) -> None:
        with threadpool_limits(1, "blas"):  # also covers implicit's BLAS check in the constructor
            model = self._model()
            model.fit(self._user_items(data.matrix), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    @abstractmethod
    def _model(self) -> Any: ...

    def _user_items(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return matrix.astype(np.float32).tocsr()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors

    def _user_vectors(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users]

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        assert self.users is not None and self.items is not None
        self.user_factors = tensor(state, "user_factors", (len(self.users), None), "f")
        self.item_factors = tensor(state, "item_factors", (len(self.items), self.user_factors.shape[1]), "f")


class ALS(_ImplicitMF):
    """Weighted least squares on a binary preference with confidence 1 + alpha * weight.

    implicit reads a matrix value as the whole confidence (unobserved cells count 1),
    and its own `alpha` only multiplies the values; passing 1 + alpha * weight keeps a
    small (decayed) weight from trusting an observed item less than an unobserved one.
    `weighting` (models/weighting.py) reads the weights first: with a scale-free one,
    `alpha` means the same on any data.
    """

    supports_warm_start = True
    # From factors that already fit most of the window, three alternations reached a
    # full 15-iteration fit's NDCG@10 on the synthetic shop (2M events: 0.0762 vs
    # 0.0763) in a quarter of its CPU time; more moved nothing.
    warm_start_epochs = 3

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        seed: int = 0,
        weighting: str = "raw",
        grid: Grid | None = None,
    ) -> None:
        super().__init__(
            grid=grid,
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            seed=seed,
            weighting=weighting,
        )
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.weighting = iterations, seed, weighting

    def _model(self) -> Any:
        # Each user's (and item's) solve is independent of the others, so several
        # threads give the same factors as one.
        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=1.0,
            iterations=self.iterations,
            random_state=self.seed,
        )

    def _user_items(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        confidence = reweight(matrix, self.weighting)
        confidence.data = (1.0 + self.alpha * confidence.data).astype(np.float32)
        return confidence

    def _warm_start(
        self,
        previous: Recommender,
        data: TrainData,
        validation: Targets | None,
        workdir: Path | None,
        epochs: int,
        only_new: bool,
    ) -> None:
        """The previous factors carried over by token; new items then solved exactly
        from the users who met them (only the carried users have factors yet), new
        users from their items: the fold-in ALS itself does. Then `epochs` ALS
        iterations over everything, from there rather than from random factors, or
        with `only_new` over the new rows alone, the carried ones fixed. The configured
        grid is not searched: a warm start keeps the settings it is given."""
        assert isinstance(previous, ALS) and previous.users is not None and previous.items is not None
        assert self.users is not None and self.items is not None
        if previous.user_factors.shape[1] != self.factors:
            raise WarmStartError(
                f"model.factors={self.factors} but the previous ALS has {previous.user_factors.shape[1]}: "
                "a warm start keeps the factor count; fit from scratch to change it"
            )
        users, items = RowMap.between(previous.users, self.users), RowMap.between(previous.items, self.items)
        cui = self._user_items(data.matrix)
        ciu = cui.T.tocsr()
        with threadpool_limits(1, "blas"):
            model = self._model()
            model.user_factors = users.carry(previous.user_factors, np.zeros((len(self.users), self.factors)))
            model.item_factors = items.carry(previous.item_factors, np.zeros((len(self.items), self.factors)))
            _fold_in(model, items.new, users.new, cui, ciu)
            if only_new:
                for _ in range(epochs):
                    _fold_in(model, items.new, users.new, cui, ciu)
            elif epochs:
                model.iterations = epochs
                model.fit(cui, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def _history_vector(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray:
        """The user's factors solved again (one least-squares step, Hu et al. 2008)
        over the items the model saw them meet plus the new ones, each new event one
        more unit of weight: the fold-in implicit's `recalculate_user` does, here
        without the fitted matrix, which a package does not carry."""
        if items.size == 0:
            return self.user_factors[user]
        gram = self.derived.get("gram")
        if gram is None:  # once per fit: a request must not touch every item's factors
            y = self.item_factors.astype(np.float64)
            gram = self.derived["gram"] = y.T @ y
        met = self.seen[user].indices if user > 0 and self.seen is not None else np.zeros(0, np.int64)
        ids, counts = np.unique(np.concatenate([met, items]), return_counts=True)
        confidence = 1.0 + self.alpha * counts
        rows = self.item_factors[ids].astype(np.float64)
        a = gram + (rows.T * (confidence - 1.0)) @ rows + self.regularization * np.eye(gram.shape[0])
        return np.linalg.solve(a, rows.T @ confidence)


def _fold_in(model: Any, items: np.ndarray, users: np.ndarray, cui: sp.csr_matrix, ciu: sp.csr_matrix) -> None:
    """One exact least-squares solve of the `items` rows given every user's factors,
    then of the `users` rows given every item's (implicit's partial fits, which
    leave every other row as it is)."""
    if items.size:
        model.partial_fit_items(items, ciu[items])
    if users.size:
        model.partial_fit_users(users, cui[users])


class ImplicitBPR(_ImplicitMF):
    """Pairwise ranking by SGD; interaction weights are read as binary. implicit
    appends an item-bias column to the factors (the user's is fixed at 1), so the
    dot product carries the bias."""

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(
            factors=factors,
            learning_rate=learning_rate,
            regularization=regularization,
            iterations=iterations,
            seed=seed,
        )
        self.factors, self.learning_rate, self.regularization = factors, learning_rate, regularization
        self.iterations, self.seed = iterations, seed

    def _model(self) -> Any:
        # implicit's BPR updates shared factors from several threads without locks
        # (hogwild), so results depend on thread timing; one thread makes them repeatable.
        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=1,
            random_state=self.seed,
        )
