"""What `recsys export` costs and what it makes: export time, package size (by
part) and the time to load a package cold, hashes verified, for

- demo: the demo's EASE run on the synthetic shop (`make demo`: 50k events);
- movielens_ranker: the LightGBM two-stage ranker on MovieLens-100K as
  `experiment=movielens100k_ranker_lgbm` trains it (fold-0, its validation run;
  12 labelled windows, the 12-point grid chosen inside the fit);
- two_tower_100k: a two-tower (ids only, `--epochs` epochs) on the synthetic shop
  with a 100,000-item catalogue, generated, ingested, split and featurised by the
  real commands, the fit's time and size recorded; its package holds an IVF index
  (conf/ann `kind: auto` above `exact_below`) whose recall@100 against exact
  search and query times export measures on 1,000 real users and records in the
  manifest.

The item vocabulary holds the items seen in the training history only, so the
100k shop is generated with a flatter popularity (`popularity_shape`) and fewer
products launched during the log (`new_item_share`) than the default shop, and
with enough events (2M by default; views count, so the fit sees ~0.95M user-item
pairs) that ~97% of the catalogue is in it; the exact sizes are in results.json.

Each model is trained into <workdir>/<case>/; a case in results.json is not
measured again unless --fresh (the other cases' results are kept).
two_tower_100k keeps its data and fitted run and reuses them while its settings
(prepare.json) are unchanged, so --fresh measures its export and loads again
without a new fit; --refit fits it again. `recsys export RUN --no-push` then runs in its own process (wall,
CPU seconds and peak memory of the whole command, imports included), and the
package is loaded by `load_package` in a new process, three times: "cold" is a
process that has imported nothing and read nothing (the files may sit in the
OS page cache; dropping it needs root). The load is split into the hash check
(`verify_package`, timed again on its own) and a second, warm load in the same
process, which shows how much of the cold load is importing libraries.

    python scripts/bench_export.py                          # every case not yet measured
    python scripts/bench_export.py --cases demo
    OMP_NUM_THREADS=1 python scripts/bench_export.py --cases two_tower_100k
    python scripts/bench_export.py --ranker model.lightgbm_grid=null   # a one-point ranker

MovieLens-100K must be fetched first: scripts/fetch_movielens100k.sh (data/raw/ml-100k).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_clickstream import run  # noqa: E402
from bench_movielens import git_state, machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
QUIET = ("trainer.enable_progress_bar=false",)
CASES = ("demo", "movielens_ranker", "two_tower_100k")
# The 100k shop: a flatter popularity and fewer launches during the log than the
# default shop, so the training history reaches most of the catalogue.
SHOP_100K = (
    "+data.generator.n_items=100000",
    "+data.generator.popularity_shape=50",
    "+data.generator.new_item_share=0.05",
)
# Ids only, so that a few epochs fit in minutes on one thread.
TWO_TOWER_100K = ("model=two_tower", "model.side_features=false", "model.dim=64", "model.batch_size=1024")
LOADS = 3
# One new process: the cold load (its lazy imports of polars, scipy, the model's
# module, faiss... included), the hash check on its own, and a second, warm load.
LOAD_SCRIPT = """
import json, sys, time
from recsys_cli.registry.package import load_package, verify_package
start = time.perf_counter()
package = load_package(sys.argv[1])
cold = time.perf_counter()
verify_package(sys.argv[1])
verified = time.perf_counter()
load_package(sys.argv[1])
warm = time.perf_counter()
print(json.dumps({"cold_s": cold - start, "verify_s": verified - cold, "warm_s": warm - verified,
                  "ann": sorted(package.ann)}))
"""


def train_demo(folder: Path) -> Path:
    """The demo's chain, each command in its own process; returns the EASE run."""
    train = ["train", "model=ease", f"runs_dir={folder / 'runs'}", *QUIET]
    for args in (["datasets", "synth"], ["ingest"], ["split"], ["features"], train):
        run([*args, f"paths.data_dir={folder / 'data'}"], folder / f"{args[0]}.log")
    return newest_run(folder / "runs")


def train_movielens_ranker(folder: Path, extra: Sequence[str]) -> Path:
    """Lake, split and features as `recsys reproduce` prepares them for the preset,
    then its fold-0 validation run."""
    from recsys_cli.config import compose
    from recsys_cli.tasks import features, ingest, split, train
    from recsys_cli.tasks.reproduce import step_config

    raw = REPO / "data" / "raw" / "ml-100k"
    if not raw.is_dir():
        raise SystemExit(f"{raw}: missing; run scripts/fetch_movielens100k.sh first")
    overrides = [
        "experiment=movielens100k_ranker_lgbm",
        f"paths.data_dir={folder / 'data'}",
        f"runs_dir={folder / 'runs'}",
        f"data.path={raw}",
        "fold=fold-0",
        "part=val",
        *QUIET,
        *extra,
    ]
    full = compose("train", overrides)
    config_dir = REPO / "conf"
    timings = {}
    for step, task in (("ingest", ingest), ("split", split), ("features", features)):
        start = time.perf_counter()
        task.run(step_config(step, full, config_dir))
        timings[step] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    result = train.run(full)
    timings["train"] = round(time.perf_counter() - start, 1)
    (folder / "prepare.json").write_text(json.dumps(timings, indent=1))
    return result.run


