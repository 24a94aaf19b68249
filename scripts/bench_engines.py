"""Benchmark `recsys ingest`, `recsys split` and `recsys features` on both engines (issue 19).

For each input size (default 10M and 50M events of `recsys datasets synth`, made as in
scripts/bench_ingest.py: the 50M set has 5x the days at the same events per day) and
each engine (polars; spark on `--master`, default local[2]), every step runs as a fresh
`python -m recsys_cli <step> ...` process with overrides; each engine writes under its
own `paths.data_dir` and both read the same raw files (`paths.raw_dir`).

What is measured, for the whole process tree (the CLI, Spark's JVM and its Python
workers):

* wall seconds, from the start of the CLI process to its exit;
* CPU seconds: user + system from `getrusage(RUSAGE_CHILDREN)` of this script, taken
  around the cell. This script makes itself a child subreaper (prctl), so a JVM that
  outlives its Python driver is re-parented here and reaped, and every descendant's
  CPU is counted exactly once, by the kernel;
* peak memory: the sum of RSS over the tree, sampled every `--sample-s` seconds (and
  of PSS, which counts a page shared by forked workers once, at every PSS_EVERY-th
  sample): a sampled peak, so a spike shorter than the interval can be missed;
* events/s and events per CPU-second (throughput per core), both over the input's
  generated events (the same denominator for every step);
* for Spark, where the time goes: the session's start and stop alone (a probe in a
  fresh process, `recsys_cli.spark.session.spark_session`), and from Spark's event log
  (`spark.eventLog.enabled`, passed through PYSPARK_SUBMIT_ARGS) the time Spark jobs
  were running and each stage's duration, tasks and executor time; the rest of the
  wall time is the driver's own Python work (imports, config, reading manifests,
  writing the manifest) and the session.

One cell (size x engine x step) runs at a time; results go to WORKDIR/results.json
after every cell, and a later run skips the cells already measured (`--force` runs
them again). A step whose input folder is missing (deleted, or never made) first
re-runs the earlier steps of that engine, unmeasured.

    python scripts/bench_engines.py                               # 10M and 50M, both engines
    python scripts/bench_engines.py --engines polars --sizes 10M
    python scripts/bench_engines.py --events 20000 --days 10 --scales 1 --workdir /tmp/be   # a smoke run
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20
STEPS = ("ingest", "split", "features")
ENGINES = ("polars", "spark")
SPLIT = "global_temporal"
FEATURES = "default"
PR_SET_CHILD_SUBREAPER = 36
PSS_EVERY = 5  # samples between two PSS readings (RSS is read at every sample)
Json = dict[str, Any]


# --------------------------------------------------------------------------- plan


def size_label(n_events: int) -> str:
    """10_000_000 -> '10M', 200_000 -> '200k'."""
    if n_events % 1_000_000 == 0:
        return f"{n_events // 1_000_000}M"
    if n_events % 1_000 == 0:
        return f"{n_events // 1_000}k"
    return str(n_events)


@dataclass(frozen=True)
class Cell:
    """One measurement: a step of one engine on one input size."""

    size: str
    engine: str
    step: str

    @property
    def key(self) -> str:
        return f"{self.size}/{self.engine}/{self.step}"


def plan(sizes: Sequence[str], engines: Sequence[str], steps: Sequence[str]) -> list[Cell]:
    """Sizes outermost, then engines, then the steps in pipeline order (each needs the one before)."""
    ordered = [s for s in STEPS if s in steps]
    return [Cell(size, engine, step) for size in sizes for engine in engines for step in ordered]


def overrides(step: str, engine: str, data_dir: Path, raw_dir: Path, master: str) -> list[str]:
    """The CLI overrides of one cell: its engine's own data folder, the shared raw files."""
    out = [f"paths.data_dir={data_dir}", f"paths.raw_dir={raw_dir}", f"engine={engine}"]
    if engine == "spark":
        out.append(f"engine.master='{master}'")  # quoted: [ ] are Hydra grammar
    if step in ("split", "features"):
        out.append(f"split={SPLIT}")
    if step == "features":
        out.append(f"features={FEATURES}")
    return out


def output_dir(step: str, data_dir: Path) -> Path:
    """The folder a step publishes (synth data, engagement targets: the configs' defaults)."""
    split = data_dir / "splits" / "synth" / f"{SPLIT}-engagement"
    return {
        "ingest": data_dir / "lake" / "synth",
        "split": split,
        "features": data_dir / "features" / "synth" / f"{SPLIT}-engagement" / FEATURES,
    }[step]


def previous(step: str) -> str | None:
    i = STEPS.index(step)
    return STEPS[i - 1] if i else None


