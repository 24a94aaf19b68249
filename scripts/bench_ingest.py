"""Benchmark `recsys ingest` against two bare CSV -> Parquet conversions of the same events.csv.

Why the references: the pipeline does far more than convert a file (validation with a
quarantine, exact dedupe, keyed pseudonymisation, a day-partitioned atomic write, a
manifest with digests), so its raw throughput alone means little. Two references put it
in context:

* bare Polars, `pl.scan_csv(...).sink_parquet(...)`: the same engine with no checks at
  all, i.e. the floor under what our extra work costs;
* pandas, `read_csv` + `to_parquet`: what a typical hand-written script does, i.e. the
  number a user would compare us with.

`--scale` (on unless `--skip-scale`) repeats the pipeline on an input `--scale-factor`
times larger, made with as many times more days at the same events per day, to show that
peak memory follows the largest day rather than the input size.

Every measurement runs in a fresh interpreter that times only the work (imports and
config composition excluded) and reports its own peak RSS (`getrusage(RUSAGE_SELF)`) as
JSON on stdout; the pipeline child also times its steps and samples RSS during each.

    python scripts/bench_ingest.py                      # 10M events, then 50M
    python scripts/bench_ingest.py --events 200000 --days 20 --repeats 1
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
MIB = 1 << 20
KINDS = ("pipeline", "polars", "pandas")
LABELS = {
    "pipeline": "ours: recsys ingest",
    "polars": "bare polars: scan_csv→sink_parquet",
    "pandas": "pandas: read_csv→to_parquet",
}
# Pipeline steps timed in the child, by module; nested calls are charged to the innermost step.
STEPS = {
    "recsys_cli.data.ingest": (
        "_hash_inputs",
        "_stage",
        "_user_table",
        "_hash_tables",
        "_write_days",
        "_write_tables",
        "_write_quarantine",
        "build_manifest",
        "pseudonym_table",
        "file_digests",
    ),
    "recsys_cli.data.events": ("stage_file", "day_windows", "dedupe_window"),
    "recsys_cli.data.lake": ("publish",),
}

Json = dict[str, Any]
Setup = tuple[Callable[[], None], Callable[[], Json]]  # (the timed work, details reported after it)


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Dataset:
    """One generated synthetic shop; its folder doubles as the pipeline's `paths.data_dir`."""

    n_events: int
    n_days: int
    start: str
    seed: int

    @property
    def name(self) -> str:
        return f"synth-e{self.n_events}-d{self.n_days}-s{self.seed}-{self.start}"

    def data_dir(self, workdir: Path) -> Path:
        return workdir / self.name

    def raw_dir(self, workdir: Path) -> Path:
        return self.data_dir(workdir) / "raw" / "synth"


def default_start(days: int, scale_factor: int) -> str:
    """A 1 January early enough that even the scaled log ends before today: ingest rejects
    events dated after now + `validation.max_future_days`."""
    latest = date.today() - timedelta(days=days * max(scale_factor, 1) + 2)
    return date(latest.year, 1, 1).isoformat()


def ensure_dataset(ds: Dataset, workdir: Path, console: Any) -> Json:
    """Generate `ds` unless a `.done` marker with the same parameters says it exists."""
    marker = ds.data_dir(workdir) / ".done"
    params = asdict(ds)
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("params") == params and (ds.raw_dir(workdir) / "events.csv").is_file():
            console.print(f"[dim]reusing {ds.raw_dir(workdir)} ({info['rows']['events']:,} events)[/]")
            return info
    shutil.rmtree(ds.data_dir(workdir), ignore_errors=True)
    console.print(f"generating {ds.n_events:,} events over {ds.n_days} days into {ds.raw_dir(workdir)} ...")
    out = run_child({"kind": "generate", "params": params, "out": str(ds.raw_dir(workdir))})
    if "error" in out:
        raise SystemExit(f"generating {ds.name} failed:\n{out['error']}")
    csv_bytes = (ds.raw_dir(workdir) / "events.csv").stat().st_size
    info = {
        "params": params,
        "rows": out["rows"],
        "csv_bytes": csv_bytes,
        "generate_s": out["wall_s"],
        "generate_peak_rss_mib": out["peak_rss_mib"],
    }
    marker.write_text(json.dumps(info, indent=2) + "\n")
    console.print(
        f"[dim]  {out['rows']['events']:,} events, {info['csv_bytes'] / MIB:,.0f} MiB of CSV, {out['wall_s']:.0f} s[/]"
    )
    return info


# --------------------------------------------------------------------------- child side


def self_peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def current_rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / MIB


def tree_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / MIB
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / MIB if path.exists() else 0.0


