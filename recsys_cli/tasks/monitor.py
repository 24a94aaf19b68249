"""`recsys monitor`: is the production model still right for the shop?

Reads the package the registry's alias points at (verified by the registry), the
lake its lineage names (or `lake`), and compares (monitoring/samples.py) the model's
last days before its cutoff with the lake's newest days: data drift of the features
it reads, of item popularity and of the category mix (monitoring/drift.py); its own
metrics when fresh and now (monitoring/performance.py), overall and per user segment;
and how much of the shop it has never met (monitoring/staleness.py). Writes drift.json,
report.html and a PNG per flagged feature to one folder it owns, swapped in whole;
returns the alerts, which the CLI turns into an exit code and the alert hook.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from omegaconf import DictConfig, OmegaConf

from recsys_cli.console import NullReporter, Reporter

KIND = "monitor"
DRIFT_JSON, REPORT_HTML, KPIS_JSON = "drift.json", "report.html", "kpis.json"
FAMILIES = ("user", "item", "context")


@dataclass
class MonitorResult:
    folder: Path
    summary: dict[str, Any]
    alerts: list[str] = field(default_factory=list)
    hook: dict[str, Any] | None = None


def run(cfg: DictConfig, reporter: Reporter | None = None) -> MonitorResult:
    from recsys_cli.data.lake import scan_events
    from recsys_cli.monitoring.alert import reasons, run_hook
    from recsys_cli.monitoring.promotions import instant
    from recsys_cli.monitoring.samples import Windows
    from recsys_cli.registry.package import load_package
    from recsys_cli.tasks.registry import model_with_alias, open_registry, resolve_package

    m = cfg.monitor
    name = model_with_alias(cfg, cfg.model_name, str(cfg.alias))
    version = open_registry(cfg).version_of(name, cfg.alias)
    package = load_package(resolve_package(cfg, name, version))
    lineage = package.lineage
    cutoff = instant(lineage["cutoff"])
    lake = Path(str(cfg.lake or lineage["lake"]["dir"]))
    events = scan_events(lake)
    items = pl.scan_parquet(lake / "items.parquet") if (lake / "items.parquet").is_file() else None
    lake_end = events.select(pl.col("ts").max()).collect().item()
    windows = Windows.of(cutoff, lake_end, int(m.window.days))
    out = Path(str(cfg.out_dir)) if cfg.out_dir else Path("monitoring") / name
    days = list(lineage.get("config", {}).get("features", {}).get("windows_days") or [1, 7, 30])

    reporter = reporter or NullReporter()
    reporter.start("data drift: features, popularity, category mix", total=1)
    drift, images = _data_drift(events, items, windows, days, m)
    reporter.advance()
    model = package.model
    assert model.users is not None and model.items is not None
    reporter.start("performance when fresh and now, per segment", total=1)
    performance = _performance(model, events, windows, lineage, m, int(cfg.seed))
    fairness = performance.pop("segments", {})
    reporter.advance()
    reporter.start("staleness", total=1)
    summary: dict[str, Any] = {
        "kind": KIND,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"name": name, "version": version, "alias": str(cfg.alias), "cutoff": cutoff.isoformat()},
        "lake": {"dir": str(lake), "newest_event": lake_end.isoformat()},
        "windows": windows.to_json(),
        "data_drift": drift,
        "performance": performance,
        "fairness": fairness,
        "staleness": _staleness(events, items, model, cutoff, windows, drift, m),
    }
    reporter.advance()
    summary["alerts"] = alerts = reasons(summary, OmegaConf.to_container(m.staleness))  # type: ignore[arg-type]
    kpis = None
    if m.kpis.enabled:
        reporter.start("business KPIs", total=1)
        kpis = _kpis(cfg, name, events, items)
        reporter.advance()
        summary["kpis"] = {"file": KPIS_JSON, "period": kpis[0]["period"], "kpis": list(kpis[1])}
        images |= {f"kpi_{k}": png for k, png in kpis[1].items()}
    reporter.start("writing the report", total=1)
    folder = _write(out, summary, images, lake, kpis[0] if kpis else None)
    reporter.advance()
    hook = run_hook(str(m.alert.command), summary, float(m.alert.timeout_s)) if alerts and m.alert.command else None
    return MonitorResult(folder, summary, alerts, hook)


def _thresholds(m: DictConfig) -> Any:
    from recsys_cli.monitoring.drift import DriftThresholds

    plain = OmegaConf.to_container(m.drift, resolve=True)
    assert isinstance(plain, dict)
    plain.pop("report_only", None)
    return DriftThresholds(**plain)  # type: ignore[arg-type]


def _plain_sample(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps differ between two moments by construction: drift reads ages."""
    return frame.select(c for c, t in frame.schema.items() if not t.is_temporal())


