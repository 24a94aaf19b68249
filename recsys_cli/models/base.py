"""The one interface every model implements, neural or not.

Public methods enforce the contract (fitted before scoring, shapes, masking of
seen and out-of-vocabulary items, cold-start fallback) and call private hooks
that a model supplies: `_fit`, `_score`, `_state`, `_load_state`.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys_cli.errors import NotFittedError
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets

WEIGHTS = "weights.safetensors"
META = "model.json"


class Recommender(ABC):
    """fit(data) -> score(users, items) -> recommend(users, k); save / load.

    Users and items are vocabulary indices. Row 0 is the unknown user: it gets
    the popularity fallback; column 0 is the unknown item and is never recommended.
    """

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.users: Vocabulary | None = None
        self.items: Vocabulary | None = None
        self.popularity: np.ndarray | None = None
        self.seen: sp.csr_matrix | None = None
        # What a model measured about itself while fitting (a ranker's held-out
        # calibration error); `recsys train` reports it beside the window's metrics.
        self.diagnostics: dict[str, float] = {}

    def lightning_trainer(self) -> dict[str, Any] | None:
        """The Trainer settings (conf/trainer/) a fit runs the shared Lightning loop
        with; None for models fitted without it. A run records what they resolved to."""
        return None

    def fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> Recommender:
        """Fit on `data`; models trained by gradient steps use `validation` for early
        stopping and `workdir` for checkpoints and logs; closed-form ones ignore both."""
        self.users, self.items = data.users, data.items
        self.seen = (data.matrix > 0).astype(np.float32).tocsr()
        self.popularity = np.asarray(self.seen.sum(axis=0)).ravel().astype(np.float32)
        self._fit(data, validation, workdir)
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), n_items) scores, or (len(users), len(items)); unknown users
        get the popularity fallback."""
        if self.popularity is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        users = np.asarray(users, dtype=np.int64)
        scores = np.asarray(self._score(users), dtype=np.float32)
        cold = users == 0
        if cold.any():
            scores[cold] = self.popularity
        return scores if items is None else scores[:, np.asarray(items, dtype=np.int64)]

    def recommend(self, users: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores per user, best first."""
        return self.top_k(self.score(users), users, k, exclude_seen)

    def top_k(
        self, scores: np.ndarray, users: np.ndarray, k: int, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of a (len(users), n_items) score matrix, never the unknown item nor,
        with `exclude_seen`, what the user already had; `scores` is overwritten."""
        scores[:, 0] = -np.inf
        if exclude_seen and self.seen is not None:
            rows, cols = self.seen[np.asarray(users)].nonzero()
            scores[rows, cols] = -np.inf
        k = min(k, scores.shape[1] - 1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return top, np.take_along_axis(scores, top, axis=1)

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        assert self.users is not None and self.items is not None and self.seen is not None
        assert self.popularity is not None
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": np.ascontiguousarray(v) for k, v in self._state().items()}
        tensors |= {
            "base.popularity": self.popularity,
            "base.seen_indptr": self.seen.indptr.astype(np.int64),
            "base.seen_indices": self.seen.indices.astype(np.int64),
        }
        save_file(tensors, str(folder / WEIGHTS))
        meta = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": self.params,
            "users": self.users.to_json(),
            "items": self.items.to_json(),
        }
        (folder / META).write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path) -> Recommender:
        from safetensors.numpy import load_file

        meta = json.loads((folder / META).read_text())
        module, _, name = meta["class"].rpartition(".")
        model: Recommender = getattr(importlib.import_module(module), name)(**meta["params"])
        tensors = load_file(str(folder / WEIGHTS))
        model.users, model.items = Vocabulary.from_json(meta["users"]), Vocabulary.from_json(meta["items"])
        model.popularity = tensors["base.popularity"]
        indices = tensors["base.seen_indices"]
        model.seen = sp.csr_matrix(
            (np.ones(indices.size, np.float32), indices, tensors["base.seen_indptr"]),
            shape=(len(model.users), len(model.items)),
        )
        model._load_state({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
        return model

    @abstractmethod
    def _fit(self, data: TrainData, validation: Targets | None, workdir: Path | None) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _load_state(self, state: dict[str, np.ndarray]) -> None: ...
