"""A two-stage ranker as `recsys explain` reads it: candidate pairs, the matrix its
learner reads, raw scores and calibrated probabilities of any such matrix.

Everything goes through the ranker's attributes (`generators`, `tables`,
`boosters`, `network`, `calibration`, `params`), its `feature_names()` and
`lambdarank.feature_matrix`, so the explanation perturbs exactly the columns the
learner sees: a partial dependence or a shuffled column is scored by the same
boosters (or network) that rank the candidates. A ranker whose learner reads
fewer columns than its pairs carry (feature groups dropped by `model.ablate`)
selects them with `_input(pairs)`; the view applies it first, when it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_cli.errors import ConfigError
from recsys_cli.models.base import Recommender
from recsys_cli.models.candidates import Pairs

SUPPORTED = "the two-stage ranker (model=ranker or model=ranker_lgbm)"
_BATCH = 65536


@dataclass
class RankerView:
    model: Any  # a TwoStageRanker (typed loosely: importing it pulls in torch)
    names: list[str]  # one per learner column
    categorical: np.ndarray  # bool per learner column: a code, not a quantity

    @property
    def backend(self) -> str:
        return str(self.model.params["backend"])

    @property
    def is_lightgbm(self) -> bool:
        return self.backend == "lightgbm"

    @property
    def boosters(self) -> list[tuple[Any, int]]:
        """(booster, trees to predict with); the ranker averages their scores."""
        return list(self.model.boosters)

    def pairs(self, users: np.ndarray) -> Pairs:
        """The candidates the ranker scores for `users` (vocabulary indices), with their features."""
        from recsys_cli.models.candidates import candidate_pairs

        m = self.model
        return candidate_pairs(m.generators, m.tables, np.asarray(users, np.int64), m.params["n_candidates"])

    def matrix(self, pairs: Pairs) -> np.ndarray:
        """The learner's input for `pairs`, float32, one column per name."""
        from recsys_cli.models.lambdarank import feature_matrix

        return feature_matrix(learner_pairs(self.model, pairs))

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The ranker's raw score of each row of a learner matrix (the mean over
        its LightGBM models, or the network's logit)."""
        if self.is_lightgbm:
            return np.mean([np.asarray(b.predict(x, num_iteration=t), np.float64) for b, t in self.boosters], axis=0)
        return self._logits(x)

    def probability(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated engagement probability of raw scores, as the ranker reports it."""
        from recsys_cli.models.calibration import apply_calibration

        m = self.model
        return np.clip(apply_calibration(m.params["calibration"], m.calibration, raw), 0.0, 1.0)

    def _logits(self, x: np.ndarray) -> np.ndarray:
        import torch

        network = self.model.network
        n_numeric = int(np.count_nonzero(~self.categorical))
        network.eval()
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], _BATCH):
                block = x[i : i + _BATCH]
                categorical = torch.as_tensor(np.rint(block[:, n_numeric:]).astype(np.int64))
                out.append(network(categorical, torch.as_tensor(block[:, :n_numeric])).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def ranker_view(model: Recommender) -> RankerView:
    """The view of a loaded ranker; any other model is refused with one line."""
    from recsys_cli.models.ranker import TwoStageRanker

    if not isinstance(model, TwoStageRanker):
        raise ConfigError(f"explain supports {SUPPORTED} only; this run's model is {type(model).__name__}")
    view = RankerView(model, [], np.zeros(0, bool))
    empty = learner_pairs(model, view.pairs(np.zeros(0, np.int64)))  # no users: just the columns' widths
    n_numeric, n_columns = empty.numeric.shape[1], empty.numeric.shape[1] + empty.categorical.shape[1]
    view.names = feature_names(model, n_columns)
    view.categorical = np.arange(n_columns) >= n_numeric
    if model.params["backend"] == "lightgbm":
        check_boosters(model.boosters, view.names)
    return view


def learner_pairs(model: Any, pairs: Pairs) -> Pairs:
    """`pairs` with only the columns the ranker's learner reads (all of them for a
    ranker that keeps no such selection)."""
    select = getattr(model, "_input", None)
    return select(pairs) if callable(select) else pairs


def feature_names(model: Any, n_columns: int) -> list[str]:
    """The ranker's own name of each learner column when it gives them
    (`feature_names()`), else `f0`, `f1`, ..."""
    named = getattr(model, "feature_names", None)
    names = list(named()) if callable(named) else []
    if len(names) == n_columns and len(set(names)) == n_columns:
        return [str(n) for n in names]
    return [f"f{i}" for i in range(n_columns)]


def check_boosters(boosters: list[tuple[Any, int]], names: list[str]) -> None:
    """The LightGBM models must read the learner's columns: as many, and under the
    same names when they carry names (older models say `Column_<i>`)."""
    if not boosters:
        raise ConfigError("explain: this ranker holds no LightGBM model; retrain the run")
    for booster, _ in boosters:
        read = list(booster.feature_name())
        generic = read == [f"Column_{i}" for i in range(len(read))]
        if len(read) != len(names) or not (generic or read == names or names[0] == "f0"):
            raise ConfigError(
                f"explain: the ranker's LightGBM models read {len(read)} features, not the {len(names)} "
                "columns its candidates give them; retrain the run"
            )
