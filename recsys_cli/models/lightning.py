"""The one training loop for every neural model, written once.

`RecModule` is a LightningModule that implements training and validation steps
and optimisers; a model supplies `loss(batch)`, `score_users(users)` and its
training dataset. Validation ranks all items for the validation users on the
device, masks what they already saw and logs `val/ndcg@10`, which early stopping
and checkpointing follow. `NeuralRecommender` wraps a module in the common
`Recommender` interface.

Under DDP (`trainer=ddp`) every rank trains on its share of each batch and scores
its share of the validation users (models/sharding.py); the validation NDCG is the
mean over all of them, the same on every rank, so early stopping and checkpointing
decide alike everywhere, and the best checkpoint (written by rank 0) is restored on
every rank.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from abc import abstractmethod
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as L
import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from recsys_cli.errors import ConfigError
from recsys_cli.evaluation.metrics import per_user
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.sharding import ShardedBatches
from recsys_cli.models.validation import Targets

log = logging.getLogger(__name__)
MONITOR_K = 10
MONITOR = f"val/ndcg@{MONITOR_K}"
# Extra Lightning callbacks for every fit in the current context: a sweep's pruning
# callback reaches the one training loop this way, with no second training path.
FIT_CALLBACKS: ContextVar[tuple[L.Callback, ...]] = ContextVar("fit_callbacks", default=())
# Loggers for every fit in the current context: the run's experiment tracker
# (logger=mlflow, recsys_cli/tracking/) reaches the one training loop this way.
FIT_LOGGERS: ContextVar[tuple[Any, ...]] = ContextVar("fit_loggers", default=())


class RecModule(L.LightningModule):
    def __init__(self, n_users: int, n_items: int, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.n_users, self.n_items, self.lr, self.weight_decay = n_users, n_items, lr, weight_decay
        self.seen: sp.csr_matrix | None = None
        self.truth: sp.csr_matrix | None = None
        self._ndcg: list[torch.Tensor] = []

    @abstractmethod
    def loss(self, batch: Any) -> torch.Tensor: ...

    @abstractmethod
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) scores."""

    def item_vectors(self) -> torch.Tensor | None:
        """(n_items, d) item embeddings that `score_users` takes inner products with;
        None where the scores are not such a product."""
        return None

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), d): `score_users(users) == user_vectors(users) @ item_vectors().T`."""
        raise NotImplementedError(f"{type(self).__name__} has no user vectors: its scores are not an inner product")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        # sync_dist: the epoch's loss over every rank's batches (a no-op in one process)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        users, rows = batch
        scores = self.score_users(users).float()
        scores[:, 0] = -torch.inf
        assert self.seen is not None and self.truth is not None
        r, c = self.seen[users.cpu().numpy()].nonzero()
        scores[torch.as_tensor(r, device=self.device), torch.as_tensor(c, device=self.device)] = -torch.inf
        top = scores.topk(MONITOR_K, dim=1).indices.cpu().numpy()
        ndcg = per_user(top, self.truth[rows.cpu().numpy()], MONITOR_K)["ndcg"]
        self._ndcg.append(torch.as_tensor(ndcg))

    def on_validation_epoch_end(self) -> None:
        values = torch.cat(self._ndcg) if self._ndcg else torch.zeros(0, dtype=torch.float64)
        self._ndcg = []
        mean = all_users_mean(self, values)
        if mean is not None:
            self.log(MONITOR, mean.float(), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def all_users_mean(module: L.LightningModule, values: torch.Tensor) -> torch.Tensor | None:
    """The mean of per-user `values` over every rank's users (each scored by one rank:
    `ShardedBatches`), summed and counted across ranks, so it is the metric over all
    of them and identical on every rank, not a mean of the ranks' means. None when no
    rank scored anyone."""
    totals = torch.stack([values.double().sum(), torch.tensor(float(values.numel()), dtype=torch.float64)])
    if module.trainer.world_size > 1:
        totals = module.trainer.strategy.reduce(totals.to(module.device), reduce_op="sum").cpu()
    return None if totals[1] == 0 else totals[0] / totals[1]


def shuffled_batches(dataset: Dataset[Any], batch_size: int, seed: int | None = None) -> DataLoader[Any]:
    """Mini-batches reshuffled each epoch; under DDP from `seed` (None: the global
    seed) and the epoch, this rank's share of each, `batch_size` being the global
    batch (`ShardedBatches`). In-memory tensors are sliced a batch at a time,
    several times faster than collating one example at a time."""
    return _batches(dataset, ShardedBatches(len(dataset), batch_size, seed=seed))  # type: ignore[arg-type]


def ordered_batches(dataset: Dataset[Any], batch_size: int) -> DataLoader[Any]:
    """Batches in order, this rank's share of each under DDP (validation)."""
    return _batches(dataset, ShardedBatches(len(dataset), batch_size, shuffle=False))  # type: ignore[arg-type]


