"""`recsys reproduce`: rerun an experiment's whole chain in a folder of its own and
judge the metrics it measures against the ones the experiment file expects.

The chain is the one a person runs by hand (data → ingest → split → features →
check-leakage → train), through the same task functions, with each step's config
taken from the experiment's Hydra preset composed against `conf/train.yaml`. So a
reproduction trains exactly what `recsys train experiment=PRESET` would, on data
prepared exactly as `recsys split` and `recsys features` would prepare it."""

from __future__ import annotations

import hashlib
import math
import re
import shlex
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from recsys_cli.config import DEFAULT_CONF_DIR, compose
from recsys_cli.console import NullReporter, Reporter
from recsys_cli.errors import ConfigError, LeakageError, SourceError
from recsys_cli.experiments import MEAN, Check, Experiment, check_all
from recsys_cli.registry.environment import code_version, versions
from recsys_cli.registry.outputs import KIND, REPRODUCTION, claim, claim_file, owned

RESULT = "result.json"


@dataclass
class ReproduceResult:
    experiment: Experiment
    checks: list[Check]
    measured: dict[str, float]
    output: Path
    payload: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def run(chain: Chain, out: Path | None = None, reporter: Reporter | None = None) -> ReproduceResult:
    """Rerun the chain into its work folder (data/ and runs/ inside it) and write
    the verdict as JSON to `out` (default `<workdir>/result.json`).

    The work folder is held (its lock) for the whole chain, and marked as a
    reproduction's (`manifest.json`) so that only a reproduction may write there
    again; `out` may replace only an earlier verdict, never an input.
    """
    from recsys_cli.data.lake import MANIFEST, write_json

    claim_file(Path(out) if out is not None else chain.workdir / RESULT, REPRODUCTION, chain.reads())
    with owned(chain.workdir, REPRODUCTION, chain.reads()) as workdir:
        workdir.mkdir(parents=True, exist_ok=True)
        if not (workdir / MANIFEST).is_file():
            write_json(workdir / MANIFEST, {KIND: REPRODUCTION, "experiment": str(chain.experiment.path)})
        return _run(chain, out, reporter)


def _run(chain: Chain, out: Path | None = None, reporter: Reporter | None = None) -> ReproduceResult:
    from recsys_cli.data.lake import write_json

    reporter = reporter or NullReporter()
    experiment = chain.experiment
    started, code = datetime.now(UTC), code_version()  # the code that runs, not what is checked out by the end
    data = chain.prepare(reporter)
    runs = chain.train(data["folds"], reporter)
    measured = collect(runs)
    checks = check_all(experiment.expected, measured)
    output = Path(out) if out is not None else chain.workdir / RESULT
    output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        KIND: REPRODUCTION,
        "experiment": _describe(experiment),
        "passed": all(c.passed for c in checks),
        "checks": [c.to_json() for c in checks],
        "measured": measured,
        "runs": {key: {k: v for k, v in r.items() if k != "metrics"} for key, r in runs.items()},
        "data": data,
        "steps_s": chain.timings,
        "workdir": str(chain.workdir),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "code": code,
        "versions": versions(),
    }
    write_json(output, payload)  # temporary name, then rename: never half a verdict
    return ReproduceResult(experiment, checks, measured, output, payload)


