"""`recsys sweep`: an Optuna search over one model's hyperparameters, each trial a
`recsys train part=val` run (the same task, not a second training path), scored
on the validation window by the configured metric(s).

`prepare` composes and checks everything and creates (or joins) the study, so a
mistake is one error before any training; `optimise` runs trials here or in
worker processes; `finish` writes the best configuration, the plots and, when
asked, refits the best configuration on train + validation and scores the test
window.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys_cli import tracking
from recsys_cli.console import NullReporter, Reporter
from recsys_cli.errors import ConfigError
from recsys_cli.registry.outputs import KIND, SWEEP, claim
from recsys_cli.sweep.loop import EXHAUSTED, INTERRUPTED, TIMEOUT, LoopOutcome, run_trials
from recsys_cli.sweep.plan import SweepPlan
from recsys_cli.sweep.search_space import SearchSpace
from recsys_cli.sweep.storage import STUDY_DB, default_url, open_storage, redact
from recsys_cli.sweep.study import TrialRecord, best_trials, load_study, open_study, outcome, records, spent

PLAN_JSON = "plan.json"
SWEEP_KEYS = ("sweep", "sweeps_dir")  # overrides of the sweep itself; all others reach every trial
SET_BY_SWEEP = ("part",)
DIRECTIONS = ("maximize", "minimize")
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Optimised:
    stopped: str
    ran: int | None  # trials run by this command (unknown when workers ran them)
    worker_errors: list[str] = field(default_factory=list)


@dataclass
class SweepResult:
    plan: SweepPlan
    stopped: str
    counts: dict[str, int]
    best: list[dict[str, Any]]
    files: dict[str, Path]
    skipped_plots: dict[str, str]
    refit: dict[str, Any] | None


@dataclass
class StudyView:
    name: str
    storage: str
    metrics: list[str]
    directions: list[str]
    params: list[str]
    records: list[TrialRecord]
    best: list[int]
    counts: dict[str, int]


def prepare(
    overrides: list[str],
    config_dir: Path,
    *,
    study: str | None = None,
    storage: str | None = None,
    trials: int = 20,
    timeout_s: float | None = None,
) -> SweepPlan:
    """Compose `conf/sweep.yaml` with the overrides, check the sweep, and create or
    join its study. Overrides other than `sweep...`/`sweeps_dir` reach every trial."""
    from omegaconf import OmegaConf

    from recsys_cli.config import compose, used_overrides

    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    cfg = compose("sweep", overrides, config_dir)
    # What `recsys train` uses: the chain's shared keys train lacks (engine=, pii=,
    # registry...) would otherwise land in the best trial's experiment preset,
    # which train then refuses.
    # runs_dir too: a chain key the sweep decides itself (its trials run under its study
    # folder), so the chain's shared string leaves it out here as other commands do.
    train_overrides = used_overrides(
        "train", [o for o in overrides if _key(o) not in (*SWEEP_KEYS, "runs_dir")], config_dir
    )
    if str(cfg.trainer.get("strategy", "auto")).startswith("ddp"):
        # Lightning starts the command again for every extra rank: each would run the sweep.
        raise ConfigError(
            "trainer=ddp: a sweep trains one trial per worker; run workers with --workers N "
            "or the same command on several machines sharing --storage, each trial on one device"
        )
    raw = OmegaConf.to_container(cfg.sweep, resolve=True)
    assert isinstance(raw, dict)
    node = _checked({str(k): v for k, v in raw.items()}, train_overrides, [int(k) for k in cfg.eval.ks])
    name = study if study is not None else f"{cfg.data.name}-{node['name']}"  # --study "" is no name
    if not STUDY_NAME.fullmatch(name):
        raise ConfigError(f"study name {name!r}: use letters, digits, '.', '_' and '-'")
    out = (Path(cfg.sweeps_dir) / name).resolve()
    plan = SweepPlan(
        study=name,
        storage=storage or default_url(out),
        out=str(out),
        config_dir=str(Path(config_dir).resolve()),
        overrides=train_overrides,
        sweep=node,
        trials=trials,
        deadline=time.time() + timeout_s if timeout_s else None,
        seed=int(cfg.seed),
    )
    _dry_compose(plan)
    tracking.check(cfg)
    given = open_storage(storage) if storage else None  # a bad --storage fails before any folder is made
    _claim_folder(out, cfg)
    space = plan.space()
    backend = given if given is not None else open_storage(plan.storage)
    open_study(backend, name, plan.spec(), None, None, space.check_enqueued(node["enqueue"]))
    # logger=mlflow: the study's parent run (found again on a resume), carried to every worker.
    plan = dataclasses.replace(plan, tracking=tracking.study_run(cfg, name, plan.spec()))
    out.mkdir(parents=True, exist_ok=True)
    (out / PLAN_JSON).write_text(plan.to_json())
    return plan


def _claim_folder(out: Path, cfg: Any) -> None:
    """The study's folder is new, empty or an earlier sweep's, and holds none of the
    data the trials read; it is marked as a sweep's before the study is created in it."""
    from recsys_cli.data.lake import MANIFEST, write_json

    claim(out, SWEEP, [cfg.get(key) for key in ("lake_dir", "split_dir", "features_dir")] + [cfg.data.get("path")])
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).is_file():
        write_json(out / MANIFEST, {KIND: SWEEP, "study": out.name})