def _batches(dataset: Dataset[Any], sampler: ShardedBatches) -> DataLoader[Any]:
    if not isinstance(dataset, TensorDataset):
        dataset = _Collated(dataset)
    return DataLoader(dataset, sampler=sampler, batch_size=None)


class _Collated(Dataset[Any]):
    """A dataset indexed by a list of indices at once, for the batch samplers."""

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: list[int]) -> Any:
        return default_collate([self.dataset[i] for i in index])


def fit_module(
    module: L.LightningModule,
    loader: DataLoader[Any],
    val_loader: DataLoader[Any] | None,
    monitor: str,
    mode: str,
    params: Mapping[str, Any],
    workdir: Path | None,
) -> Best | None:
    """The one Lightning fit: early stopping on `monitor` when there is validation,
    then the best checkpoint restored into `module`. Returns the epochs trained to
    the best checkpoint (what a refit without validation should train for), its
    score, and the wall time it took to get there."""
    import tempfile

    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    if workdir is None:  # checkpoints still need a home; never the current directory
        with tempfile.TemporaryDirectory(prefix="recsys-fit-") as tmp:
            return fit_module(module, loader, val_loader, monitor, mode, params, Path(tmp))
    # Lightning's start-up banner (accelerators found, tips) is noise in our output.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    callbacks: list[Any] = []
    checkpoint = ModelCheckpoint(
        dirpath=workdir / "checkpoints", monitor=monitor, mode=mode, save_top_k=1, filename="best"
    )
    clock = _EpochClock()
    if val_loader is not None:
        callbacks += [EarlyStopping(monitor, mode=mode, patience=params["patience"]), checkpoint, clock]
    # Our loaders shard themselves across DDP ranks (`ShardedBatches`); a validation
    # loader that does not is then scored whole on every rank, alike everywhere.
    options: dict[str, Any] = {
        "logger": False,
        "enable_model_summary": False,
        "deterministic": True,
        "use_distributed_sampler": False,
    }
    options |= trainer_options(params["trainer"])
    if FIT_LOGGERS.get():
        options["logger"] = list(FIT_LOGGERS.get())
    # A bar redrawn into a log file is noise: without a terminal (or with the bar
    # off) each epoch is one log line instead.
    options["enable_progress_bar"] = bool(options.get("enable_progress_bar", True)) and _terminal()
    logged = [] if options["enable_progress_bar"] else [EpochLog(monitor, mode)]
    if workdir is not None and options.get("logger") is not False:
        options.setdefault("default_root_dir", str(workdir))
    # The context's callbacks join the fit but never turn checkpointing on by themselves.
    extra = list(FIT_CALLBACKS.get())
    trainer = L.Trainer(callbacks=[*callbacks, *logged, *extra], enable_checkpointing=bool(callbacks), **options)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")  # inside Lightning itself
        warnings.filterwarnings("ignore", message=".*does not have many workers")  # in-memory tensors
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`")  # a refit has no validation, by design
        # The validation metric is already gathered over every rank (`all_users_mean`).
        warnings.filterwarnings("ignore", message=".*" + re.escape(f"self.log('{monitor}', ..., sync_dist=True)"))
        trainer.fit(module, loader, val_loader)
    best = None
    if callbacks and checkpoint.best_model_path:
        saved = _best_checkpoint(trainer, checkpoint.best_model_path)
        module.load_state_dict(saved["state_dict"])
        score = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None
        epochs = int(saved["epoch"]) + 1
        best = Best(epochs, score, clock.elapsed.get(epochs - 1, float("nan")), clock.cpu.get(epochs - 1, float("nan")))
    module.eval()
    return best


def _best_checkpoint(trainer: L.Trainer, path: str) -> dict[str, Any]:
    """The best checkpoint on every rank: rank 0 wrote it and reads it, and sends it
    to the others, whose node may not see rank 0's disk."""
    saved: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True) if trainer.is_global_zero else {}
    return trainer.strategy.broadcast(saved, src=0)


def trainer_options(trainer: Mapping[str, Any]) -> dict[str, Any]:
    """Trainer keywords with epoch counts as whole numbers: a command line's
    `trainer.max_epochs=3.0` (or a best_epoch read back from JSON) means 3, while
    Lightning itself stops on a bare assertion deep in its loop. `precision: auto`
    becomes the precision the accelerator in use suits (`auto_precision`)."""
    options = dict(trainer)
    if options.get("precision") == "auto":
        options["precision"] = auto_precision(str(options.get("accelerator", "auto")))
    for key in ("max_epochs", "min_epochs"):
        value = options.get(key)
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"trainer.{key} must be a whole number of epochs, got {value}")
            options[key] = int(value)
    return options


def auto_precision(accelerator: str) -> str:
    """Mixed precision where it pays, so one command suits both machines: bf16 on
    a CUDA GPU that has it (no loss scaling needed), fp16 with loss scaling on an
    older one, full fp32 on the CPU (where autocast is slower) and on Apple's MPS."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


@dataclass(frozen=True)
class Best:
    epochs: int  # trained up to and including the best epoch
    score: float | None
    seconds: float  # wall time from the start of the fit to the end of the best epoch's validation
    # The process's CPU time over the same span (all its threads): on a shared machine
    # other work stretches the wall time, not this.
    cpu_seconds: float = float("nan")


class _EpochClock(L.Callback):
    """Wall time at the end of each validation epoch: how long training takes to
    reach its best epoch is the speed users feel, whatever the patience after it."""

    def __init__(self) -> None:
        self.elapsed: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self._start = self._cpu_start = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.elapsed[trainer.current_epoch] = time.perf_counter() - self._start
            self.cpu[trainer.current_epoch] = time.process_time() - self._cpu_start


def _terminal() -> bool:
    """Whether stderr, where Lightning draws its bar, is an interactive terminal."""
    return sys.stderr.isatty()


class EpochLog(L.Callback):
    """One INFO line per epoch on the `recsys_cli.models.lightning` logger, for fits
    whose progress bar is off (`trainer.enable_progress_bar=false`, or no terminal):
    the epoch, training loss, the monitored validation metric with the best so far,
    and the wall time since the fit began. `recsys train` shows these lines."""

    def __init__(self, monitor: str = MONITOR, mode: str = "max") -> None:
        self.monitor, self.mode = monitor, mode
        self._start = 0.0
        self._score: tuple[int, float] | None = None  # (epoch, value) of the latest validation
        self._best: tuple[int, float] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._score, self._best = time.perf_counter(), None, None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        self._score = (trainer.current_epoch + 1, float(value))
        better = max if self.mode == "max" else min
        if self._best is None or better(self._best[1], self._score[1]) != self._best[1]:
            self._best = self._score

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:  # under DDP, one line per epoch, not one per rank
            return
        epoch = trainer.current_epoch + 1
        parts = [f"epoch {epoch}/{trainer.max_epochs}"]
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"train/loss {float(loss):.4f}")
        if self._score is not None and self._score[0] == epoch and self._best is not None:
            parts.append(f"{self.monitor} {self._score[1]:.4f} (best {self._best[1]:.4f} at epoch {self._best[0]})")
        parts.append(f"{time.perf_counter() - self._start:.1f} s")
        log.info(", ".join(parts))


class FrozenRows(L.Callback):
    """Puts the listed rows of parameters (by name) back after every optimiser step:
    a partial warm start trains only new users' and items' rows. Zeroing their
    gradients would not do: Adam's weight decay still moves a row whose gradient is 0."""

    def __init__(self, rows: Mapping[str, np.ndarray]) -> None:
        self.rows = {name: torch.as_tensor(index, dtype=torch.long) for name, index in rows.items()}
        self._kept: dict[str, tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        params = dict(pl_module.named_parameters())
        self._kept = {}
        for name, index in self.rows.items():
            index = index.to(params[name].device)
            self._kept[name] = (params[name], index, params[name].detach()[index].clone())

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        with torch.no_grad():
            for param, index, values in self._kept.values():
                param[index] = values


class NeuralRecommender(Recommender):
    """A `Recommender` trained by the shared Lightning loop.

    `trainer` holds Trainer keywords (from conf/trainer/); `patience` is early
    stopping on validation NDCG@10, whose best checkpoint is restored at the end.
    The epochs to that checkpoint (`best_epoch`) are chosen on the validation
    window, so a refit on train + validation repeats them (registry/selection.py).
    """

    # A warm start fine-tunes at this fraction of the configured learning rate: rows
    # that already fit most of the window need small steps, and a fresh Adam's first
    # steps at the full rate undo part of what they learned.
    warm_start_lr_scale: ClassVar[float] = 1.0

    @property
    def chooses_on_validation(self) -> bool:
        return True

    def __init__(
        self,
        trainer: Mapping[str, Any] | None = None,
        batch_size: int = 1024,
        patience: int = 3,
        seed: int = 42,
        **params: Any,
    ) -> None:
        super().__init__(trainer=dict(trainer or {}), batch_size=batch_size, patience=patience, seed=seed, **params)
        self.module: RecModule | None = None
        self.best_score: float | None = None
        self.best_epoch: int | None = None

    def lightning_trainer(self) -> dict[str, Any] | None:
        return dict(self.params["trainer"])

    @abstractmethod
    def build_module(self, data: TrainData) -> RecModule: ...

    @abstractmethod
    def train_dataset(self, data: TrainData) -> Dataset[Any]: ...

    def _fit(self, data: TrainData, validation: Targets | None, workdir: Path | None) -> None:
        L.seed_everything(self.params["seed"], workers=True, verbose=False)
        self._train(self.build_module(data), data, validation, workdir, self.params)

    def _warm_start(
        self,
        previous: Recommender,
        data: TrainData,
        validation: Targets | None,
        workdir: Path | None,
        epochs: int,
        only_new: bool,
    ) -> None:
        """The same loop as `_fit`, from a module `warm_module` filled with the
        previous model's rows, for `epochs` at `warm_start_lr_scale` times the
        learning rate (early stopping still applies with validation; `best_epoch`
        then counts the fine-tune's epochs); with `only_new` the rows it names stay
        fixed."""
        L.seed_everything(self.params["seed"], workers=True, verbose=False)
        module = self.build_module(data)
        module.lr *= self.warm_start_lr_scale
        frozen = self.warm_module(module, previous, data)
        params = {**self.params, "trainer": {**self.params["trainer"], "max_epochs": epochs}}
        token = FIT_CALLBACKS.set((*FIT_CALLBACKS.get(), FrozenRows(frozen))) if only_new else None
        try:
            self._train(module, data, validation, workdir, params)
        finally:
            if token is not None:
                FIT_CALLBACKS.reset(token)

    def warm_module(self, module: RecModule, previous: Recommender, data: TrainData) -> dict[str, np.ndarray]:
        """Fill `module` (built for `data`) with `previous`'s learned rows and starting
        rows for the new ones; return the rows per parameter name that a partial warm
        start (`only_new`) keeps fixed. Models that `supports_warm_start` supply it."""
        raise NotImplementedError(f"{type(self).__name__} does not warm start")

    def _train(
        self,
        module: RecModule,
        data: TrainData,
        validation: Targets | None,
        workdir: Path | None,
        params: Mapping[str, Any],
    ) -> None:
        self.module = module
        self.module.seen = self.seen
        loader = shuffled_batches(self.train_dataset(data), params["batch_size"], seed=params["seed"])
        val_loader = None
        if validation is not None and validation.users.size:
            self.module.truth = validation.truth
            pairs = TensorDataset(torch.as_tensor(validation.users), torch.arange(validation.users.size))
            val_loader = ordered_batches(pairs, 512)
        best = fit_module(self.module, loader, val_loader, MONITOR, "max", params, workdir)
        if best is not None:
            self.best_epoch, self.best_score = best.epochs, best.score
            self.diagnostics["seconds_to_best_epoch"] = best.seconds
            self.diagnostics["cpu_seconds_to_best_epoch"] = best.cpu_seconds

    def _score(self, users: np.ndarray) -> np.ndarray:
        assert self.module is not None
        with torch.no_grad():
            return self.module.score_users(torch.as_tensor(users, device=self.module.device)).float().cpu().numpy()

    def _item_vectors(self) -> np.ndarray | None:
        assert self.module is not None
        with torch.no_grad():
            vectors = self.module.item_vectors()
        return None if vectors is None else vectors.detach().float().cpu().numpy()

    def _user_vectors(self, users: np.ndarray) -> np.ndarray:
        assert self.module is not None
        with torch.no_grad():
            return (
                self.module.user_vectors(torch.as_tensor(users, device=self.module.device))
                .detach()
                .float()
                .cpu()
                .numpy()
            )

    def _state(self) -> dict[str, np.ndarray]:
        assert self.module is not None
        return {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.module = self.module_from_state(state)
        self.module.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        self.module.eval()

    @abstractmethod
    def module_from_state(self, state: dict[str, np.ndarray]) -> RecModule:
        """An untrained module shaped like the saved one (sizes read off the tensors)."""