class StageProfiler:
    """Wall time and peak RSS of each pipeline step, by wrapping the step functions at
    their module level (the pipeline code is not changed). RSS is sampled by a thread.

    Time is charged to the innermost step of the calling thread. Steps called from worker
    threads are labelled so and summed over threads: they overlap the main thread's step
    that waits for them, so the shares can add up to more than 100%. An RSS sample counts
    towards every step running at that moment."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}
        # per thread: [label, start, seconds spent in nested steps] for each open step
        self._stacks: dict[int, list[list[Any]]] = {}
        self._interval = interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)

    def install(self) -> None:
        import importlib

        for module_name, names in STEPS.items():
            module = importlib.import_module(module_name)
            for name in names:
                fn = getattr(module, name, None)
                if callable(fn):  # tolerate steps renamed since this script was written
                    setattr(module, name, self._wrap(name.lstrip("_"), fn))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            main = threading.current_thread() is threading.main_thread()
            label = name if main else f"{name} (worker threads)"
            self._sample()
            with self._lock:
                stack = self._stacks.setdefault(threading.get_ident(), [])
                stack.append([label, time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                self._sample()
                with self._lock:
                    _, start, nested = stack.pop()
                    spent = time.perf_counter() - start
                    self.seconds[label] = self.seconds.get(label, 0.0) + spent - nested
                    if stack:
                        stack[-1][2] += spent

        return timed

    def _sample(self) -> None:
        rss = current_rss_mib()
        with self._lock:
            for label in {stack[-1][0] for stack in self._stacks.values() if stack} or {"other"}:
                self.peak_mib[label] = max(self.peak_mib.get(label, 0.0), rss)

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()


def _setup_generate(spec: Json) -> Setup:
    from recsys_cli.data.synth import SynthConfig, generate

    rows: Json = {}

    def work() -> None:
        rows.update(generate(SynthConfig(**spec["params"]), spec["out"]))

    return work, lambda: {"rows": rows}


def _setup_pipeline(spec: Json) -> Setup:
    from recsys_cli.config import compose
    from recsys_cli.tasks.ingest import run

    cfg = compose("ingest", [f"paths.data_dir={spec['data_dir']}"])
    profiler = StageProfiler()
    profiler.install()
    box: Json = {}

    def work() -> None:
        box["result"] = run(cfg)
        profiler.stop()

    def details() -> Json:
        import polars as pl

        result = box["result"]
        days = sorted((result.lake / "events").glob("date=*"))
        per_day = [pl.scan_parquet(d / "*.parquet").select(pl.len()).collect().item() for d in days]
        files = result.files
        stages = {
            k: {"seconds": profiler.seconds.get(k, 0.0), "peak_rss_mib": profiler.peak_mib.get(k)}
            for k in dict.fromkeys([*profiler.seconds, *profiler.peak_mib])
        }
        return {
            "lake": str(result.lake),
            "no_op": result.no_op,
            "message": result.message,
            "rows_written": sum(f.rows_written for f in files),
            "rows_quarantined": sum(f.rows_quarantined for f in files),
            "duplicates_dropped": sum(f.duplicates_dropped for f in files),
            "days": len(days),
            "largest_day_rows": max(per_day, default=0),
            "output_mib": tree_mib(result.lake),
            "stages": stages,
        }

    return work, details


def _setup_polars(spec: Json) -> Setup:
    import polars as pl

    out = Path(spec["out"])

    def work() -> None:
        pl.scan_csv(spec["csv"]).sink_parquet(out)

    return work, lambda: {"output_mib": tree_mib(out)}


def _setup_pandas(spec: Json) -> Setup:
    import pandas as pd
    import pyarrow  # noqa: F401  (the engine; imported before the clock starts)

    out = Path(spec["out"])

    def work() -> None:
        df = pd.read_csv(spec["csv"])
        df.to_parquet(out, engine="pyarrow")

    return work, lambda: {"output_mib": tree_mib(out)}


SETUPS = {"generate": _setup_generate, "pipeline": _setup_pipeline, "polars": _setup_polars, "pandas": _setup_pandas}


def child_main(spec: Json) -> None:
    """Set up (untimed), run the work (timed), then report: the last stdout line is JSON."""
    work, details = SETUPS[spec["kind"]](spec)
    ready = current_rss_mib()
    start = time.perf_counter()
    work()
    wall = time.perf_counter() - start
    peak = self_peak_rss_mib()  # before `details`, which may allocate
    print(json.dumps({"wall_s": wall, "peak_rss_mib": peak, "rss_ready_mib": ready, **details()}))


# --------------------------------------------------------------------------- parent side


def code_version() -> str | None:
    """The commit the child runs, with `+dirty` when the package differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "recsys_cli", "conf"], capture_output=True, text=True, cwd=REPO
    )
    return (head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")) or None


def run_child(spec: Json) -> Json:
    """Run one child; `load_before` (1-minute load average) flags a machine busy with other work,
    `code` records the pipeline version it ran (the tree may change during a long benchmark)."""
    load, code = os.getloadavg()[0], code_version()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--child", json.dumps(spec)], capture_output=True, text=True, cwd=REPO
    )
    process_s = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    context = {"process_s": process_s, "load_before": load, "code": code}
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}\n{proc.stderr[-4000:]}", **context}
    return {**json.loads(lines[-1]), **context}


