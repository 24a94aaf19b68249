"""Choose between configurations on several validation windows, all before the first test window.

A 14-day window of MovieLens-100K's rolling origin (P2) holds 53-74 warm users,
too few to rank changes worth +0.01 NDCG@10: leaving the ranker's item id out
won by +0.020 on fold-0's validation window and lost by 0.010 on the test
windows (BENCHMARKS.md, "MovieLens-100K margins over seeds"). This script widens
the protocol's split by `--windows - 1` earlier folds, fits each named model at
each seed on the validation windows of the first `--windows` folds (the last of
them is the protocol's own fold-0 validation window; the earlier ones are the
weeks before it), pools NDCG@10 over the windows' users per seed and ranks the
models by the mean over seeds. It never fits a test window, so it can decide
what `bench_movielens.py` then measures.

    python scripts/select_movielens.py --data-dir bench_data/ml20 \\
        --models ranker_lgbm_profile,ranker_lgbm_no_item_id --windows 3 --jobs 2

Fits are cached in the bench folder's cache (keys of their own, `p2-sel3/...`)
beside `bench_movielens.py`'s, so a rerun resumes and adds models.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_movielens as bench  # noqa: E402

SCORE = "ndcg@10"


def widened(protocol: bench.Protocol, windows: int) -> bench.Protocol:
    """The protocol's split with `windows - 1` more folds before its first, in a
    split folder of its own. Only a rolling origin has folds to add: its windows
    are counted back from the last event, so its own folds come out unchanged."""
    given = dict(o.split("=", 1) for o in protocol.split)
    if given.get("split") != "rolling_origin":
        raise SystemExit(f"{protocol.key}: only a rolling-origin protocol has earlier windows to add")
    if windows < 1:
        raise SystemExit("--windows must be at least 1")
    n_folds = int(given.get("split.n_folds", 4)) + windows - 1
    given |= {"split.n_folds": str(n_folds), "split.name": f"rolling_origin_sel{windows}"}
    return dataclasses.replace(
        protocol,
        key=f"{protocol.key}-sel{windows}",
        title=f"{protocol.title}, validation windows of the {windows} folds before the first test window",
        split=tuple(f"{k}={v}" for k, v in given.items()),
    )


def pooled(fits: Sequence[Mapping[str, Any]]) -> float:
    """NDCG@10 over every user of the windows: each window weighs by its users."""
    users = [float(f["metrics"]["users"]) for f in fits]
    if not sum(users):
        raise ValueError("the validation windows hold no users")
    return sum(float(f["metrics"][SCORE]) * u for f, u in zip(fits, users, strict=True)) / sum(users)


def select(
    b: bench.Bench,
    protocol: bench.Protocol,
    specs: Sequence[bench.ModelSpec],
    seeds: Sequence[int],
    folds: Sequence[str],
    jobs: int,
) -> dict[str, Any]:
    """Every (model, seed, window) fitted on the validation part, then per model its
    windows' figures, the pooled score per seed and their mean; the models ranked by
    that mean (the first named wins a tie)."""
    for spec in specs:
        if len(spec.points()) != 1:
            raise SystemExit(f"{spec.name}: a model with a grid chooses on each window; name one point per model")
    cells = [bench.Cell(protocol, fold, spec, seed) for spec in specs for seed in seeds for fold in folds]

    def fit(cell: bench.Cell) -> dict[str, Any]:
        (entry,) = b.fit_many(cell, [(cell.spec.points()[0], "val", ())])
        return entry

    if jobs == 1:  # in this thread, as bench_movielens.py's one-job loop
        fitted = [fit(cell) for cell in cells]
    else:  # each thread waits on its fit in a worker process
        with ThreadPoolExecutor(jobs) as threads:
            fitted = list(threads.map(fit, cells))
    entries = dict(zip([c.key for c in cells], fitted, strict=True))
    models: dict[str, Any] = {}
    for spec in specs:
        per_seed: dict[str, dict[str, Any]] = {}
        for seed in seeds:
            fits = [entries[bench.Cell(protocol, fold, spec, seed).key] for fold in folds]
            per_seed[str(seed)] = {
                "windows": {
                    fold: {SCORE: f["metrics"][SCORE], "users": f["metrics"]["users"], "cpu_s": f.get("cpu_s")}
                    for fold, f in zip(folds, fits, strict=True)
                },
                "pooled": pooled(fits),
            }
        scores = [float(s["pooled"]) for s in per_seed.values()]
        mean = sum(scores) / len(scores)
        models[spec.name] = {"seeds": per_seed, "mean": mean, "min": min(scores), "max": max(scores)}
    ranking = sorted(models, key=lambda name: -models[name]["mean"])  # stable: the first named wins ties
    return {"windows": list(folds), "models": models, "ranking": ranking, "chosen": ranking[0]}


def print_result(result: Mapping[str, Any], seeds: Sequence[int]) -> None:
    from rich.table import Table

    from recsys_cli.console import console

    table = Table(title=f"pooled validation NDCG@10 over {', '.join(result['windows'])}")
    for column in ["model", *(f"seed {s}" for s in seeds), "mean", "min", "max"]:
        table.add_column(column, justify="left" if column == "model" else "right")
    for name in result["ranking"]:
        m = result["models"][name]
        cells = [f"{m['seeds'][str(s)]['pooled']:.4f}" for s in seeds]
        label = f"[bold]{name}[/]" if name == result["chosen"] else name
        table.add_row(label, *cells, f"{m['mean']:.4f}", f"{m['min']:.4f}", f"{m['max']:.4f}")
    console.print(table)
    console.print(f"chosen: [bold]{result['chosen']}[/] (highest mean over seeds)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    bench.folder_arguments(p)
    p.add_argument("--models", required=True, help="comma-separated names of bench_movielens.py's models")
    p.add_argument("--protocol", default="p2", help="a rolling-origin protocol of bench_movielens.py [p2]")
    p.add_argument("--windows", type=int, default=3, help="validation windows, the protocol's fold-0 one the last")
    p.add_argument("--seeds", default=None, help="e.g. 42,1,2,3 [the protocol's]")
    p.add_argument("--out", type=Path, default=None, help="results JSON [DATA_DIR/selection-<protocol>.json]")
    return bench.checked(p, argv)


def main(argv: Sequence[str] | None = None) -> int:
    from recsys_cli.console import console, rich_progress

    args = parse_args(argv)
    started, wall = datetime.now(UTC), time.perf_counter()
    if args.protocol not in bench.PROTOCOLS:
        raise SystemExit(f"--protocol {args.protocol!r}: one of {', '.join(bench.PROTOCOLS)}")
    protocol = widened(bench.PROTOCOLS[args.protocol], args.windows)
    skipped: dict[str, str] = {}
    specs = bench.select_models(args.models, skipped)
    if skipped:
        raise SystemExit("; ".join(f"{name}: {reason}" for name, reason in skipped.items()))
    seeds = bench.parse_seeds(args.seeds) or protocol.seeds
    root = args.data_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    groups = sorted({s.features for s in specs} | {"default"})
    with rich_progress() as reporter:
        shas = bench.prepare(root, args.raw, [protocol], groups, args.fresh, reporter)
    folds = bench.fold_names(root, protocol)[: args.windows]
    with bench.fit_pool(args.jobs) as pool:
        b = bench.Bench(root, bench.Cache(root / "cache.json", args.fresh), shas, pool=pool)
        result = select(b, protocol, specs, seeds, folds, args.jobs)
    out = args.out or root / f"selection-{args.protocol}.json"
    payload = {
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join([bench.interpreter(), *sys.argv]),
        "commit": bench.git_state(),
        "machine": bench.machine(),
        "protocol": {"key": protocol.key, "split": list(protocol.split)},
        "seeds": list(seeds),
        "models": {s.name: {"conf": s.conf, "fixed": list(s.fixed), "features": s.features} for s in specs},
        "counts": b.counts,
        "wall_s": time.perf_counter() - wall,
        **result,
    }
    bench.write_json(out, payload)
    print_result(result, seeds)
    console.print(f"results: {out}  ({payload['wall_s'] / 60:.1f} min)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
