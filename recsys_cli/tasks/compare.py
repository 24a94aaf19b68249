"""`recsys compare`: paired significance tests between runs of one window.

Reads each run's per-user metrics (written by `recsys train`), keeps the users
all runs scored, tests every run against the first (or every pair), corrects for
the number of comparisons (Holm) and writes the result as JSON.

When the runs differ by `model.ablate` (rankers trained without some candidate
generators or feature groups), an "ablations" section reads each ablated run
against the full one (the first run that drops nothing, else the first run):
the mean difference with its paired bootstrap interval, and a verdict. Dropping
what matters lowers the metric: an interval below zero reads "matters", above
zero "helps to drop", and one that holds zero "no evidence".

Where the JSON goes: `--out`, or else `<runs root>/comparisons/<timestamp>.json`,
the runs root being the folder that holds the first run's model folder (`runs/`
for `runs/ease/<timestamp>/`), so comparisons sit beside the runs they compare and
never inside one of them.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import polars as pl
from omegaconf import OmegaConf

from recsys_cli.data.schema import Col
from recsys_cli.evaluation import significance as sig
from recsys_cli.registry.outputs import COMPARISON, KIND, claim_file
from recsys_cli.registry.run_dir import PER_USER, open_run

COMPARISONS = "comparisons"
# An ablation's verdict from where the interval of (ablated - full) lies.
_READING = {"below 0": "matters", "above 0": "helps to drop", "includes 0": "no evidence"}


def run(
    runs: list[Path],
    metric: str = "ndcg@10",
    n_resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
    all_pairs: bool = False,
    out: Path | None = None,
) -> dict[str, Any]:
    """Compare `runs` (the first is the control) on per-user `metric`; returns the
    JSON-ready result, which is also written to `out` (see the module docstring)."""
    if len(runs) < 2:
        raise sig.ComparisonError(f"need at least two run folders to compare, got {len(runs)}")
    _refuse_repeats(runs)
    target = claim_file(out or default_out(runs[0]), COMPARISON, runs)  # never a run's file, nor inside a run
    labels = _labels(runs)
    configs = [_config(path) for path in runs]
    windows = [sig.window_of(config) for config in configs]
    sig.check_same_window(labels, windows)
    aligned = sig.align(labels, [_per_user(path, metric) for path in runs], metric)
    comparisons = sig.compare(aligned, all_pairs=all_pairs, n_resamples=n_resamples, seed=seed, alpha=alpha)
    result = _result(runs, aligned, comparisons, windows[0], metric, n_resamples, seed, alpha, all_pairs)
    ablations = _ablations(aligned, [_ablate_of(config) for config in configs], n_resamples, seed, alpha)
    if ablations is not None:
        result["ablations"] = ablations
    result = _finite(result)
    _write_json(target, result)
    result["output"] = str(out or target)
    return result


def default_out(first_run: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return first_run.resolve().parent.parent / COMPARISONS / f"{stamp}.json"


def _refuse_repeats(runs: list[Path]) -> None:
    """A run given twice (another spelling, a symlink) can only differ from itself by
    zero, and would count as a comparison in Holm's correction: a mistyped path, not a
    test. An A/A check compares two runs of one config (two seeds)."""
    first: dict[Path, Path] = {}
    for path in runs:
        same = first.setdefault(path.resolve(), path)
        if same is not path:
            raise sig.ComparisonError(
                f"{path}: the same run as {same}; a run compared with itself always shows no difference "
                "(for an A/A check, compare two runs of one config, e.g. two seeds)"
            )


def _labels(runs: list[Path]) -> list[str]:
    """`<model>/<timestamp>`, the part of a run's path that tells runs apart; two runs
    of that name under different roots get a #2 suffix so rows stay distinct."""
    labels: list[str] = []
    for path in runs:
        base = "/".join(path.resolve().parts[-2:])
        label, n = base, 1
        while label in labels:
            n += 1
            label = f"{base}#{n}"
        labels.append(label)
    return labels


def _config(path: Path) -> dict[str, Any]:
    """The run's resolved config, with the split's digest that pairs runs."""
    if not path.is_dir():
        raise sig.ComparisonError(f"{path}: no such run folder")
    run = open_run(path)  # files, seal and data checked
    container = OmegaConf.to_container(run.config, resolve=True)
    assert isinstance(container, dict)
    return {**cast(dict[str, Any], container), sig.SPLIT_DIGEST: run.split_digest}