def is_measured(entry: Json | None) -> bool:
    """A cell counts as done when it exited 0 and, for Spark, really started a JVM (an engine
    not yet built for a step is accepted by the config but runs Polars)."""
    if not entry or entry.get("rc") != 0:
        return False
    return entry.get("engine") != "spark" or bool(entry.get("spark_ran"))


# --------------------------------------------------------------------------- arithmetic


def throughput(entry: Json, events: int) -> Json:
    """events/s and events per CPU-second of one measurement."""
    wall, cpu = entry.get("wall_s"), entry.get("cpu_s")
    return {
        "events_per_s": events / wall if wall else None,
        "events_per_cpu_s": events / cpu if cpu else None,
        "cores_busy": cpu / wall if wall and cpu else None,
    }


def covered_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals (jobs that overlap are counted once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------- Spark's event log


def parse_event_log(lines: Iterable[str]) -> Json:
    """Jobs, stages and task totals from a Spark event log (JSON lines), times in seconds.

    Task metrics: `run_s` is executor run time (includes the Python workers' time inside
    the task), `jvm_cpu_s` the JVM threads' CPU only (not the Python workers')."""
    jobs: dict[int, Json] = {}
    stages: dict[int, Json] = {}
    sql: dict[str, str] = {}
    app: Json = {}
    for line in lines:
        ev = json.loads(line)
        _take_event(ev, jobs, stages, sql, app)
    for job in jobs.values():
        job["description"] = sql.get(str(job.pop("sql_id", None)), job.get("call_site") or "")
    intervals = [(j["start"], j["end"]) for j in jobs.values() if j.get("end") is not None]
    return {
        "app_start": app.get("start"),
        "app_end": app.get("end"),
        "jobs": sorted(jobs.values(), key=lambda j: j["start"]),
        "stages": sorted(stages.values(), key=lambda s: s.get("start") or 0.0),
        "jobs_busy_s": covered_seconds(intervals),
    }


def _take_event(ev: Json, jobs: dict[int, Json], stages: dict[int, Json], sql: dict[str, str], app: Json) -> None:
    kind = ev.get("Event", "")
    if kind == "SparkListenerApplicationStart":
        app["start"] = ev["Timestamp"] / 1000
    elif kind == "SparkListenerApplicationEnd":
        app["end"] = ev["Timestamp"] / 1000
    elif kind == "SparkListenerJobStart":
        props = ev.get("Properties") or {}
        jobs[ev["Job ID"]] = {
            "id": ev["Job ID"],
            "start": ev["Submission Time"] / 1000,
            "end": None,
            "stages": ev.get("Stage IDs", []),
            "sql_id": props.get("spark.sql.execution.id"),
            "call_site": props.get("callSite.short"),
        }
    elif kind == "SparkListenerJobEnd" and ev["Job ID"] in jobs:
        jobs[ev["Job ID"]]["end"] = ev["Completion Time"] / 1000
    elif kind == "SparkListenerStageCompleted":
        info = ev["Stage Info"]
        stage = stages.setdefault(info["Stage ID"], _empty_stage(info["Stage ID"]))
        stage.update(
            name=info.get("Stage Name", ""),
            tasks=info.get("Number of Tasks", 0),
            start=(info.get("Submission Time") or 0) / 1000,
            end=(info.get("Completion Time") or 0) / 1000,
        )
    elif kind == "SparkListenerTaskEnd":
        _add_task(stages.setdefault(ev["Stage ID"], _empty_stage(ev["Stage ID"])), ev.get("Task Metrics") or {})
    elif kind.endswith("SparkListenerSQLExecutionStart"):
        sql[str(ev.get("executionId"))] = ev.get("description") or ""


def _empty_stage(stage_id: int) -> Json:
    return {
        "id": stage_id,
        "name": "",
        "tasks": 0,
        "start": None,
        "end": None,
        "run_s": 0.0,
        "jvm_cpu_s": 0.0,
        "gc_s": 0.0,
        "shuffle_read_mib": 0.0,
        "shuffle_write_mib": 0.0,
        "input_mib": 0.0,
    }


def _add_task(stage: Json, m: Json) -> None:
    read = m.get("Shuffle Read Metrics") or {}
    stage["run_s"] += m.get("Executor Run Time", 0) / 1000
    stage["jvm_cpu_s"] += m.get("Executor CPU Time", 0) / 1e9
    stage["gc_s"] += m.get("JVM GC Time", 0) / 1000
    stage["shuffle_read_mib"] += (read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)) / MIB
    stage["shuffle_write_mib"] += (m.get("Shuffle Write Metrics") or {}).get("Shuffle Bytes Written", 0) / MIB
    stage["input_mib"] += (m.get("Input Metrics") or {}).get("Bytes Read", 0) / MIB


