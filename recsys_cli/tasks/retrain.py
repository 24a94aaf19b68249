"""`recsys retrain`: the step a scheduler runs every few days or on a monitor alert.

1. Append the newest raw files and the service's event log to the lake (`append`).
2. Move the training window forward (retraining/window.py): the lake's newest
   `eval_days` are held out, the candidate trains on what came before.
3. Warm start from the production package, or refit from scratch when the shop
   moved too far (retraining/policy.py), through the same split, features and
   train steps a person runs by hand, with the production run's own settings.
4. Score the candidate and production on the held-out window, user by user
   (retraining/head_to_head.py).
5. Push the candidate to the registry with the decision and its evidence in its
   version record, and move the alias only when the guard allows it
   (evaluation/guard.py).
6. Keep the record of every step in `retrain.json` (retraining/journal.py).

The folder a retrain writes (`retrain/<model>/` by default) is marked as ours and
locked while it runs: one retrain of a model at a time. Idempotence and crash
safety come from the journal: the same lake and settings do nothing new, and the
alias moves last.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from recsys_cli.console import NullReporter, Reporter
from recsys_cli.evaluation.significance import WORSE
from recsys_cli.retraining import journal

KIND = "retraining"
WORK = "work"
EPOCH_KEYS = ("trainer", "max_epochs"), ("model", "trainer", "max_epochs")


@dataclass
class RetrainResult:
    folder: Path | None  # the key's folder; None when there was nothing new to train on
    record: dict[str, Any]
    new: bool  # False: the same lake and settings were already retrained (nothing done)


def run(cfg: DictConfig, reporter: Reporter | None = None, config_dir: Path | None = None) -> RetrainResult:
    from recsys_cli.data.lake import MANIFEST
    from recsys_cli.registry.integrity import sha256_file, write_json
    from recsys_cli.registry.outputs import owned
    from recsys_cli.registry.package import load_package
    from recsys_cli.tasks.registry import model_with_alias, open_registry, resolve_package

    reporter = reporter or NullReporter()
    alias = str(cfg.alias)
    name = model_with_alias(cfg, cfg.model_name, alias)
    registry = open_registry(cfg)
    out = Path(str(cfg.out_dir)) if cfg.out_dir else Path("retrain") / name
    with owned(out, KIND) as root:  # one retrain of a model at a time
        if not (root / MANIFEST).is_file():
            root.mkdir(parents=True, exist_ok=True)
            write_json(root / MANIFEST, {"kind": KIND, "model": name})
        production_version = registry.version_of(name, alias)
        production = load_package(resolve_package(cfg, name, production_version))
        lineage = production.lineage
        lake = Path(str(cfg.lake or lineage["lake"]["dir"])).resolve()
        appended = _append(cfg, lineage, lake, root, reporter, config_dir)
        settings = {"alias": alias, "seed": int(cfg.seed), **_plain(cfg.retrain)}
        lake_digest = sha256_file(lake / MANIFEST)
        folder = root / journal.key(name, lake_digest, settings)
        record = journal.read(folder)
        if record is not None and record.get("state") in journal.FINAL:
            return RetrainResult(folder, record, new=False)
        if record is not None and record.get("state") in (journal.DECIDED, journal.PUSHED):
            return RetrainResult(folder, _finish(cfg, registry, name, folder, record, reporter), new=True)
        started = {
            "model": {"name": name, "alias": alias},
            "production": {"version": production_version, "cutoff": lineage["cutoff"]},
            "lake": {"dir": str(lake), "manifest_sha256": lake_digest, "appended": appended},
            "settings": settings,
        }
        return _retrain(cfg, registry, name, production, lake, folder, started, reporter, config_dir)


def _retrain(
    cfg: DictConfig,
    registry: Any,
    name: str,
    production: Any,
    lake: Path,
    folder: Path,
    started: dict[str, Any],
    reporter: Reporter,
    config_dir: Path | None,
) -> RetrainResult:
    from recsys_cli.data.lake import scan_events
    from recsys_cli.evaluation.guard import promotion_decision
    from recsys_cli.models.warm_start import WarmStartError
    from recsys_cli.monitoring.promotions import instant
    from recsys_cli.registry.package import load_package
    from recsys_cli.retraining.head_to_head import head_to_head, means
    from recsys_cli.retraining.policy import choose, shift_figures
    from recsys_cli.retraining.window import NothingNewError, RetrainWindow
    from recsys_cli.splits.global_temporal import TICK
    from recsys_cli.splits.targets import TargetSpec

    r = cfg.retrain
    lineage, production_dir = production.lineage, production.path
    events = scan_events(lake)
    items_path = lake / "items.parquet"
    items = pl.scan_parquet(items_path) if items_path.is_file() else None
    lake_end = events.select(pl.col("ts").max()).collect().item()
    production_cutoff = instant(lineage["cutoff"])
    w = r.window
    try:
        window = RetrainWindow.of(
            lake_end,
            production_cutoff,
            float(w.eval_days),
            float(w.val_days),
            None if str(w.kind) == "growing" else float(w.train_days),
        )
    except NothingNewError as exc:
        return RetrainResult(None, {"state": "skipped", "reason": str(exc), **started}, new=False)
    figures = shift_figures(events, items, production.model.items, production_cutoff, window.cutoff)  # type: ignore[arg-type]
    p = r.policy
    choice = choose(str(p.mode), production.model.supports_warm_start, figures, _plain(p.full_when))

    folder.mkdir(parents=True, exist_ok=True)
    work = folder / WORK
    shutil.rmtree(work, ignore_errors=True)  # an interrupted attempt's: inside our own folder
    record = journal.write(folder, {}, journal.STARTED, **started, window=window.to_json(), policy=choice.to_json())
    timings: dict[str, dict[str, float]] = {}
    chain = _chain(lineage, lake, work, window, choice.mode, production_dir, p)
    try:
        candidate_run = _train_chain(chain, reporter, timings)
    except WarmStartError as exc:
        choice = replace(choice, mode="full", reason=f"warm start refused ({exc}): refit")
        shutil.rmtree(work, ignore_errors=True)
        chain = _chain(lineage, lake, work, window, "full", production_dir, p)
        candidate_run = _train_chain(chain, reporter, timings)
    with _timed("export", timings, reporter):
        package_dir = _export(cfg, candidate_run, work / "package", name, config_dir)
    g = r.guard
    metrics = [str(m) for m in g.metrics]
    with _timed("head-to-head on the held-out window", timings, reporter):
        candidate = load_package(package_dir).model
        target = TargetSpec.from_config(lineage["config"].get("target") or {})
        pairs = head_to_head(candidate, production.model, events, window.cutoff, window.end + TICK, target, metrics)
    decision = promotion_decision(
        pairs.candidate,
        pairs.production,
        metrics,
        str(g.primary) if g.primary else None,
        float(g.tolerance),
        int(g.resamples),
        int(cfg.seed),
        float(g.confidence),
    )
    abtest = None
    if bool(r.abtest.enabled):
        with _timed("simulated A/B test on the held-out window", timings, reporter):
            abtest = _abtest(cfg, production, candidate_run, chain, folder, config_dir)
        if bool(r.abtest.guard) and abtest["verdict"] == WORSE:
            why = f"simulated A/B test: {abtest['primary_metric']} significantly worse than production"
            decision = replace(decision, promote=False, reasons=[why] if decision.promote else [*decision.reasons, why])
    evidence = {
        "retrain_key": folder.name,
        "production": started["production"],
        "window": window.to_json(),
        "policy": choice.to_json(),
        "candidate": {"run": str(candidate_run), "package": str(package_dir), "fit": _fit_cost(candidate_run)},
        "timings": timings,
        "held_out": {
            "users": pairs.counts,
            "candidate": means(pairs.candidate),
            "production": means(pairs.production),
        },
        "abtest": abtest,
        "guard": {
            "metrics": metrics,
            "primary": g.primary,
            "tolerance": float(g.tolerance),
            **decision.to_json(),
        },
    }
    record = journal.write(folder, record, journal.DECIDED, decision=evidence)
    out = _finish(cfg, registry, name, folder, record, reporter)
    if not bool(r.keep_data):
        for part in ("split", "features"):
            shutil.rmtree(work / part, ignore_errors=True)
    return RetrainResult(folder, out, new=True)


def _finish(
    cfg: DictConfig, registry: Any, name: str, folder: Path, record: dict[str, Any], reporter: Reporter
) -> dict[str, Any]:
    """Push (unless done), then move the alias if the decision says so: the last step."""
    evidence = record["decision"]
    if record.get("state") == journal.DECIDED:
        # A run that died after its push published the version, before the journal
        # said so, left the version behind: its record names this retrain's key.
        version = _pushed_before(registry, name, str(evidence["retrain_key"]))
        if version is None:
            reporter.start("pushing the candidate to the registry", total=1)
            version = int(registry.push(Path(evidence["candidate"]["package"]), name, decision=evidence)["version"])
            reporter.advance()
        record = journal.write(folder, record, journal.PUSHED, version=version)
    version, alias = int(record["version"]), str(cfg.alias)
    if not evidence["guard"]["promote"]:
        return journal.write(folder, record, journal.KEPT)
    if registry.version_of(name, alias) != version:
        registry.promote(name, version, alias)
    return journal.write(folder, record, journal.PROMOTED)


def _pushed_before(registry: Any, name: str, key: str) -> int | None:
    """The version an earlier attempt of retrain `key` published, if any."""
    for record in reversed(registry.versions(name)):
        if (record.get("decision") or {}).get("retrain_key") == key:
            return int(record["version"])
    return None


def _abtest(
    cfg: DictConfig, production: Any, candidate_run: Path, chain: DictConfig, folder: Path, config_dir: Path | None
) -> dict[str, Any]:
    """`recsys abtest` between the production package (control) and the candidate's
    run (treatment) over the held-out window; the full result goes to <key>/abtest/."""
    from recsys_cli.abtest.logs import period_of
    from recsys_cli.config import compose
    from recsys_cli.tasks import abtest

    settings = compose("abtest", [str(o) for o in cfg.retrain.abtest.overrides], config_dir)
    with open_dict(settings):
        settings.seed = int(cfg.seed)
    plain = _plain(chain)
    production_config = {**plain, "model": production.lineage["config"].get("model")}
    version = production.manifest.get("name"), cfg.alias
    policies = [
        abtest.Policy(f"production ({version[0]} {version[1]})", production.path, production_config),
        abtest.Policy("candidate", candidate_run, plain),
    ]
    split_dir = Path(str(chain.split_dir))
    period = period_of(split_dir, str(chain.fold), str(chain.part))
    result, looks, sequential = abtest.simulate(policies, settings, period)
    out = folder / "abtest"
    abtest.write(out, result, settings, looks, sequential, [production.path, candidate_run, split_dir])
    primary = str(result["primary_metric"])
    return {
        "folder": str(out),
        "primary_metric": primary,
        "verdict": result["verdict"],
        "metric": next((m for m in result["metrics"] if m["metric"] == primary), None),
        "users": result["assignment"]["users"],
    }


def _train_chain(chain: DictConfig, reporter: Reporter, timings: dict[str, dict[str, float]]) -> Path:
    from recsys_cli.tasks import features, split, train

    with _timed("split", timings, reporter):
        split.run(chain)
    with _timed("features", timings, reporter):
        features.run(chain)
    with _timed("train", timings, reporter):
        result = train.run(chain)
    return result.run


def _chain(
    lineage: dict[str, Any],
    lake: Path,
    work: Path,
    window: Any,
    mode: str,
    production_dir: Path,
    policy: DictConfig,
) -> DictConfig:
    """The production run's own config, moved to the new window: same data source,
    target, features and model settings; a global temporal split at the retrain's
    cutoffs; the data and runs in the work folder; a part=test run (fit on all the
    history before the held-out window). A warm start names the production package.
    A refit trains as long as the production run's fit did: its best epoch when it
    was a validation run (what `recsys train part=test` repeats), else the epochs
    its config already pinned (a refit's)."""
    chain = OmegaConf.create(lineage["config"])
    assert isinstance(chain, DictConfig)
    best = (lineage.get("metrics") or {}).get("best_epoch")
    with open_dict(chain):
        chain.lake_dir = str(lake)
        chain.split = window.split_config()
        chain.split_dir = str(work / "split")
        chain.features_dir = str(work / "features")
        chain.runs_dir = str(work / "runs")
        chain.fold, chain.part, chain.refit_from = "fold-0", "test", "none"
        chain.warm_start = None
        if best is not None:
            for node, key in _epoch_nodes(chain):
                node[key] = max(1, int(best))
        if mode == "warm":
            w = policy.warm
            # Only a model trained in epochs reads them (its own `model.trainer`).
            refit = [int(node[key]) for node, key in _epoch_nodes(chain) if node is chain.model.get("trainer")]
            chain.warm_start = {
                "package": str(production_dir),
                "epochs": _warm_epochs(w.epochs, str(chain.model._target_), min(refit) if refit else None),
                "only_new": bool(w.only_new),
            }
    return chain


def _epoch_nodes(chain: DictConfig) -> list[tuple[DictConfig, str]]:
    """Where the config holds the epochs a neural model trains for (`EPOCH_KEYS`)."""
    found = []
    for path in EPOCH_KEYS:
        node: Any = chain
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, DictConfig) else None
        if isinstance(node, DictConfig) and node.get(path[-1]) is not None:
            found.append((node, path[-1]))
    return found