class Chain:
    """The experiment's configs, and the steps that run them in order. Building one
    composes the preset with the experiment's data and checks that they agree, so a
    bad experiment fails before anything is written."""

    def __init__(self, experiment: Experiment, workdir: Path, config_dir: Path | None = None) -> None:
        self.experiment = experiment
        self.workdir = Path(workdir).resolve()
        if self.workdir == Path.cwd().resolve():
            raise ConfigError(
                f"--workdir {workdir}: the chain writes data/ and runs/ inside it; give it a folder of its own"
            )
        claim(self.workdir, REPRODUCTION, self.reads())  # a folder of its own, or an earlier reproduction's
        self.config_dir = Path(config_dir or DEFAULT_CONF_DIR)
        self.timings: dict[str, float] = {}
        self.overrides = base_overrides(experiment, self.workdir)
        self.full = compose_experiment(experiment, self.overrides, self.config_dir)

    def reads(self) -> list[Path | None]:
        """The experiment file and its raw data: never written, nor written into."""
        return [self.experiment.path, self.experiment.data.raw]

    def config(self, step: str) -> DictConfig:
        return step_config(step, self.full, self.config_dir)

    @contextmanager
    def _timed(self, step: str, reporter: Reporter) -> Iterator[None]:
        """One progress line per step of the chain, and its wall time for the result.
        The steps themselves report nothing: their own lines would bury the chain's."""
        reporter.start(f"{self.experiment.name}: {step}", total=1)
        start = time.perf_counter()
        yield
        self.timings[step] = round(time.perf_counter() - start, 3)
        reporter.advance()

    def prepare(self, reporter: Reporter) -> dict[str, Any]:
        """Raw data, lake, split, features and the leakage proof. Returns what the
        result records about the data, including the folds to train."""
        from recsys_cli.tasks import features, ingest, split

        exp = self.experiment
        ingest_cfg = self.config("ingest")
        with self._timed("raw data", reporter):
            generated = provide_raw(exp, ingest_cfg)
        with self._timed("ingest", reporter):
            lake = ingest.run(ingest_cfg)
        inputs = [
            {"file": Path(i["path"]).name, "sha256": i["sha256"], "rows": i.get("rows_written")}
            for i in lake.manifest["inputs"]
        ]
        verify_inputs(exp, {i["file"]: i["sha256"] for i in inputs})
        with self._timed("split", reporter):
            splits = split.run(self.config("split"))
        folds = choose_folds(exp, [f["name"] for f in splits.manifest["folds"]])
        features_cfg = self.config("features")
        with self._timed("features", reporter):
            built = features.run(features_cfg)
        if exp.check_leakage:
            with self._timed("check-leakage", reporter):
                leaks = features.leakage(features_cfg)
            if leaks:
                raise LeakageError(f"{exp.path}: {len(leaks)} leak(s) in the chain, first: {leaks[0]}")
        return {
            "source": exp.data.source,
            "generated": generated,
            "inputs": inputs,
            "lake": str(lake.lake),
            "ingest_no_op": lake.no_op,  # an unchanged input over an earlier reproduction's lake
            "pii_development_key": lake.manifest["pii"]["development_key"],
            "events": lake.manifest["rows"]["events"],
            "split": str(splits.path),
            "features": str(built.path),
            "leakage_checked": exp.check_leakage,
            "folds": folds,
        }

    def train(self, folds: Sequence[str], reporter: Reporter) -> dict[str, dict[str, Any]]:
        """Each fold's parts in order. A test run refits on train + validation for
        the validation run's best epoch, as the benchmarks do, so the test window
        never steers training: it takes them from the fold's validation run just
        trained (`refit_from=auto` finds it), or without one refits as configured."""
        from recsys_cli.tasks import train

        runs: dict[str, dict[str, Any]] = {}
        alone = [] if "val" in self.experiment.parts else ["refit_from=none"]
        for fold in folds:
            best_epoch: float | None = None
            for part in self.experiment.parts:
                extra = [f"trainer.max_epochs={int(best_epoch)}"] if part == "test" and best_epoch else []
                extra += alone if part == "test" else []
                overrides = [*self.overrides, f"fold={fold}", f"part={part}", *extra]
                with self._timed(f"train {fold}/{part}", reporter):
                    result = train.run(compose("train", overrides, self.config_dir))
                metrics = {k.removeprefix(f"{part}/"): v for k, v in result.metrics.items()}
                best_epoch = metrics.get("best_epoch") if part == "val" else best_epoch
                runs[f"{fold}/{part}"] = {
                    "run": str(result.run),
                    "command": shlex.join(["recsys", "train", *overrides]),  # pasted into a shell, it reruns this
                    "metrics": metrics,
                }
        return runs


def base_overrides(experiment: Experiment, workdir: Path) -> list[str]:
    """The preset, the experiment's data, and paths inside `workdir`, as Hydra
    overrides of `conf/train.yaml`: the user's own data/ and runs/ are never touched."""
    data = experiment.data
    overrides = [
        f"experiment={experiment.preset}",
        f"paths.data_dir={workdir / 'data'}",
        f"runs_dir={workdir / 'runs'}",
        "++trainer.enable_progress_bar=false",  # the reproduce command shows its own progress
    ]
    overrides += [f"data.generator.{key}={hydra_value(value)}" for key, value in data.generator.items()]
    if data.raw is not None:
        overrides.append(f"data.path={hydra_value(str(data.raw.resolve()))}")
    return overrides