def short_name(name: str) -> str:
    """A stage's name without the folder the package ran from: `collect at recsys_cli/spark/split.py:88`."""
    return re.sub(r"\S*/(recsys_cli/\S+)", r"\1", name)


def stage_groups(stages: Sequence[Json], top: int = 6) -> list[Json]:
    """Stages grouped by name (Spark names a stage after the call that made it), longest first."""
    groups: dict[str, Json] = {}
    for s in stages:
        name = short_name(s["name"])
        g = groups.setdefault(name, {"name": name, "stages": 0, "tasks": 0, "wall_s": 0.0, "run_s": 0.0})
        g["stages"] += 1
        g["tasks"] += s["tasks"]
        g["wall_s"] += (s["end"] or 0.0) - (s["start"] or 0.0) if s["end"] and s["start"] else 0.0
        g["run_s"] += s["run_s"]
    return sorted(groups.values(), key=lambda g: -g["wall_s"])[:top]


def spark_breakdown(m: Json, log: Json | None, probe: Json | None) -> Json:
    """Where a Spark step's wall time went, on the cell's own clock (its event log's
    timestamps against the process start), plus the probe's session start and stop alone.

    * `to_context_s`: process start to the SparkContext's start (imports, config, the
      JVM's launch);
    * `to_first_job_s`: from there to the first job (the session's set-up, the driver's
      reading and planning before any Spark work);
    * `jobs_s`: time at least one Spark job ran (the union of job intervals);
    * `between_jobs_s`: gaps between the first job's start and the last one's end (the
      driver's own work between jobs, e.g. Polars on the driver, collecting results);
    * `after_jobs_s`: last job's end to the process's exit (the manifest, publishing,
      the session's stop)."""
    log = log or {}
    jobs = [j for j in log.get("jobs", []) if j.get("end") is not None]
    start, wall = m.get("started_epoch"), m["wall_s"]
    out: Json = {
        "probe_session_start_s": (probe or {}).get("start_s"),
        "probe_session_stop_s": (probe or {}).get("stop_s"),
        "jobs": len(jobs),
        "stages": len(log.get("stages", [])),
        "tasks": sum(s["tasks"] for s in log.get("stages", [])),
        "task_run_s": sum(s["run_s"] for s in log.get("stages", [])),
        "top_stages": stage_groups(log.get("stages", [])),
    }
    if not jobs or start is None or log.get("app_start") is None:
        return out
    first, last = min(j["start"] for j in jobs), max(j["end"] for j in jobs)
    busy = log["jobs_busy_s"]
    out.update(
        to_context_s=log["app_start"] - start,
        to_first_job_s=first - log["app_start"],
        jobs_s=busy,
        between_jobs_s=(last - first) - busy,
        after_jobs_s=start + wall - last,
    )
    return out


# --------------------------------------------------------------------------- the process tree


def set_subreaper() -> bool:
    """Orphaned descendants (a JVM outliving its driver) become our children, so we reap them
    and `RUSAGE_CHILDREN` counts their CPU. Linux only; elsewhere CPU may miss orphans."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def kind_of(proc: Any, root_pid: int) -> str:
    """Which part of the tree a process is, for the composition of the memory peak."""
    if proc.pid == root_pid:
        return "driver"
    try:
        name, cmd = proc.name(), " ".join(proc.cmdline())
    except Exception:
        return "other"
    if name == "java" or cmd.endswith("pyspark-shell") or "org.apache.spark" in cmd:
        return "jvm"
    if "pyspark" in cmd or "python" in name:
        return "python workers"
    return "other"


class TreeSampler:
    """Samples our descendants' RSS every `interval` s, and PSS every PSS_EVERY samples (a
    thread). The tree is this script's children, recursively: one cell runs at a time, so
    they are the cell's."""

    def __init__(self, root_pid: int, interval: float) -> None:
        import psutil

        self._me = psutil.Process()
        self.root_pid = root_pid
        self.interval = interval
        self.peak_rss = 0.0
        self.peak_pss = 0.0
        self.peak_parts: dict[str, float] = {}
        self.peak_at_s = 0.0
        self.max_procs = 0
        self.jvm_started: float | None = None
        self.samples = 0
        self._t0 = time.time()
        self._kinds: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        rss = pss = 0.0
        parts: dict[str, float] = {}
        procs = self._me.children(recursive=True)
        full = self.samples % PSS_EVERY == 0  # PSS walks the page tables: 0.2 of a core for a 9 GiB JVM
        for p in procs:
            try:
                mem = p.memory_full_info() if full else p.memory_info()
            except Exception:  # gone since listed
                continue
            kind = self._kinds.setdefault(p.pid, kind_of(p, self.root_pid))
            if kind == "jvm" and self.jvm_started is None:
                self.jvm_started = p.create_time()
            rss += mem.rss / MIB
            pss += mem.pss / MIB if full else 0.0
            parts[kind] = parts.get(kind, 0.0) + mem.rss / MIB
        self.samples += 1
        self.max_procs = max(self.max_procs, len(procs))
        self.peak_pss = max(self.peak_pss, pss)
        if rss > self.peak_rss:
            self.peak_rss, self.peak_parts, self.peak_at_s = rss, parts, time.time() - self._t0


