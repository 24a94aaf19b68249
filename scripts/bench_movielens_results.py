"""The MovieLens benchmark's figures over seeds: summaries, the comparison of each
seed with the best baseline, the bars' verdicts, and the tables (rich and
BENCHMARKS.md). Pure functions over the results JSON of scripts/bench_movielens.py,
which imports them from here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

BASELINE, OURS = "baseline", "ours"
SELECT_BY = "ndcg@10"  # validation metric that chooses a grid point
REPORTED = ("ndcg@10", "recall@10", "hitrate@10", "mrr@10", "coverage@10")
PROJECT_SEED = 42  # conf/train.yaml's seed: the one seed baselines are fitted at


# --------------------------------------------------------------------------- bars


@dataclass(frozen=True)
class Bar:
    """Issue 20's bar for a protocol, judged over seeds against the best baseline.

    Every seed's paired-bootstrap 95% interval of the per-user difference must lie
    above zero; a condition left None is not part of the protocol's bar."""

    headline: str
    min_seeds: int
    mean_ratio: float | None = None  # mean over seeds of the fold-mean test NDCG@10, / the best baseline's
    mean_ndcg: float | None = None  # the same mean, absolute
    seed_ratio_floor: float | None = None  # no seed's ratio below this
    # slowest test fit: the whole `recsys train part=test` run, in CPU seconds where the
    # fit recorded them (one thread: its time on a core of its own), else wall seconds
    max_test_s: float | None = None
    max_seconds_to_best_epoch: float | None = None  # the chosen validation run's fit/cpu_seconds_to_best_epoch


def describe(bar: Bar) -> str:
    """The bar in words, as the JSON and the tables state it."""
    parts = [f"mean test NDCG@10 over >= {bar.min_seeds} seeds"]
    if bar.mean_ratio is not None:
        parts[0] += f" >= {bar.mean_ratio:.2f}x the best baseline"
    if bar.mean_ndcg is not None:
        parts[0] += f" >= {bar.mean_ndcg}"
    if bar.seed_ratio_floor is not None:
        parts.append(f"no seed under {bar.seed_ratio_floor:.2f}x")
    parts.append("every seed's paired-bootstrap 95% interval of the difference above 0")
    if bar.max_test_s is not None:
        parts.append(
            f"slowest test fit (a whole `recsys train part=test` run in CPU seconds, one thread; "
            f"max over folds and seeds) under {bar.max_test_s:.0f} s"
        )
    if bar.max_seconds_to_best_epoch is not None:
        parts.append(
            f"best validation epoch reached in under {bar.max_seconds_to_best_epoch:.0f} s "
            "of CPU (fit/cpu_seconds_to_best_epoch of the chosen validation run, max over seeds)"
        )
    return "; ".join(parts)


def criterion(name: str, required: str, measured: str, passes: bool) -> dict[str, Any]:
    return {"criterion": name, "required": required, "measured": measured, "passes": bool(passes)}


