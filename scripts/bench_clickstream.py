"""Every model on a shop clickstream: cart/purchase NDCG@10 against popularity and
ALS, with each fit's wall time, CPU time and peak memory.

A shop's logs are mostly views; the target counts carts and purchases
(`target=engagement`: items the user already carted or bought are excluded, items
only viewed may be recommended and count). `--targets engagement,engagement_new`
adds the other setting, where everything the user interacted with is excluded from
both the recommendations and the ground truth.

Protocols: `global` (the last 10% of events by time are test, the 10% before
validation) and `rolling` (4 successive 7-day test windows, each validated on the
7 days before it). Every model runs with its defaults as a new user would:
`recsys train part=val` on the validation window, then `part=test`, the refit on
train + validation, which takes its best epoch and any on-validation choice from
that validation run by itself. Each `recsys train` runs in its own process, so
its peak resident memory is its own ("fit s" is that whole command: load, fit,
score the window). Nothing is chosen on a test window.

    python scripts/bench_clickstream.py                                   # synth, 1M events
    python scripts/bench_clickstream.py --data shop_clickstream --events 1000000
    python scripts/bench_clickstream.py --models popularity,als,ranker --protocols global

Results resume from <workdir>/results.json (keyed by the features manifest and the
overrides; `--fresh` ignores it); the summary is printed as tables and written to
<workdir>/summary.json with a PNG of each model's ratio to popularity.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_movielens import git_state, machine  # noqa: E402

RECSYS = str(Path(sys.executable).with_name("recsys"))
METRIC = "ndcg@10"
REFERENCES = ("popularity", "als")


@dataclass(frozen=True)
class Spec:
    """One row: a name, the `recsys train` overrides that choose the model, and the
    features group it reads (the ranker learns from labelled earlier windows)."""

    name: str
    overrides: tuple[str, ...]
    features: str = "default"


MODELS: tuple[Spec, ...] = (
    Spec("popularity", ("model=popularity",)),
    Spec("recent_popularity", ("model=recent_popularity",)),
    Spec("category_affinity", ("model=category_affinity",)),
    Spec("recently_viewed", ("model=recently_viewed",)),
    Spec("item_transitions", ("model=item_transitions",)),
    Spec("item_knn", ("model=item_knn",)),
    Spec("ease", ("model=ease",)),
    Spec("als", ("model=als",)),
    Spec("implicit_bpr", ("model=implicit_bpr",)),
    Spec("bpr_mf", ("model=bpr_mf",)),
    # SASRec's clickstream preset (carts and purchases as targets, views as inputs at a
    # tenth of the weight); the two-tower model's own defaults won on every shop's
    # validation window (conf/experiment/shop_two_tower.yaml).
    Spec("sasrec", ("experiment=shop_sasrec",)),
    Spec("two_tower", ("model=two_tower",)),
    Spec("ranker", ("model=ranker_lgbm",), "ranker"),
)

PROTOCOLS: dict[str, tuple[str, ...]] = {
    "global": ("split=global_temporal",),
    "rolling": ("split=rolling_origin", "split.n_folds=4", "split.test_days=7", "split.val_days=7"),
}
QUIET = ("trainer.enable_progress_bar=false",)


def run(args: Sequence[str], log: Path, cwd: Path | None = None) -> dict[str, float]:
    """One `recsys` command in its own process: wall and CPU seconds and peak RSS.
    Its output goes to `log`; a failure raises with the log's last lines."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([RECSYS, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"recsys {' '.join(args[:3])}... failed ({log}): {' | '.join(tail)}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


