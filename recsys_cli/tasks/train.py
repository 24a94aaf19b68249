"""`recsys train`: fit one model on a fold's features and score one window of it:
validation (fit on train) or test (refit on train + validation), or both in turn.

The refit repeats what the validation run chose (its best epoch, settings a model
picked on validation: registry/selection.py): part=test finds the matching part=val
run by itself (`refit_from=auto`), and part=val+test runs one, then the other.

The run folder holds the mean metrics (metrics.json) and the per-user values
behind them (per_user.parquet), so two runs on the same window can be compared
user by user (paired bootstrap) rather than by their means alone, and where the
run ran (environment.json: machine, libraries, commit, device and precision).

Under DDP (`trainer=ddp`: Lightning runs the same command once per device) every
rank loads the data and fits in step with the others, but only global rank 0
writes the run folder and reports; the other ranks' `run_parts` yields nothing."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from omegaconf import DictConfig, open_dict

from recsys_cli import tracking
from recsys_cli.console import NullReporter, Reporter
from recsys_cli.data.lake import decoding, open_inputs, open_output
from recsys_cli.data.remote import on_mirrors
from recsys_cli.data.schema import Col
from recsys_cli.errors import ConfigError, SplitError
from recsys_cli.evaluation.metrics import per_user, summarise
from recsys_cli.models.base import Recommender
from recsys_cli.models.data import TrainData
from recsys_cli.models.validation import Targets
from recsys_cli.registry import environment, lineage, selection
from recsys_cli.registry.outputs import RUN, claim_container
from recsys_cli.registry.run_dir import ENVIRONMENT, METRICS, MODEL, PER_USER, new_run, publish_run
from recsys_cli.registry.selection import Selection
from recsys_cli.splits.base import TEST, VAL
from recsys_cli.splits.targets import COLD

BOTH = f"{VAL}+{TEST}"
# refit_from: the newest matching part=val run in runs_dir, or none at all
AUTO, NONE = "auto", "none"
EPOCH_KEYS = ("trainer.max_epochs", "model.trainer.max_epochs")
# Where launchers put a process's place in a DDP job before any process group exists:
# torchrun (RANK, GROUP_RANK), Lightning's own launcher, which re-runs the command per
# device (LOCAL_RANK, NODE_RANK), SLURM (SLURM_PROCID) and LSF (JSM_NAMESPACE_RANK).
RANK_VARIABLES = ("RANK", "GROUP_RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


@dataclass
class TrainResult:
    run: Path
    metrics: dict[str, float]
    # part=test: what the refit pinned and the validation run it came from
    refit: Selection | None = None


def run_parts(cfg: DictConfig, reporter: Reporter | None = None) -> Iterator[TrainResult]:
    """The runs `part` asks for: one, or for part=val+test the validation run and
    then the test refit from exactly that run (`refit_from=<its folder>`). A DDP
    rank other than 0 fits the same and yields nothing: rank 0 reports."""
    lead = not is_worker_rank(cfg)
    if str(cfg.part) != BOTH:
        result = run(cfg, reporter)
        yield from [result] if lead else []
        return
    val = run(_with(cfg, part=VAL), reporter)
    if not lead:
        # No run folder to refit from here: what this rank's validation fit chose is
        # rank 0's (the same weights, the same validation metric gathered over ranks).
        assert val.refit is not None
        run(selection.apply(_with(cfg, part=TEST, refit_from=NONE), val.refit), reporter)
        return
    yield val
    yield run(_with(cfg, part=TEST, refit_from=str(val.run)), reporter)


def is_worker_rank(cfg: DictConfig) -> bool:
    """Whether this process is a DDP rank other than global rank 0, which fits but
    writes and reports nothing: its model trains through Lightning on more than one
    process (`trainer.devices` x `trainer.num_nodes`) and its launcher gave it
    another rank. A rank variable alone (SLURM_PROCID of one of several sweep
    workers started by srun) makes no worker."""
    trainer = cfg.model.get("trainer") if isinstance(cfg.get("model"), DictConfig) else None
    if not isinstance(trainer, DictConfig):
        return False
    devices, nodes = trainer.get("devices", "auto"), trainer.get("num_nodes", 1)
    one = devices == 1 or (isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices) == 1)
    return not (one and nodes == 1) and not all(os.environ.get(v, "0") in ("", "0") for v in RANK_VARIABLES)


def refit_overrides(overrides: Sequence[str]) -> list[str]:
    """`refit_from=none` when the command line gives the epochs itself (and no
    refit_from): the user chose them, so no validation run is looked for."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    return [f"refit_from={NONE}"] if keys & set(EPOCH_KEYS) and "refit_from" not in keys else []


