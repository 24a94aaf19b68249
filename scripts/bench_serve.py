"""The serving benchmark of issue 17: `recsys serve` under open-loop load, against a bare faiss endpoint.

Starts `recsys serve --port 0` on a registry's model (`--registry`, `--model`,
`--alias`) or on a package folder (`--package`, pushed into a temporary registry)
as a subprocess: one worker, OMP_NUM_THREADS=1, a generated API key, the answer
cache off (`serve.cache.size=0`: repeated requests would flatter the latency) and
the event log in a fresh temporary folder; and the reference,
`scripts/bare_faiss_server.py` (FastAPI + uvicorn, one worker, one exact IndexFlatIP
search for a random user vector per request over the package's ANN item vectors,
random ones when it has none). Both stay up, and each load runs on the service and
then at once on the reference, so that the pair shares the moment of a machine that
others share. With `scripts/loadtest.py` as a subprocess (its CPU is accounted
apart from the servers'):

1. `/recommend` at `--rate` for `--duration` seconds (after `--warmup`), on each;
2. `/events` at `--events-rate` events/s (`--events-per-request` a request) for
   `--duration` on the service; then it is killed with SIGKILL, started again on
   the same log, and every acknowledged event must be in the log and replayed: the
   log's lines >= the events acknowledged (200 responses x events a request, all of
   known items, and the server's own `recsys_events_total{outcome="accepted"}`), and
   the restarted server's `recsys_events_replayed` equal to the lines;
3. find-max on each: the highest rate whose p99 stays under `--p99-ms` (loadtest.py's
   steps of `--find-max-duration` s), the service restarted with live histories.

Requests come from raw user ids of the lake the package was trained on (the service
pseudonymises them as it would a shopper's): `--raw-events` (a CSV or a folder of
them; default: the data source of the package's lineage config, relative to the
working directory), the users the model knows and `--cold-share` of ids nobody has
(cold start). Raw ids stay in a temporary file for the load generator and leave no
trace in the report. Items for /events are the package's catalogue.

Writes `--out` (default bench_data/serve/<name>.json: every loadtest report, CPU
seconds of server and client per case, the durability check, the package's ANN
recall, machine, load average before/after, date, command, commit) and prints a
table. The machine is shared: read the load average (and say what else ran,
`--note`) before quoting a number.

    python scripts/bench_serve.py --model synth-ease --rate 200 --duration 60
    python scripts/bench_serve.py --package runs/ease/<run>/package --duration 20 --note "idle machine"
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import resource
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_movielens import git_state, machine  # noqa: E402

import recsys_cli  # noqa: E402
from recsys_cli.errors import RecsysError  # noqa: E402

LOADTEST = HERE / "loadtest.py"
BARE_SERVER = HERE / "bare_faiss_server.py"
SERVING_LINE = re.compile(r"serving .* on (http://[\w.\[\]:]+:\d+)")
SETTINGS = ("rate", "duration", "warmup", "events_rate", "events_per_request", "p99_ms")
SETTINGS += ("find_max_duration", "max_rate", "max_lag_ms", "k", "seed")  # recorded in the report
COLD_PREFIX = "bench-cold-"  # ids no shop gives: cold-start requests
NO_CACHE = "serve.cache.size=0"  # repeated requests answered from the cache would flatter the latency


class BenchError(Exception):
    """A reason the benchmark cannot run, in one line."""


# --- what is served ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    registry: Path
    name: str
    alias: str
    version: int
    folder: Path  # the package as the registry holds it
    manifest: dict[str, Any]
    lineage: dict[str, Any]


def subject(options: argparse.Namespace, work: Path) -> Subject:
    """The package to serve: from the registry, or a package folder pushed into a temporary one."""
    from recsys_cli.config import compose
    from recsys_cli.registry.package import LINEAGE, read_manifest
    from recsys_cli.registry.store import Registry
    from recsys_cli.serving.service import served_name

    if options.package is not None:
        registry_dir, alias = work / "registry", "production"
        registry = Registry(str(registry_dir))
        name = options.model or str(read_manifest(options.package)["name"])
        record = registry.push(options.package, name)
        registry.promote(name, int(record["version"]), alias)
    else:
        registry_dir, alias = options.registry.resolve(), options.alias
        registry = Registry(str(registry_dir))
        overrides = [f"registry.uri={registry_dir}", f"serve.alias={alias}"]
        name = options.model or served_name(compose("serve", overrides))
    version = registry.version_of(name, alias)
    folder = registry.resolve(name, version)
    lineage = json.loads((folder / LINEAGE).read_text())
    return Subject(registry_dir, name, alias, version, folder, read_manifest(folder), lineage)


# --- request bodies ------------------------------------------------------------------------------------------------


def raw_event_files(lineage: dict[str, Any], given: Path | None) -> tuple[list[Path], str]:
    """The raw event files and their user id column: `given` (a CSV or a folder), else
    the data source the package's lineage config names."""
    data = (lineage.get("config") or {}).get("data") or {}
    column = str(((data.get("events") or {}).get("columns") or {}).get("user_id") or "user_id")
    patterns = (data.get("events") or {}).get("files") or ["*.csv"]
    folder = given if given is not None else (Path(str(data["path"])) if data.get("path") else None)
    if folder is None:
        raise BenchError("the package's lineage names no raw data folder: give --raw-events")
    if folder.is_file():
        return [folder], column
    files = sorted({p for pattern in patterns for p in folder.glob(str(pattern))})
    if not files:
        raise BenchError(f"{folder}: no raw event files ({', '.join(map(str, patterns))}); give --raw-events")
    return files, column


