"""Full evaluation of `recsys evaluate` at scale, on synthetic lists.

Builds 100,000 users x top-100 recommendations over a 50,000-item catalogue (a
Zipf popularity, relevant items partly planted in the lists, demographics,
activity, cold-start users, 200 categories, new products, engagement
probabilities for warm users) and runs them through the functions the command
uses: `evaluation.suite.evaluate` (every ranking and beyond-accuracy metric at
k = 5, 10, 20, 50, 100, all segments, fairness checks, calibration, 1,000 user
bootstrap resamples) and `tasks.evaluate.write_outputs` (metrics.json,
per_user.parquet, the HTML report with its PNG plots). Ranking the catalogue is
the model's cost and is not part of it.

Each repeat runs in a fresh interpreter that reports, as JSON, the wall time of
each step (from the suite's progress reports) and its peak RSS; the parent
prints the medians and writes them to bench_data/evaluate/results.json.

    OMP_NUM_THREADS=1 python scripts/bench_evaluate.py                  # 100k users, 3 repeats
    OMP_NUM_THREADS=1 python scripts/bench_evaluate.py --users 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KS = (5, 10, 20, 50, 100)
AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
REGIONS = ("north", "south", "east", "west", "central")


class StepClock:
    """A progress reporter that only records when each step starts."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def start(self, description: str, total: float | None = None) -> None:
        self.marks.append((description, time.perf_counter()))

    def advance(self, amount: float = 1) -> None:
        pass

    def done(self) -> None:
        pass

    def steps(self, end: float) -> dict[str, float]:
        stops = [t for _, t in self.marks[1:]] + [end]
        return {name: round(stop - t, 3) for (name, t), stop in zip(self.marks, stops, strict=True)}