def reap_descendants(timeout_s: float) -> tuple[float, list[int]]:
    """Wait until no descendant is left (reaping orphans handed to us); after `timeout_s`,
    SIGKILL the ones left (each by its pid: they are this cell's) and report them."""
    import psutil

    me, start = psutil.Process(), time.perf_counter()
    while True:
        _reap_ready()
        left = me.children(recursive=True)
        if not left:
            return time.perf_counter() - start, []
        if time.perf_counter() - start > timeout_s:
            for p in left:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
            _reap_ready()
            return time.perf_counter() - start, [p.pid for p in left]
        time.sleep(0.1)


def _reap_ready() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def cpu_children() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_tree(
    cmd: Sequence[str], env: dict[str, str], log_path: Path, timeout_s: float, sample_s: float, cwd: Path = REPO
) -> Json:
    """Run one command and measure its whole process tree (see the module docstring)."""
    load = os.getloadavg()
    cpu0 = cpu_children()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0_epoch, t0 = time.time(), time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        sampler = TreeSampler(proc.pid, sample_s)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        wall = time.perf_counter() - t0
        tail_s, killed = reap_descendants(timeout_s=120)
        sampler.stop()
    return {
        "cmd": shlex.join(cmd),
        "rc": rc,
        "wall_s": wall,
        "cpu_s": cpu_children() - cpu0,
        "peak_rss_mib": sampler.peak_rss,
        "peak_pss_mib": sampler.peak_pss,
        "peak_rss_parts_mib": sampler.peak_parts,
        "peak_at_s": sampler.peak_at_s,
        "max_processes": sampler.max_procs,
        "samples": sampler.samples,
        "spark_ran": sampler.jvm_started is not None,
        "jvm_started_s": sampler.jvm_started - t0_epoch if sampler.jvm_started else None,
        "started_epoch": t0_epoch,
        "tail_after_exit_s": tail_s,
        "killed_leftovers": killed,
        "load_before": list(load),
    }


# --------------------------------------------------------------------------- cells


def child_env(event_log_dir: Path | None, code_dir: Path = REPO) -> dict[str, str]:
    """The CLI's own defaults: no OMP_NUM_THREADS (the CLI sets none); Spark's event log on;
    the package imported from `code_dir` (ahead of the editable install; Spark's Python
    workers inherit PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    if code_dir != REPO:
        env["PYTHONPATH"] = str(code_dir)
    if event_log_dir is not None:
        event_log_dir.mkdir(parents=True, exist_ok=True)
        conf = {
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": event_log_dir.resolve().as_uri(),
            "spark.eventLog.compress": "false",
            "spark.eventLog.rolling.enabled": "false",
        }
        env["PYSPARK_SUBMIT_ARGS"] = " ".join(f"--conf {k}={v}" for k, v in conf.items()) + " pyspark-shell"
    return env


def newest_event_log(folder: Path, since_epoch: float) -> Path | None:
    """The event log an application started after `since_epoch` wrote (a file, or a rolling log's folder)."""
    logs = [p for p in folder.glob("*") if p.stat().st_mtime >= since_epoch]
    return max(logs, key=lambda p: p.stat().st_mtime) if logs else None


def event_log_lines(path: Path) -> list[str]:
    files = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1])) if path.is_dir() else [path]
    return [line for f in files for line in f.read_text().splitlines() if line.strip()]


def tree_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / MIB if path.exists() else 0.0


def largest_file(path: Path) -> Json | None:
    """The biggest file a step published (the table a driver gathers whole is one file)."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    if not files:
        return None
    top = max(files, key=lambda p: p.stat().st_size)
    return {"path": str(top.relative_to(path)), "mib": top.stat().st_size / MIB}


def manifest_rows(folder: Path) -> Any:
    """The `rows` a published folder's manifest records (a cheap check that engines agree)."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    return manifest.get("rows") or manifest.get("folds")  # a lake's counts; a split's or feature set's folds