@on_mirrors(reads=("lake_dir", "split_dir", "features_dir"))  # paths.data_dir=s3://...: verified local copies
def run(cfg: DictConfig, reporter: Reporter | None = None) -> TrainResult:
    from recsys_cli.config import build

    if str(cfg.part) == BOTH:
        raise ConfigError("part=val+test is two runs: use run_parts (or `recsys train part=val+test`)")
    reporter = reporter or NullReporter()
    # The model first: its constructor's cross-key checks (the ranker's LightGBM grid)
    # refuse a bad setting before any data is hashed or read.
    model: Recommender = build(cfg.model)
    # Absolute data folders, and their manifests' digests as read now: a run is only
    # ever scored on the data it was trained on (registry/lineage.py).
    cfg = lineage.pinned(cfg)
    reads = [cfg.get(key) for key in ("lake_dir", "split_dir", "features_dir")] + [cfg.data.get("path")]
    claim_container(cfg.runs_dir, RUN, reads)  # never runs written into the data they are trained on
    trained_on = lineage.record(cfg)
    part = str(cfg.part)
    if part not in (VAL, TEST):
        raise ConfigError(f"part must be val, test or val+test, got {part!r}")
    folder = Path(cfg.features_dir) / cfg.fold / part
    if not (folder / "vocab.json").is_file():
        raise SplitError(
            f"{folder}: no features here; run `recsys split` and `recsys features` with the same overrides"
        )
    read = ((Path(cfg.features_dir), "features"), (Path(cfg.split_dir), "split"))
    for checked, what in read:
        open_output(checked, what)
    # The lake is not read here, but the run records it as its source: a lake damaged
    # since the features were built is refused rather than recorded as intact.
    if cfg.get("lake_dir"):
        open_inputs((Path(cfg.lake_dir), "lake"))
    with decoding(*read):
        data = TrainData.from_features(folder)
        frame = pl.read_parquet(Path(cfg.split_dir) / cfg.fold / f"{part}_targets.parquet").filter(~pl.col(COLD))
    targets = Targets.from_frame(frame, data)
    name = cfg.model._target_.rsplit(".", 1)[-1].lower()
    chosen = refit_selection(cfg, model, name) if part == TEST else None
    if chosen is not None:
        cfg = selection.apply(cfg, chosen)
        model = build(cfg.model)
    previous, cfg = warm_start_from(cfg)
    if is_worker_rank(cfg):
        return _fit_beside_rank_zero(cfg, model, data, targets, previous)
    # logger=mlflow: the run is also an MLflow run, open while the model fits (recsys_cli/tracking/).
    with tracking.train_run(cfg, name, lightning=model.lightning_trainer() is not None) as tracked:
        out = new_run(cfg.runs_dir, name, cfg)
        try:
            metrics = _fit_and_write(cfg, model, data, targets, frame, out, reporter, chosen, previous)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)  # only a whole, sealed run is ever published
            raise
        published = publish_run(out, trained_on)
        tracked.finish(published, metrics)
    return TrainResult(published, metrics, chosen)


def refit_selection(cfg: DictConfig, model: Recommender, name: str) -> Selection | None:
    """What the test refit takes from its validation run (`refit_from`): the newest
    matching one (auto), a named one, or none. A model that chooses on validation
    (best epoch, an on-validation grid) is refused when auto finds no match: its
    refit would otherwise quietly train for the configured epochs or defaults."""
    source = cfg.get("refit_from", AUTO)
    if source is None or str(source) == NONE:
        return None
    if str(source) != AUTO:
        return selection.read(selection.named_source(cfg, Path(str(source)), name), model)
    found = selection.find_source(cfg, name)
    if found is not None:
        return selection.read(found, model)
    if not selection.chooses_on_validation(model):
        return None
    differs = selection.nearest_difference(cfg, name)
    why = f" (the newest part=val run of {name} there differs in {differs})" if differs else ""
    given = "; or give trainer.max_epochs" if selection.pins_epochs(model) else "; or refit_from=none"
    raise ConfigError(
        f"no validation run matches in {cfg.runs_dir}/{name}{why}: run `recsys train ... part=val` with the "
        f"same overrides first, or part=val+test{given}"
    )


def warm_start_from(cfg: DictConfig) -> tuple[Recommender | None, DictConfig]:
    """The model `warm_start.package` holds, read only after every file of the package
    is verified, and the config with the package's manifest digest pinned: a run
    repeated from its saved config starts from exactly this model, or is refused."""
    spec = cfg.get("warm_start")
    if spec is None:
        return None, cfg
    from recsys_cli.registry.integrity import SEAL
    from recsys_cli.registry.package import load_package

    folder = Path(str(spec.package)).resolve()
    package = load_package(folder)
    digest = str(package.manifest[SEAL])
    pinned = spec.get("manifest_sha256")
    if pinned and str(pinned) != digest:
        raise ConfigError(
            f"{folder}: warm_start.manifest_sha256 is {pinned}, the package now holds {digest}; "
            "it changed since the run was configured"
        )
    out = cfg.copy()
    with open_dict(out):
        out.warm_start.package = str(folder)
        out.warm_start.manifest_sha256 = digest
    return package.model, out