def hydra_value(value: str | int | float | bool) -> str:
    """A value as Hydra's override grammar reads it back unchanged: strings quoted,
    so '2026-01-01' or 'null' stay strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # Hydra unescapes backslashes only before a quote: double those, escape the quote.
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped) + "'"


def compose_experiment(experiment: Experiment, overrides: list[str], config_dir: Path) -> DictConfig:
    """The train config of the preset with the experiment's data; checks that the
    preset exists and ingests the data source the experiment file names."""
    preset = config_dir / "experiment" / f"{experiment.preset}.yaml"
    if not preset.is_file():
        raise ConfigError(f"{experiment.path}: preset: no {preset}")
    try:
        cfg = compose("train", overrides, config_dir)
    except ConfigError as exc:
        raise ConfigError(f"{experiment.path}: preset {experiment.preset} with this file's data: {exc}") from exc
    if cfg.data.name != experiment.data.source:
        raise ConfigError(
            f"{experiment.path}: data.source: {experiment.data.source!r}, but preset {experiment.preset} "
            f"ingests {cfg.data.name!r}"
        )
    return cfg


def step_config(step: str, full: DictConfig, config_dir: Path) -> DictConfig:
    """The config of `recsys <step>` for this experiment: the step's own primary
    config, with every key it shares with the experiment's train config (data,
    paths, split, target, features and the folders built from them) taken from
    that config, resolved. Steps then write exactly where training reads."""
    base = cast(dict[str, Any], OmegaConf.to_container(compose(step, [], config_dir)))
    resolved = cast(dict[str, Any], OmegaConf.to_container(full, resolve=True))
    return OmegaConf.create({key: resolved.get(key, value) for key, value in base.items()})


def provide_raw(experiment: Experiment, ingest_cfg: DictConfig) -> dict[str, int] | None:
    """Generate the synthetic shop into the work folder, or check that the raw
    files the experiment names are there. Returns the generator's counts, if any."""
    from recsys_cli.config import build
    from recsys_cli.data.sources.synth import SynthRetailRocketSource, SynthSource

    source = build(ingest_cfg.data)
    data = experiment.data
    if isinstance(source, SynthSource | SynthRetailRocketSource) and data.raw is None:
        return source.generate()
    if data.raw is None:
        raise ConfigError(f"{experiment.path}: data.raw: missing; {data.source} is read from files, name their folder")
    if not data.raw.is_dir() or not any(data.raw.iterdir()):
        hint = f"; run {data.fetch}" if data.fetch else ""
        raise SourceError(f"{experiment.path}: data.raw: {data.raw} holds no raw files{hint}")
    return None


def verify_inputs(experiment: Experiment, digests: dict[str, str]) -> None:
    """Refuse another copy of the data than the one the expected metrics came from."""
    for name, expected in experiment.data.sha256.items():
        found = digests.get(name)
        if found is None:
            raise SourceError(f"{experiment.path}: data.sha256.{name}: no input file of that name was ingested")
        if found != expected:
            raise SourceError(
                f"{experiment.path}: data.sha256.{name}: the ingested file has sha256 {found[:12]}…, the experiment "
                f"was recorded on {expected[:12]}…; its metrics do not apply to this copy"
            )


def choose_folds(experiment: Experiment, available: list[str]) -> list[str]:
    if experiment.folds is None:
        return available
    missing = [f for f in experiment.folds if f not in available]
    if missing:
        raise ConfigError(f"{experiment.path}: chain.folds: {missing[0]!r} is not a fold of this split ({available})")
    return list(experiment.folds)


def collect(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """`<fold>/<part>/<metric>` for every run's metrics, and `mean/<part>/<metric>`
    over the folds (each fold counts once) for the metrics every fold reports."""
    measured = {f"{key}/{name}": float(v) for key, r in runs.items() for name, v in r["metrics"].items()}
    by_part: dict[str, list[dict[str, float]]] = {}
    for key, r in runs.items():
        by_part.setdefault(key.rsplit("/", 1)[1], []).append(r["metrics"])
    for part, rows in by_part.items():
        shared = set.intersection(*(set(m) for m in rows))
        for name in sorted(shared):
            measured[f"{MEAN}/{part}/{name}"] = math.fsum(float(m[name]) for m in rows) / len(rows)
    return measured


def _describe(experiment: Experiment) -> dict[str, Any]:
    return {
        "path": str(experiment.path),
        "name": experiment.name,
        "sha256": hashlib.sha256(experiment.path.read_bytes()).hexdigest(),
        "preset": experiment.preset,
        "description": experiment.description,
        "parts": list(experiment.parts),
    }