def request_users(subject: Subject, options: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """Raw ids of users the model knows (their lake pseudonym is in its vocabulary),
    plus `--cold-share` of ids no one has, shuffled; and a description without any id."""
    import random

    import polars as pl

    from recsys_cli.serving.identity import package_key, pseudonymise

    files, column = raw_event_files(subject.lineage, options.raw_events)
    frame = pl.concat([pl.scan_csv(f, infer_schema=False).select(column) for f in files]).unique().collect()
    raw = sorted(frame.get_column(column).drop_nulls().to_list())
    known_tokens = set(json.loads((subject.folder / "vocab" / "users.json").read_text())["tokens"][1:])
    key = package_key(subject.lineage, None, subject.name)
    rng = random.Random(options.seed)
    rng.shuffle(raw)
    known = []
    for user in raw:
        if pseudonymise(user, key) in known_tokens:
            known.append(user)
            if len(known) == options.users:
                break
    if not known:
        raise BenchError(f"no raw user id of {files[0]} is known to {subject.name}: another lake's events?")
    n_cold = round(len(known) * options.cold_share / max(1e-9, 1 - options.cold_share))
    users = known + [f"{COLD_PREFIX}{options.seed}-{i:06d}" for i in range(n_cold)]
    rng.shuffle(users)
    about = {"known": len(known), "cold": n_cold, "raw_events": [str(f) for f in files], "column": column}
    return users, about


def write_ids(path: Path, ids: Sequence[str]) -> Path:
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


def catalogue(subject: Subject) -> list[str]:
    import polars as pl

    return pl.read_parquet(subject.folder / "items.parquet", columns=["item_id"])["item_id"].to_list()


# --- processes -----------------------------------------------------------------------------------------------------


class Server:
    """A service subprocess: started, waited for until it prints its address, stopped."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
        self.command, self.env, self.log_path, self.timeout, self.url = command, env, log, timeout, ""
        self.log = log.open("ab")
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise BenchError(f"{log.stem}: no 'serving ... on http://' line after {timeout:g} s") from None
            if line is None:
                self.proc.wait()
                raise BenchError(f"server exited ({self.proc.returncode}) before serving: {self.tail()}")
            if found := SERVING_LINE.search(line):
                self.url = found.group(1)
                return

    def _drain(self, lines: queue.Queue[str | None]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            lines.put(line)
        lines.put(None)

    def tail(self) -> str:
        self.log.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-3:])

    def cpu_seconds(self) -> float:
        """User + system CPU of the server so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as in a crash."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        """SIGTERM, as a container runtime stops it; SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def child_env(api_key: str) -> dict[str, str]:
    """The servers' environment: one OpenMP thread, the key, and this checkout's recsys_cli first."""
    root = str(Path(recsys_cli.__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "RECSYS_API_KEY": api_key, "OMP_NUM_THREADS": "1", "COLUMNS": "300", "PYTHONPATH": path}


def loadtest(url: str, args: list[str], out: Path, server: Server | None = None, warmup: float = 0.0) -> dict:
    """One loadtest.py run as a subprocess; its JSON report, with the CPU seconds the
    client and (if given) the server spent during it. A warmup is a run of its own
    before, at the same rate, so that the CPU seconds are the measured run's alone."""
    if warmup > 0:
        _loadtest(url, [*args, "--duration", f"{warmup:g}"], out)
    before_client, before_server = _children_cpu(), server.cpu_seconds() if server else None
    report = _loadtest(url, args, out)
    report["cpu_s"] = {
        "client": round(_children_cpu() - before_client, 2),
        "server": None if server is None or before_server is None else round(server.cpu_seconds() - before_server, 2),
    }
    return report


def _loadtest(url: str, args: list[str], out: Path) -> dict[str, Any]:
    command = [sys.executable, str(LOADTEST), url, *args, "--no-progress", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"loadtest.py exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return dict(json.loads(out.read_text()))


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (the load generators)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def metric(url: str, sample: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample of the service's /metrics, or None when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and all(found.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(found.value)
    return None


def logged_events(folder: Path) -> tuple[int, int]:
    """(lines that are JSON objects, lines that are not) in the event log's segments."""
    good = bad = 0
    for path in sorted(folder.glob("events-*.jsonl")):
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                good += isinstance(json.loads(line), dict)
            except ValueError:
                bad += 1
    return good, bad


# --- the cases -----------------------------------------------------------------------------------------------------


def load_args(options: argparse.Namespace, files: dict[str, Path], rate: float) -> list[str]:
    args = ["--rate", f"{rate:g}", "--duration", f"{options.duration:g}"]
    return [*args, *common_args(options, files)]


def find_max_args(options: argparse.Namespace, files: dict[str, Path]) -> list[str]:
    args = ["--find-max", "--rate", f"{options.find_max_start or options.rate:g}", "--p99-ms", f"{options.p99_ms:g}"]
    args += ["--duration", f"{options.find_max_duration:g}", "--warmup", f"{min(options.warmup, 2.0):g}"]
    args += ["--max-rate", f"{options.max_rate:g}"]
    return [*args, *common_args(options, files)]


def common_args(options: argparse.Namespace, files: dict[str, Path]) -> list[str]:
    args = ["--users", str(files["users"]), "--k", str(options.k), "--seed", str(options.seed)]
    return [*args, "--max-lag-ms", f"{options.max_lag_ms:g}"]


def events_case(options: argparse.Namespace, server: Server, files: dict[str, Path], key: str, work: Path) -> dict:
    """/events at --events-rate for --duration (no warmup: every acknowledged event is counted)."""
    per = options.events_per_request
    args = load_args(options, files, options.events_rate / per)
    args += ["--mix", "events=1", "--items", str(files["items"]), "--events-per-request", str(per), "--api-key", key]
    report = loadtest(server.url, args, work / "events.json", server)
    report["events_per_request"] = per
    report["offered_events_rate"] = options.events_rate
    return report


def durability(report: dict[str, Any], accepted: float | None, logged: tuple[int, int], replayed: float | None) -> dict:
    """Every acknowledged event in the log after SIGKILL, and replayed by the restart."""
    ok = report["endpoints"].get("events", {}).get("ok", 0)
    acknowledged = ok * report["events_per_request"]  # every item is the catalogue's: all accepted
    needed = max(acknowledged, int(accepted or 0))
    return {
        "acknowledged_by_client": acknowledged,
        "accepted_by_server": None if accepted is None else int(accepted),
        "logged": logged[0],
        "bad_lines": logged[1],
        "replayed_after_restart": None if replayed is None else int(replayed),
        "every_acknowledged_event_logged": logged[0] >= needed and logged[1] == 0,
        "every_logged_event_replayed": replayed is not None and int(replayed) == logged[0],
    }


def serve_command(subject: Subject, options: argparse.Namespace, events_dir: Path) -> list[str]:
    command = [sys.executable, "-P", "-m", "recsys_cli", "serve", "--port", "0", "--model", subject.name]
    command += ["--alias", subject.alias, "--workers", "1", f"registry.uri={subject.registry}"]
    command += [NO_CACHE, f"serve.event_log.dir={events_dir}", *options.override]
    return command


def reference_source(subject: Subject, options: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The bare server's vectors: the package's ANN index (`--ann`, else `model`, else the
    first), or random ones of the catalogue's size when it has none."""
    records = subject.manifest.get("ann") or {}
    name = options.ann or ("model" if "model" in records else next(iter(records), None))
    if name is not None:
        if name not in records:
            raise BenchError(f"{subject.name}: no ANN index {name!r} (has {', '.join(records) or 'none'})")
        folder = subject.folder / str(records[name].get("path") or f"ann/{name}")
        about = {"vectors": f"ANN index {name!r} searched exactly", "items": records[name].get("items")}
        return ["--ann", str(folder)], {**about, "dim": records[name].get("dim")}
    n_items = int(subject.manifest.get("contents", {}).get("items") or len(catalogue(subject)))
    about = {"vectors": "random normal (the package has no ANN index)", "items": n_items, "dim": options.random_dim}
    return ["--random", str(n_items), str(options.random_dim)], about


def all_cases(subject: Subject, options: argparse.Namespace, files: dict[str, Path], work: Path) -> dict:
    """Both servers up at once and each load run on one, then at once on the other, so
    that the two share the (shared) machine's moment: /recommend, /events with the kill
    -9 check on the service, then find-max on the restarted service and the reference."""
    key = secrets.token_hex(16)
    command = serve_command(subject, options, work / "events")
    servers: dict[str, Server] = {}
    found: dict[str, dict[str, Any]] = {"service": {}}
    try:
        servers["service"] = Server(command, child_env(key), work / "serve.log", options.startup_timeout)
        if options.reference:
            source, about = reference_source(subject, options)
            bare = [sys.executable, "-P", str(BARE_SERVER), *source, "--port", "0", "--seed", str(options.seed)]
            found["reference"] = {"about": about}
            servers["reference"] = Server(bare, child_env(key), work / "bare.log", options.startup_timeout)
        for name, server in servers.items():
            args = load_args(options, files, options.rate)
            found[name]["recommend"] = loadtest(server.url, args, work / f"{name}.json", server, options.warmup)
        if options.events_rate > 0:
            found["service"]["events"] = events_case(options, servers["service"], files, key, work)
            servers["service"] = kill_and_restart(servers["service"], found["service"]["events"], work / "events")
        if options.find_max:
            for name, server in servers.items():
                args = find_max_args(options, files)
                found[name]["find_max"] = loadtest(server.url, args, work / f"{name}-max.json", server)
    finally:
        for server in servers.values():
            server.stop()
    return found


def kill_and_restart(server: Server, report: dict[str, Any], events_dir: Path) -> Server:
    """SIGKILL the service after the events run, start it again on the same log, and add
    the durability check to `report`; returns the restarted service."""
    accepted = metric(server.url, "recsys_events_total", {"outcome": "accepted"})
    server.kill()
    logged = logged_events(events_dir)
    restarted = Server(server.command, server.env, server.log_path, server.timeout)
    replayed = metric(restarted.url, "recsys_events_replayed")
    report["durability"] = durability(report, accepted, logged, replayed)
    return restarted


# --- report --------------------------------------------------------------------------------------------------------


def ann_records(manifest: dict[str, Any]) -> dict[str, Any]:
    keep = ("kind", "params", "items", "dim", "k", "recall", "queries", "ann_ms_median", "exact_ms_median")
    return {name: {k: r.get(k) for k in keep} for name, r in (manifest.get("ann") or {}).items()}


def rows(cases: dict[str, Any]) -> Iterator[list[str]]:
    """Table rows: case, offered, achieved, p50, p95, p99, errors, server CPU ms a request,
    the client's dispatch lag p99."""

    def row(label: str, report: dict[str, Any], offered: str | None = None) -> list[str]:
        lat, cpu = report["latency_ms"], report.get("cpu_s") or {}
        per = f"{cpu['server'] * 1000 / report['ok']:.2f}" if cpu.get("server") is not None and report["ok"] else "-"
        lag = report["client"]["dispatch_lag_ms"]["p99"]
        cells = [lat["p50"], lat["p95"], lat["p99"]]
        return [
            label,
            offered or f"{report['offered_rate']:g}",
            f"{report['achieved_rate']:g}",
            *("-" if v is None else f"{v:.2f}" for v in cells),
            str(report["errors"]["total"]),
            per,
            "-" if lag is None else f"{lag:.1f}" + (" !" if report["client"]["saturated"] else ""),
        ]

    for prefix, group in (("serve", cases.get("service", {})), ("bare faiss", cases.get("reference", {}))):
        if "recommend" in group:
            yield row(f"{prefix} /recommend", group["recommend"])
        if "events" in group:
            events = group["events"]
            offered = f"{events['offered_rate']:g} ({events['offered_events_rate']:g} ev/s)"
            yield row(f"{prefix} /events", events, offered)
        if "find_max" in group:
            found = group["find_max"]
            passing = [s for s in found["steps"] if s["offered_rate"] == found["max_passing_rate"]]
            label = f"{prefix} max rate *"
            yield row(label, passing[0]) if passing else [label, *"-" * 8]


def print_report(result: dict[str, Any]) -> None:
    from rich.table import Table

    from recsys_cli.console import make_console

    console = make_console()
    headers = ["case", "offered /s", "achieved /s", "p50 ms", "p95 ms", "p99 ms", "errors", "server CPU ms/req"]
    headers.append("client lag p99 ms")
    table = Table(title=f"{result['package']['name']} v{result['package']['version']}: recsys serve vs bare faiss")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for cells in rows(result["cases"]):
        table.add_row(*cells)
    console.print(table)
    console.print(
        "client lag: how late the load generator sent requests; ! marks a run past --max-lag-ms, where the "
        "machine, not only the server, was saturated (read the load average)",
        highlight=False,
    )
    for case, group in result["cases"].items():
        if "find_max" in group:
            found = group["find_max"]
            steps = ", ".join(f"{step['offered_rate']:g}" for step in found["steps"])
            console.print(
                f"* {case} find-max: highest rate with p99 < {found['p99_threshold_ms']:g} ms and no error "
                f"{found['max_passing_rate']}/s, stopped by {found['stopped_by']} (steps: {steps})",
                highlight=False,
            )
    check = result["cases"].get("service", {}).get("events", {}).get("durability")
    if check:
        console.print(f"kill -9 check: {json.dumps(check)}", highlight=False, soft_wrap=True)
    for name, record in result["ann"].items():
        console.print(f"ANN {name}: {json.dumps(record)}", highlight=False, soft_wrap=True)
    if not result["ann"]:
        console.print("ANN: the package has no ANN index (its model has no item vectors)")
    m = result["machine"]
    console.print(f"load average before {m['load_average_before']}, after {m['load_average_after']}", highlight=False)


# --- command line --------------------------------------------------------------------------------------------------


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, default=Path("registry"), help="registry folder")
    parser.add_argument("--model", help="model name (default: the only one with --alias)")
    parser.add_argument("--alias", default="production", help="alias, latest or a version number")
    parser.add_argument("--package", type=Path, help="a package folder instead (pushed into a temporary registry)")
    parser.add_argument("--raw-events", type=Path, help="raw events CSV or folder (default: the lineage's source)")
    parser.add_argument("--users", type=int, default=2000, help="known users to draw")
    parser.add_argument("--cold-share", type=float, default=0.1, help="share of requests for unknown ids")
    parser.add_argument("--rate", type=float, default=200.0, help="/recommend requests/s")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of each measured run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds at the same rate before /recommend runs")
    parser.add_argument("--events-rate", type=float, default=1000.0, help="events/s posted (0: no events case)")
    parser.add_argument("--events-per-request", type=int, default=10)
    parser.add_argument("--p99-ms", type=float, default=50.0, help="find-max: the p99 a rate must stay under")
    parser.add_argument("--find-max-duration", type=float, default=10.0, help="find-max: seconds per step")
    parser.add_argument("--find-max-start", type=float, help="find-max: first rate (default --rate)")
    parser.add_argument(
        "--max-lag-ms", type=float, default=5.0, help="find-max: client scheduler lag p99 that ends the search"
    )
    parser.add_argument("--max-rate", type=float, default=100_000.0, help="find-max: stop after this rate")
    parser.add_argument("--no-find-max", dest="find_max", action="store_false")
    parser.add_argument("--no-reference", dest="reference", action="store_false", help="skip the bare faiss runs")
    parser.add_argument("--ann", help="the package's ANN index for the reference (default: model, else the first)")
    parser.add_argument("--random-dim", type=int, default=64, help="reference vectors' width without an ANN index")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--override", action="append", default=[], help="extra recsys serve override (repeatable)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds for a server to start")
    parser.add_argument("--note", default="", help="what else ran on the machine, stored in the report")
    parser.add_argument("--out", type=Path, help="JSON report (default bench_data/serve/<name>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (holds raw ids: delete it after)")
    options = parser.parse_args(argv)
    if not 0 <= options.cold_share < 1 or options.users < 1 or options.events_per_request < 1:
        parser.error("--cold-share in [0, 1), --users and --events-per-request at least 1")
    return options


def run(options: argparse.Namespace, work: Path) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = datetime.now(UTC)
    served = subject(options, work)
    users, about_users = request_users(served, options)
    files = {"users": write_ids(work / "users.txt", users), "items": write_ids(work / "items.txt", catalogue(served))}
    cases = all_cases(served, options, files, work)
    return {
        "benchmark": "serve",
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "cwd": str(Path.cwd()),
        "git": git_state(),
        "machine": {
            **machine(),
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "note": options.note,
        },
        "package": {
            "name": served.name,
            "version": served.version,
            "alias": served.alias,
            "registry": str(served.registry) if options.package is None else None,
            "package": str(options.package) if options.package is not None else None,
            "model_class": (served.manifest.get("model") or {}).get("class"),
            "items": (served.manifest.get("contents") or {}).get("items"),
            "users": (served.manifest.get("contents") or {}).get("users"),
            "manifest_sha256": served.manifest.get("manifest_sha256"),
        },
        "settings": {k: getattr(options, k) for k in SETTINGS} | {"serve_overrides": [NO_CACHE, *options.override]},
        "request_users": about_users,
        "ann": ann_records(served.manifest),
        "cases": cases,
    }


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_serve-"))
    try:
        result = run(options, work)
    except (BenchError, RecsysError) as err:
        print(f"bench_serve: {err}", file=sys.stderr)
        return 1
    finally:
        if options.keep:
            print(f"bench_serve: work folder kept: {work} (its users.txt holds raw ids)", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    out = options.out or Path("bench_data") / "serve" / f"{result['package']['name']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