class Bench:
    def __init__(self, root: Path, data: str, events: int, seed: int, fresh: bool) -> None:
        self.root, self.data, self.events, self.seed = root, data, events, seed
        self.cache_path = root / "results.json"
        self.cache: dict[str, Any] = {}
        if self.cache_path.is_file() and not fresh:
            self.cache = json.loads(self.cache_path.read_text())

    def common(self) -> list[str]:
        return [f"paths.data_dir={self.root / 'data'}", f"data={self.data}"]

    def prepare(self, protocol: str, target: str, groups: Sequence[str]) -> dict[str, str]:
        """Generate and ingest the shop once, then split and build each features group
        for (protocol, target) when missing; the features manifests' sha256 by group."""
        from recsys_cli.registry.integrity import sha256_file

        lake = self.root / "data" / "lake"
        if not any(lake.glob("*/manifest.json")):
            self.stage("generate", ["datasets", "synth", *self.common(), f"data.generator.n_events={self.events}"])
            self.stage("ingest", ["ingest", *self.common()])
        chain = [*self.common(), *PROTOCOLS[protocol], f"target={target}"]
        split_dir = self.folder("split", chain)
        if not (split_dir / "manifest.json").is_file():
            self.stage(f"split {protocol} {target}", ["split", *chain])
        shas = {}
        for group in groups:
            overrides = [*chain, f"features={group}"]
            features_dir = self.folder("features", overrides)
            if not (features_dir / "manifest.json").is_file():
                self.stage(f"features {protocol} {target} {group}", ["features", *overrides])
            shas[group] = sha256_file(features_dir / "manifest.json")
        return shas

    def folder(self, key: str, overrides: list[str]) -> Path:
        from recsys_cli.config import compose

        return Path(compose("train", overrides)[f"{key}_dir"])

    def stage(self, name: str, args: list[str]) -> None:
        cost = run(args, self.root / "logs" / f"{name.replace(' ', '_')}.log")
        self.cache.setdefault("stages", {})[name] = cost
        print(f"  {name}: {cost['wall_s']:.1f} s, {cost['peak_rss_mib']:.0f} MiB", flush=True)
        self.save()

    def folds(self, protocol: str, target: str) -> list[str]:
        from recsys_cli.data.lake import read_manifest

        chain = [*self.common(), *PROTOCOLS[protocol], f"target={target}"]
        return [f["name"] for f in read_manifest(self.folder("split", chain))["folds"]]

    def fit(self, protocol: str, target: str, fold: str, spec: Spec, sha: str) -> dict[str, Any]:
        """`recsys train part=val`, then `part=test`: metrics and cost of each."""
        key = "/".join((protocol, target, fold, spec.name))
        runs = self.root / "runs" / protocol / target / fold
        overrides = [
            *self.common(),
            *PROTOCOLS[protocol],
            f"target={target}",
            f"features={spec.features}",
            f"fold={fold}",
            f"seed={self.seed}",
            *spec.overrides,
            *QUIET,
            f"runs_dir={runs}",
        ]
        cached = self.cache.get("fits", {}).get(key)
        if cached and cached["overrides"] == overrides and cached["features_sha256"] == sha:
            return cached
        entry: dict[str, Any] = {"overrides": overrides, "features_sha256": sha}
        for part in ("val", "test"):
            log = self.root / "logs" / protocol / target / fold / f"{spec.name}-{part}.log"
            cost = run(["train", *overrides, f"part={part}"], log)
            metrics = latest_metrics(runs, part)
            entry[part] = {"metrics": metrics, **cost}
        self.cache.setdefault("fits", {})[key] = entry
        self.save()
        return entry

    def earlier(self, protocol: str, target: str, spec: Spec) -> dict[str, Any] | None:
        """Every fold's cached fit of `spec`, when an earlier invocation made them all."""
        fits = self.cache.get("fits", {})
        folds = self.folds(protocol, target)
        found = {fold: fits.get("/".join((protocol, target, fold, spec.name))) for fold in folds}
        return found if all(found.values()) else None  # type: ignore[return-value]

    def save(self) -> None:
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache, indent=1, sort_keys=True))
        tmp.replace(self.cache_path)


def latest_metrics(runs: Path, part: str) -> dict[str, float]:
    """metrics.json of the newest sealed run under `runs` that scored `part`."""
    found = []
    for path in runs.glob("*/*/metrics.json"):
        metrics = json.loads(path.read_text())
        if f"{part}/{METRIC}" in metrics:
            found.append((path.stat().st_mtime, metrics))
    if not found:
        raise RuntimeError(f"{runs}: no run scored {part}")
    metrics = max(found, key=lambda f: f[0])[1]
    return {k.removeprefix(f"{part}/"): float(v) for k, v in metrics.items()}


