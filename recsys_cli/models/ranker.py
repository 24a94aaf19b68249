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
"""

from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from recsys_cli.errors import ConfigError
from recsys_cli.evaluation.calibration import expected_calibration_error
from recsys_cli.models.base import Recommender
from recsys_cli.models.calibration import Method, apply_calibration, fit_calibration
from recsys_cli.models.candidates import FIELDS, Pairs, SideTables, candidate_pairs
from recsys_cli.models.data import LabelledWindow, TrainData
from recsys_cli.models.lightning import fit_module, shuffled_batches
from recsys_cli.models.side_features import SideFeatures
from recsys_cli.models.validation import Targets

Backend = Literal["dcn", "lightgbm"]
MONITOR = "val/ndcg@10"
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "objective": "lambdarank",
    "n_estimators": 500,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


class DCNModule(L.LightningModule):
    """Embeddings of every categorical plus the numeric features form x0; cross
    layers x_{l+1} = x0 * (W x_l + b) + x_l model feature interactions explicitly
    (demographics x category, popularity x affinity) beside a plain MLP."""

    numeric_mean: torch.Tensor
    numeric_std: torch.Tensor

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        embedding_dim: int = 16,
        cross_layers: int = 3,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
    ) -> None:
        super().__init__()
        self.lr, self.weight_decay = lr, weight_decay
        self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(c, embedding_dim) for c in cardinalities)
        width = embedding_dim * len(cardinalities) + n_numeric
        self.cross = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(cross_layers))
        layers: list[torch.nn.Module] = []
        previous = width
        for size in hidden:
            layers += [torch.nn.Linear(previous, size), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
            previous = size
        self.deep = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(width + previous, 1)
        # Generator scores and counts come on very different scales; the training
        # pairs' mean and spread are kept with the weights.
        self.register_buffer("numeric_mean", torch.zeros(n_numeric))
        self.register_buffer("numeric_std", torch.ones(n_numeric))
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        numeric = (numeric - self.numeric_mean) / self.numeric_std
        x0 = torch.cat([*(e(categorical[:, j]) for j, e in enumerate(self.embeddings)), numeric], dim=-1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.head(torch.cat([x, self.deep(x0)], dim=-1)).squeeze(-1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        categorical, numeric, label, _ = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self(categorical, numeric), label)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        categorical, numeric, label, group = batch
        self._val.append((self(categorical, numeric).detach(), label, group))

    def on_validation_epoch_end(self) -> None:
        if self._val:
            logits, label, group = (torch.cat(t).cpu().numpy() for t in zip(*self._val, strict=True))
            self.log(MONITOR, float(grouped_ndcg(group, logits, label, 10)), prog_bar=True)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(torch.as_tensor(logits), torch.as_tensor(label))
            self.log("val/loss", loss)
        self._val = []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def grouped_ndcg(group: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean NDCG@k of each group's list ranked by `scores`, over groups with a positive."""
    group, scores, labels = np.asarray(group), np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    if group.size == 0:
        return 0.0

    def dcg(order: np.ndarray) -> np.ndarray:
        g = group[order]
        starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
        position = np.arange(g.size) - np.repeat(starts, np.diff(np.r_[starts, g.size]))
        gain = np.where(position < k, labels[order] / np.log2(position + 2), 0.0)
        return np.bincount(np.searchsorted(np.unique(g), g), weights=gain)

    actual = dcg(np.lexsort((-scores, group)))
    ideal = dcg(np.lexsort((-labels, group)))
    has = ideal > 0
    return float((actual[has] / ideal[has]).mean()) if has.any() else 0.0