def _warm_epochs(configured: Any, target: str, refit_epochs: Any) -> int | None:
    """The configured fine-tune epochs; by default the model's own, but never more
    than a refit would train: a shop where the model peaks after one epoch gains
    nothing from fine-tuning longer than that."""
    if configured is not None:
        return int(configured)
    if refit_epochs is None:
        return None
    from hydra.utils import get_class

    default = int(getattr(get_class(target), "warm_start_epochs", 1))
    return min(default, max(1, int(refit_epochs)))


def _export(cfg: DictConfig, run_dir: Path, target: Path, name: str, config_dir: Path | None) -> Path:
    from recsys_cli.config import compose
    from recsys_cli.tasks import export

    export_cfg = compose("export", [], config_dir)
    with open_dict(export_cfg):
        export_cfg.registry = cfg.registry
    return export.run(run_dir, export_cfg, out=target, name=name, push=False).path


def _append(
    cfg: DictConfig,
    lineage: dict[str, Any],
    lake: Path,
    root: Path,
    reporter: Reporter,
    config_dir: Path | None,
) -> dict[str, Any] | None:
    """`append.raw`: ingest the source's new files into the lake (`recsys ingest
    --append` with the production run's data config); `append.event_log`: the
    service's log, exported beside the retrain's records, with them. None when
    neither is configured."""
    a = cfg.retrain.append
    if not a.raw and not a.event_log:
        return None
    from recsys_cli.config import compose
    from recsys_cli.tasks import ingest

    live: list[Path] = []
    if a.event_log:
        live.append(_export_event_log(Path(str(a.event_log)), root / "live_events"))
    ingest_cfg = compose("ingest", [], config_dir)
    with open_dict(ingest_cfg):
        ingest_cfg.data = lineage["config"]["data"]
        ingest_cfg.lake_dir = str(lake)
        ingest_cfg.pii = cfg.pii
    result = ingest.run(ingest_cfg, append=True, reporter=reporter, live_events=live)
    return {"no_op": bool(result.no_op), "message": result.message, "live_events": [str(p) for p in live]}