def train_two_tower_100k(folder: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The shop's chain, each command in its own process, and the two-tower fit;
    returns the run and what each step cost. Reused while the settings match."""
    import shutil

    settings = {
        "synth": [*SHOP_100K, f"data.generator.n_events={args.events}", f"+data.generator.n_users={args.users}"],
        "train": [*TWO_TOWER_100K, f"trainer.max_epochs={args.epochs}", *args.two_tower],
    }
    record = folder / "prepare.json"
    if record.is_file() and not args.refit:
        kept = json.loads(record.read_text())
        if kept["settings"] == settings and (runs := list((folder / "runs").glob("*/*/manifest.json"))):
            print(f"  reusing {runs[0].parent} ({record})", flush=True)
            return newest_run(folder / "runs"), kept
    for stale in ("data", "runs"):
        shutil.rmtree(folder / stale, ignore_errors=True)
    data = f"paths.data_dir={folder / 'data'}"
    steps = {
        "synth": ["datasets", "synth", *settings["synth"]],
        "ingest": ["ingest"],
        "split": ["split"],
        "features": ["features"],
        "train": ["train", *settings["train"], f"runs_dir={folder / 'runs'}", *QUIET],
    }
    costs = {}
    for step, command in steps.items():
        print(f"  {step} ...", flush=True)
        costs[step] = run([*command, data], folder / f"{step}.log")
    kept = {"settings": settings, "steps": costs, "sizes": shop_sizes(folder / "data")}
    record.write_text(json.dumps(kept, indent=1) + "\n")
    return newest_run(folder / "runs"), kept


def shop_sizes(data: Path) -> dict[str, Any]:
    """Rows of the lake, of fold-0's training part, and the user-item pairs the fit sees."""
    import polars as pl

    lake = json.loads(next((data / "lake").glob("*/manifest.json")).read_text())
    split = json.loads(next((data / "splits").glob("*/*/manifest.json")).read_text())
    pairs = next((data / "features").glob("*/*/*/fold-0/val/interactions.parquet"))
    return {
        "lake": lake["rows"] | lake["distinct"],
        "train_events": split["folds"][0]["parts"]["train"]["rows"],
        "train_pairs": pl.scan_parquet(pairs).select(pl.len()).collect().item(),
    }


def newest_run(runs: Path) -> Path:
    found = sorted((p.parent for p in runs.glob("*/*/manifest.json")), key=lambda p: p.name)
    if not found:
        raise SystemExit(f"{runs}: no run")
    return found[-1]


def sizes(package: Path) -> dict[str, int]:
    """Bytes per part of the package: model/, ann/, vocab/, fallbacks/ and each top-level file."""
    out: dict[str, int] = {}
    for path in package.rglob("*"):
        if path.is_file():
            rel = path.relative_to(package)
            part = rel.parts[0] + ("/" if len(rel.parts) > 1 else "")
            out[part] = out.get(part, 0) + path.stat().st_size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def loads(package: Path) -> list[dict[str, Any]]:
    out = []
    for _ in range(LOADS):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", LOAD_SCRIPT, str(package)], capture_output=True, text=True, check=True
        )
        timing = json.loads(proc.stdout.strip().splitlines()[-1])
        timing["process_s"] = time.perf_counter() - start
        out.append({k: round(v, 3) if isinstance(v, float) else v for k, v in timing.items()})
    return out