def synthetic(n_users: int, n_items: int, length: int, seed: int) -> tuple[Any, Any]:
    """Inputs of the suite and the user ids: every array built vectorised."""
    import numpy as np
    import polars as pl
    import scipy.sparse as sp

    from recsys_cli.evaluation import segments
    from recsys_cli.evaluation.suite import Inputs

    rng = np.random.default_rng(seed)
    n_train_users = 2 * n_users
    # Item i (1-based) is the i-th most popular: Zipf-like counts of training users.
    popularity = np.zeros(n_items)
    popularity[1:] = np.maximum(1, np.floor(0.05 * n_train_users / np.arange(1, n_items) ** 0.8))
    cold = rng.random(n_users) < 0.05
    interactions = np.where(cold, 0, np.ceil(rng.lognormal(2.0, 1.0, n_users))).astype(np.int64)

    # Lists: 30 distinct items from the 1,000 most popular, then 70 distinct ones from
    # the rest (a stride coprime with the pool size walks the pool without repeats).
    head, tail = 1000, n_items - 1 - 1000
    j30, j70 = np.arange(30), np.arange(length - 30)
    stride_h = rng.choice(np.array([s for s in range(1, 500) if np.gcd(s, head) == 1]), n_users)
    stride_t = rng.choice(np.array([s for s in range(1, 5000) if np.gcd(s, tail) == 1]), n_users)
    first = (rng.integers(0, head, n_users)[:, None] + j30 * stride_h[:, None]) % head + 1
    rest = (rng.integers(0, tail, n_users)[:, None] + j70 * stride_t[:, None]) % tail + 1 + head
    recs = np.concatenate([first, rest], axis=1)

    # Truth: for 40% of users one of their list's items (near the top, geometric rank)
    # is relevant; everyone also has at least one popular item drawn at random, and
    # some bought products unknown to the model (column 0).
    planted = rng.random(n_users) < 0.4
    rank = np.minimum(rng.geometric(0.08, n_users) - 1, length - 1)
    extra = 1 + rng.poisson(0.8, n_users)
    rows = np.concatenate([np.flatnonzero(planted), np.repeat(np.arange(n_users), extra)])
    share = popularity[1:] / popularity[1:].sum()
    cols = np.concatenate([recs[planted, rank[planted]], 1 + rng.choice(n_items - 1, extra.sum(), p=share)])
    unknown = np.flatnonzero(rng.random(n_users) < 0.03)
    rows, cols = np.concatenate([rows, unknown]), np.concatenate([cols, np.zeros(unknown.size, np.int64)])
    truth = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_users, n_items))
    truth.sum_duplicates()
    truth.data[:] = 1.0
    keep = np.asarray(truth.getnnz(axis=1) > 0)  # every user: each has at least one relevant item

    categories = rng.integers(0, 200, n_items)
    new = rng.random(n_items) < 0.03
    probs = 1 / (1 + np.exp(3.0 + 0.02 * np.arange(length) - rng.normal(0, 0.5, (n_users, length))))
    gender = rng.choice(np.array(["F", "M", "X", ""]), n_users, p=[0.48, 0.47, 0.02, 0.03])

    def attribute(name: str, values: Any) -> Any:
        return segments.from_values(name, pl.Series(name, values[keep]).replace("", None))

    inputs = Inputs(
        recs=recs[keep],
        truth=truth[keep],
        popularity=popularity,
        n_train_users=n_train_users,
        user_groups=[
            segments.cold_start(cold[keep]),
            segments.activity(interactions[keep], [5, 20, 50]),
            attribute("age_bucket", rng.choice(np.array(AGES), n_users)),
            attribute("gender", gender),
            attribute("region", rng.choice(np.array(REGIONS), n_users)),
            attribute("occupation", rng.choice(np.array([f"occ_{i:02d}" for i in range(21)]), n_users)),
        ],
        item_groups=[
            segments.item_attribute("category", [f"cat_{c:03d}" for c in categories[1:]]),
            segments.new_products(new),
        ],
        categories=categories,
        new_items=new,
        probabilities=probs[keep],
        scored=~cold[keep],
    )
    user_ids = pl.Series("user_id", [f"u{i:06d}" for i in np.flatnonzero(keep)])
    return inputs, user_ids


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    from recsys_cli.evaluation.fairness import Thresholds
    from recsys_cli.evaluation.suite import Settings, evaluate
    from recsys_cli.tasks.evaluate import per_user_frame, write_outputs

    t0 = time.perf_counter()
    inputs, user_ids = synthetic(args.users, args.items, max(KS), args.seed)
    built = time.perf_counter()
    rss_inputs = _peak_rss_mib()
    settings = Settings(ks=KS, primary="ndcg@10", resamples=args.resamples, thresholds=Thresholds())
    clock = StepClock()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = evaluate(inputs, settings, clock)
    evaluated, cpu_evaluated = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        clock.start("writing metrics.json, per_user.parquet, report")
        frame = per_user_frame(user_ids, inputs.user_groups, result.per_user)
        write_outputs(Path(tmp) / "eval", result.summary | {"model": "synthetic", "part": "test"}, frame)
        end, cpu_end = time.perf_counter(), time.process_time()
        report_bytes = (Path(tmp) / "eval" / "report.html").stat().st_size
    return {
        "users": int(inputs.recs.shape[0]),
        "items": args.items,
        "k": max(KS),
        "resamples": args.resamples,
        "build_inputs_s": round(built - t0, 3),
        "evaluate_s": round(evaluated - start, 3),
        "total_s": round(end - start, 3),
        # CPU time of this process: on a shared machine, wall time also counts waiting for a core.
        "evaluate_cpu_s": round(cpu_evaluated - cpu_start, 3),
        "total_cpu_s": round(cpu_end - cpu_start, 3),
        "steps_s": clock.steps(end),
        "rss_after_inputs_mib": rss_inputs,
        "peak_rss_mib": _peak_rss_mib(),
        "report_kib": round(report_bytes / 1024),
        "ndcg@10": result.summary["headline"]["ndcg@10"],
    }


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench_data" / "evaluate" / "results.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    runs = []
    for i in range(args.repeats):
        command = [sys.executable, __file__, "--child", *sys.argv[1:]]
        out = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ})
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(
            f"run {i + 1}: evaluate {runs[-1]['evaluate_s']} s (cpu {runs[-1]['evaluate_cpu_s']} s), "
            f"with outputs {runs[-1]['total_s']} s (cpu {runs[-1]['total_cpu_s']} s), "
            f"peak RSS {runs[-1]['peak_rss_mib']} MiB",
            flush=True,
        )
    summary = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "median_evaluate_s": statistics.median(r["evaluate_s"] for r in runs),
        "median_total_s": statistics.median(r["total_s"] for r in runs),
        "median_evaluate_cpu_s": statistics.median(r["evaluate_cpu_s"] for r in runs),
        "median_total_cpu_s": statistics.median(r["total_cpu_s"] for r in runs),
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    print(json.dumps(runs[0]["steps_s"], indent=2))


if __name__ == "__main__":
    main()