def measure(kind: str, ds: Dataset, workdir: Path) -> Json:
    """One measurement in a fresh child, into freshly emptied output paths."""
    data_dir = ds.data_dir(workdir)
    if kind == "pipeline":
        shutil.rmtree(data_dir / "lake", ignore_errors=True)  # else ingest is a no-op
        spec: Json = {"kind": kind, "data_dir": str(data_dir)}
    else:
        out = data_dir / "reference" / f"{kind}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        spec = {"kind": kind, "csv": str(ds.raw_dir(workdir) / "events.csv"), "out": str(out)}
    return run_child(spec)


def summarise(runs: list[Json], rows: int) -> Json:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"runs": len(runs), "failed": len(runs)}
    walls = [r["wall_s"] for r in ok]
    median = statistics.median(walls)
    out = {
        "runs": len(runs),
        "failed": len(runs) - len(ok),
        "rows": rows,
        "median_wall_s": median,
        "min_wall_s": min(walls),
        "max_wall_s": max(walls),
        "events_per_s": rows / median,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in ok),
        "rss_ready_mib": max(r["rss_ready_mib"] for r in ok),
        "output_mib": ok[-1].get("output_mib"),
        "code": ", ".join(sorted({str(r.get("code")) for r in ok})),  # more than one: the tree changed mid-run
    }
    if "stages" in ok[-1]:
        names = list(dict.fromkeys(k for r in ok for k in r["stages"]))
        steps = [{k: r["stages"].get(k, {}) for k in names} for r in ok]
        out["stages"] = {
            k: {
                "median_s": statistics.median(st[k].get("seconds", 0.0) for st in steps),
                "peak_rss_mib": max(st[k].get("peak_rss_mib") or 0.0 for st in steps),
            }
            for k in names
        }
        for key in ("rows_written", "rows_quarantined", "duplicates_dropped", "days", "largest_day_rows"):
            out[key] = ok[-1][key]
    return out


def ratios(summary: Json) -> Json:
    base = summary.get("base", {})
    ours, out = base.get("pipeline", {}), {}
    for ref in ("polars", "pandas"):
        other = base.get(ref, {})
        if "events_per_s" in ours and "events_per_s" in other:
            out[f"throughput_ours_over_{ref}"] = ours["events_per_s"] / other["events_per_s"]
            out[f"peak_rss_ours_over_{ref}"] = ours["peak_rss_mib"] / other["peak_rss_mib"]
    big = summary.get("scale", {}).get("pipeline", {})
    if "events_per_s" in ours and "events_per_s" in big:
        out["scale_input_rows"] = big["rows"] / ours["rows"]
        out["scale_largest_day"] = big["largest_day_rows"] / ours["largest_day_rows"]
        out["scale_peak_rss"] = big["peak_rss_mib"] / ours["peak_rss_mib"]
        out["scale_throughput"] = big["events_per_s"] / ours["events_per_s"]
    return out


def machine_info() -> Json:
    import psutil

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = next(
        (line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "total_ram_gib": psutil.virtual_memory().total / (1 << 30),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{pkg: version(pkg) for pkg in ("polars", "pandas", "pyarrow", "numpy", "recsys-cli")},
        "code": code_version(),
    }


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


# --------------------------------------------------------------------------- report


def print_report(console: Any, results: Json) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"Ingest benchmark ({results['machine']['cpus_usable']} CPUs, "
        f"{results['machine']['total_ram_gib']:.0f} GiB RAM)"
    )
    for col in (
        "measurement",
        "input rows",
        "runs",
        "median s",
        "min–max s",
        "events/s",
        "peak RSS MiB",
        "RSS before work",
        "output MiB",
        "code",
    ):
        table.add_column(col, justify="left" if col == "measurement" else "right")
    for scope, by_kind in results["summary"].items():
        for kind, s in by_kind.items():
            label = escape(f"{LABELS[kind]} [{scope}]")
            if "median_wall_s" not in s:
                table.add_row(label, "", str(s["runs"]), "[red]failed[/]", *[""] * 6)
                continue
            table.add_row(
                label,
                f"{s['rows']:,}",
                str(s["runs"]),
                f"{s['median_wall_s']:.1f}",
                f"{s['min_wall_s']:.1f}–{s['max_wall_s']:.1f}",
                f"{s['events_per_s']:,.0f}",
                f"{s['peak_rss_mib']:,.0f}",
                f"{s['rss_ready_mib']:,.0f}",
                f"{s['output_mib'] or 0:,.0f}",
                s["code"],
            )
    console.print(table)
    for key, value in results["ratios"].items():
        console.print(f"  {key.replace('_', ' ')}: [bold]{value:.2f}x[/]")
    print_stages(console, results["summary"])