def _export_event_log(log_dir: Path, folder: Path) -> Path:
    """The event log as one live-events file named by its content: the same log
    exported twice is the same file, which `--append` then has nothing new from."""
    from recsys_cli.registry.integrity import sha256_file
    from recsys_cli.serving.event_log import export_log

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".export.parquet"
    export_log(log_dir, tmp, "retrain.append.event_log")
    final = folder / f"events-{sha256_file(tmp)[:16]}.parquet"
    tmp.replace(final)
    return final


@contextmanager
def _timed(step: str, into: dict[str, dict[str, float]], reporter: Reporter) -> Iterator[None]:
    """Wall and CPU seconds of one step, with a progress line."""
    reporter.start(step, total=1)
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    into[step] = {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3)}
    reporter.advance()


def _fit_cost(run_dir: Path) -> dict[str, float]:
    """The candidate's fit time as its run recorded it (metrics.json `fit/*_s`)."""
    import json

    from recsys_cli.registry.run_dir import METRICS

    metrics = json.loads((run_dir / METRICS).read_text())
    return {k.split("/", 1)[1]: float(v) for k, v in metrics.items() if k in ("fit/wall_s", "fit/cpu_s")}


def _plain(node: Any) -> dict[str, Any]:
    value = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    assert isinstance(value, dict)
    return value  # type: ignore[return-value]