def optimise(plan: SweepPlan, workers: int = 1) -> Optimised:
    """Trials until the study holds its budget, the deadline passes or Ctrl-C: in
    this process, or in `workers` processes sharing the study."""
    from recsys_cli.sweep.workers import INTERRUPTED_EXIT, run_workers, tail

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        done: LoopOutcome = run_trials(plan, 0)
        return Optimised(done.stopped, done.ran)
    try:
        exits = run_workers(plan, workers)
    except KeyboardInterrupt:
        return Optimised(INTERRUPTED, None)
    errors = [
        f"worker {e.index} exited with {e.code} ({e.log}): {tail(e.log)}"
        for e in exits
        if e.code not in (0, INTERRUPTED_EXIT)
    ]
    stopped = INTERRUPTED if any(e.code == INTERRUPTED_EXIT for e in exits) else _why_stopped(plan)
    return Optimised(stopped, None, errors)


def finish(plan: SweepPlan, stopped: str, refit: bool = False, reporter: Reporter | None = None) -> SweepResult:
    """Trials as JSON, the best configuration as an override file and an experiment
    preset, Optuna's plots, and (with `refit`) the best configuration refitted on
    train + validation and scored on the test window; all summed up in best.json."""
    from recsys_cli.sweep.outputs import BEST_JSON, PLOTS_DIR, write_atomic, write_best, write_plots, write_trials

    reporter = reporter or NullReporter()
    study = load_study(open_storage(plan.storage), plan.study)
    out = Path(plan.out)
    files = {"trials": write_trials(study, out)}
    best = best_trials(study)
    refitted = None
    if best:
        files |= write_best(plan.experiment_overrides(best[0].params), _header(plan, best[0]), _conf(plan), out)
        if refit and stopped != INTERRUPTED:
            with tracking.nested_under(plan.tracking):
                refitted = _refit(plan, best[0], reporter)
    reporter.start("drawing plots", total=1)
    plots, skipped = write_plots(study, plan.metrics, out / PLOTS_DIR)
    reporter.advance()
    files |= plots
    counts = dict(Counter(outcome(t) for t in study.get_trials(deepcopy=False)))
    described = [_described(plan, t) for t in best]
    summary = {
        "study": plan.study,
        "storage": redact(plan.storage),
        "metrics": plan.metrics,
        "directions": plan.directions,
        "budget": plan.trials,
        "stopped": stopped,
        "trials": counts,
        "best": described[0] if described else None,
        "pareto": described if len(plan.metrics) > 1 else None,
        "refit": refitted,
        "plots": {k: str(v) for k, v in plots.items()},
        "plots_skipped": skipped,
    }
    files["best_json"] = write_atomic(out / BEST_JSON, json.dumps(summary, indent=1))
    tracking.finish_study(plan.tracking, out, described[0] if described else None, stopped)
    return SweepResult(plan, stopped, counts, described, files, skipped, refitted)


def watch(plan: SweepPlan) -> Any:
    """A function returning the study's trials as records, with a storage
    connection of its own (it is called from the display's thread)."""
    storage = open_storage(plan.storage)

    def current() -> list[TrialRecord]:
        return records(storage.get_all_trials(storage.get_study_id_from_name(plan.study), deepcopy=False))

    return current


def show(study: str, storage: str | None, config_dir: Path) -> StudyView:
    """A study as it stands, finished or running. `study` is a study name (its
    folder under sweeps_dir), a sweep folder, or, with `storage`, a study name there."""
    name, url = _locate(study, storage, config_dir)
    loaded = load_study(open_storage(url), name)
    spec = loaded.user_attrs.get("recsys.spec", {})
    trials = loaded.get_trials(deepcopy=False)
    metrics = spec.get("metrics") or [f"objective {i}" for i in range(len(loaded.directions))]
    return StudyView(
        name=name,
        storage=redact(url),
        metrics=list(metrics),
        directions=[d.name.lower() for d in loaded.directions],
        params=list(spec.get("params") or sorted({k for t in trials for k in t.params})),
        records=records(trials),
        best=[t.number for t in best_trials(loaded)],
        counts=dict(Counter(outcome(t) for t in trials)),
    )


# --------------------------------------------------------------------------- checks