@dataclass
class Bench:
    """Where a run writes and how it runs each cell."""

    workdir: Path
    master: str
    timeout_s: float
    sample_s: float
    console: Any
    code_dir: Path = REPO
    code: str | None = None
    spark_overrides: tuple[str, ...] = ()

    def data_dir(self, size: str, engine: str) -> Path:
        return self.workdir / "runs" / size / engine

    def run_step(self, cell: Cell, raw_dir: Path, tag: str = "") -> Json:
        data_dir = self.data_dir(cell.size, cell.engine)
        out = output_dir(cell.step, data_dir)
        shutil.rmtree(out, ignore_errors=True)  # else ingest is a no-op and the others replace in place
        logs = self.workdir / "logs"
        event_dir = self.workdir / "eventlog" if cell.engine == "spark" else None
        cmd = [
            sys.executable,
            "-m",
            "recsys_cli",
            cell.step,
            *overrides(cell.step, cell.engine, data_dir, raw_dir, self.master),
            *(self.spark_overrides if cell.engine == "spark" else ()),
        ]
        log = logs / f"{cell.key.replace('/', '-')}{tag}.log"
        m = run_tree(cmd, child_env(event_dir, self.code_dir), log, self.timeout_s, self.sample_s, self.code_dir)
        m.update(engine=cell.engine, step=cell.step, size=cell.size, output_mib=tree_mib(out))
        m["output_rows"] = manifest_rows(out)
        m["largest_output_file"] = largest_file(out)
        if event_dir is not None:
            found = newest_event_log(event_dir, m["started_epoch"] - 1)
            m["event_log"] = str(found) if found else None
            if found:
                m["spark_log"] = parse_event_log(event_log_lines(found))
        return m

    def ensure_input(self, cell: Cell, raw_dir: Path) -> None:
        """Re-run (unmeasured) the earlier steps whose output this step needs and lacks."""
        before = previous(cell.step)
        if before is None:
            return
        if (output_dir(before, self.data_dir(cell.size, cell.engine)) / "manifest.json").is_file():
            return
        prior = Cell(cell.size, cell.engine, before)
        self.ensure_input(prior, raw_dir)
        self.console.print(f"[dim]  preparing {prior.key} (unmeasured) ...[/]")
        m = self.run_step(prior, raw_dir, tag="-prepare")
        if m["rc"] != 0:
            raise SystemExit(f"preparing {prior.key} failed (exit {m['rc']}); see {self.workdir / 'logs'}")

    def session_probe(self, runs: int) -> Json:
        """Spark session start and stop alone, in fresh processes: the fixed cost of every Spark step."""
        code = (
            "import json,time\nt=time.perf_counter()\nfrom recsys_cli.spark.session import spark_session\n"
            f"e={{'master':{self.master!r},'conf':{{}}}}\nimported=time.perf_counter()\n"
            "cm=spark_session(e)\ns=cm.__enter__()\nready=time.perf_counter()\ns.range(1).count()\n"
            "job=time.perf_counter()\ncm.__exit__(None,None,None)\nend=time.perf_counter()\n"
            "print(json.dumps({'import_s':imported-t,'start_s':ready-imported,'first_job_s':job-ready,"
            "'stop_s':end-job}))"
        )
        out = []
        for i in range(runs):
            log = self.workdir / "logs" / f"session-probe-{i}.log"
            env = child_env(None, self.code_dir)
            m = run_tree([sys.executable, "-c", code], env, log, self.timeout_s, self.sample_s, self.code_dir)
            lines = log.read_text().strip().splitlines()
            if m["rc"] == 0 and lines:
                out.append({**m, **json.loads(lines[-1])})
        if not out:
            return {"error": "the session probe failed; see logs/session-probe-*.log"}
        keys = ("import_s", "start_s", "first_job_s", "stop_s", "wall_s", "cpu_s", "peak_rss_mib", "peak_pss_mib")
        return {"runs": len(out), **{k: statistics.median(r[k] for r in out) for k in keys}}


# --------------------------------------------------------------------------- datasets (bench_ingest's)


def bench_ingest() -> ModuleType:
    """scripts/bench_ingest.py as a module: its dataset generation and naming are reused."""
    spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "scripts" / "bench_ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_ingest", module)
    spec.loader.exec_module(module)
    return module


def find_dataset(bi: ModuleType, ds: Any, roots: Sequence[Path], console: Any) -> tuple[Path, Json]:
    """An existing generated set under one of `roots` (its `.done` marker matching), else made in the first."""
    for root in roots:
        marker = ds.data_dir(root) / ".done"
        if marker.is_file() and json.loads(marker.read_text()).get("params") == bi.asdict(ds):
            if (ds.raw_dir(root) / "events.csv").is_file():
                console.print(f"[dim]reusing {ds.raw_dir(root)}[/]")
                return ds.data_dir(root), json.loads(marker.read_text())
    info = bi.ensure_dataset(ds, roots[0], console)
    return ds.data_dir(roots[0]), info


# --------------------------------------------------------------------------- results and report


def load_results(path: Path) -> Json:
    if path.is_file():
        return json.loads(path.read_text())
    return {"cells": {}, "attempts": [], "datasets": {}, "session_probe": None}