class TwoStageRanker(Recommender):
    def __init__(
        self,
        generators: Mapping[str, Mapping[str, Any]] | None = None,
        n_candidates: int = 100,
        backend: Backend = "dcn",
        calibration: Method = "platt",
        holdout: float = 0.2,
        max_users_per_window: int = 20000,
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
        trainer: Mapping[str, Any] | None = None,
        seed: int = 42,
    ) -> None:
        if backend not in ("dcn", "lightgbm"):
            raise ConfigError(f"ranker backend must be dcn or lightgbm, got {backend!r}")
        lightgbm, lightgbm_grid = _plain(lightgbm or {}), _plain(lightgbm_grid or {})
        check_lightgbm(lightgbm, lightgbm_grid, backend)
        generators = {k: _plain(v) for k, v in (generators or {}).items()}
        if not generators:
            raise ConfigError("ranker: name at least one candidate generator under model.generators")
        super().__init__(
            generators=generators,
            n_candidates=n_candidates,
            backend=backend,
            calibration=calibration,
            holdout=holdout,
            max_users_per_window=max_users_per_window,
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
            trainer=dict(trainer or {}),
            seed=seed,
        )
        self.generators: dict[str, Recommender] = {}
        self.tables: SideTables | None = None
        self.network: DCNModule | None = None
        self.booster: Any = None
        self.calibration = np.zeros(0)
        self.best_score: float | None = None
        self.best_epoch: int | None = None

    # ---- training -------------------------------------------------------------------

    def _fit(self, data: TrainData, validation: Targets | None, workdir: Path | None) -> None:
        if not data.windows:
            raise ConfigError(
                "the ranker learns from labelled earlier windows: build features with "
                "`recsys features features=ranker` (or set features.ranker_windows) and train with the same overrides"
            )
        L.seed_everything(self.params["seed"], workers=True, verbose=False)
        self.diagnostics = {}
        self.tables = SideTables.of(data)
        train, held = self._examples(data.windows, self.tables)
        if self.params["backend"] == "dcn":
            raw = self._fit_dcn(train, held, workdir)
        else:
            raw = self._fit_lightgbm(train, held)
        self.calibration, calibration = self._calibrate(raw, held[1], held[2])
        self.diagnostics |= calibration
        self.generators = self._fit_generators(data)

    def _calibrate(self, raw: np.ndarray, group: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """Fit the calibration map on the held-out users. Its effect is measured on
        half of them with a map fitted on the other half, so the reported errors
        are out of sample; the map kept is fitted on all of them."""
        method: Method = self.params["calibration"]
        first = group % 2 == 0
        plain = apply_calibration("none", np.zeros(0), raw) if self.params["backend"] == "dcn" else _minmax(raw)
        diagnostics = {
            "holdout_pairs": float(labels.size),
            "holdout_positive_rate": float(labels.mean()) if labels.size else 0.0,
        }
        if first.any() and (~first).any():
            half = fit_calibration(method, raw[first], labels[first])
            diagnostics |= {
                "holdout_ece_raw": expected_calibration_error(plain[~first], labels[~first]),
                "holdout_ece_calibrated": expected_calibration_error(
                    apply_calibration(method, half, raw[~first]), labels[~first]
                ),
            }
        return fit_calibration(method, raw, labels), diagnostics

    def _fit_generators(self, data: TrainData) -> dict[str, Recommender]:
        return {name: _instantiate(spec).fit(data) for name, spec in self.params["generators"].items()}

    def _examples(
        self, windows: list[LabelledWindow], like: SideTables
    ) -> tuple[tuple[Pairs, np.ndarray, np.ndarray], tuple[Pairs, np.ndarray, np.ndarray]]:
        """Training and held-out (pairs, group, label) over all windows; a user is held
        out in every window or none, so early stopping sees new people."""
        rng = np.random.default_rng(self.params["seed"])
        train, held = [], []
        for w, window in enumerate(windows):
            labels = window.label_matrix()
            users = np.flatnonzero(np.diff(labels.indptr) > 0)
            users = users[users > 0]
            if users.size == 0:  # an early window of a short history: nobody to learn from
                continue
            if users.size > self.params["max_users_per_window"]:
                users = np.sort(rng.choice(users, self.params["max_users_per_window"], replace=False))
            generators = self._fit_generators(window.data)
            pairs = candidate_pairs(generators, SideTables.of(window.data, like), users, self.params["n_candidates"])
            y = np.asarray(labels[pairs.users, pairs.items]).ravel().astype(np.float32)
            group = pairs.users.astype(np.int64) + w * len(window.data.users)
            out = _holdout_mask(pairs.users, self.params["holdout"], self.params["seed"])
            train.append(_subset(pairs, group, y, ~out))
            held.append(_subset(pairs, group, y, out))
        if not train:
            raise ConfigError("no labelled window has a known user with a positive: the ranker has nothing to learn")
        return _stack(train), _stack(held)

    def _fit_dcn(
        self,
        train: tuple[Pairs, np.ndarray, np.ndarray],
        held: tuple[Pairs, np.ndarray, np.ndarray],
        workdir: Path | None,
    ) -> np.ndarray:
        assert self.tables is not None
        p = self.params
        self.network = self._network(self.tables.cardinalities(len(self.items or ())), train[0].numeric.shape[1])
        numeric = train[0].numeric.astype(np.float64)
        self.network.numeric_mean.copy_(torch.as_tensor(numeric.mean(axis=0) if numeric.size else 0.0))
        std = numeric.std(axis=0) if numeric.size else np.ones(numeric.shape[1])
        self.network.numeric_std.copy_(torch.as_tensor(np.where(std > 1e-9, std, 1.0)))
        loader = shuffled_batches(_tensors(*train), p["batch_size"])
        val_loader = DataLoader(_tensors(*held), batch_size=8192) if held[2].size else None
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

    def _fit_lightgbm(
        self, train: tuple[Pairs, np.ndarray, np.ndarray], held: tuple[Pairs, np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """One LightGBM fit per point of `lightgbm_grid` (one fit when it is empty) on
        the same examples; the point whose held-out users rank best is kept (the
        first of equals, in declaration order)."""
        base = LIGHTGBM_DEFAULTS | {"random_state": self.params["seed"], "n_jobs": lightgbm_threads()}
        base |= self.params["lightgbm"]
        x_train, x_held = _matrix(train[0]), _matrix(held[0])
        points = grid_points(self.params["lightgbm_grid"])
        best: tuple[float, int, Any, int, np.ndarray] | None = None
        for index, point in enumerate(points):
            booster, iterations = self._lightgbm_point(base | point, (x_train, *train), (x_held, *held))
            raw = np.asarray(booster.predict(x_held, num_iteration=iterations), dtype=np.float64)
            score = grouped_ndcg(held[1], raw, held[2], 10) if held[2].size else 0.0
            if len(points) > 1:
                self.diagnostics |= _point_diagnostics(point, score, iterations)
            if best is None or score > best[0]:
                best = (score, index, booster, iterations, raw)
        assert best is not None
        score, index, self.booster, self.best_epoch, raw = best
        if len(points) > 1:
            self.diagnostics |= _chosen_diagnostics(self.params["lightgbm_grid"], points[index], index)
        if held[2].size:
            self.best_score = score
        return raw

    def _lightgbm_point(
        self,
        options: Mapping[str, Any],
        train: tuple[np.ndarray, Pairs, np.ndarray, np.ndarray],
        held: tuple[np.ndarray, Pairs, np.ndarray, np.ndarray],
    ) -> tuple[Any, int]:
        """A fitted booster and the number of trees to predict with."""
        import lightgbm as lgb

        ranker = lgb.LGBMRanker(**options)
        fit: dict[str, Any] = {"group": _group_sizes(train[2]), "categorical_feature": _categorical_columns(train[1])}
        if held[3].size and self.params["patience"] > 0:
            fit |= {
                "eval_X": held[0],
                "eval_y": held[3],
                "eval_group": [_group_sizes(held[2])],
                "eval_at": [10],
                "callbacks": [lgb.early_stopping(10 * self.params["patience"], verbose=False)],
            }
        ranker.fit(train[0], train[3], **fit)
        return ranker.booster_, int(ranker.best_iteration_ or options["n_estimators"])

    # ---- scoring --------------------------------------------------------------------

    def _raw(self, pairs: Pairs) -> np.ndarray:
        if self.params["backend"] == "dcn":
            return self._logits(pairs)
        return np.asarray(self.booster.predict(_matrix(pairs), num_iteration=self.best_epoch), dtype=np.float64)

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
        """Candidates get their calibrated probability; every other item stays below
        all of them, ordered by popularity."""
        assert self.tables is not None and self.popularity is not None
        pairs = candidate_pairs(self.generators, self.tables, users, self.params["n_candidates"])
        probability = apply_calibration(self.params["calibration"], self.calibration, self._raw(pairs))
        floor = self.popularity / max(float(self.popularity.max()), 1.0) - 2.0
        scores = np.tile(floor.astype(np.float32), (users.size, 1))
        scores[pairs.rows, pairs.items] = probability
        return scores

    # ---- persistence ----------------------------------------------------------------

    def _state(self) -> dict[str, np.ndarray]:
        assert self.tables is not None
        state = {
            "calibration": self.calibration,
            "tables.user_cat": self.tables.users.categorical,
            "tables.user_num": self.tables.users.numeric,
            "tables.item_cat": self.tables.items.categorical,
            "tables.item_num": self.tables.items.numeric,
            "tables.affinity": self.tables.affinity,
            "tables.item_category": self.tables.item_category,
            "tables.cardinalities": np.asarray(self.tables.cardinalities(len(self.items or ())), np.int64),
            "best_epoch": np.asarray([self.best_epoch or 0], np.int64),
        }
        if self.network is not None:
            state |= {f"dcn.{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        if self.booster is not None:
            state["lightgbm"] = np.frombuffer(self.booster.model_to_string().encode(), dtype=np.uint8).copy()
        for name, model in self.generators.items():
            state |= {f"gen.{name}.{k}": v for k, v in model._state().items()}
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        cards = tuple(int(c) for c in state["tables.cardinalities"])
        n_item_cat = state["tables.item_cat"].shape[1]
        self.tables = SideTables(
            SideFeatures(state["tables.user_cat"], cards[1 + n_item_cat :], state["tables.user_num"], ()),
            SideFeatures(state["tables.item_cat"], cards[1 : 1 + n_item_cat], state["tables.item_num"], ()),
            state["tables.affinity"],
            state["tables.item_category"],
        )
        self.calibration = state["calibration"]
        self.best_epoch = int(state["best_epoch"][0]) or None
        if self.params["backend"] == "dcn":
            self.network = self._network(cards, state["dcn.numeric_mean"].shape[0])
            self.network.load_state_dict({k[4:]: torch.as_tensor(v) for k, v in state.items() if k.startswith("dcn.")})
            self.network.eval()
        else:
            import lightgbm as lgb

            self.booster = lgb.Booster(model_str=state["lightgbm"].tobytes().decode())
        self.generators = {}
        for name, spec in self.params["generators"].items():
            model = _instantiate(spec)
            model.users, model.items, model.popularity, model.seen = self.users, self.items, self.popularity, self.seen
            prefix = f"gen.{name}."
            model._load_state({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
            self.generators[name] = model


# ---- helpers ----------------------------------------------------------------------------


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a {parameter: values} grid, the first key varying
    slowest (declaration order); one empty point for an empty grid."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def check_lightgbm(options: Mapping[str, Any], grid: Mapping[str, Any], backend: str) -> None:
    """Fail at construction, naming the key, rather than minutes into a fit:
    LightGBM itself only warns about a parameter it does not know."""
    if grid and backend != "lightgbm":
        raise ConfigError(f"model.lightgbm_grid applies to backend=lightgbm only, not {backend!r}")
    if not options and not grid:
        return
    known = lightgbm_parameters()
    for where, keys in (("model.lightgbm", options), ("model.lightgbm_grid", grid)):
        unknown = sorted(k for k in keys if k not in known)
        if unknown:
            raise ConfigError(f"{where}: unknown LightGBM parameter(s) {', '.join(unknown)}")
    for key, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"model.lightgbm_grid.{key}: give a non-empty list of values, got {values!r}")
        if any(not isinstance(v, bool | int | float | str) for v in values):
            raise ConfigError(f"model.lightgbm_grid.{key}: values must be numbers or strings, got {list(values)!r}")


def lightgbm_parameters() -> frozenset[str]:
    """Names LightGBM accepts: the scikit-learn wrapper's and every core parameter
    with its aliases (read from the library, so a new version's names count)."""
    import lightgbm as lgb

    names = set(lgb.LGBMRanker().get_params())
    aliases = getattr(getattr(lgb.basic, "_ConfigAliases", None), "_get_all_param_aliases", None)
    if aliases is not None:
        for name, others in aliases().items():
            names |= {name, *others}
    return frozenset(names)


def lightgbm_threads() -> int | None:
    """OMP_NUM_THREADS when set, else None (LightGBM's choice: every physical core).

    LightGBM's scikit-learn wrapper ignores the variable. On a busy 2-core machine
    its two OpenMP threads, spinning beside other work, made a MovieLens fit 6x
    slower and a 300-row fit 300x slower than one thread, for bit-identical trees
    (deterministic=true)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _point_label(point: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in point.items())


def _point_diagnostics(point: Mapping[str, Any], score: float, iterations: int) -> dict[str, float]:
    label = _point_label(point)
    return {f"lightgbm_grid/{label}/holdout_ndcg@10": score, f"lightgbm_grid/{label}/trees": float(iterations)}


def _chosen_diagnostics(grid: Mapping[str, Sequence[Any]], point: Mapping[str, Any], index: int) -> dict[str, float]:
    """The chosen point as numbers: its position in declaration order, and each
    value (a string value by its position in that parameter's list)."""
    out = {"lightgbm_grid/chosen_point": float(index)}
    for key, value in point.items():
        number = float(list(grid[key]).index(value)) if isinstance(value, str) else float(value)
        out[f"lightgbm_grid/chosen/{key}"] = number
    return out


def _plain(spec: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(spec, DictConfig):
        return dict(OmegaConf.to_container(spec, resolve=True))  # type: ignore[arg-type]
    return dict(spec)


def _instantiate(spec: Mapping[str, Any]) -> Recommender:
    module, _, name = str(spec["_target_"]).rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    model: Recommender = cls(**{k: v for k, v in spec.items() if k != "_target_"})
    return model


def _holdout_mask(users: np.ndarray, share: float, seed: int) -> np.ndarray:
    """The same users are held out in every window: a hash of the user index."""
    mixed = (users.astype(np.uint64) * np.uint64(2654435761) + np.uint64(seed)) % np.uint64(1000)
    return mixed < np.uint64(int(share * 1000))


def _subset(pairs: Pairs, group: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[Pairs, np.ndarray, np.ndarray]:
    return Pairs(*(getattr(pairs, f)[mask] for f in FIELDS)), group[mask], y[mask]


def _stack(parts: list[tuple[Pairs, np.ndarray, np.ndarray]]) -> tuple[Pairs, np.ndarray, np.ndarray]:
    pairs = Pairs(*(np.concatenate([getattr(p[0], f) for p in parts]) for f in FIELDS))
    return pairs, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def _tensors(pairs: Pairs, group: np.ndarray, y: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.as_tensor(pairs.categorical),
        torch.as_tensor(pairs.numeric),
        torch.as_tensor(y, dtype=torch.float32),
        torch.as_tensor(group),
    )


def _matrix(pairs: Pairs) -> np.ndarray:
    return np.concatenate([pairs.numeric.astype(np.float64), pairs.categorical.astype(np.float64)], axis=1)


def _categorical_columns(pairs: Pairs) -> list[int]:
    """LightGBM treats these columns as categories; the item id is left numeric, as a
    category with thousands of levels over few rows overfits."""
    start = pairs.numeric.shape[1]
    return list(range(start + 1, start + pairs.categorical.shape[1]))


def _group_sizes(group: np.ndarray) -> np.ndarray:
    """Rows are grouped by (window, user) in order; LightGBM wants run lengths."""
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    return np.diff(np.r_[starts, group.size])


def _minmax(x: np.ndarray) -> np.ndarray:
    span = float(x.max() - x.min()) if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.full_like(x, 0.5)
