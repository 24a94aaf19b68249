"""What `recsys export` costs and what it makes: export time, package size (by
part) and the time to load a package cold, hashes verified, for

- demo: the demo's EASE run on the synthetic shop (`make demo`: 50k events);
- movielens_ranker: the LightGBM two-stage ranker on MovieLens-100K as
  `experiment=movielens100k_ranker_lgbm` trains it (fold-0, its validation run;
  12 labelled windows, the 12-point grid chosen inside the fit).

Each model is trained once into <workdir>/<case>/ (resumed from results.json
unless --fresh). `recsys export RUN --no-push` then runs in its own process (wall,
CPU seconds and peak memory of the whole command, imports included), and the
package is loaded by `load_package` in a new process, three times: "cold" is a
process that has imported nothing and read nothing (the files may sit in the
OS page cache; dropping it needs root). The load is split into the hash check
(`verify_package`, timed again on its own) and a second, warm load in the same
process, which shows how much of the cold load is importing libraries.

    python scripts/bench_export.py                          # both cases
    python scripts/bench_export.py --cases demo
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
CASES = ("demo", "movielens_ranker")
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


def measure(case: str, folder: Path, ranker: Sequence[str]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    trained = train_demo(folder) if case == "demo" else train_movielens_ranker(folder, ranker)
    package = folder / "package"
    exported = run(["export", str(trained), "--no-push", "--out", str(package)], folder / "export.log")
    manifest = json.loads((package / "manifest.json").read_text())
    parts = sizes(package)
    load = loads(package)
    return {
        "run": str(trained),
        "model": manifest["model"]["class"].rsplit(".", 1)[-1],
        "items": manifest["contents"]["items"],
        "users": manifest["contents"]["users"],
        "files": len(manifest["files"]) + 1,
        "export": exported,
        "package_bytes": sum(parts.values()),
        "parts": parts,
        "ann": manifest.get("ann", {}),
        "load": load,
        "cold_load_median_s": sorted(x["cold_s"] for x in load)[LOADS // 2],
        "metrics": {k: v for k, v in manifest["metrics"].items() if k.endswith("ndcg@10")},
    }


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

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
    Console(width=180).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "bench_data" / "export")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated: {', '.join(CASES)}")
    parser.add_argument("--ranker", nargs="*", default=[], help="extra train overrides for the MovieLens ranker")
    parser.add_argument("--fresh", action="store_true", help="ignore results.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per fit, as the other model benchmarks measure
    path = args.workdir / "results.json"
    results: dict[str, Any] = {} if args.fresh or not path.is_file() else json.loads(path.read_text())
    results.setdefault("cases", {})
    for case in args.cases.split(","):
        if case not in CASES:
            raise SystemExit(f"--cases: unknown case {case!r} (known: {', '.join(CASES)})")
        if case in results["cases"] and not args.fresh:
            continue
        print(f"{case} ...", flush=True)
        results["cases"][case] = measure(case, args.workdir / case, args.ranker)
        results |= {"machine": machine(), "commit": git_state(), "measured_at": datetime.now(UTC).isoformat()}
        args.workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
    print_table(results)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
