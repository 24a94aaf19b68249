"""Stale, warm-started and fully retrained models after a planted shock: what a
`recsys retrain` buys, and what its warm start saves.

For each seed a synthetic shop with shocks from day 60 (`data=synth_drift`: a
category surge, a price rise, 50 launches, one region's change of taste) is
generated into <workdir>/seed-<s>/ and taken through ingest, split and features
with the production cutoff at the shock (validation days 53-60, test from day 60).
Each model is trained as production is (`part=val+test`: the validation run picks
the epochs, the refit trains on everything before day 60), exported, pushed and
promoted. Then `recsys retrain` runs twice on copies of that registry, once with
`retrain.policy.mode=warm` and once with `full`, holding out the lake's last
`--eval-days` (the weeks after the shock). Each retrain's retrain.json gives
NDCG@10 of the candidate and of the stale production model on the same users,
and the candidate's fit time (CPU seconds over all threads, from its run).

The issue's bar: the warm start reaches at least 95% of the full retrain's
NDCG@10 in well under half its fit time. Quoted: medians over seeds.

    python scripts/bench_retrain.py                          # 2M events, ALS and BPR-MF, seeds 1-3
    python scripts/bench_retrain.py --events 200000 --seeds 1 --models als
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_clickstream import run  # noqa: E402
from bench_movielens import git_state, machine  # noqa: E402

# Production's split: validation days 53-60 of the synthetic shop (which starts on
# 2026-01-01), test from day 60, when data=synth_drift's shocks begin.
SPLIT = ("split.val_cutoff=2026-02-23T00:00:00+00:00", "split.test_cutoff=2026-03-02T00:00:00+00:00")
MODES = ("warm", "full")


def prepare(root: Path, events: int, seed: int) -> dict[str, Any]:
    data = root / "data"
    common = [f"paths.data_dir={data}", "data=synth_drift"]
    steps = {
        "synth": ["datasets", "synth", *common, f"data.generator.n_events={events}", f"data.generator.seed={seed}"],
        "ingest": ["ingest", *common],
        "split": ["split", *common, *SPLIT],
        "features": ["features", *common, *SPLIT],
    }
    return {step: run(args, root / "logs" / f"{step}.log") for step, args in steps.items()}


def production(root: Path, model: str) -> tuple[Path, dict[str, Any]]:
    """Model `model` trained as production (validation run, then the refit), exported,
    pushed and promoted in <root>/registry-<model>; returns the registry."""
    data, runs, registry = root / "data", root / "runs" / model, root / f"registry-{model}"
    shutil.rmtree(runs, ignore_errors=True)
    shutil.rmtree(registry, ignore_errors=True)
    train = [
        "train",
        f"paths.data_dir={data}",
        "data=synth_drift",
        *SPLIT,
        f"model={model}",
        "part=val+test",
        f"runs_dir={runs}",
        "trainer.enable_progress_bar=false",
    ]
    cost = run(train, root / "logs" / f"train-{model}.log")
    refit = max(runs.glob("*/*/config.yaml"), key=lambda p: p.stat().st_mtime).parent
    name = f"synth_drift-{model}"
    run(["export", str(refit), "--name", name, f"registry.uri={registry}"], root / "logs" / f"export-{model}.log")
    promote = ["registry", "promote", name, "1", "--alias", "production", "--uri", str(registry)]
    run(promote, root / "logs" / "promote.log")
    return registry, {"production_train": cost, "production_run": str(refit)}


def retrain(root: Path, model: str, registry: Path, mode: str, eval_days: float) -> dict[str, Any]:
    copy = root / f"registry-{model}-{mode}"
    out = root / f"retrain-{model}-{mode}"
    for folder in (copy, out):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(registry, copy)
    args = [
        "retrain",
        f"registry.uri={copy}",
        f"out_dir={out}",
        f"retrain.policy.mode={mode}",
        f"retrain.window.eval_days={eval_days}",
    ]
    cost = run(args, root / "logs" / f"retrain-{model}-{mode}.log")
    record = json.loads(next(out.glob("*/retrain.json")).read_text())
    d = record["decision"]
    return {
        "command": cost,
        "mode": d["policy"]["mode"],
        "policy_figures": d["policy"]["figures"],
        "users_compared": d["held_out"]["users"]["users_compared"],
        "candidate_ndcg@10": d["held_out"]["candidate"]["ndcg@10"],
        "production_ndcg@10": d["held_out"]["production"]["ndcg@10"],
        "fit_cpu_s": d["candidate"]["fit"]["cpu_s"],
        "fit_wall_s": d["candidate"]["fit"]["wall_s"],
        "promoted": record["state"] == "promoted",
        "guard": d["guard"]["reasons"],
    }


def summarise(results: dict[str, dict[str, Any]], models: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in models:
        rows = [r[model] for r in results.values() if model in r]
        if not rows:
            continue

        def med(f: Any, rows: list[dict[str, Any]] = rows) -> float:
            return round(statistics.median(f(r) for r in rows), 4)

        out[model] = {
            "seeds": len(rows),
            "stale_ndcg@10": med(lambda r: r["full"]["production_ndcg@10"]),
            "warm_ndcg@10": med(lambda r: r["warm"]["candidate_ndcg@10"]),
            "full_ndcg@10": med(lambda r: r["full"]["candidate_ndcg@10"]),
            "warm_over_full_quality": med(lambda r: r["warm"]["candidate_ndcg@10"] / r["full"]["candidate_ndcg@10"]),
            "warm_fit_cpu_s": med(lambda r: r["warm"]["fit_cpu_s"]),
            "full_fit_cpu_s": med(lambda r: r["full"]["fit_cpu_s"]),
            "warm_over_full_fit_cpu": med(lambda r: r["warm"]["fit_cpu_s"] / r["full"]["fit_cpu_s"]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--models", default="als,bpr_mf")
    parser.add_argument("--eval-days", type=float, default=14.0)
    parser.add_argument("--workdir", type=Path, default=Path("bench_data/retrain"))
    args = parser.parse_args()
    models = args.models.split(",")
    results: dict[str, dict[str, Any]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        root = args.workdir / f"{args.events}" / f"seed-{seed}"
        root.mkdir(parents=True, exist_ok=True)
        per_seed: dict[str, Any] = {"prepare": prepare(root, args.events, seed)}
        for model in models:
            registry, info = production(root, model)
            per_seed[model] = {**info, **{mode: retrain(root, model, registry, mode, args.eval_days) for mode in MODES}}
            w, f = per_seed[model]["warm"], per_seed[model]["full"]
            print(
                f"[seed {seed}] {model}: stale {f['production_ndcg@10']:.4f}  warm {w['candidate_ndcg@10']:.4f} "
                f"({w['fit_cpu_s']:.1f} CPU s)  full {f['candidate_ndcg@10']:.4f} ({f['fit_cpu_s']:.1f} CPU s)",
                flush=True,
            )
        results[str(seed)] = per_seed
    report = {
        "benchmark": "retrain after a planted shock",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": git_state(),
        "command": " ".join(sys.argv),
        "events": args.events,
        "eval_days": args.eval_days,
        "summary": summarise(results, models),
        "runs": results,
    }
    out = args.workdir / f"{args.events}" / "results.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