def _report_only(features: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """`monitor.drift.report_only` features keep their figures but are never flagged."""
    listed = pl.col("feature").is_in(names)
    return features.with_columns(
        pl.col("flagged") & ~listed,
        pl.when(listed & pl.col("flagged"))
        .then(pl.lit("reported only (monitor.drift.report_only): ") + pl.col("reason"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )


def _data_drift(
    events: pl.LazyFrame, items: pl.LazyFrame | None, windows: Any, days: list[Any], m: DictConfig
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Drift of each feature family (Holm within a family at alpha / 3, so the three
    together keep the configured family-wise rate), of popularity and of the
    category mix; and, for each flagged feature, its drift over earlier windows."""
    from recsys_cli.monitoring.drift import drift_json, feature_drift
    from recsys_cli.monitoring.report import drift_over_time_png
    from recsys_cli.monitoring.samples import feature_samples
    from recsys_cli.monitoring.shares import category_mix_drift, popularity_drift

    t = _thresholds(m)
    per_family = replace(t, alpha=t.alpha / len(FAMILIES))

    def sampled(window: Any) -> dict[str, pl.DataFrame]:
        return {k: _plain_sample(v) for k, v in feature_samples(events, items, window, days).items()}

    reference, current = sampled(windows.reference), sampled(windows.current)
    tables = [
        feature_drift(reference[f], current[f], per_family).with_columns(
            (pl.lit(f + ".") + pl.col("feature")).alias("feature")
        )
        for f in FAMILIES
        if reference[f].width
    ]
    features = _report_only(pl.concat(tables), list(m.drift.get("report_only") or [])) if tables else pl.DataFrame()
    ref_events, cur_events = windows.reference.events(events), windows.current.events(events)
    distributions = [popularity_drift(ref_events, cur_events, t)]
    if items is not None and "category" in items.collect_schema().names():
        distributions.append(category_mix_drift(ref_events, cur_events, items, t))
    out = drift_json(features, distributions, t)
    out["holm_alpha_per_family"] = per_family.alpha
    images: dict[str, bytes] = {}
    flagged = [r["feature"] for r in out["features"] if r["flagged"]]
    if flagged and int(m.window.history) > 0:
        points: dict[str, list[dict[str, Any]]] = {f: [] for f in flagged}
        earlier = ((w, sampled(w)) for w in reversed(windows.earlier_current(int(m.window.history))))
        for window, sample in chain(earlier, [(windows.current, current)]):  # one earlier sample at a time
            for family in FAMILIES:
                names = [f.split(".", 1)[1] for f in flagged if f.startswith(family + ".")]
                if not names:
                    continue
                rows = feature_drift(reference[family], sample[family], per_family, names)
                for r in rows.iter_rows(named=True):
                    points[f"{family}.{r['feature']}"].append({"end": window.end.isoformat(), **r})
        for feature, series in points.items():
            images[f"drift_{feature}"] = drift_over_time_png(feature, series, t.psi_threshold)
        out["over_time"] = {
            f: [{k: p[k] for k in ("end", "psi", "js", "flagged")} for p in s] for f, s in points.items()
        }
    return out, images


def _performance(
    model: Any, events: pl.LazyFrame, windows: Any, lineage: dict[str, Any], m: DictConfig, seed: int
) -> dict[str, Any]:
    """The model on the window after its cutoff (fresh) and on the newest window, by
    the package's own target; the guarded metrics only (each adds its own chance of
    a false alarm), and per user segment (fairness drift, under `segments`)."""
    from recsys_cli.monitoring.performance import performance_drift, segment_drift, window_scores, window_truth
    from recsys_cli.splits.targets import TargetSpec

    p = m.performance
    target = TargetSpec.from_config(lineage.get("config", {}).get("target") or {})
    ks = sorted({int(p.k), *(int(str(name).rsplit("@", 1)[1]) for name in p.metrics if "@" in str(name))})
    scored = {}
    for label, window in (("reference", windows.fresh), ("current", windows.current)):
        truth = window_truth(events, model.users, model.items, window.start, window.end, target)
        if truth.users.size == 0:
            return {"note": f"no known user has a positive in the {label} window", "metrics": {}}
        scores = window_scores(model, truth.users, truth.truth, ks, exclude=truth.excluded)
        scored[label] = (truth, {name: scores[name] for name in map(str, p.metrics) if name in scores})
    (ref_truth, ref), (cur_truth, cur) = scored["reference"], scored["current"]
    common = dict(resamples=int(p.resamples), confidence=float(p.confidence), seed=seed)
    out = performance_drift(ref, cur, min_relative_drop=float(p.min_relative_drop), **common)  # type: ignore[arg-type]
    out["truth"] = {"reference": ref_truth.summary(), "current": cur_truth.summary()}
    first = str(p.metrics[0])
    out["segments"] = {
        column: segment_drift(
            ref,
            cur,
            labels[0],
            labels[1],
            metric=first,
            attribute=column,
            **common,  # type: ignore[arg-type]
        )
        for column in map(str, p.segments)
        if (labels := _segment_labels(events, model, (ref_truth, cur_truth), windows, column)) is not None
    }
    return out


def _segment_labels(
    events: pl.LazyFrame, model: Any, truths: tuple[Any, Any], windows: Any, column: str
) -> tuple[Any, Any] | None:
    """Each evaluated user's value of a user-table column (features/aggregates.py),
    as of each window's start; None when the table has no such column."""
    from recsys_cli.data.schema import Col, Timestamp
    from recsys_cli.features.aggregates import user_aggregates

    labels = []
    for truth, window in zip(truths, (windows.fresh, windows.current), strict=True):
        history = events.filter(pl.col(Col.TS) < pl.lit(window.start, dtype=Timestamp))
        lazy = user_aggregates(history, None, window.start, [7.0])
        if column not in lazy.collect_schema().names():
            return None
        # Only the one column is collected: the query plan leaves the other aggregates out.
        table = lazy.select(Col.USER, column).collect(engine="streaming")
        users = pl.DataFrame({Col.USER: np.asarray(model.users.tokens, dtype=object)[truth.users].tolist()})
        joined = users.join(table.select(Col.USER, pl.col(column).cast(pl.String)), on=Col.USER, how="left")
        labels.append(joined[column].fill_null("unknown").to_numpy())
    return labels[0], labels[1]


def _staleness(
    events: pl.LazyFrame,
    items: pl.LazyFrame | None,
    model: Any,
    cutoff: datetime,
    windows: Any,
    drift: dict[str, Any],
    m: DictConfig,
) -> dict[str, Any]:
    from recsys_cli.monitoring.staleness import event_log_staleness, staleness

    popularity = next((d for d in drift["distributions"] if d["name"] == "item popularity"), None)
    movers = pl.DataFrame(popularity["movers"]) if popularity and popularity.get("movers") else None
    out = staleness(events, items, model.users, model.items, cutoff, windows.current, movers)
    if m.staleness.event_log:
        log = Path(str(m.staleness.event_log))
        out["event_log"] = event_log_staleness(log, model.users, model.items) if log.is_dir() else {"missing": str(log)}
    return out


def _kpis(
    cfg: DictConfig, name: str, events: pl.LazyFrame, items: pl.LazyFrame | None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The shop's KPIs over the whole lake, with when each version of `name` became
    production (the alias's history in the registry)."""
    from recsys_cli.monitoring.kpis import kpi_report
    from recsys_cli.monitoring.promotions import promotions_from_registry

    k = cfg.monitor.kpis
    options = OmegaConf.to_container(cfg.registry.storage_options, resolve=True) or {}
    moves = promotions_from_registry(str(cfg.registry.uri), name, str(cfg.alias), options)  # type: ignore[arg-type]
    period: Literal["day", "week"] = "day" if str(k.period) == "day" else "week"
    return kpi_report(
        events, items, moves, period, int(k.new_days), int(k.resamples), int(cfg.seed), float(k.confidence)
    )


def _write(
    out: Path, summary: dict[str, Any], images: dict[str, bytes], lake: Path, kpis: dict[str, Any] | None
) -> Path:
    from recsys_cli.data.lake import staged_version, write_sealed
    from recsys_cli.monitoring.report import render

    with staged_version(out, KIND, [lake]) as staging:
        (staging / DRIFT_JSON).write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (staging / REPORT_HTML).write_text(render(summary, images))
        if kpis is not None:
            (staging / KPIS_JSON).write_text(json.dumps(kpis, indent=2, allow_nan=False) + "\n")
        if images:
            (staging / "plots").mkdir()
            for name, png in images.items():
                (staging / "plots" / f"{name.replace('/', '_')}.png").write_bytes(png)
        write_sealed(staging, {"kind": KIND, "model": summary["model"]})
    return out