def print_stages(console: Any, summary: Json) -> None:
    from rich.table import Table

    pipes = {
        scope: by_kind["pipeline"] for scope, by_kind in summary.items() if "stages" in by_kind.get("pipeline", {})
    }
    if not pipes:
        return
    table = Table(title="recsys ingest by step (median s, share of wall, peak RSS during the step)")
    table.add_column("step")
    for scope in pipes:
        for col in ("s", "%", "peak MiB"):
            table.add_column(f"{scope} {col}", justify="right")
    names = list(dict.fromkeys(k for p in pipes.values() for k in p["stages"]))
    for name in names:
        cells = []
        for p in pipes.values():
            st = p["stages"].get(name, {"median_s": 0.0, "peak_rss_mib": 0.0})
            cells += [
                f"{st['median_s']:.1f}",
                f"{100 * st['median_s'] / p['median_wall_s']:.0f}",
                f"{st['peak_rss_mib']:,.0f}",
            ]
        table.add_row(name, *cells)
    console.print(table)
    for scope, p in pipes.items():
        console.print(
            f"  {scope}: {p['rows_written']:,} rows written, {p['rows_quarantined']:,} "
            f"quarantined, {p['duplicates_dropped']:,} duplicates dropped; {p['days']} days, "
            f"largest {p['largest_day_rows']:,} rows"
        )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--events", type=int, default=10_000_000, help="events in the base input")
    p.add_argument("--days", type=int, default=180, help="days the base input spans")
    p.add_argument("--scale-factor", type=int, default=5, help="scale step: times the events and days")
    p.add_argument("--skip-scale", action="store_true", help="do not run the scale measurement")
    p.add_argument("--repeats", type=int, default=3, help="runs of each measurement (median wall, max RSS)")
    p.add_argument("--scale-repeats", type=int, default=None, help="runs of the scale step [--repeats]")
    p.add_argument("--start", default=None, help="first day of the logs [a 1 Jan so all ends before today]")
    p.add_argument("--seed", type=int, default=42, help="generator seed")
    p.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "bench_data" / "ingest",
        help="generated data (reused when its .done marker matches) and outputs",
    )
    p.add_argument("--out", type=Path, default=None, help="results JSON [WORKDIR/results.json]")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    from recsys_cli.console import make_console

    console = make_console()  # log files get the full table
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    out_path = (args.out or workdir / "results.json").resolve()
    start = args.start or default_start(args.days, args.scale_factor)  # same with --skip-scale: data reused
    plan: list[tuple[str, Dataset, tuple[str, ...], int]] = [
        ("base", Dataset(args.events, args.days, start, args.seed), KINDS, args.repeats)
    ]
    if not args.skip_scale:
        big = Dataset(args.events * args.scale_factor, args.days * args.scale_factor, start, args.seed)
        plan.append(("scale", big, ("pipeline",), args.scale_repeats or args.repeats))
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "child"}
    results: Json = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "args": settings,
        "datasets": {},
        "runs": [],
        "summary": {},
        "ratios": {},
    }
    for scope, ds, kinds, repeats in plan:
        info = ensure_dataset(ds, workdir, console)
        results["datasets"][scope] = {"name": ds.name, **info}
        for repeat in range(repeats):
            for kind in kinds:  # interleaved, so drift (page cache, thermals) hits all alike
                console.print(f"\\[{scope}] {LABELS[kind]}, run {repeat + 1}/{repeats} ...", end=" ")
                run = {"scope": scope, "kind": kind, "repeat": repeat, **measure(kind, ds, workdir)}
                console.print(
                    f"[red]failed[/]\n{run['error']}"
                    if "error" in run
                    else f"{run['wall_s']:.1f} s, peak {run['peak_rss_mib']:,.0f} MiB (load {run['load_before']:.1f})"
                )
                results["runs"].append(run)
                record(results, scope, kinds, info["rows"]["events"], out_path)
    print_report(console, results)
    console.print(f"[dim]results: {out_path}[/]")
    return 1 if any("error" in r for r in results["runs"]) else 0


def record(results: Json, scope: str, kinds: tuple[str, ...], rows: int, out_path: Path) -> None:
    """Refresh the summaries and rewrite the JSON, so partial results survive an interrupted run."""
    scoped = [r for r in results["runs"] if r["scope"] == scope]
    results["summary"][scope] = {
        k: summarise([r for r in scoped if r["kind"] == k], rows) for k in kinds if any(r["kind"] == k for r in scoped)
    }
    results["ratios"] = ratios(results["summary"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