def _checked(node: dict[str, Any], train_overrides: list[str], ks: list[int]) -> dict[str, Any]:
    """The sweep node with its directions spelled out, or a ConfigError naming the field."""
    for key in ("name", "metrics", "params", "sampler", "pruner"):
        if node.get(key) in (None, "", []):
            raise ConfigError(f"sweep.{key} is missing; see conf/sweep/tiny.yaml for a complete preset")
    metrics = node["metrics"] if isinstance(node["metrics"], list) else [node["metrics"]]
    for metric in metrics:
        _check_metric(str(metric), ks)
    directions = node.get("directions") or ["maximize"]
    directions = directions if isinstance(directions, list) else [directions]
    directions = directions * len(metrics) if len(directions) == 1 else directions
    if len(directions) != len(metrics) or any(d not in DIRECTIONS for d in directions):
        raise ConfigError(f"sweep.directions: one of {'/'.join(DIRECTIONS)} per metric, got {directions}")
    space = SearchSpace.from_config(node["params"])
    for o in train_overrides:
        if _key(o) in SET_BY_SWEEP:
            raise ConfigError(f"{o}: the sweep sets {_key(o)} itself (trials score validation; see sweeps_dir)")
        if o.split("=", 1)[0].lstrip("+~") in space.names:
            raise ConfigError(f"{o}: this key is searched by the sweep; drop the override or the parameter")
    space.check_enqueued(node.get("enqueue") or [])
    return node | {"metrics": metrics, "directions": directions, "enqueue": node.get("enqueue") or []}


def _check_metric(metric: str, ks: list[int]) -> None:
    import numpy as np
    import scipy.sparse as sp

    from recsys_cli.evaluation.metrics import per_user

    known = [*per_user(np.zeros((1, 1), dtype=np.int64), sp.csr_matrix((1, 2)), 1), "coverage"]
    found = re.fullmatch(r"val/([a-z_]+)@(\d+)", metric)
    if not found or found[1] not in known:
        raise ConfigError(f"sweep.metrics: {metric!r} is not a validation metric (val/<{'|'.join(known)}>@<k>)")
    if int(found[2]) not in ks:
        raise ConfigError(f"sweep.metrics: {metric} needs {found[2]} in eval.ks (now {ks})")


def _dry_compose(plan: SweepPlan) -> None:
    """Every searched key must exist in the trial config: a typo fails here, not in
    every trial."""
    from recsys_cli.config import compose

    try:
        for params in plan.space().probes():  # each end of every range and every choice
            compose("train", plan.trial_overrides(params), Path(plan.config_dir))
    except ConfigError as exc:
        raise ConfigError(f"the search space does not fit the train config: {exc}") from exc


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").split("/")[0].split(".")[0]


# --------------------------------------------------------------------------- results


def _why_stopped(plan: SweepPlan) -> str:
    study = load_study(open_storage(plan.storage), plan.study)
    if spent(study.get_trials(deepcopy=False)) >= plan.trials:
        return "budget"
    if plan.deadline is not None and time.time() >= plan.deadline:
        return TIMEOUT
    return EXHAUSTED


def _described(plan: SweepPlan, trial: Any) -> dict[str, Any]:
    return {
        "number": trial.number,
        "values": dict(zip(plan.metrics, trial.values, strict=True)),
        "params": dict(trial.params),
        "best_epoch": trial.user_attrs.get("best_epoch"),
        "run": trial.user_attrs.get("run"),
        "overrides": plan.experiment_overrides(trial.params),
    }


def _header(plan: SweepPlan, trial: Any) -> str:
    scores = ", ".join(f"{m} = {v:.4f}" for m, v in zip(plan.metrics, trial.values, strict=True))
    return (
        f"Best trial #{trial.number} of study {plan.study} ({scores}, validation window).\n"
        "Copy it to conf/experiment/NAME.yaml and run: recsys train experiment=NAME"
    )


def _refit(plan: SweepPlan, trial: Any, reporter: Reporter) -> dict[str, Any]:
    """The best configuration on train + validation, scored on the test window."""
    from recsys_cli.config import compose
    from recsys_cli.tasks import train

    overrides = plan.refit_overrides(trial.params, trial.user_attrs.get("best_epoch"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`")  # by design: no validation in a refit
        result = train.run(compose("train", overrides, _conf(plan)), reporter=reporter)
    return {"trial": trial.number, "run": str(result.run), "metrics": result.metrics, "overrides": overrides}


def _conf(plan: SweepPlan) -> Path:
    return Path(plan.config_dir)


def _locate(study: str, storage: str | None, config_dir: Path) -> tuple[str, str]:
    """(study name, storage URL) for `recsys sweep show`."""
    from omegaconf import DictConfig, OmegaConf

    if storage:
        return study, storage
    folder = Path(study)
    if not (folder / PLAN_JSON).is_file():
        primary = OmegaConf.load(Path(config_dir) / "sweep.yaml")
        sweeps_dir = primary.get("sweeps_dir", "runs/sweeps") if isinstance(primary, DictConfig) else "runs/sweeps"
        folder = Path(str(sweeps_dir)) / study
    if (folder / PLAN_JSON).is_file():
        plan = SweepPlan.from_json((folder / PLAN_JSON).read_text())
        return plan.study, plan.storage
    if (folder / STUDY_DB).is_file():
        return folder.name, default_url(folder)
    raise ConfigError(f"no sweep folder {folder} (nor {study}); pass --storage URL for a study stored elsewhere")