def judge(bar: Bar, row: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict of `bar` on one model's comparison with the best baseline
    (`compare`): one criterion per condition, and whether all of them pass."""
    seeds: Mapping[str, Mapping[str, Any]] = row["seeds"]
    checks = [
        criterion("seeds", f">= {bar.min_seeds}", f"{len(seeds)} ({', '.join(seeds)})", len(seeds) >= bar.min_seeds)
    ]
    mean, ratio, base = row["mean_ndcg@10"], row["mean_ratio"], row["baseline_ndcg@10"]
    if bar.mean_ratio is not None:
        measured = f"{ratio:.3f}x ({mean:.4f} vs {base:.4f})"
        checks.append(
            criterion("mean over seeds / best baseline", f">= {bar.mean_ratio:.2f}x", measured, ratio >= bar.mean_ratio)
        )
    if bar.mean_ndcg is not None:
        measured = f"{mean:.4f} ({ratio:.2f}x the best baseline's {base:.4f})"
        checks.append(criterion("mean test NDCG@10 over seeds", f">= {bar.mean_ndcg}", measured, mean >= bar.mean_ndcg))
    if bar.seed_ratio_floor is not None:
        low = min(seeds, key=lambda s: seeds[s]["ratio"])
        checks.append(
            criterion(
                "every seed / best baseline",
                f">= {bar.seed_ratio_floor:.2f}x",
                f"lowest {seeds[low]['ratio']:.3f}x (seed {low})",
                all(s["ratio"] >= bar.seed_ratio_floor for s in seeds.values()),
            )
        )
    worst = min(seeds, key=lambda s: seeds[s]["bootstrap"]["low"])
    checks.append(
        criterion(
            "every seed's paired 95% interval of the difference",
            "above 0",
            f"lowest bound {seeds[worst]['bootstrap']['low']:+.4f} (seed {worst})",
            all(s["bootstrap"]["low"] > 0 for s in seeds.values()),
        )
    )
    if bar.max_test_s is not None:
        slow = max(seeds, key=lambda s: seeds[s]["slowest_test_s"])
        worst_s = seeds[slow]["slowest_test_s"]
        measured = f"{worst_s:.0f} s ({seeds[slow]['slowest_test_fold']}, seed {slow})"
        checks.append(
            criterion(
                "slowest test fit (max over folds and seeds)",
                f"< {bar.max_test_s:.0f} s",
                measured,
                worst_s < bar.max_test_s,
            )
        )
    if bar.max_seconds_to_best_epoch is not None:
        checks.append(best_epoch_check(bar.max_seconds_to_best_epoch, seeds))
    return {"bar": describe(bar), "criteria": checks, "passes": all(c["passes"] for c in checks)}


def best_epoch_check(limit: float, seeds: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A seed without `fit/seconds_to_best_epoch` (a model that does not record it)
    fails: the bar cannot be shown met."""
    name, required = "best validation epoch reached (max over seeds)", f"< {limit:.0f} s"
    missing = [s for s, v in seeds.items() if v["seconds_to_best_epoch"] is None]
    if missing:
        return criterion(name, required, f"not recorded (seed {', '.join(missing)})", False)
    slow = max(seeds, key=lambda s: seeds[s]["seconds_to_best_epoch"])
    worst = seeds[slow]["seconds_to_best_epoch"]
    return criterion(name, required, f"{worst:.0f} s (seed {slow})", worst < limit)


# --------------------------------------------------------------------------- over seeds


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """Mean, min, max and sample standard deviation over seeds (sd None for one seed)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"mean": None, "min": None, "max": None, "sd": None}
    sd = float(a.std(ddof=1)) if a.size > 1 else None
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()), "sd": sd}


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of the folds whose figure exists (a validation window not fitted
    has none); None when no fold has it."""
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def fold_mean(folds: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Test and validation metrics averaged over folds (each fold counts once)."""
    rows = list(folds.values())
    return {
        "test": {m: float(np.mean([r["test"][m] for r in rows])) for m in REPORTED},
        "val": {m: _mean([r["val"][m] for r in rows]) for m in REPORTED},
        "users": sum(r["users"] for r in rows),
    }


def seed_summary(seeds: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Each metric's fold mean, summarised over seeds."""
    means = [s["mean"] for s in seeds.values()]
    return {
        "n_seeds": len(means),
        "seeds": list(seeds),
        "test": {m: spread([x["test"][m] for x in means]) for m in REPORTED},
        "val": {m: spread([x["val"][m] for x in means if x["val"][m] is not None]) for m in REPORTED},
    }


def paired_values(
    model: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user test NDCG@10 of a model and a baseline (their results by fold),
    paired on (fold, user) and pooled over folds."""
    frames = []
    for fold, result in model.items():
        left = pl.read_parquet(result["per_user"]).select("user_id", pl.col(SELECT_BY).alias("a"))
        right = pl.read_parquet(baseline[fold]["per_user"]).select("user_id", pl.col(SELECT_BY).alias("b"))
        joined = left.join(right, on="user_id", how="inner")
        if not joined.height == left.height == right.height:
            raise RuntimeError(f"{fold}: the model and the baseline were scored on different users")
        frames.append(joined)
    pooled = pl.concat(frames)
    return pooled["a"].to_numpy(), pooled["b"].to_numpy()


def best_of(models: Mapping[str, Mapping[str, Any]], kind: str, part: str) -> str | None:
    """The model of `kind` with the highest mean over seeds of `part` NDCG@10."""
    names = [n for n, m in models.items() if m["kind"] == kind and m["summary"] is not None]

    def score(name: str) -> float:
        mean = models[name]["summary"][part][SELECT_BY]["mean"]
        return -np.inf if mean is None else mean  # no validation window fitted

    return max(names, key=score) if names else None


def compare(
    key: str, models: Mapping[str, Mapping[str, Any]], resamples: int, memo: dict[tuple[str, ...], dict[str, Any]]
) -> dict[str, Any]:
    """Every model of ours against the best baseline, seed by seed: NDCG@10 ratio of
    the fold means and a paired bootstrap of the per-user difference (memoised in
    `memo`, as the JSON is rewritten after every seed).

    The best baseline is the one with the highest test NDCG@10: the strongest
    opponent. Picking it on test can only make a bar harder to pass, never easier.
    The one validation would pick is recorded beside it."""
    from recsys_cli.evaluation.bootstrap import paired_bootstrap

    opponent = best_of(models, BASELINE, "test")
    out: dict[str, Any] = {
        "best_baseline": opponent,
        "best_baseline_rule": "highest test NDCG@10 among baselines (the strongest opponent)",
        "best_baseline_seed": PROJECT_SEED,
        "best_baseline_by_validation": best_of(models, BASELINE, "val"),
        "best_of_ours_by_validation": best_of(models, OURS, "val"),
        "models": {},
    }
    if opponent is None:
        return out
    (base,) = models[opponent]["seeds"].values()
    base_mean = base["mean"]["test"][SELECT_BY]
    for name, m in models.items():
        if m["kind"] != OURS or not m["seeds"]:
            continue
        seeds = {}
        for seed, result in m["seeds"].items():
            memo_key = (key, name, seed, opponent, str(resamples))
            if memo_key not in memo:
                a, b = paired_values(result["folds"], base["folds"])
                memo[memo_key] = paired_bootstrap(a, b, n_resamples=resamples, seed=0).to_json()
            seeds[seed] = seed_row(result, base_mean, memo[memo_key])
        mean = float(np.mean([s["ndcg@10"] for s in seeds.values()]))
        out["models"][name] = {
            "mean_ndcg@10": mean,
            "baseline_ndcg@10": base_mean,
            "mean_ratio": mean / base_mean if base_mean > 0 else float("nan"),
            "seeds": seeds,
        }
    return out


def _cost(fold: Mapping[str, Any]) -> float:
    """A test fit's cost: its CPU seconds where recorded, else its wall seconds."""
    cpu = fold.get("test_cpu_s")
    return float(cpu if cpu is not None else fold["test_wall_s"])


def seed_row(result: Mapping[str, Any], base_mean: float, bootstrap: dict[str, Any]) -> dict[str, Any]:
    """One seed of a model against the best baseline, with its costs: the slowest
    test fit and the slowest chosen validation run's time to its best epoch."""
    folds = result["folds"]
    ndcg = result["mean"]["test"][SELECT_BY]
    cost = {f: _cost(r) for f, r in folds.items()}
    slowest = max(cost, key=lambda f: cost[f])
    to_best = [f["seconds_to_best_epoch"] for f in folds.values()]
    return {
        "ndcg@10": ndcg,
        "ratio": ndcg / base_mean if base_mean > 0 else float("nan"),
        "bootstrap": bootstrap,
        "slowest_test_s": cost[slowest],
        "slowest_test_wall_s": folds[slowest]["test_wall_s"],
        "slowest_test_fold": slowest,
        "seconds_to_best_epoch": None if None in to_best else max(to_best),
    }


# --------------------------------------------------------------------------- tables


def _f(value: float | None, fmt: str = ".4f") -> str:
    return "" if value is None else format(value, fmt)


def model_rows(protocol: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per model: a baseline's figures at its one seed; ours' test NDCG@10
    mean, min, max and sd over seeds and the other metrics' means over seeds."""
    head = ["model", "kind", "seeds", "val NDCG@10", "test NDCG@10", "min", "max", "sd"]
    head += ["Recall@10", "MRR@10", "Coverage@10", "vs best baseline", "bar"]
    c = protocol["comparison"] or {"models": {}}
    rows = []
    for name, m in protocol["models"].items():
        failed = "; ".join(f"seed {s} FAILED: {e}" for s, e in m["failed"].items())
        if m["summary"] is None:
            rows.append([name, m["kind"], failed, *[""] * (len(head) - 3)])
            continue
        s = m["summary"]
        nd = s["test"][SELECT_BY]
        seeds = ",".join(s["seeds"]) if m["kind"] == OURS else f"{PROJECT_SEED} (project seed, once)"
        spread_cells = [_f(nd["min"]), _f(nd["max"]), _f(nd["sd"])] if m["kind"] == OURS else ["", "", ""]
        ratio = c["models"].get(name, {}).get("mean_ratio")
        verdict = protocol["verdicts"].get(name)
        rows.append(
            [
                name,
                m["kind"],
                seeds + (f" ({failed})" if failed else ""),
                _f(s["val"][SELECT_BY]["mean"]),
                _f(nd["mean"]),
                *spread_cells,
                *(_f(s["test"][k]["mean"]) for k in ("recall@10", "mrr@10", "coverage@10")),
                "" if ratio is None else f"{ratio:.3f}x",
                "" if verdict is None else ("PASSES" if verdict["passes"] else "fails"),
            ]
        )
    return head, rows


def seed_rows(protocol: Mapping[str, Any], name: str) -> tuple[list[str], list[list[str]]]:
    """A model of ours seed by seed: test NDCG@10 per fold (with the chosen grid
    point where it has a grid), the fold mean, its ratio and paired interval against
    the best baseline, and its costs."""
    c = protocol["comparison"]
    opponent = c["best_baseline"] if c else None
    versus = "vs best baseline" if opponent is None else f"vs {opponent} ({c['models'][name]['baseline_ndcg@10']:.4f})"
    head = [f"{name}, test NDCG@10", *protocol["folds"], "mean", versus, "paired bootstrap, difference"]
    head += ["slowest test fit (CPU s)", "CPU s to best epoch"]
    rows = []
    for seed, result in protocol["models"][name]["seeds"].items():
        row = c["models"][name]["seeds"][seed] if opponent else None
        folds = [
            f"{r['test'][SELECT_BY]:.4f}" + ("" if r["params"] == "defaults" else f" ({r['params']})")
            for r in result["folds"].values()
        ]
        compared = ["", ""]
        if row is not None:
            bs = row["bootstrap"]
            compared = [f"{row['ratio']:.3f}x", f"{bs['difference']:+.4f} [{bs['low']:+.4f}, {bs['high']:+.4f}]"]
        to_best = [r["seconds_to_best_epoch"] for r in result["folds"].values()]
        rows.append(
            [
                f"seed {seed}",
                *folds,
                _f(result["mean"]["test"][SELECT_BY]),
                *compared,
                _f(max(_cost(r) for r in result["folds"].values()), ".0f"),
                "" if None in to_best else _f(max(to_best), ".0f"),
            ]
        )
    nd = protocol["models"][name]["summary"]["test"][SELECT_BY]
    ratio = c["models"][name]["mean_ratio"] if opponent else None
    versus_mean = "" if ratio is None else f"{ratio:.3f}x"
    mean_row = ["mean of seeds", *[""] * len(protocol["folds"]), _f(nd["mean"]), versus_mean]
    return head, [*rows, mean_row + [""] * (len(head) - len(mean_row))]


def verdict_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each judged model's criteria and overall verdict, protocol by protocol."""
    head = ["protocol", "model", "criterion", "required", "measured", "verdict"]
    rows = []
    for key, protocol in results["protocols"].items():
        bar = protocol["bar"]
        for name, verdict in protocol["verdicts"].items():
            label = name + (" (headline)" if bar and name == bar["headline"] else "")
            for c in verdict["criteria"]:
                ok = "pass" if c["passes"] else "FAIL"
                rows.append([key.upper(), label, c["criterion"], c["required"], c["measured"], ok])
            rows.append(
                [key.upper(), label, "the bar", "all of the above", "", "PASSES" if verdict["passes"] else "fails"]
            )
    return head, rows


def ours_judged(protocol: Mapping[str, Any]) -> list[str]:
    """Models of ours with a finished seed, the headline first."""
    c = protocol["comparison"]
    names = [n for n, m in protocol["models"].items() if m["kind"] == OURS and m["seeds"]]
    if c is not None:
        names = [n for n in names if n in c["models"]]
    headline = (protocol["bar"] or {}).get("headline")
    return sorted(names, key=lambda n: n != headline)


def comparison_lines(protocol: Mapping[str, Any]) -> list[str]:
    """The best baseline and the seed rule, in words."""
    c = protocol["comparison"]
    lines = [protocol["seed_rule"]]
    if c is None:
        return [*lines, "baselines not all finished: no comparison yet"]
    if c["best_baseline"] is None:
        return [*lines, "no baseline in this run: no comparison"]
    lines.append(
        f"best baseline (highest test NDCG@10, the strongest opponent): {c['best_baseline']}; "
        f"by validation it would be {c['best_baseline_by_validation']}; "
        f"intervals: paired bootstrap over (fold, user) pairs, per seed"
    )
    bar = protocol["bar"]
    if bar:
        lines.append(f"bar (headline {bar['headline']}; every model of ours is held to it): {bar['rule']}")
        if bar["headline"] not in protocol["verdicts"]:
            lines.append(f"bar not judged: {bar['headline']} has no finished seed in this run")
    return lines


def print_tables(results: Mapping[str, Any]) -> None:
    from recsys_cli.console import make_console, rows_table

    console = make_console()
    for protocol in results["protocols"].values():
        console.print(rows_table(f"{protocol['title']}: test window ({protocol['note']})", *model_rows(protocol)))
        for name in ours_judged(protocol):
            console.print(rows_table(f"{name} by seed", *seed_rows(protocol, name)))
        for line in comparison_lines(protocol):
            console.print(line, markup=False)
        console.print()
    head, rows = verdict_rows(results)
    if rows:
        console.print(rows_table("Verdicts of the bars", head, rows))


def markdown(results: Mapping[str, Any]) -> str:
    """The tables for BENCHMARKS.md: command and machine, then per protocol every
    model over seeds and each model of ours seed by seed, then the verdicts."""
    m = results["machine"]
    out = [
        f"Measured {results['date'][:10]} on commit {results['commit']}, {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['ram_gib']} GiB RAM, Python {m['python']}; wall time {results['wall_s'] / 60:.1f} min with "
        f"{results['jobs']} job(s) ({results['fits']['fitted']} fits run, {results['fits']['from_cache']} from the "
        f"cache; {results['fit_wall_s'] / 60:.1f} min of fitting and scoring in all; fit times are wall times with "
        f"{results['jobs']} fit(s) at a time{', one thread each' if results['jobs'] > 1 else ''}).",
        "",
        "```bash",
        results["command"],
        "```",
    ]
    for protocol in results["protocols"].values():
        out += ["", f"**{protocol['title']}** ({protocol['note']})", ""]
        out += _md_table(*model_rows(protocol))
        for name in ours_judged(protocol):
            out += ["", *_md_table(*seed_rows(protocol, name))]
        out += [""] + [f"- {line}" for line in comparison_lines(protocol)]
    head, rows = verdict_rows(results)
    if rows:
        out += ["", "**Verdicts**", "", *_md_table(head, rows)]
    return "\n".join(out) + "\n"


def _md_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in rows),
    ]