def save_results(results: Json, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)


def summary_rows(results: Json) -> list[Json]:
    """One flat row per measured cell, with throughput and Spark's ratio to Polars."""
    rows = []
    cells = results.get("cells", {})
    for key, m in cells.items():
        size, engine, step = key.split("/")
        events = results["datasets"].get(size, {}).get("rows", {}).get("events")
        row = {"size": size, "engine": engine, "step": step, "measured": is_measured(m), **_pick(m)}
        if events and row["measured"]:
            row.update(throughput(m, events))
        base = cells.get(f"{size}/polars/{step}")
        if engine != "polars" and row["measured"] and is_measured(base):
            row["wall_over_polars"] = ratio(m["wall_s"], base["wall_s"])
            row["cpu_over_polars"] = ratio(m["cpu_s"], base["cpu_s"])
            row["rss_over_polars"] = ratio(m["peak_rss_mib"], base["peak_rss_mib"])
        rows.append(row)
    return rows


def _pick(m: Json) -> Json:
    keys = ("wall_s", "cpu_s", "peak_rss_mib", "peak_pss_mib", "load_before", "code", "rc", "output_mib")
    return {k: m.get(k) for k in keys}


def memory_scaling(rows: Sequence[Json], small: str, large: str) -> list[Json]:
    """Peak RSS at `large` over `small`, per engine and step."""
    by = {(r["size"], r["engine"], r["step"]): r for r in rows if r["measured"]}
    out = []
    for (size, engine, step), r in by.items():
        other = by.get((large, engine, step))
        if size == small and other:
            out.append(
                {
                    "engine": engine,
                    "step": step,
                    small: r["peak_rss_mib"],
                    large: other["peak_rss_mib"],
                    "ratio": ratio(other["peak_rss_mib"], r["peak_rss_mib"]),
                }
            )
    return out


def _fmt(x: Any, spec: str = ",.1f") -> str:
    return "" if x is None else format(x, spec)


def print_report(console: Any, results: Json) -> None:
    from rich.table import Table

    table = Table(title="ingest / split / features, per engine (whole process tree; peak memory sampled)")
    for col in (
        "size",
        "engine",
        "step",
        "wall s",
        "CPU s",
        "cores busy",
        "events/s",
        "events/CPU-s",
        "peak RSS MiB",
        "peak PSS MiB",
        "vs polars (wall)",
        "load before",
    ):
        table.add_column(col, justify="left" if col in ("size", "engine", "step") else "right")
    for r in summary_rows(results):
        if not r["measured"]:
            table.add_row(r["size"], r["engine"], r["step"], "[red]not measured[/]", *[""] * 8)
            continue
        table.add_row(
            r["size"],
            r["engine"],
            r["step"],
            _fmt(r["wall_s"]),
            _fmt(r["cpu_s"]),
            _fmt(r.get("cores_busy"), ".2f"),
            _fmt(r.get("events_per_s"), ",.0f"),
            _fmt(r.get("events_per_cpu_s"), ",.0f"),
            _fmt(r["peak_rss_mib"], ",.0f"),
            _fmt(r["peak_pss_mib"], ",.0f"),
            _fmt(r.get("wall_over_polars"), ".2f") + ("x" if r.get("wall_over_polars") else ""),
            _fmt((r["load_before"] or [None])[0], ".2f"),
        )
    console.print(table)
    print_spark(console, results)


def print_spark(console: Any, results: Json) -> None:
    from rich.table import Table

    probe = results.get("session_probe") or {}
    if "start_s" in probe:
        console.print(
            f"Spark session alone ({probe['runs']} runs, median): import {probe['import_s']:.1f} s, start "
            f"{probe['start_s']:.1f} s, first job {probe['first_job_s']:.1f} s, stop {probe['stop_s']:.1f} s; "
            f"{probe['cpu_s']:.1f} CPU s, peak RSS {probe['peak_rss_mib']:,.0f} MiB"
        )
    table = Table(title="Spark: where the wall time goes (s, on each step's own clock)")
    cols = ("cell", "wall", "to context", "to 1st job", "jobs", "between jobs", "after jobs", "tasks", "longest stages")
    for col in cols:
        table.add_column(col, justify="left" if col in ("cell", "longest stages") else "right")
    for key, m in results.get("cells", {}).items():
        if "/spark/" not in key or not is_measured(m):
            continue
        b = spark_breakdown(m, m.get("spark_log"), probe)
        tops = "; ".join(f"{g['name'][:50]}: {g['wall_s']:.1f}" for g in b["top_stages"][:3])
        table.add_row(
            key,
            _fmt(m["wall_s"]),
            *(_fmt(b.get(k)) for k in ("to_context_s", "to_first_job_s", "jobs_s", "between_jobs_s", "after_jobs_s")),
            str(b["tasks"]),
            tops,
        )
    if table.row_count:
        console.print(table)


