"""Benchmark `recsys split` + `recsys features` on a lake of the synthetic shop.

Each step runs in a fresh interpreter that times only the work (imports and
config composition excluded) and reports its own peak RSS; steps are repeated
and the median wall time and the largest peak are reported.

    python scripts/bench_features.py --data-dir bench_data/ingest/synth-e10000000-d180-s42-2024-01-01
    python scripts/bench_features.py --data-dir DIR --split rolling_origin

The data dir must hold `lake/synth` (made by `recsys ingest` or scripts/bench_ingest.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

STEPS = ("split", "features")


def child(step: str, overrides: list[str]) -> None:
    from recsys_cli.config import compose
    from recsys_cli.tasks import features, split

    cfg = compose(step, overrides)
    start = time.perf_counter()
    (split.run if step == "split" else features.run)(cfg)
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(step: str, overrides: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", step, *overrides], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, help="folder with lake/synth")
    p.add_argument("--split", default="global_temporal")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="results JSON [DATA_DIR/features-results.json]")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return 0
    from rich.table import Table

    from recsys_cli.console import make_console

    overrides = [f"paths.data_dir={args.data_dir.resolve()}", f"split={args.split}"]
    lake = json.loads((args.data_dir / "lake" / "synth" / "manifest.json").read_text())
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in STEPS}
    console = make_console()
    for r in range(args.repeats):
        for step in STEPS:
            runs[step].append(measure(step, overrides))
            console.print(
                f"{step} run {r + 1}/{args.repeats}: {runs[step][-1]['wall_s']:.1f} s, "
                f"{runs[step][-1]['peak_rss_mib']:,.0f} MiB"
            )
    summary = {
        s: {
            "median_wall_s": statistics.median(x["wall_s"] for x in v),
            "max_peak_rss_mib": max(x["peak_rss_mib"] for x in v),
        }
        for s, v in runs.items()
    }
    total = sum(v["median_wall_s"] for v in summary.values())
    table = Table(title=f"split={args.split} + features on {lake['rows']['events']:,} events")
    for col in ("step", "median wall s", "peak RSS MiB"):
        table.add_column(col)
    for s, v in summary.items():
        table.add_row(s, f"{v['median_wall_s']:.1f}", f"{v['max_peak_rss_mib']:,.0f}")
    table.add_row("total", f"{total:.1f}", f"{max(v['max_peak_rss_mib'] for v in summary.values()):,.0f}")
    console.print(table)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": len(__import__("os").sched_getaffinity(0)), "python": platform.python_version()},
        "events": lake["rows"]["events"],
        "split": args.split,
        "runs": runs,
        "summary": summary,
        "total_median_wall_s": total,
    }
    out = args.out or args.data_dir / f"features-results-{args.split}.json"
    out.write_text(json.dumps(result, indent=2))
    console.print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
