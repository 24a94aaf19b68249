"""A two-stage ranker as `recsys explain` reads it: candidate pairs, the matrix its
learner reads, raw scores and calibrated probabilities of any such matrix.

Everything goes through the ranker's public attributes (`generators`, `tables`,
`boosters`, `network`, `calibration`, `params`) and `lambdarank.feature_matrix`,
so the explanation perturbs exactly the columns the learner sees: a partial
dependence or a shuffled column is scored by the same boosters (or network) that
rank the candidates. The LightGBM learner may read fewer columns than the pairs
carry (features dropped by an ablation); its models then name the columns they
read, and those names pick them out of the full matrix.
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
    columns: np.ndarray  # learner column j is column columns[j] of feature_matrix(pairs)
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

        return np.ascontiguousarray(feature_matrix(pairs)[:, self.columns])

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
    view = RankerView(model, [], np.zeros(0, np.int64), np.zeros(0, bool))
    empty = view.pairs(np.zeros(0, np.int64))  # no users: just the feature columns' widths
    n_numeric = empty.numeric.shape[1]
    n_columns = n_numeric + empty.categorical.shape[1]
    names = feature_names(model, n_columns)
    columns = np.arange(n_columns)
    if model.params["backend"] == "lightgbm":
        columns = learner_columns(model.boosters, names)
    categorical = columns >= n_numeric
    return RankerView(model, [names[c] for c in columns], columns, categorical)


def feature_names(model: Any, n_columns: int) -> list[str]:
    """The ranker's own name of each candidate feature column when it gives them
    (`feature_names()`), else `f0`, `f1`, ..."""
    named = getattr(model, "feature_names", None)
    names = list(named()) if callable(named) else []
    if len(names) == n_columns and len(set(names)) == n_columns:
        return [str(n) for n in names]
    return [f"f{i}" for i in range(n_columns)]


def learner_columns(boosters: list[tuple[Any, int]], names: list[str]) -> np.ndarray:
    """Which feature columns the LightGBM models read: all of them, or those their
    saved feature names pick out (a ranker whose learner drops some)."""
    read = [list(b.feature_name()) for b, _ in boosters]
    if not read:
        raise ConfigError("explain: this ranker holds no LightGBM model; retrain the run")
    if any(r != read[0] for r in read):
        raise ConfigError("explain: the ranker's LightGBM models read different features; retrain the run")
    if len(read[0]) == len(names):
        return np.arange(len(names))
    index = {n: i for i, n in enumerate(names)}
    if all(n in index for n in read[0]):
        return np.asarray([index[n] for n in read[0]], np.int64)
    raise ConfigError(
        f"explain: the ranker's LightGBM models read {len(read[0])} features that its "
        f"{len(names)} candidate columns do not name; retrain the run"
    )