def summarise(fits: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per model: fold-mean test and validation NDCG@10, ratios to the references
    (fold-mean over fold-mean), and the validation fit's median cost and worst memory."""
    out: dict[str, Any] = {}
    for name, per_fold in fits.items():
        rows = list(per_fold.values())
        out[name] = {
            "test": float(np.mean([r["test"]["metrics"][METRIC] for r in rows])),
            "val": float(np.mean([r["val"]["metrics"][METRIC] for r in rows])),
            "best_epoch": [r["val"]["metrics"].get("best_epoch") for r in rows],
            "fit_wall_s": float(np.median([r["val"]["wall_s"] for r in rows])),
            "fit_cpu_s": float(np.median([r["val"]["cpu_s"] for r in rows])),
            "peak_rss_mib": float(max(max(r["val"]["peak_rss_mib"], r["test"]["peak_rss_mib"]) for r in rows)),
            "users": int(sum(r["test"]["metrics"].get("users", 0) for r in rows)),
        }
    for row in out.values():
        for ref in REFERENCES:
            if ref in out and out[ref]["test"] > 0:
                row[f"x_{ref}"] = row["test"] / out[ref]["test"]
    return out


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, v) for k, v in summary.items() if "popularity" in v]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), squeeze=False)
    for ax, (title, models) in zip(axes[0], panels, strict=True):
        names = sorted(models, key=lambda n: models[n].get("x_popularity", 0))
        ax.barh(names, [models[n].get("x_popularity", 0) for n in names], color="#4c72b0")
        ax.axvline(1.0, color="black", lw=1)
        ax.set_xlabel("test NDCG@10 / popularity's")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synth", help="conf/data preset with a generator")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--protocols", default="global,rolling")
    parser.add_argument("--targets", default="engagement")
    parser.add_argument("--models", default="all", help="comma-separated names, or all")
    parser.add_argument("--workdir", type=Path, default=Path("bench_data/clickstream"))
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("RECSYS_PSEUDONYM_KEY", "bench-clickstream")
    # One thread per library: on a shared 2-core machine two OpenMP threads spinning
    # beside other work made fits several times slower (models/lambdarank.py).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    wanted = MODELS if args.models == "all" else [m for m in MODELS if m.name in args.models.split(",")]
    root = (args.workdir / f"{args.data}-e{args.events}-s{args.seed}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    bench = Bench(root, args.data, args.events, args.seed, args.fresh)
    summary: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for protocol in args.protocols.split(","):
        for target in args.targets.split(","):
            shas = bench.prepare(protocol, target, sorted({m.features for m in wanted}))
            fits: dict[str, dict[str, Any]] = {}
            for spec in wanted:
                try:
                    for fold in bench.folds(protocol, target):
                        fits.setdefault(spec.name, {})[fold] = bench.fit(
                            protocol, target, fold, spec, shas[spec.features]
                        )
                        print(f"  {protocol} {target} {fold} {spec.name}: done", flush=True)
                except RuntimeError as exc:
                    failed[f"{protocol}/{target}/{spec.name}"] = str(exc)
                    fits.pop(spec.name, None)
            # Models measured by an earlier invocation on the same data join the table.
            for spec in MODELS:
                earlier = bench.earlier(protocol, target, spec)
                if spec.name not in fits and earlier:
                    fits[spec.name] = earlier
            summary[f"{protocol}/{target}"] = summarise(fits)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": git_state(),
        "machine": machine(),
        "data": {"preset": args.data, "events": args.events, "seed": args.seed},
        "stages": bench.cache.get("stages", {}),
        "summary": summary,
        "failed": failed,
    }
    (root / "summary.json").write_text(json.dumps(result, indent=1))
    plot(summary, root / "ratio_to_popularity.png")
    print_tables(summary, failed)
    print(f"written: {root / 'summary.json'}, {root / 'ratio_to_popularity.png'}")


def print_tables(summary: dict[str, Any], failed: dict[str, str]) -> None:
    from recsys_cli.console import make_console, rows_table

    console = make_console()
    header = ("model", "val NDCG@10", "test NDCG@10", "x popularity", "x ALS", "fit s", "CPU s", "peak MiB")
    for key, models in summary.items():
        rows = [
            [
                name,
                m["val"],
                m["test"],
                m.get("x_popularity", float("nan")),
                m.get("x_als", float("nan")),
                m["fit_wall_s"],
                m["fit_cpu_s"],
                m["peak_rss_mib"],
            ]
            for name, m in sorted(models.items(), key=lambda kv: -kv[1]["test"])
        ]
        console.print(rows_table(f"{key} (cart/purchase NDCG@10, fold mean)", header, rows))
    for key, reason in failed.items():
        console.print(f"[red]failed[/red] {key}: {reason}")


if __name__ == "__main__":
    main()