def _ablate_of(config: dict[str, Any]) -> list[str] | None:
    """What the run's model was trained without (`model.ablate`); None for a model
    that has no such setting (not a ranker)."""
    model = config.get("model")
    if not isinstance(model, dict) or "ablate" not in model:
        return None
    return [str(name) for name in model["ablate"] or []]


def _ablations(
    aligned: sig.Aligned, ablate: list[list[str] | None], n_resamples: int, seed: int, alpha: float
) -> dict[str, Any] | None:
    """Each ablated run against the full one, by compare's own paired statistics
    (`significance.compare`, the full run as control, Holm over the ablations); None
    unless the runs differ by `model.ablate`."""
    if len({tuple(a) for a in ablate if a is not None}) < 2:
        return None
    full = next((i for i, a in enumerate(ablate) if a == []), next(i for i, a in enumerate(ablate) if a is not None))
    rows = [i for i, a in enumerate(ablate) if a is not None and a != ablate[full]]
    columns = [full, *rows]
    sub = sig.Aligned(
        [aligned.labels[i] for i in columns], [aligned.users[i] for i in columns], aligned.values[:, columns]
    )
    found = sig.compare(sub, n_resamples=n_resamples, seed=seed, alpha=alpha)
    return {
        "full": aligned.labels[full],
        "full_ablate": ablate[full],
        "rows": [
            {
                "run": c.candidate,
                "dropped": ablate[i],
                "mean": c.bootstrap.mean_a,
                "full_mean": c.bootstrap.mean_b,
                "difference": c.bootstrap.difference,
                "low": c.bootstrap.low,
                "high": c.bootstrap.high,
                "holm_p": c.holm_p,
                "interval": c.interval_side,
                "verdict": _READING[c.interval_side],
            }
            for i, c in zip(rows, found, strict=True)
        ],
    }


def _per_user(path: Path, metric: str) -> pl.DataFrame:
    """The run's user_id and `metric` columns, with errors that name the file."""
    file = path / PER_USER
    if not file.is_file():
        raise sig.ComparisonError(f"{path}: no {PER_USER}; it is written by `recsys train` (retrain older runs)")
    columns = pl.read_parquet_schema(file)
    if metric not in columns or metric == Col.USER:  # the id column is not a metric
        found = ", ".join(c for c in columns if c != Col.USER)
        raise sig.ComparisonError(f"{file}: no {metric!r} column (found: {found})")
    return pl.read_parquet(file, columns=[Col.USER, metric])


def _result(
    runs: list[Path],
    aligned: sig.Aligned,
    comparisons: list[sig.Comparison],
    window: dict[str, Any],
    metric: str,
    n_resamples: int,
    seed: int,
    alpha: float,
    all_pairs: bool,
) -> dict[str, Any]:
    means = aligned.values.mean(axis=0)
    return {
        KIND: COMPARISON,
        "metric": metric,
        "mode": "all_pairs" if all_pairs else "control",
        "control": None if all_pairs else aligned.labels[0],
        "window": window,
        "alpha": alpha,
        "confidence": 1 - alpha,
        "n_resamples": n_resamples,
        "seed": seed,
        "correction": "holm",
        "test": "wilcoxon signed-rank (two-sided, zero differences dropped)",
        "shared_users": aligned.shared,
        "runs": [
            {"label": label, "path": str(path.resolve()), "users": users, "mean": float(mean)}
            for label, path, users, mean in zip(aligned.labels, runs, aligned.users, means, strict=True)
        ],
        "comparisons": [_comparison(c) for c in comparisons],
        "summary": sig.summary(comparisons, metric, alpha),
    }


def _comparison(c: sig.Comparison) -> dict[str, Any]:
    return {
        "candidate": c.candidate,
        "reference": c.reference,
        **c.bootstrap.to_json(),
        "interval": c.interval_side,
        "wilcoxon_statistic": c.wilcoxon_statistic,
        "wilcoxon_p": c.wilcoxon_p,
        "holm_p": c.holm_p,
        "significant": c.significant,
        "verdict": c.verdict,
    }


def _write_json(path: Path, result: dict[str, Any]) -> None:
    """Written through a temporary file so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")  # unique: two writers never share one
    tmp.write_text(json.dumps(result, indent=2, allow_nan=False))
    tmp.replace(path)


def _finite(value: Any) -> Any:
    """Strict JSON: an undefined relative difference (control mean 0) becomes null, not NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