def measure(case: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    prepared: dict[str, Any] = {}
    if case == "demo":
        trained = train_demo(folder)
    elif case == "movielens_ranker":
        trained = train_movielens_ranker(folder, args.ranker)
    else:
        trained, prepared = train_two_tower_100k(folder, args)
    package = folder / "package"
    shutil.rmtree(package, ignore_errors=True)  # a package left by an earlier measurement
    print("  export ...", flush=True)
    exported = run(["export", str(trained), "--no-push", "--out", str(package)], folder / "export.log")
    manifest = json.loads((package / "manifest.json").read_text())
    parts = sizes(package)
    print("  loads ...", flush=True)
    load = loads(package)
    vocabulary = {n: json.loads((package / "vocab" / f"{n}.json").read_text())["size"] for n in ("items", "users")}
    extra = {}
    if prepared:
        metrics = json.loads((trained / "metrics.json").read_text()) if (trained / "metrics.json").is_file() else {}
        extra = {
            "shop": prepared["sizes"],
            "settings": prepared["settings"],
            "steps": prepared["steps"],
            "fit_s_to_best_epoch": metrics.get("fit/seconds_to_best_epoch"),
        }
    return {
        "run": str(trained),
        "model": manifest["model"]["class"].rsplit(".", 1)[-1],
        "items": manifest["contents"]["items"],
        "users": manifest["contents"]["users"],
        "vocabulary": vocabulary,
        **extra,
        "files": len(manifest["files"]) + 1,
        "export": exported,
        "package_bytes": sum(parts.values()),
        "parts": parts,
        "ann": manifest.get("ann", {}),
        "load": load,
        "cold_load_median_s": sorted(x["cold_s"] for x in load)[LOADS // 2],
        "verify_median_s": sorted(x["verify_s"] for x in load)[LOADS // 2],
        "warm_load_median_s": sorted(x["warm_s"] for x in load)[LOADS // 2],
        "metrics": {k: v for k, v in manifest["metrics"].items() if k.endswith("ndcg@10")},
    }


def print_table(results: dict[str, Any]) -> None:
    from rich.table import Table

    from recsys_cli.console import make_console

    table = Table(title="recsys export: time, size, load (median of 3 new processes)")
    columns = ("case", "model", "items / users", "export wall / CPU s", "peak MiB", "package MB", "largest part")
    for column in (*columns, "cold load s", "verify alone s", "warm load s"):
        table.add_column(column, justify="left" if column in ("case", "model") else "right")
    for case, r in results["cases"].items():
        part, size = next(iter(r["parts"].items()))
        median = sorted(r["load"], key=lambda x: x["cold_s"])[LOADS // 2]
        table.add_row(
            case,
            r["model"],
            f"{r['items']:,} / {r['users']:,}",
            f"{r['export']['wall_s']:.1f} / {r['export']['cpu_s']:.1f}",
            f"{r['export']['peak_rss_mib']:.0f}",
            f"{r['package_bytes'] / 1e6:.2f}",
            f"{part} {size / 1e6:.2f} MB",
            f"{median['cold_s']:.2f}",
            f"{median['verify_s']:.3f}",
            f"{median['warm_s']:.3f}",
        )
    console = make_console()
    console.print(table)
    ann = Table(title="ANN per embedding model (conf/ann; recall@k against exact search, one query at a time)")
    for column in ("case", "index", "kind", "params", "items x dim", "recall@k", "queries", "ANN ms", "exact ms"):
        ann.add_column(column, justify="left" if column in ("case", "index", "kind", "params") else "right")
    for case, r in results["cases"].items():
        for name, a in r["ann"].items():
            ann.add_row(
                case,
                name,
                a["kind"],
                " ".join(f"{k}={v}" for k, v in a["params"].items()),
                f"{a['items']:,} x {a['dim']}",
                f"{a['recall']:.4f} @{a['k']}",
                f"{a['queries']:,}",
                f"{a['ann_ms_median']:.3f}",
                f"{a['exact_ms_median']:.3f}",
            )
    console.print(ann)
    for case, r in results["cases"].items():
        if "steps" in r:
            shop, steps = r["shop"], r["steps"]
            costs = ", ".join(f"{k} {v['wall_s']:.0f}/{v['cpu_s']:.0f} s" for k, v in steps.items())
            console.print(
                f"{case}: {shop['lake']['events']:,} events ({shop['train_events']:,} in training, "
                f"{shop['train_pairs']:,} user-item pairs), {shop['lake']['items']:,} items in the catalogue, "
                f"{r['vocabulary']['items'] - 1:,} in the vocabulary (+ OOV); wall/CPU: {costs}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "bench_data" / "export")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--ranker", nargs="*", default=[], help="extra train overrides for the MovieLens ranker")
    parser.add_argument("--events", type=int, default=2_000_000, help="two_tower_100k: events generated")
    parser.add_argument("--users", type=int, default=20_000, help="two_tower_100k: users in the shop")
    parser.add_argument("--epochs", type=int, default=3, help="two_tower_100k: trainer.max_epochs")
    parser.add_argument("--two-tower", nargs="*", default=[], help="two_tower_100k: extra train overrides")
    parser.add_argument("--fresh", action="store_true", help="measure the cases asked for again")
    parser.add_argument("--refit", action="store_true", help="two_tower_100k: generate and fit again")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per fit, as the other model benchmarks measure
    path = args.workdir / "results.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("cases", {})
    for case in args.cases.split(","):
        if case not in CASES:
            raise SystemExit(f"--cases: unknown case {case!r} (known: {', '.join(CASES)})")
        if case in results["cases"] and not args.fresh:
            continue
        print(f"{case} ...", flush=True)
        results["cases"][case] = measure(case, args.workdir / case, args)
        stamp = {"machine": machine(), "commit": git_state(), "measured_at": datetime.now(UTC).isoformat()}
        results["cases"][case] |= stamp
        results |= stamp
        args.workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
    print_table(results)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
