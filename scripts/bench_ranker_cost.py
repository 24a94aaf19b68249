"""What the two-stage ranker costs as a shop grows: wall time, CPU time and peak
memory of every stage, from generating the synthetic shop to the ranker's fit.

For each size (events) a synthetic shop is generated once into
<workdir>/<events>/ and taken through `recsys ingest`, `split`,
`features features=ranker` and `recsys train features=ranker model=ranker_lgbm`
(the validation window, target=engagement: the defaults). Every command runs in
its own process, so its peak resident memory is its own; "train" is the whole
command: load, the ranker's fit (generators at every labelled window, LightGBM,
the refit of the generators) and scoring the validation window. The issue's bar:
under 5 minutes and 2 GiB at 1M events on 2 cores, growing at most linearly.

A size is skipped when the previous one, scaled linearly, predicts more than
`--budget-min` minutes for it (say so in what you report); its stages resume from
<workdir>/results.json unless `--fresh`.

    python scripts/bench_ranker_cost.py                                  # 1M, 3M, 10M
    python scripts/bench_ranker_cost.py --events 1000000 --threads 2
    python scripts/bench_ranker_cost.py --events 200000 --train model.negatives=null
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_clickstream import run  # noqa: E402
from bench_movielens import git_state, machine  # noqa: E402

RECSYS = str(Path(sys.executable).with_name("recsys"))
STAGES = ("synth", "ingest", "split", "features", "train")
FEATURES = ("features=ranker",)
TRAIN = ("features=ranker", "model=ranker_lgbm", "part=val", "trainer.enable_progress_bar=false")


def commands(events: int, train: Sequence[str]) -> dict[str, list[str]]:
    return {
        "synth": ["datasets", "synth", f"data.generator.n_events={events}"],
        "ingest": ["ingest"],
        "split": ["split"],
        "features": ["features", *FEATURES],
        "train": ["train", *TRAIN, *train],
    }


def latest_metrics(folder: Path) -> dict[str, float]:
    """metrics.json of the newest ranker run under `folder`/runs."""
    runs = sorted((folder / "runs").glob("**/metrics.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        return {}
    metrics = json.loads(runs[-1].read_text())
    keep = ("val/ndcg@10", "val/recall@10", "val/users", "best_epoch")
    return {k: v for k, v in metrics.items() if k in keep or (k.startswith("fit/") and "grid" not in k)}


def measure(size: int, root: Path, train: Sequence[str], results: dict[str, Any], save: Any) -> dict[str, Any]:
    folder = root / str(size)
    folder.mkdir(parents=True, exist_ok=True)
    entry = results.setdefault(str(size), {"stages": {}})
    for stage, args in commands(size, train).items():
        if stage in entry["stages"]:
            continue
        print(f"{size:,} events: {stage} ...", flush=True)
        entry["stages"][stage] = run(args, folder / f"{stage}.log", cwd=folder)
        if stage == "train":
            entry["metrics"] = latest_metrics(folder)
        save()
    entry["total_wall_s"] = round(sum(s["wall_s"] for s in entry["stages"].values()), 2)
    save()
    return entry


def print_table(results: dict[str, Any]) -> None:
    from rich.table import Table

    from recsys_cli.console import make_console

    table = Table(title="Two-stage ranker cost (per stage: wall s / CPU s / peak RSS MiB)")
    table.add_column("events", justify="right")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    table.add_column("val NDCG@10", justify="right")
    for size, entry in sorted(results.items(), key=lambda kv: int(kv[0])):
        cells = []
        for stage in STAGES:
            s = entry["stages"].get(stage)
            cells.append(f"{s['wall_s']:.0f} / {s['cpu_s']:.0f} / {s['peak_rss_mib']:.0f}" if s else "-")
        ndcg = entry.get("metrics", {}).get("val/ndcg@10")
        table.add_row(f"{int(size):,}", *cells, f"{ndcg:.4f}" if ndcg is not None else "-")
    make_console().print(table)  # whole in a log file too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1000000,3000000,10000000", help="comma-separated shop sizes")
    parser.add_argument("--workdir", type=Path, default=Path("bench_data/ranker_cost"))
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every command")
    parser.add_argument("--budget-min", type=float, default=15.0, help="skip a size predicted to take longer")
    parser.add_argument("--train", nargs="*", default=[], help="extra `recsys train` overrides")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results in the workdir")
    args = parser.parse_args()

    os.environ.setdefault("RECSYS_PSEUDONYM_KEY", "bench-ranker-cost")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    root = args.workdir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    path = root / "results.json"
    previous = json.loads(path.read_text()) if path.is_file() and not args.fresh else {}
    results: dict[str, Any] = previous.get("sizes", {})
    meta = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_state(),
        "machine": machine(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "train_overrides": [*TRAIN, *args.train],
    }

    def save() -> None:
        path.write_text(json.dumps({"meta": meta, "sizes": results}, indent=1))

    sizes = sorted(int(s) for s in args.events.split(","))
    done: tuple[int, float] | None = None
    for size in sizes:
        if done and str(size) not in results:
            predicted = done[1] * size / done[0] / 60
            if predicted > args.budget_min:
                print(f"{size:,} events skipped: {predicted:.0f} min predicted > --budget-min {args.budget_min:g}")
                results[str(size)] = {"stages": {}, "skipped": f"{predicted:.0f} min predicted"}
                save()
                continue
        if results.get(str(size), {}).get("skipped"):
            del results[str(size)]
        entry = measure(size, root, args.train, results, save)
        done = (size, entry["total_wall_s"])
    print_table({k: v for k, v in results.items() if v.get("stages")})
    print(f"written: {path}")


if __name__ == "__main__":
    main()
