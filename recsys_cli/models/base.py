"""The one interface every model implements, neural or not.

Public methods enforce the contract (fitted before scoring, shapes, masking of
seen and out-of-vocabulary items, cold-start fallback) and call private hooks
that a model supplies: `_fit`, `_score`, `_state`, `_load_state`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recsys_cli.errors import IntegrityError, NotFittedError
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.models.data import TrainData
from recsys_cli.models.topk import top_indices
from recsys_cli.models.validation import Targets

WEIGHTS = "weights.safetensors"
META = "model.json"


class Recommender(ABC):
    """fit(data) -> score(users, items) -> recommend(users, k); save / load.

    Users and items are vocabulary indices. Row 0 is the unknown user: it gets
    the popularity fallback; column 0 is the unknown item and is never recommended.
    """

    # Whether `warm_start` can begin from a previous fit of the same class. Closed-form
    # models (popularity, item-kNN, EASE) cannot: their fit is already exact and cheap,
    # so there is nothing to start from, and `warm_start` raises `WarmStartError`.
    supports_warm_start: ClassVar[bool] = False
    # Epochs (ALS: iterations) a warm start fine-tunes for when its caller names none.
    warm_start_epochs: ClassVar[int] = 0

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.users: Vocabulary | None = None
        self.items: Vocabulary | None = None
        self.popularity: np.ndarray | None = None
        self.seen: sp.csr_matrix | None = None
        # What a model measured about itself while fitting (a ranker's held-out
        # calibration error); `recsys train` reports it beside the window's metrics.
        self.diagnostics: dict[str, float] = {}
        # Settings the model chose on the validation window during a fit with it, as
        # config keys under `model.` (`{"l2": 100.0}`). `recsys train part=val` writes
        # them to the run's selection.json and part=test pins them for its refit
        # (registry/selection.py). Such a model says so before fitting
        # (`chooses_on_validation`).
        self.selected: dict[str, Any] = {}
        # Lookups derived from the fitted state (retrieval's prior order and index),
        # built on first use and dropped by the next fit.
        self.derived: dict[str, Any] = {}

    @property
    def chooses_on_validation(self) -> bool:
        """Whether a fit with validation targets chooses settings on them that a refit
        without that window must repeat (early stopping, an on-validation grid)."""
        return False

    def lightning_trainer(self) -> dict[str, Any] | None:
        """The Trainer settings (conf/trainer/) a fit runs the shared Lightning loop
        with; None for models fitted without it. A run records what they resolved to."""
        return None

    def fit(self, data: TrainData, validation: Targets | None = None, workdir: Path | None = None) -> Recommender:
        """Fit on `data`; models trained by gradient steps use `validation` for early
        stopping and `workdir` for checkpoints and logs; closed-form ones ignore both."""
        self._adopt(data)
        self._fit(data, validation, workdir)
        return self

    def warm_start(
        self,
        previous: Recommender,
        data: TrainData,
        validation: Targets | None = None,
        workdir: Path | None = None,
        epochs: int | None = None,
        only_new: bool = False,
    ) -> Recommender:
        """Fit on `data`, a newer window, starting from `previous` (a fitted model of
        the same class, the production one) instead of from scratch: its learned rows
        are carried over by token (`models.warm_start`), users and items it never met
        get rows from the new data, then a few `epochs` of training follow
        (`warm_start_epochs` when None). With `only_new` the carried rows stay exactly
        as they were and only the new ones train. Raises `WarmStartError` for a model
        that does not `supports_warm_start`: fit it from scratch instead."""
        from recsys_cli.models.warm_start import RowMap, WarmStartError

        name = type(self).__name__
        if not self.supports_warm_start:
            raise WarmStartError(f"{name} cannot warm start (its fit is closed-form and exact): fit it from scratch")
        if type(previous) is not type(self):
            raise WarmStartError(f"{name} cannot warm start from a {type(previous).__name__}: fit it from scratch")
        previous._fitted()
        assert previous.users is not None and previous.items is not None
        epochs = self.warm_start_epochs if epochs is None else int(epochs)
        if epochs < 0:
            raise WarmStartError(f"{name}: warm start epochs must be 0 or more, got {epochs}")
        self._adopt(data)
        for what, old, new in (("users", previous.users, data.users), ("items", previous.items, data.items)):
            counts = RowMap.between(old, new).counts(len(old))
            self.diagnostics |= {f"warm_start/{what}_{key}": value for key, value in counts.items()}
        self.diagnostics["warm_start/epochs"] = float(epochs)
        self._warm_start(previous, data, validation, workdir, epochs, only_new)
        return self

    def _adopt(self, data: TrainData) -> None:
        """What every fit takes from its data whatever the model: vocabularies, the
        seen items and the popularity fallback."""
        self.users, self.items = data.users, data.items
        self.derived = {}
        # Excluded items follow the target (the ground truth leaves out the same ones);
        # popularity counts every interacting user, whatever the target.
        self.seen = data.seen_matrix().astype(np.float32).tocsr()
        self.popularity = np.asarray(data.interacted().sum(axis=0)).ravel().astype(np.float32)

    def _warm_start(
        self,
        previous: Recommender,
        data: TrainData,
        validation: Targets | None,
        workdir: Path | None,
        epochs: int,
        only_new: bool,
    ) -> None:
        """The model's own warm start; only called where `supports_warm_start`."""
        raise NotImplementedError(f"{type(self).__name__} declares warm start support but does not implement it")

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(len(users), n_items) scores, or (len(users), len(items)); unknown users
        get the popularity fallback."""
        scores, _ = self._ranking_scores(users)
        return scores if items is None else scores[:, np.asarray(items, dtype=np.int64)]

    def recommend(self, users: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores per user, best first; equal scores are
        ordered by the model's tie key, then by item index (`models.topk`)."""
        scores, tiebreak = self._ranking_scores(users)
        return self.top_k(scores, users, k, exclude_seen, tiebreak)

    def candidates(self, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(len(users), n) the top-n items of each user that `recommend` would give
        (the target's seen items left out), and their float32 scores; padded with item
        0 at -inf where a user has fewer. Models whose scores are a sparse part over a
        prior, or an inner product, find them without scoring the whole catalogue
        (`models.retrieval`); an approximate index may miss a few (its recall is
        measured against exact search)."""
        from recsys_cli.models import retrieval

        self._fitted()
        return retrieval.candidates(self, users, n)

    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float32 `score(users[j])[items[j]]` for each pair j, without dense rows
        where the model allows it."""
        from recsys_cli.models import retrieval

        self._fitted()
        return retrieval.pair_scores(self, users, items)

    def score_history(self, user: int, items: np.ndarray, events: Sequence[str] | None = None) -> np.ndarray | None:
        """(n_items,) float32 scores of `user` (0: a visitor the model never met) as if
        the model had also seen `items` (item indices, oldest first, with their event
        types) after what it was fitted on: a service's live events change the very next
        answer without a refit. None for a model that cannot take a history in; its
        scores stay those of the fitted state. Unknown items (index 0) are ignored."""
        self._fitted()
        scores = self._score_history(int(user), *_live(items, events))
        return None if scores is None else np.asarray(scores, dtype=np.float32).reshape(-1)

    def history_vector(self, user: int, items: np.ndarray, events: Sequence[str] | None = None) -> np.ndarray | None:
        """(d,) float32 user vector with `items` folded in, for embedding models that
        can (its inner product with `item_vectors()` is `score_history`): a service
        then retrieves through the package's ANN index instead of scoring every item.
        None for the others."""
        self._fitted()
        vector = self._history_vector(int(user), *_live(items, events))
        return None if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1)

    def _score_history(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray | None:
        vector = self._history_vector(user, items, events)
        vectors = self.item_vectors() if vector is not None else None
        return None if vector is None or vectors is None else vectors @ vector

    def _history_vector(self, user: int, items: np.ndarray, events: list[str]) -> np.ndarray | None:
        return None

    def top_k(
        self,
        scores: np.ndarray,
        users: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        tiebreak: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of a (len(users), n_items) score matrix, never the unknown item nor,
        with `exclude_seen`, what the target counts as already seen by the user (the
        items its ground truth leaves out too); `scores` is overwritten.
        Equal scores go by `tiebreak` (higher first) where given, then by item index."""
        scores[:, 0] = -np.inf
        if exclude_seen and self.seen is not None:
            rows, cols = self.seen[np.asarray(users)].nonzero()
            scores[rows, cols] = -np.inf
        top = top_indices(scores, min(k, scores.shape[1] - 1), tiebreak)
        return top, np.take_along_axis(scores, top, axis=1)

    def _ranking_scores(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """float32 scores, unknown users given the popularity fallback, and the
        model's tie key (`_score_with_tiebreak`), zero on the fallback rows."""
        if self.popularity is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        users = np.asarray(users, dtype=np.int64)
        raw, tiebreak = self._score_with_tiebreak(users)
        scores = np.asarray(raw, dtype=np.float32)
        cold = users == 0
        if cold.any():
            scores[cold] = self.popularity
            if tiebreak is not None:
                tiebreak[cold] = 0.0
        return scores, tiebreak

    def item_vectors(self) -> np.ndarray | None:
        """(n_items, d) float32 item embeddings whose inner product with `user_vectors`
        is the model's score, so serving can retrieve by nearest-neighbour search
        instead of scoring the whole catalogue; None for a model whose scores are not
        such a product (popularity, item-kNN, EASE, the rankers). Row 0 is the unknown
        item: an index over these rows must never return it."""
        self._fitted()
        vectors = self._item_vectors()
        return None if vectors is None else np.ascontiguousarray(vectors, dtype=np.float32)

    def user_vectors(self, users: np.ndarray) -> np.ndarray:
        """(len(users), d) float32 with `user_vectors(u) @ item_vectors().T == score(u)`
        (to float tolerance) for known users. Row 0, the unknown user, gets the model's
        own vector and not the popularity fallback `score` gives it: the fallback stays
        the caller's job. Raises for a model whose `item_vectors()` is None."""
        self._fitted()
        vectors = self._user_vectors(np.asarray(users, dtype=np.int64))
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _item_vectors(self) -> np.ndarray | None:
        return None

    def _user_vectors(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no user vectors: its scores are not an inner product")

    def _fitted(self) -> None:
        if self.popularity is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")

    def _score_with_tiebreak(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`_score` and a key that orders the items it scores equally, for models whose
        reported scores tie where the model itself tells items apart (a ranker's
        calibrated probabilities over its raw scores); None: ties go by item index."""
        return self._score(users), None

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
        """Rebuild a saved model. Only this package's own model classes are ever
        built (see `models.classes`), and every array read back is checked against
        the vocabularies before use: a damaged or edited folder is one error naming
        the file, never a wrong answer or a crash inside scipy."""
        from recsys_cli.models.classes import build_model
        from recsys_cli.models.state import StateError, check_csr, check_vector, read_json, read_tensors

        meta = read_json(folder / META)
        users, items = _vocabulary(meta, "users", folder / META), _vocabulary(meta, "items", folder / META)
        model: Recommender = build_model(meta, str(folder / META))
        tensors = read_tensors(folder / WEIGHTS)
        model.users, model.items = users, items
        model._load_files(folder)
        try:
            model.popularity = check_vector(tensors, "base.popularity", len(items))
            model.seen = check_csr(tensors, "base.seen", (len(users), len(items)), data=False)
            model._load_state({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
        except IntegrityError as exc:  # a nested spec (a ranker's generator) names model.json's field
            raise IntegrityError(f"{folder}/{exc}" if str(exc).startswith(META) else str(exc)) from None
        except StateError as exc:
            raise IntegrityError(f"{folder / WEIGHTS}: {exc}; retrain the run (`recsys train`)") from None
        except (KeyError, ValueError, IndexError, TypeError, RuntimeError) as exc:
            what = f"no tensor {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {_first_line(exc)}"
            raise IntegrityError(f"{folder / WEIGHTS}: does not fit {META} ({what}); retrain the run") from None
        return model

    def _load_files(self, folder: Path) -> None:
        """Told the model folder before `_load_state`, by a model that keeps files of a
        format of its own beside the weights (the ranker's LightGBM text models)."""
        return None

    @abstractmethod
    def _fit(self, data: TrainData, validation: Targets | None, workdir: Path | None) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _load_state(self, state: dict[str, np.ndarray]) -> None: ...


def _live(items: np.ndarray, events: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """A live history's known items (index 0 dropped) and their event types."""
    items = np.asarray(items, dtype=np.int64)
    kinds = list(events) if events is not None else ["view"] * items.size
    if len(kinds) != items.size:
        raise ValueError(f"score_history: {items.size} items but {len(kinds)} event types")
    known = items > 0
    return items[known], [e for e, k in zip(kinds, known, strict=True) if k]


def _vocabulary(meta: dict[str, Any], key: str, path: Path) -> Vocabulary:
    """A vocabulary from model.json: a list of distinct text tokens, the first the OOV bucket."""
    node = meta.get(key)
    tokens = node.get("tokens") if isinstance(node, dict) else None
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise IntegrityError(f"{path}: {key}.tokens must be a non-empty list of text; retrain the run")
    if len(set(tokens)) != len(tokens):
        raise IntegrityError(f"{path}: {key}.tokens lists a token twice; retrain the run")
    return Vocabulary(tuple(tokens))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no detail"
