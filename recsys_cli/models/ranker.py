"""A two-stage recommender: retrieval models propose, an engagement ranker orders.

The ranker predicts the probability that a user engages with (per the target:
views, carts, purchases, ratings) a candidate in the coming window. It learns
from the feature set's labelled windows (`features=ranker`): at each earlier
cutoff the generators are fitted on the history before it, propose candidates,
and the positives of the following days are the labels. The question at
training time is therefore the one asked at serving time, and nothing after
the real cutoff is read. A share of users is held out: early stopping follows
their candidate-list NDCG@10 and the calibration map is fitted on them.

Two implementations of the stage share everything but the learner:
`backend=dcn`, a deep & cross network (Wang et al., 2021) trained with binary
cross-entropy through the shared Lightning loop, and `backend=lightgbm`, a
LambdaMART ranker, which often wins on small tabular data. Both end calibrated.

LightGBM's capacity (leaves, leaf support...) can be chosen inside the fit:
`lightgbm_grid` fits every point on the training users and keeps the one whose
held-out users rank best. Those are user-windows from every labelled window, all
before the cutoff (146 with a positive on MovieLens-100K's first rolling-origin
fold, against 57 users in its validation window), so the choice is steadier than
one taken on the validation window, and it never sees that window.
`lightgbm_cv_folds` goes further: every point is scored by k-fold
cross-validation over all labelled users, and the chosen one is then fitted as a
single point would be.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from recsys_cli.errors import ConfigError, IntegrityError, NotFittedError
from recsys_cli.evaluation.calibration import expected_calibration_error
from recsys_cli.models import retrieval
from recsys_cli.models.base import META, Recommender
from recsys_cli.models.calibration import Method, apply_calibration, fit_calibration, weighted_ece
from recsys_cli.models.candidates import (
    FIELDS,
    Pairs,
    SideTables,
    candidate_pairs,
    proposal_rank,
    sample_negatives,
)
from recsys_cli.models.classes import build_nested, plain_spec
from recsys_cli.models.data import LabelledWindow, TrainData
from recsys_cli.models.dcn import DCNModule
from recsys_cli.models.lambdarank import (
    LIGHTGBM_DEFAULTS,
    CrossValidation,
    categorical_columns,
    check_cv_folds,
    check_lightgbm,
    chosen_diagnostics,
    cross_validate,
    cv_diagnostics,
    feature_matrix,
    fit_point,
    grid_points,
    lightgbm_threads,
    point_diagnostics,
    recency_weights,
    subset_rows,
    user_folds,
)
from recsys_cli.models.lightning import MONITOR, fit_module, shuffled_batches
from recsys_cli.models.ranker_features import (
    ITEM_ID,
    check_ablate,
    column_names,
    feature_groups,
    kept_columns,
    side_names,
)
from recsys_cli.models.side_features import SideFeatures
from recsys_cli.models.state import StateError, check_codes, check_range, tensor
from recsys_cli.models.validation import Targets

Backend = Literal["dcn", "lightgbm"]
# LightGBM model i of a saved ranker, in LightGBM's text format, beside the weights.
BOOSTER_FILE = "lightgbm_{}.txt"
# Users whose candidates are built at once: when negatives are sampled, and to score.
_CHUNK_USERS = 1024
# Candidate pairs, group (window, user), label, and weight: how many candidates of its
# group a kept negative stands for when negatives are sampled (1 otherwise).
Examples = tuple[Pairs, np.ndarray, np.ndarray, np.ndarray]


class TwoStageRanker(Recommender):
    def __init__(
        self,
        generators: Mapping[str, Mapping[str, Any]] | None = None,
        n_candidates: int = 100,
        backend: Backend = "dcn",
        calibration: Method = "platt",
        holdout: float = 0.2,
        max_users_per_window: int = 20000,
        negatives: int | None = None,
        embedding_dim: int = 16,
        cross_layers: int = 3,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        batch_size: int = 1024,
        patience: int = 3,
        lightgbm: Mapping[str, Any] | None = None,
        lightgbm_grid: Mapping[str, Sequence[Any]] | None = None,
        lightgbm_cv_folds: int | None = None,
        lightgbm_cv_ensemble: bool = False,
        ablate: Sequence[str] | None = None,
        user_profile: Sequence[str] | None = None,
        window_half_life: float | None = None,
        trainer: Mapping[str, Any] | None = None,
        seed: int = 42,
    ) -> None:
        if negatives is not None and (isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 1):
            raise ConfigError(f"model.negatives: give a positive integer or null, got {negatives!r}")
        if backend not in ("dcn", "lightgbm"):
            raise ConfigError(f"ranker backend must be dcn or lightgbm, got {backend!r}")
        lightgbm, lightgbm_grid = plain_spec(lightgbm or {}), plain_spec(lightgbm_grid or {})
        check_lightgbm(lightgbm, lightgbm_grid, backend)
        check_cv_folds(lightgbm_cv_folds, lightgbm_grid, backend, lightgbm_cv_ensemble)
        # A generator set to null is off: a preset can drop one its base config lists.
        generators = {k: plain_spec(v) for k, v in (generators or {}).items() if v is not None}
        if not generators:
            raise ConfigError("ranker: name at least one candidate generator under model.generators")
        ablate = check_ablate(ablate, generators)
        if window_half_life is not None and (backend != "lightgbm" or not float(window_half_life) > 0):
            raise ConfigError(
                "model.window_half_life: a positive number of labelled windows, with backend=lightgbm "
                f"(the network's loss takes no weights); got {window_half_life!r} with backend={backend}"
            )
        super().__init__(
            generators=generators,
            n_candidates=n_candidates,
            backend=backend,
            calibration=calibration,
            holdout=holdout,
            max_users_per_window=max_users_per_window,
            negatives=negatives,
            embedding_dim=embedding_dim,
            cross_layers=cross_layers,
            hidden=list(hidden),
            dropout=dropout,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            patience=patience,
            lightgbm=lightgbm,
            lightgbm_grid={k: list(v) for k, v in lightgbm_grid.items()},
            lightgbm_cv_folds=lightgbm_cv_folds,
            lightgbm_cv_ensemble=lightgbm_cv_ensemble,
            ablate=ablate,
            # only when set: a model.json stays loadable by a version without it
            **({"user_profile": [str(c) for c in user_profile]} if user_profile else {}),
            **({"window_half_life": float(window_half_life)} if window_half_life is not None else {}),
            trainer=dict(trainer or {}),
            seed=seed,
        )
        self.generators: dict[str, Recommender] = {}
        self.tables: SideTables | None = None
        self.network: DCNModule | None = None
        self.boosters: list[tuple[Any, int]] = []  # (LightGBM booster, trees to predict with); averaged
        self.calibration = np.zeros(0)
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self._folder: Path | None = None  # the folder `load` reads the LightGBM text models from
        # Positions of the (numeric, categorical) columns the learner reads; None: all of them.
        self._kept: tuple[np.ndarray, np.ndarray] | None = None

    def lightning_trainer(self) -> dict[str, Any] | None:
        return dict(self.params["trainer"]) if self.params["backend"] == "dcn" else None

    # ---- features -------------------------------------------------------------------

    def feature_names(self) -> list[str]:
        """The learner's input columns in `lambdarank.feature_matrix`'s order (numeric,
        then categorical): per generator `<key>.score`, `<key>.gap`, `<key>.log_rank`;
        `category_affinity`; `item.<column>`, `user.<column>`; then `item_id` and the
        categorical `item.<column>`, `user.<column>`. What a LightGBM booster's feature
        i (and a `pred_contrib` column i) is about; the boosters carry the same names."""
        numeric, categorical = self._columns()
        if self._kept is None:
            return numeric + categorical
        return [numeric[j] for j in self._kept[0]] + [categorical[j] for j in self._kept[1]]

    def feature_groups(self) -> dict[str, list[str]]:
        """{group: its columns} partitioning `feature_names`: one group per generator
        (its key), then side groups by column name (`ranker_features.GROUPS`)."""
        return feature_groups(self.feature_names(), list(self._generator_specs()))

    def _generator_specs(self) -> dict[str, dict[str, Any]]:
        """The generators fitted and asked for candidates: all but those `ablate` names."""
        return {k: v for k, v in self.params["generators"].items() if k not in self.params["ablate"]}

    def _dropped_groups(self) -> list[str]:
        return [name for name in self.params["ablate"] if name not in self.params["generators"]]

    def _columns(self) -> tuple[list[str], list[str]]:
        """(numeric, categorical) names of every column a candidate pair carries."""
        if self.tables is None:
            raise NotFittedError("the ranker is not fitted: it has no feature columns yet")
        items, users = self.tables.items, self.tables.users
        item_cat, item_num = side_names(items.names, items.categorical.shape[1], items.numeric.shape[1])
        user_cat, user_num = side_names(users.names, users.categorical.shape[1], users.numeric.shape[1])
        return column_names(list(self._generator_specs()), item_cat, item_num, user_cat, user_num)

    def _set_tables(self, tables: SideTables) -> None:
        """The side tables, and which of the pairs' columns the learner reads: the
        feature groups `ablate` names are left out (a generator named there is not
        fitted at all, so its columns never exist)."""
        self.tables, self._kept = tables, None
        dropped = self._dropped_groups()
        if dropped:
            numeric, categorical = self._columns()
            generators = list(self._generator_specs())
            self._kept = (
                np.asarray(kept_columns(numeric, generators, dropped), np.int64),
                np.asarray(kept_columns(categorical, generators, dropped), np.int64),
            )

    def _input(self, pairs: Pairs) -> Pairs:
        """The pairs with only the columns the learner reads."""
        if self._kept is None:
            return pairs
        numeric, categorical = self._kept
        return Pairs(pairs.rows, pairs.users, pairs.items, pairs.numeric[:, numeric], pairs.categorical[:, categorical])

    def _learner_examples(self, examples: Examples) -> Examples:
        return self._input(examples[0]), *examples[1:]  # type: ignore[return-value]

    def _cardinalities(self) -> tuple[int, ...]:
        """Embedding sizes of the categorical columns the learner reads."""
        assert self.tables is not None
        cards = self.tables.cardinalities(len(self.items or ()))
        return cards if self._kept is None else tuple(cards[j] for j in self._kept[1])

    def _ablation_diagnostics(self) -> dict[str, float]:
        """How many columns each name in `ablate` took away: `fit/ablated/<name>`."""
        if not self.params["ablate"]:
            return {}
        groups = feature_groups(self._all_names(), list(self.params["generators"]))
        return {f"ablated/{name}": float(len(groups.get(name, []))) for name in self.params["ablate"]}

    def _all_names(self) -> list[str]:
        """Every column's name, with the ablated generators' columns as they would be."""
        assert self.tables is not None
        items, users = self.tables.items, self.tables.users
        item_cat, item_num = side_names(items.names, items.categorical.shape[1], items.numeric.shape[1])
        user_cat, user_num = side_names(users.names, users.categorical.shape[1], users.numeric.shape[1])
        numeric, categorical = column_names(list(self.params["generators"]), item_cat, item_num, user_cat, user_num)
        return numeric + categorical

    def _profile(self) -> tuple[str, ...]:
        """Item columns averaged over each user's history into user columns."""
        return tuple(self.params.get("user_profile", ()))

    # ---- training -------------------------------------------------------------------

    def _fit(self, data: TrainData, validation: Targets | None, workdir: Path | None) -> None:
        if not data.windows:
            raise ConfigError(
                "the ranker learns from labelled earlier windows: build features with "
                "`recsys features features=ranker` (or set features.ranker_windows) and train with the same overrides"
            )
        L.seed_everything(self.params["seed"], workers=True, verbose=False)
        tables = SideTables.of(data, profile=self._profile())
        self._set_tables(tables)
        self.diagnostics = self._ablation_diagnostics()
        if self.params["backend"] == "dcn":
            train, held = self._split(self._labelled(data.windows, tables))
            raw = self._fit_dcn(train, held, workdir)
        else:
            # Handed over, not kept here: the LightGBM stage drops the candidate pairs
            # once their feature rows are split, the peak of the fit's memory.
            raw, held = self._fit_lightgbm(self._labelled(data.windows, tables))
        self.calibration, calibration = self._calibrate(raw, held[1], held[2], held[3])
        self.diagnostics |= calibration
        self.generators = self._fit_generators(data)

    def _calibrate(
        self, raw: np.ndarray, group: np.ndarray, labels: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Fit the calibration map on the held-out users (for a cross-validation
        ensemble, every user's out-of-fold score). Its effect is measured on
        half of them with a map fitted on the other half, so the reported errors
        are out of sample; the map kept is fitted on all of them. With sampled
        negatives each kept negative counts for the ones it stands for, so the
        probabilities are those of the whole candidate lists."""
        method: Method = self.params["calibration"]
        w = None if self.params["negatives"] is None else weights
        first = group % 2 == 0
        plain = apply_calibration("none", np.zeros(0), raw) if self.params["backend"] == "dcn" else _minmax(raw)
        diagnostics = {
            "holdout_pairs": float(labels.size if w is None else w.sum()),
            "holdout_positive_rate": float(np.average(labels, weights=w)) if labels.size else 0.0,
        }
        if first.any() and (~first).any():
            half = fit_calibration(method, raw[first], labels[first], _part(w, first))
            rest = _part(w, ~first)
            diagnostics |= {
                "holdout_ece_raw": _ece(plain[~first], labels[~first], rest),
                "holdout_ece_calibrated": _ece(apply_calibration(method, half, raw[~first]), labels[~first], rest),
            }
        return fit_calibration(method, raw, labels, w), diagnostics

    def _fit_generators(self, data: TrainData) -> dict[str, Recommender]:
        return {name: _instantiate(spec).fit(data) for name, spec in self._generator_specs().items()}

    def _examples(self, windows: Sequence[LabelledWindow], like: SideTables) -> tuple[Examples, Examples]:
        """Training and held-out examples over all windows."""
        return self._split(self._labelled(windows, like))

    def _labelled(self, windows: Sequence[LabelledWindow], like: SideTables) -> Examples:
        """Every window's candidates with their labels, window after window. With
        `negatives`, each (window, user) list keeps its positives and that many
        negatives (`sample_negatives`), a chunk of users at a time, so a window's
        full candidate lists never exist at once; a training user's list without a
        positive candidate is dropped (it teaches a ranker nothing)."""
        p = self.params
        rng = np.random.default_rng(p["seed"])
        chunk = _CHUNK_USERS if p["negatives"] is not None else None
        parts = []
        for w, window in enumerate(windows):
            labels = window.label_matrix()
            users = np.flatnonzero(np.diff(labels.indptr) > 0)
            users = users[users > 0]
            if users.size == 0:  # an early window of a short history: nobody to learn from
                continue
            if users.size > p["max_users_per_window"]:
                users = np.sort(rng.choice(users, p["max_users_per_window"], replace=False))
            generators = self._fit_generators(window.data)
            tables = SideTables.of(window.data, like, self._profile())
            for start in range(0, users.size, chunk or users.size):
                pairs = candidate_pairs(
                    generators, tables, users[start : start + (chunk or users.size)], p["n_candidates"]
                )
                y = np.asarray(labels[pairs.users, pairs.items]).ravel().astype(np.float32)
                group = pairs.users.astype(np.int64) + w * len(window.data.users)
                weight = np.ones(y.size, np.float32)
                if p["negatives"] is not None:
                    train_user = ~_holdout_mask(pairs.users, p["holdout"], p["seed"])
                    keep, weight = sample_negatives(
                        group, y, proposal_rank(pairs, len(generators)), p["negatives"], rng, train_user
                    )
                    pairs, group, y, weight = _subset(pairs, group, y, weight, keep)
                parts.append((pairs, group, y, weight))
            del generators, tables
        if not parts:
            raise ConfigError("no labelled window has a known user with a positive: the ranker has nothing to learn")
        return _stack(parts)

    def _held_out(self, examples: Examples) -> np.ndarray:
        """A user is held out in every window or none, so early stopping sees new people."""
        return _holdout_mask(examples[0].users, self.params["holdout"], self.params["seed"])

    def _split(self, examples: Examples) -> tuple[Examples, Examples]:
        out = self._held_out(examples)
        return _subset(*examples, ~out), _subset(*examples, out)

    def network_examples(self, data: TrainData) -> tuple[DCNModule, TensorDataset]:
        """The untrained network and its training examples, built exactly as a fit
        builds them: the throughput benchmark times the shared loop's steps on these."""
        self.users, self.items = data.users, data.items
        tables = SideTables.of(data, profile=self._profile())
        self._set_tables(tables)
        train = self._learner_examples(self._examples(data.windows, tables)[0])
        return self._scaled_network(train), _tensors(*train[:3])

    def _scaled_network(self, train: Examples) -> DCNModule:
        """A new network whose input scaling is the training examples' mean and spread."""
        network = self._network(self._cardinalities(), train[0].numeric.shape[1])
        numeric = train[0].numeric.astype(np.float64)
        network.numeric_mean.copy_(torch.as_tensor(numeric.mean(axis=0) if numeric.size else 0.0))
        std = numeric.std(axis=0) if numeric.size else np.ones(numeric.shape[1])
        network.numeric_std.copy_(torch.as_tensor(np.where(std > 1e-9, std, 1.0)))
        return network

    def _fit_dcn(self, train: Examples, held: Examples, workdir: Path | None) -> np.ndarray:
        p = self.params
        train, held = self._learner_examples(train), self._learner_examples(held)
        self.network = self._scaled_network(train)
        loader = shuffled_batches(_tensors(*train[:3]), p["batch_size"])
        val_loader = DataLoader(_tensors(*held[:3]), batch_size=8192) if held[2].size else None
        best = fit_module(self.network, loader, val_loader, MONITOR, "max", p, workdir)
        if best is not None:
            self.best_epoch, self.best_score = best.epochs, best.score
        return self._logits(held[0])

    def _network(self, cardinalities: Sequence[int], n_numeric: int) -> DCNModule:
        p = self.params
        return DCNModule(
            cardinalities,
            n_numeric,
            p["embedding_dim"],
            p["cross_layers"],
            p["hidden"],
            p["dropout"],
            p["lr"],
            p["weight_decay"],
        )

    def _fit_lightgbm(self, examples: Examples) -> tuple[np.ndarray, Examples]:
        """One LightGBM fit on the training users per candidate point, early-stopped
        on and scored by the held-out users; the best is kept (the first of equals,
        in declaration order). The candidates are every point of `lightgbm_grid`
        (one fit when it is empty), or the one point k-fold cross-validation chose.
        With `lightgbm_cv_ensemble` the chosen point's k fold models are kept
        instead and their scores averaged: every labelled user trains k - 1 of
        them, and no single held-out draw decides the model.
        Returns the scores to calibrate on and the examples they belong to. The
        feature matrix is built once, for cross-validation and the final fits."""
        p = self.params
        base = LIGHTGBM_DEFAULTS | {"random_state": p["seed"], "n_jobs": lightgbm_threads()} | p["lightgbm"]
        points = grid_points(p["lightgbm_grid"])
        learner = self._input(examples[0])
        categorical = categorical_columns(learner, leading_id=ITEM_ID not in self._dropped_groups())
        names = self.feature_names()
        assert self.users is not None
        weight = recency_weights(examples[1], len(self.users), p.get("window_half_life"))
        rows = feature_matrix(learner), examples[1], examples[2], weight
        del learner
        candidates = list(range(len(points)))
        if p["lightgbm_cv_folds"]:
            fold = user_folds(examples[0].users, p["lightgbm_cv_folds"], p["seed"])
            cv = cross_validate([base | q for q in points], rows, fold, categorical, p["patience"], names)
            self.diagnostics |= cv_diagnostics(points, cv.ndcg, cv.trees)
            candidates = [int(np.argmax(cv.ndcg.mean(axis=1)))]  # argmax: the first of equals
            if p["lightgbm_cv_ensemble"]:
                return self._keep_ensemble(cv, candidates[0], points, fold), examples
        out = self._held_out(examples)
        # Calibration reads the held-out labels and weights, never the pairs' features:
        # the candidate pairs are dropped before the feature rows are split, the peak
        # of the fit's memory (the caller keeps no reference to them).
        held = _labels_only(examples, out)
        del examples
        train_rows, held_rows = subset_rows(rows, ~out), subset_rows(rows, out)
        del rows  # only the split copies are needed from here
        fits = [
            fit_point(base | points[i], train_rows, held_rows, categorical, p["patience"], names) for i in candidates
        ]
        if len(candidates) > 1:
            for i, fit in zip(candidates, fits, strict=True):
                self.diagnostics |= point_diagnostics(points[i], fit.ndcg, fit.trees, "holdout")
        best = int(np.argmax([fit.ndcg for fit in fits]))
        if len(points) > 1:
            self.diagnostics |= chosen_diagnostics(p["lightgbm_grid"], points[candidates[best]], candidates[best])
        self.boosters, self.best_epoch = [(fits[best].booster, fits[best].trees)], fits[best].trees
        if held_rows[2].size:
            self.best_score = fits[best].ndcg
        return fits[best].raw, held

    def _keep_ensemble(
        self, cv: CrossValidation, chosen: int, points: list[dict[str, Any]], fold: np.ndarray
    ) -> np.ndarray:
        """The chosen point's fold models as the ranker; its out-of-fold scores (each
        user scored by the model that never saw them) are what calibration fits."""
        if len(points) > 1:
            self.diagnostics |= chosen_diagnostics(self.params["lightgbm_grid"], points[chosen], chosen)
        self.boosters = [(fit.booster, fit.trees) for fit in cv.fits[chosen]]
        self.best_score = float(cv.ndcg[chosen].mean())
        self.best_epoch = int(round(float(cv.trees[chosen].mean())))
        self.diagnostics["lightgbm_ensemble_models"] = float(len(self.boosters))
        return cv.out_of_fold(chosen, fold)

    # ---- scoring --------------------------------------------------------------------

    def _raw(self, pairs: Pairs) -> np.ndarray:
        """Raw scores of candidate pairs built with `candidate_pairs` (every column)."""
        pairs = self._input(pairs)
        if self.params["backend"] == "dcn":
            return self._logits(pairs)
        x = feature_matrix(pairs)
        return np.mean([np.asarray(b.predict(x, num_iteration=t), dtype=np.float64) for b, t in self.boosters], axis=0)

    def _logits(self, pairs: Pairs) -> np.ndarray:
        assert self.network is not None
        self.network.eval()
        out = []
        with torch.no_grad():
            for i in range(0, pairs.items.size, 65536):
                c = torch.as_tensor(pairs.categorical[i : i + 65536])
                n = torch.as_tensor(pairs.numeric[i : i + 65536])
                out.append(self.network(c, n).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def predict_proba(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Calibrated engagement probability of each (user, item) candidate pair;
        0 for pairs no generator proposes (the ranker never ranks them). Unknown
        users get the ranker's estimate too, not the popularity counts their
        ranking falls back to."""
        scores = self._score(np.asarray(users, dtype=np.int64))
        return np.clip(scores[np.arange(len(users)), np.asarray(items)], 0.0, 1.0)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._score_with_tiebreak(users)[0]

    def recommend(self, users: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The lists of `score`'s ranking, built from each user's candidates alone: they
        rank by (probability, raw score), every other unseen item below them by
        popularity, so only as many popular items as a short list needs are looked at,
        never the whole catalogue (at 10M events that dense row per user was most of
        the fit). A chunk of users at a time. With `exclude_seen=False` the dense
        ranking is used, seen items at their popularity floor."""
        users = np.asarray(users, dtype=np.int64)
        step = _CHUNK_USERS
        dense = super().recommend
        parts = [
            self._ranked(users[i : i + step], k) if exclude_seen else dense(users[i : i + step], k, False)
            for i in range(0, users.size, step)
        ]
        if not parts:
            return np.zeros((0, max(k, 0)), np.int64), np.zeros((0, max(k, 0)), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def rank_history(
        self, user: int, items: np.ndarray, events: list[str], recency_days: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One user's candidates with live events folded in (`candidates.history_pairs`:
        generators that can score from the new history, category affinity with the new
        items, a known user's event counts and `recency_days`, the days since their
        newest event), ranked by (probability, raw score, item): items, calibrated
        probabilities, raw scores. A visitor the model never met (user 0) with events
        is ranked from those events alone."""
        from recsys_cli.models.candidates import history_pairs

        assert self.tables is not None
        seen = self.seen[user].indices.astype(np.int64) if user > 0 and self.seen is not None else None
        pairs = history_pairs(
            self.generators,
            self.tables,
            user,
            np.asarray(items, np.int64),
            list(events),
            self.params["n_candidates"],
            seen,
            recency_days,
        )
        raw = self._raw(pairs)
        probability = apply_calibration(self.params["calibration"], self.calibration, raw)
        order = np.lexsort((pairs.items, -raw, -probability))
        return pairs.items[order], probability[order], raw[order]

    def _ranked(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.tables is not None and self.popularity is not None and self.items is not None
        n_items = len(self.items)
        k = min(k, n_items - 1)
        known = np.flatnonzero(users > 0)
        pairs = candidate_pairs(self.generators, self.tables, users[known], self.params["n_candidates"])
        raw = self._raw(pairs)
        rows = known[pairs.rows]
        probability = apply_calibration(self.params["calibration"], self.calibration, raw).astype(np.float32)
        # Below every candidate: the rest by popularity (the unknown user's whole list).
        floor = (self.popularity / max(float(self.popularity.max()), 1.0) - 2.0).astype(np.float32)
        seen = retrieval.seen_rows(self, users)
        taken = np.bincount(rows, minlength=users.size)
        depth = np.maximum(k - np.where(users > 0, taken, 0), 0) + np.diff(seen.indptr) + taken
        fill_rows, fill_items = retrieval.heads(retrieval.item_order(self, "popularity", self.popularity), depth, None)
        fill_rows, fill_items = retrieval.without(fill_rows, fill_items, seen, rows, pairs.items, n_items)
        # The unknown user's list reports popularity counts, as `score` does.
        fill_scores = np.where(users[fill_rows] > 0, floor[fill_items], self.popularity[fill_items])
        return retrieval.pack(
            np.concatenate([rows, fill_rows]),
            np.concatenate([pairs.items, fill_items]),
            np.concatenate([probability, fill_scores]),
            users.size,
            k,
            np.concatenate([raw, np.full(fill_items.size, -np.inf)]),
        )

    def _score_with_tiebreak(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates get their calibrated probability; every other item stays below
        all of them, ordered by popularity. Calibration keeps the raw order but not
        every distinction (an isotonic step gives a whole range of raw scores one
        probability, and float32 merges more), so the raw score is the tie key:
        candidates rank by (probability, raw score), the raw order."""
        assert self.tables is not None and self.popularity is not None
        floor = self.popularity / max(float(self.popularity.max()), 1.0) - 2.0
        scores = np.tile(floor.astype(np.float32), (users.size, 1))
        tiebreak = np.full(scores.shape, -np.inf)
        # A chunk of users at a time: their candidate pairs and features are the
        # memory here (hundreds per user), not the two score matrices.
        for start in range(0, users.size, _CHUNK_USERS):
            pairs = candidate_pairs(
                self.generators, self.tables, users[start : start + _CHUNK_USERS], self.params["n_candidates"]
            )
            raw = self._raw(pairs)
            rows = pairs.rows + start
            scores[rows, pairs.items] = apply_calibration(self.params["calibration"], self.calibration, raw)
            tiebreak[rows, pairs.items] = raw
        return scores, tiebreak

    # ---- persistence ----------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """The shared weights file, plus each LightGBM model in LightGBM's own text
        format (`lightgbm_<i>.txt`): a file LightGBM, a reviewer or another runtime
        reads as it is, hashed by the run's and the package's manifests like the
        weights, instead of its bytes as a uint8 tensor inside the safetensors file."""
        super().save(folder)
        for i, (booster, _) in enumerate(self.boosters):
            (folder / BOOSTER_FILE.format(i)).write_text(booster.model_to_string())

    def _load_files(self, folder: Path) -> None:
        self._folder = folder

    def _state(self) -> dict[str, np.ndarray]:
        assert self.tables is not None
        state = {
            "calibration": self.calibration,
            "tables.user_cat": self.tables.users.categorical,
            "tables.user_num": self.tables.users.numeric,
            "tables.item_cat": self.tables.items.categorical,
            "tables.item_num": self.tables.items.numeric,
            # Column names, so a loaded model still names its features (`feature_names`).
            "tables.user_names": _names_tensor(self.tables.users.names),
            "tables.item_names": _names_tensor(self.tables.items.names),
            "tables.affinity": self.tables.affinity,
            "tables.item_category": self.tables.item_category,
            "tables.cardinalities": np.asarray(self.tables.cardinalities(len(self.items or ())), np.int64),
            "best_epoch": np.asarray([self.best_epoch or 0], np.int64),
        }
        if self.tables.user_live.shape[0]:
            state["tables.user_live"] = self.tables.user_live
        if self.network is not None:
            state |= {f"dcn.{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        if self.boosters:  # the models themselves are LightGBM text files beside the weights (`save`)
            state["lightgbm_trees"] = np.asarray([trees for _, trees in self.boosters], np.int64)
        for name, model in self.generators.items():
            state |= {f"gen.{name}.{k}": v for k, v in model._state().items()}
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        """Every table is checked against the vocabularies (and the categorical codes
        against their embedding tables) before a network or booster is built on it."""
        assert self.items is not None
        tables, _ = _tables_from_state(state, len(self.users or ()), len(self.items))
        self._set_tables(tables)
        self.calibration = _calibration_from_state(state, self.params["calibration"])
        self.best_epoch = int(tensor(state, "best_epoch", (1,), "iu")[0]) or None
        # The learner's columns: three per generator fitted, the category affinity, the
        # side tables' numbers, then the categoricals, less the feature groups ablated.
        cards = self._cardinalities()
        n_numeric = 3 * len(self._generator_specs()) + 1 + tables.items.numeric.shape[1] + tables.users.numeric.shape[1]
        n_numeric = n_numeric if self._kept is None else self._kept[0].size
        if self.params["backend"] == "dcn":
            tensor(state, "dcn.numeric_mean", (n_numeric,), "f")
            self.network = self._network(cards, n_numeric)
            self.network.load_state_dict({k[4:]: torch.as_tensor(v) for k, v in state.items() if k.startswith("dcn.")})
            self.network.eval()
        else:
            self.boosters = _boosters_from_state(state, self.best_epoch, n_numeric + len(cards), self._folder)
        self.generators = {}
        for name, spec in self._generator_specs().items():
            model = _instantiate(spec, f"{META}: params.generators.{name}")
            model.users, model.items, model.popularity, model.seen = self.users, self.items, self.popularity, self.seen
            prefix = f"gen.{name}."
            model._load_state({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
            self.generators[name] = model


# ---- helpers ----------------------------------------------------------------------------


def _instantiate(spec: Mapping[str, Any], where: str = "config: model.generators") -> Recommender:
    """A candidate generator from its `{_target_, **params}` spec (`classes.build_nested`)."""
    model: Recommender = build_nested(spec, where)
    return model


def _tables_from_state(state: dict[str, np.ndarray], n_users: int, n_items: int) -> tuple[SideTables, tuple[int, ...]]:
    """The side tables and the DCN's embedding sizes (item id, item columns, user columns)."""
    n_item_cat = tensor(state, "tables.item_cat", (n_items, None), "iu").shape[1]
    n_user_cat = tensor(state, "tables.user_cat", (n_users, None), "iu").shape[1]
    cards = tuple(int(c) for c in tensor(state, "tables.cardinalities", (1 + n_item_cat + n_user_cat,), "iu"))
    if cards[0] != n_items or min(cards) < 1:
        raise StateError("tables.cardinalities does not match the item vocabulary")
    item_cards, user_cards = cards[1 : 1 + n_item_cat], cards[1 + n_item_cat :]
    affinity = tensor(state, "tables.affinity", (n_users, None), "f")
    user_num = tensor(state, "tables.user_num", (n_users, None), "f")
    item_num = tensor(state, "tables.item_num", (n_items, None), "f")
    tables = SideTables(
        SideFeatures(
            check_codes(state, "tables.user_cat", n_users, user_cards),
            user_cards,
            user_num,
            _names_from_state(state, "tables.user_names", len(user_cards) + user_num.shape[1]),
        ),
        SideFeatures(
            check_codes(state, "tables.item_cat", n_items, item_cards),
            item_cards,
            item_num,
            _names_from_state(state, "tables.item_names", len(item_cards) + item_num.shape[1]),
        ),
        affinity,
        check_range(state, "tables.item_category", (n_items,), 0, affinity.shape[1]),
        _user_live_from_state(state, user_num.shape[1]),
    )
    return tables, cards


def _names_tensor(names: Sequence[str]) -> np.ndarray:
    return np.frombuffer(json.dumps(list(names)).encode(), dtype=np.uint8).copy()


def _names_from_state(state: dict[str, np.ndarray], key: str, n_columns: int) -> tuple[str, ...]:
    """A side table's column names; none for a model saved before they were kept
    (its features are then named by position, `ranker_features.side_names`)."""
    if key not in state:
        return ()
    try:
        names = json.loads(tensor(state, key, (None,), "u").tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        raise StateError(f"{key}: not a JSON list of column names") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) != n_columns:
        raise StateError(f"{key}: give the table's {n_columns} column names")
    return tuple(names)


def _user_live_from_state(state: dict[str, np.ndarray], n_numeric: int) -> np.ndarray:
    """How live events move the user table (`live_features.py`); none for a model
    saved before it was kept, whose user features then stay as at the cutoff."""
    from recsys_cli.data.schema import EVENT_TYPES

    if "tables.user_live" not in state or state["tables.user_live"].shape[0] == 0:
        return np.zeros((0, n_numeric))
    live = tensor(state, "tables.user_live", (len(EVENT_TYPES) + 3, n_numeric), "f")
    if not np.isfinite(live).all() or (live[-1] <= 0).any():
        raise StateError("tables.user_live: its scale must be finite and its spread positive")
    return live


def _calibration_from_state(state: dict[str, np.ndarray], method: str) -> np.ndarray:
    params = tensor(state, "calibration", (None,), "f")
    if (method in ("platt", "temperature") and params.size < 2) or (method == "isotonic" and params.size % 2):
        raise StateError(f"calibration holds {params.size} values, which a {method} map cannot use")
    return params


def _boosters_from_state(
    state: dict[str, np.ndarray], best_epoch: int | None, n_features: int, folder: Path | None
) -> list[tuple[Any, int]]:
    """The LightGBM boosters with the trees each predicts with, each reading `n_features`
    columns: from `lightgbm_<i>.txt` in `folder`, or, for folders saved before those
    files, from the uint8 tensors `lightgbm.<i>` (or `lightgbm`, before ensembles:
    one booster predicting with best_epoch trees)."""
    if "lightgbm" in state:
        texts, trees = [_tensor_text(state, "lightgbm")], [best_epoch or 0]
    else:
        trees = [int(t) for t in tensor(state, "lightgbm_trees", (None,), "iu")]
        texts = [
            _tensor_text(state, f"lightgbm.{i}") if f"lightgbm.{i}" in state else _file_text(folder, i)
            for i in range(len(trees))
        ]
    boosters = []
    for i, ((text, where), t) in enumerate(zip(texts, trees, strict=True)):
        booster = _booster(text, i, where)
        if booster.num_feature() != n_features:
            raise StateError(
                f"LightGBM model {i} reads {booster.num_feature()} features; the candidates have {n_features}"
            )
        if not 0 <= t <= booster.num_trees():
            raise StateError(f"lightgbm_trees asks LightGBM model {i} for {t} trees; it has {booster.num_trees()}")
        boosters.append((booster, t))
    return boosters


def _tensor_text(state: dict[str, np.ndarray], key: str) -> tuple[str | None, Path | None]:
    try:
        return tensor(state, key, (None,), "u").tobytes().decode(), None
    except UnicodeDecodeError:
        return None, None


def _file_text(folder: Path | None, i: int) -> tuple[str | None, Path | None]:
    """The text of LightGBM model i; a missing or undecodable file is one line naming it."""
    if folder is None:
        raise StateError(f"no LightGBM model {i}: neither a tensor lightgbm.{i} nor a folder to read it from")
    path = folder / BOOSTER_FILE.format(i)
    try:
        return path.read_text(), path
    except FileNotFoundError:
        raise IntegrityError(f"{path}: missing; the model folder is incomplete, retrain the run") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: not readable ({type(exc).__name__}); retrain the run") from None


def _booster(text: str | None, i: int, path: Path | None) -> Any:
    """A LightGBM booster from its text model; an unreadable one names its file (or tensor)."""
    import lightgbm as lgb

    try:
        if text is None:
            raise ValueError("not text")
        return lgb.Booster(model_str=text)
    except (lgb.basic.LightGBMError, ValueError) as exc:
        if path is not None:
            raise IntegrityError(
                f"{path}: not a readable LightGBM model ({type(exc).__name__}); retrain the run"
            ) from None
        raise StateError(f"LightGBM model {i} is not readable ({type(exc).__name__})") from None


def _holdout_mask(users: np.ndarray, share: float, seed: int) -> np.ndarray:
    """The same users are held out in every window: a hash of the user index."""
    mixed = (users.astype(np.uint64) * np.uint64(2654435761) + np.uint64(seed)) % np.uint64(1000)
    return mixed < np.uint64(int(share * 1000))


def _subset(pairs: Pairs, group: np.ndarray, y: np.ndarray, weight: np.ndarray, mask: np.ndarray) -> Examples:
    return Pairs(*(getattr(pairs, f)[mask] for f in FIELDS)), group[mask], y[mask], weight[mask]


def _labels_only(examples: Examples, mask: np.ndarray) -> Examples:
    """The examples under `mask` with their pairs' rows, users and items but no
    feature columns: what calibration reads, at a fraction of the memory."""
    pairs, n = examples[0], int(np.count_nonzero(mask))
    light = Pairs(
        pairs.rows[mask],
        pairs.users[mask],
        pairs.items[mask],
        np.zeros((n, 0), pairs.numeric.dtype),
        np.zeros((n, 0), pairs.categorical.dtype),
    )
    return light, examples[1][mask], examples[2][mask], examples[3][mask]


def _stack(parts: list[Examples]) -> Examples:
    """The windows' examples as one set. Each field's per-window arrays are released
    as soon as they are joined, so the stack never needs twice the pairs' memory."""
    stacked = []
    for f in FIELDS:
        stacked.append(np.concatenate([getattr(p[0], f) for p in parts]))
        for p in parts:
            setattr(p[0], f, stacked[-1][:0])
    pairs = Pairs(*stacked)
    return pairs, *(np.concatenate([p[i] for p in parts]) for i in (1, 2, 3))  # type: ignore[return-value]


def _part(weights: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    return None if weights is None else weights[mask]


def _ece(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray | None) -> float:
    return expected_calibration_error(probs, labels) if weights is None else weighted_ece(probs, labels, weights)


def _tensors(pairs: Pairs, group: np.ndarray, y: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.as_tensor(pairs.categorical),
        torch.as_tensor(pairs.numeric),
        torch.as_tensor(y, dtype=torch.float32),
        torch.as_tensor(group),
    )


def _minmax(x: np.ndarray) -> np.ndarray:
    span = float(x.max() - x.min()) if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.full_like(x, 0.5)