def _fit_beside_rank_zero(
    cfg: DictConfig, model: Recommender, data: TrainData, targets: Targets, previous: Recommender | None
) -> TrainResult:
    """A DDP rank other than 0: the fit rank 0 makes, in step with it, and nothing
    written or tracked (checkpoints are rank 0's). The result has no run; a
    validation fit's `refit` holds what it chose, for part=val+test's refit."""
    validation = targets if str(cfg.part) == VAL else None
    _fit(cfg, model, data, validation, None, previous)
    return TrainResult(Path(), {}, selection.chosen(model) if validation is not None else None)


def _fit(
    cfg: DictConfig,
    model: Recommender,
    data: TrainData,
    validation: Targets | None,
    workdir: Path | None,
    previous: Recommender | None,
) -> None:
    """Fit `model`, or warm start it from `previous` (`warm_start` in the config)."""
    if previous is not None:
        spec = cfg.warm_start
        epochs = None if spec.get("epochs") is None else int(spec.epochs)
        model.warm_start(previous, data, validation, workdir, epochs, bool(spec.get("only_new", False)))
    else:
        model.fit(data, validation=validation, workdir=workdir)


def _with(cfg: DictConfig, **keys: str) -> DictConfig:
    """A copy of `cfg` with top-level `keys` replaced."""
    out = cfg.copy()
    with open_dict(out):
        for key, value in keys.items():
            out[key] = value
    return out


def _fit_and_write(
    cfg: DictConfig,
    model: Recommender,
    data: TrainData,
    targets: Targets,
    frame: pl.DataFrame,
    out: Path,
    reporter: Reporter,
    chosen: Selection | None = None,
    previous: Recommender | None = None,
) -> dict[str, float]:
    """Fit (or warm start from `previous`), score the window and write every file of
    the run into `out` (still hidden): a validation run records what it chose, a refit
    what it was given and from where."""
    part = str(cfg.part)
    # Test scores come from a refit on train + validation; the test window never
    # steers training (no early stopping on it: the epochs come from the validation
    # run's best_epoch, `refit_selection`).
    validation = targets if part == VAL else None
    wall, cpu = time.perf_counter(), time.process_time()
    reporter.start(f"{'warm-starting' if previous is not None else 'fitting'} {type(model).__name__}", total=1)
    _fit(cfg, model, data, validation, out, previous)
    # What the fit cost (CPU seconds over all threads): what a warm start saves.
    fit_cost = {"fit/wall_s": time.perf_counter() - wall, "fit/cpu_s": time.process_time() - cpu}
    reporter.advance()
    if part == VAL:
        selection.write(out, selection.chosen(model))
    elif chosen is not None:
        selection.write(out, chosen)
    ks = list(cfg.eval.ks)
    recs = rank(model, targets, max(ks), int(cfg.eval.batch_users))
    metrics = summarise(recs, targets.truth, ks, data.n_items, f"{part}/")
    metrics[f"{part}/users"] = float(targets.users.size)
    best_epoch = getattr(model, "best_epoch", None)
    if best_epoch is not None:
        metrics["best_epoch"] = float(best_epoch)
    metrics |= {f"fit/{k}": float(v) for k, v in model.diagnostics.items()} | fit_cost
    model.save(out / MODEL)
    (out / METRICS).write_text(json.dumps(metrics, indent=2))
    (out / ENVIRONMENT).write_text(json.dumps(environment.describe(model.lightning_trainer()), indent=2))
    # Same row order as `targets` (users sorted, as Targets.from_frame builds them),
    # keyed on the original ids so runs on different vocabularies can be paired.
    user_ids = frame[Col.USER].unique().sort()
    per_user_frame(recs, targets, ks, user_ids).write_parquet(out / PER_USER)
    return metrics


def evaluate(
    model: Recommender, targets: Targets, n_items: int, ks: list[int], batch: int, prefix: str
) -> dict[str, float]:
    """Full ranking over all items for every evaluated user, in batches of users."""
    return summarise(rank(model, targets, max(ks), batch), targets.truth, ks, n_items, prefix)


def rank(model: Recommender, targets: Targets, k: int, batch: int) -> np.ndarray:
    """Top-k items of every evaluated user over the whole catalogue (seen items
    excluded), in batches of users so the score matrix stays small."""
    index = targets.users
    chunks = [model.recommend(index[i : i + batch], k)[0] for i in range(0, index.size, batch)]
    return np.concatenate(chunks) if chunks else np.zeros((0, k), dtype=np.int64)


PER_USER_METRICS = ("ndcg", "recall", "hitrate", "mrr")


def per_user_frame(recs: np.ndarray, targets: Targets, ks: list[int], user_ids: pl.Series) -> pl.DataFrame:
    """One row per evaluated user: the original user_id and each metric at each k
    (`ndcg@10`...), whose column means are the run's metrics. Paired tests and
    bootstrap intervals over users are built on these rows."""
    columns: dict[str, np.ndarray] = {}
    for k in ks:
        values = per_user(recs, targets.truth, k)
        columns |= {f"{name}@{k}": values[name] for name in PER_USER_METRICS}
    return pl.DataFrame({Col.USER: user_ids, **columns})