def markdown_report(results: Json) -> str:
    """The tables of BENCHMARKS.md: one per size, Spark's breakdown, peak memory by size."""
    rows = summary_rows(results)
    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        out += [
            f"**{size} events**",
            "",
            "| step | engine | wall s | CPU s | events/s | events per CPU-s | "
            "peak RSS (PSS) MiB | Spark / Polars: wall, CPU | load before |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["size"] == size):
            if not r["measured"]:
                out.append(f"| {r['step']} | {r['engine']} | not measured | | | | | | |")
                continue
            vs = f"{r['wall_over_polars']:.2f}x, {r['cpu_over_polars']:.2f}x" if r.get("wall_over_polars") else ""
            out.append(
                f"| {r['step']} | {r['engine']} | {_fmt(r['wall_s'])} | {_fmt(r['cpu_s'])} | "
                f"{_fmt(r.get('events_per_s'), ',.0f')} | {_fmt(r.get('events_per_cpu_s'), ',.0f')} | "
                f"{_fmt(r['peak_rss_mib'], ',.0f')} ({_fmt(r['peak_pss_mib'], ',.0f')}) | {vs} | "
                f"{_fmt((r['load_before'] or [None])[0], '.1f')} |"
            )
        out.append("")
    out += _markdown_spark(results)
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    if len(sizes) > 1:
        out += [
            "| engine | step | " + " | ".join(f"peak RSS {s} MiB" for s in sizes[:2]) + " | ratio |",
            "|---|---|---|---|---|",
        ]
        for m in memory_scaling(rows, sizes[0], sizes[1]):
            out.append(f"| {m['engine']} | {m['step']} | {m[sizes[0]]:,.0f} | {m[sizes[1]]:,.0f} | {m['ratio']:.2f}x |")
    return "\n".join(out) + "\n"


def _markdown_spark(results: Json) -> list[str]:
    probe = results.get("session_probe") or {}
    out = [
        "| Spark step | wall s | to SparkContext | to first job | jobs running | between jobs | after last job "
        "| jobs / stages / tasks | longest stages (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, m in results.get("cells", {}).items():
        if "/spark/" not in key or not is_measured(m):
            continue
        b = spark_breakdown(m, m.get("spark_log"), probe)
        tops = "; ".join(f"`{g['name']}` {g['wall_s']:.1f}" for g in b["top_stages"][:3])
        parts = " | ".join(
            _fmt(b.get(k)) for k in ("to_context_s", "to_first_job_s", "jobs_s", "between_jobs_s", "after_jobs_s")
        )
        out.append(f"| {key} | {_fmt(m['wall_s'])} | {parts} | {b['jobs']} / {b['stages']} / {b['tasks']} | {tops} |")
    return [*out, ""] if len(out) > 2 else []


# --------------------------------------------------------------------------- main


def machine_info() -> Json:
    import psutil

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "total_ram_gib": psutil.virtual_memory().total / (1 << 30),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "omp_num_threads_in_parent": os.environ.get("OMP_NUM_THREADS"),
    }


def code_version() -> str | None:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "recsys_cli", "conf"], capture_output=True, text=True, cwd=REPO
    )
    return (head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")) or None


def export_commit(rev: str, workdir: Path) -> tuple[Path, str]:
    """The package and configs at commit `rev`, exported once into WORKDIR/code/<sha> (git archive):
    a benchmark then measures a known commit, not a working tree others are editing."""
    sha = subprocess.run(["git", "rev-parse", "--short=12", rev], capture_output=True, text=True, cwd=REPO, check=True)
    commit = sha.stdout.strip()
    target = workdir / "code" / commit
    if not (target / "recsys_cli" / "__init__.py").is_file():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.Popen(["git", "archive", commit, "recsys_cli", "conf"], stdout=subprocess.PIPE, cwd=REPO)
        subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive {commit} failed")
    return target, commit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--events", type=int, default=10_000_000, help="events of the smallest input")
    p.add_argument("--days", type=int, default=180, help="days of the smallest input")
    p.add_argument("--scales", type=int, nargs="+", default=[1, 5], help="input sizes: times the events and days")
    p.add_argument("--sizes", nargs="+", default=None, help="only these sizes (labels such as 10M 50M)")
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    p.add_argument("--master", default="local[2]", help="engine.master of the Spark cells")
    p.add_argument(
        "--spark-override",
        action="append",
        default=[],
        help='a further override of the Spark cells, e.g. "++engine.conf={spark.driver.memory: 4g}" (repeatable)',
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--start", default=None, help="first day of the logs [bench_ingest's: a 1 Jan so all ends before today]"
    )
    p.add_argument("--workdir", type=Path, default=REPO / "bench_data" / "engines")
    p.add_argument(
        "--data-roots",
        type=Path,
        nargs="*",
        default=[REPO / "bench_data" / "ingest-2026-12-06"],
        help="folders searched for an already generated input (then WORKDIR/data)",
    )
    p.add_argument("--commit", default=None, help="measure this commit's code (exported), not the working tree")
    p.add_argument("--force", action="store_true", help="measure cells again even when results.json has them")
    p.add_argument("--keep", action="store_true", help="keep each engine's lake, splits and features afterwards")
    p.add_argument("--probe-runs", type=int, default=3, help="Spark session probes (median reported)")
    p.add_argument("--sample-s", type=float, default=0.2, help="memory sampling interval")
    p.add_argument("--timeout-s", type=float, default=3 * 3600, help="a cell killed after this long")
    p.add_argument("--report", action="store_true", help="only print the report of WORKDIR/results.json")
    p.add_argument("--markdown", action="store_true", help="with --report: the tables as Markdown")
    return p.parse_args(argv)


def datasets(args: argparse.Namespace, console: Any) -> dict[str, tuple[Path, Json]]:
    bi = bench_ingest()
    start = args.start or bi.default_start(args.days, max(args.scales))
    roots = [args.workdir.resolve() / "data", *[r.resolve() for r in args.data_roots]]
    out = {}
    for scale in args.scales:
        n = args.events * scale
        if args.sizes and size_label(n) not in args.sizes:
            continue
        ds = bi.Dataset(n, args.days * scale, start, args.seed)
        data_dir, info = find_dataset(bi, ds, roots, console)
        out[size_label(n)] = (data_dir / "raw", {"name": ds.name, "path": str(data_dir), **info})
    return out


def measure_all(args: argparse.Namespace, bench: Bench, results: Json, out_path: Path) -> None:
    sets = datasets(args, bench.console)
    results["datasets"].update({size: info for size, (_, info) in sets.items()})
    cells = plan(list(sets), args.engines, args.steps)
    if "spark" in args.engines and (args.force or not results.get("session_probe")):
        bench.console.print("Spark session probe ...")
        results["session_probe"] = bench.session_probe(args.probe_runs)
        save_results(results, out_path)
    for cell in cells:
        if not args.force and is_measured(results["cells"].get(cell.key)):
            bench.console.print(f"[dim]{cell.key}: measured already, skipped[/]")
            continue
        raw_dir = sets[cell.size][0]
        bench.ensure_input(cell, raw_dir)
        load = os.getloadavg()
        bench.console.print(f"{cell.key} (load {load[0]:.2f}) ...", end=" ")
        m = {**bench.run_step(cell, raw_dir), "code": bench.code or code_version()}
        m["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        if cell.engine == "spark":
            m["spark_breakdown"] = spark_breakdown(m, m.get("spark_log"), results.get("session_probe"))
        results["attempts"].append({k: m.get(k) for k in ("size", "engine", "step", "rc", "wall_s", "spark_ran")})
        if m["rc"] == 0:
            results["cells"][cell.key] = m
        bench.console.print(_one_line(m))
        save_results(results, out_path)
        if not args.keep and cell.step == args.steps[-1]:
            shutil.rmtree(bench.data_dir(cell.size, cell.engine), ignore_errors=True)


def _one_line(m: Json) -> str:
    if m["rc"] != 0:
        return f"[red]exit {m['rc']}[/] after {m['wall_s']:.1f} s"
    note = "" if m["engine"] != "spark" or m["spark_ran"] else " [yellow](no JVM started: ran Polars)[/]"
    return f"{m['wall_s']:.1f} s, {m['cpu_s']:.1f} CPU s, peak {m['peak_rss_mib']:,.0f} MiB{note}"


def main(argv: list[str] | None = None) -> int:
    from recsys_cli.console import make_console

    args = parse_args(argv)
    console = make_console()
    args.workdir = args.workdir.resolve()
    out_path = args.workdir / "results.json"
    results = load_results(out_path)
    if not args.report:
        if not set_subreaper():
            console.print("[yellow]not a child subreaper: CPU of a JVM outliving its driver may be missed[/]")
        results.update(
            command=shlex.join([sys.executable, *sys.argv]),
            machine=machine_info(),
            last_run=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        bench = Bench(args.workdir, args.master, args.timeout_s, args.sample_s, console)
        bench.spark_overrides = tuple(args.spark_override)
        if args.commit:
            bench.code_dir, bench.code = export_commit(args.commit, args.workdir)
        measure_all(args, bench, results, out_path)
    if args.markdown:
        print(markdown_report(results))
        return 0
    print_report(console, results)
    console.print(f"[dim]results: {out_path}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
