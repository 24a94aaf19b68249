"""Data-parallel training on the CPU: SASRec and the two-tower model trained by one
process, then by two (`trainer=ddp trainer.devices=2`, gloo), on the same synthetic
shop: seconds per epoch (median) and validation NDCG@10.

Each fit is `recsys train` in its own process, as a user runs it, with the progress
bar off so the shared loop logs one line per epoch with the wall time since the fit
began; an epoch's seconds are the differences between those lines (training and
that epoch's validation). Patience is set to the epoch count, so every fit runs
them all. One process uses every core through torch's threads; with two, Lightning
gives each process half of them, so both use the whole machine.
`model.batch_size` is the global batch in both (each rank takes its share).

    python scripts/bench_ddp.py                                   # 200k events, 5 epochs
    python scripts/bench_ddp.py --events 50000 --epochs 3 --models sasrec

Writes <workdir>/ddp.json (and keeps the shop in <workdir>/data for a rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_movielens import git_state, machine  # noqa: E402

RECSYS = str(Path(sys.executable).with_name("recsys"))
EPOCH_LINE = re.compile(r"epoch (\d+)/\d+, .*?val/ndcg@10 ([\d.]+) .*?, ([\d.]+) s\s*$", re.MULTILINE)
# Variables through which a launcher tells a process its DDP rank: none may leak in.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS")


def recsys(args: list[str], log: Path) -> str:
    """One `recsys` command; its output (stdout and stderr) goes to `log` and is returned."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in (*RANK_VARIABLES, "OMP_NUM_THREADS")}
    env["COLUMNS"] = "250"  # rich wraps a line to the terminal's width, 80 without one
    done = subprocess.run([RECSYS, *args], capture_output=True, text=True, env=env, check=False)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise RuntimeError(f"recsys {' '.join(args[:2])}... failed ({log}): {tail}")
    return done.stdout + done.stderr


def prepare(root: Path, events: int) -> list[str]:
    """Generate, ingest, split and featurise the shop once; the overrides that read it."""
    common = [f"paths.data_dir={root / 'data'}", f"data.generator.n_events={events}"]
    if not any((root / "data" / "features").rglob("manifest.json")):
        for verb in ("datasets synth", "ingest", "split", "features"):
            start = time.perf_counter()
            recsys([*verb.split(), *common], root / "logs" / f"{verb.replace(' ', '_')}.log")
            print(f"  {verb}: {time.perf_counter() - start:.1f} s", flush=True)
    return common


def fit(root: Path, common: list[str], model: str, devices: int, epochs: int) -> dict[str, Any]:
    """One `recsys train part=val` on `devices` processes: per-epoch seconds and NDCG."""
    runs = root / "runs" / f"{model}-{devices}"
    shutil.rmtree(runs, ignore_errors=True)  # this fit's run is the only one there
    trainer = ["trainer=ddp", f"trainer.devices={devices}"] if devices > 1 else []
    args = [
        "train",
        *common,
        f"model={model}",
        *trainer,
        f"trainer.max_epochs={epochs}",
        f"model.patience={epochs}",
        "trainer.enable_progress_bar=false",
        f"runs_dir={runs}",
    ]
    start, load = time.perf_counter(), os.getloadavg()[0]
    output = recsys(args, root / "logs" / f"train-{model}-{devices}.log")
    wall = time.perf_counter() - start
    lines = EPOCH_LINE.findall(output)
    if len(lines) != epochs:
        raise RuntimeError(f"{model} on {devices}: {len(lines)} epoch lines for {epochs} epochs")
    elapsed = [float(seconds) for _, _, seconds in lines]
    per_epoch = [round(b - a, 3) for a, b in zip([0.0, *elapsed], elapsed, strict=False)]
    (run,) = [p for p in (runs / model.replace("_", "")).iterdir() if p.is_dir()]
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "processes": devices,
        "epoch_s": per_epoch,
        # the first epoch also pays for start-up (DDP's process group, first batches)
        "median_epoch_s": round(statistics.median(per_epoch), 3),
        "val_ndcg@10_per_epoch": [float(ndcg) for _, ndcg, _ in lines],
        "val/ndcg@10": metrics["val/ndcg@10"],
        "best_epoch": metrics.get("best_epoch"),
        "val/users": metrics["val/users"],
        "fit_wall_s": round(metrics["fit/wall_s"], 2),
        "command_wall_s": round(wall, 2),
        # other work on the machine skews the comparison: the 1-minute load before and after
        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
        "overrides": args[1:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("bench_data/ddp"))
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", default="sasrec,two_tower")
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args()
    root = args.workdir.resolve()
    common = prepare(root, args.events)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": git_state(),
        "machine": machine(),
        "events": args.events,
        "epochs": args.epochs,
        "fits": [],
    }
    for model in args.models.split(","):
        for devices in (int(d) for d in args.processes.split(",")):
            entry = {"model": model, **fit(root, common, model, devices, args.epochs)}
            results["fits"].append(entry)
            print(
                f"{model:10s} {devices} process(es): {entry['median_epoch_s']:.2f} s/epoch (median), "
                f"val NDCG@10 {entry['val/ndcg@10']:.4f} (best epoch {entry['best_epoch']:.0f})",
                flush=True,
            )
            (root / "ddp.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {root / 'ddp.json'}")


if __name__ == "__main__":
    main()
