"""Open-loop load generator for `recsys serve`, on loopback only.

Requests are scheduled at a fixed offered rate for a fixed duration whatever the
server's latency: request i is due at start + i / rate, and its latency runs from
that due time, not from the moment a connection was free to send it. A slow
server therefore shows up as queueing in the percentiles instead of quietly
lowering the rate (the "coordinated omission" of closed-loop clients).

The client is HTTP/1.1 over asyncio streams with a pool of keep-alive
connections that grows on demand (`--connections` at most). httpx was measured
first and dropped: against a stub server answering in microseconds it managed
1,395 requests/s on one connection and 421/s on 64 (closed loop, 2-core
machine), too close to the 1,000/s this client must offer. `--calibrate`
measures this client's own ceiling against such a stub.

Bodies come from a JSONL file (`--requests`: one `{"method", "path", "body"}`
object a line, or a bare `/recommend` body) or are generated from user and item
ids (`--users`, `--items`: one id a line, or a CSV with a user_id / item_id
column) with a mix of endpoints (`--mix recommend=8,user_recommendations=1,events=1`).
Latency percentiles are over successful (< 400) responses; failures are counted
by kind (http_<status>, timeout, connect, disconnect, protocol) and are never
folded into the percentiles, so read both.

    python scripts/loadtest.py http://127.0.0.1:8000 --rate 200 --duration 60 --users users.txt
    python scripts/loadtest.py http://127.0.0.1:8000 --find-max --p99-ms 50 --users users.txt
    python scripts/loadtest.py --calibrate          # this client's own ceiling
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import ipaddress
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

ENDPOINTS = ("recommend", "user_recommendations", "events")
DEFAULT_EVENT_TYPES = {"view": 0.8, "add_to_cart": 0.15, "purchase": 0.05}
KEEPALIVE_IDLE_S = 4.0  # uvicorn closes idle keep-alive connections after 5 s
SPEC_POOL = 20_000  # generated requests are drawn once and cycled


class TargetError(ValueError):
    """A target this tool refuses (not loopback, not http)."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str  # as written, for the Host header
    ip: str  # the loopback address connected to
    port: int


@dataclass(frozen=True)
class Spec:
    endpoint: str
    raw: bytes  # the whole request, encoded once


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, Counter[str]] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    sent: int = 0
    done: int = 0
    failed: int = 0
    connections_opened: int = 0
    last_done: float = 0.0


# --- target --------------------------------------------------------------------------------------------------------


def parse_target(url: str) -> Target:
    """Accept only http:// on 127.0.0.0/8, ::1 or `localhost` (resolved, every address
    loopback): this tool must never load a machine other than the one it runs on."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise TargetError(f"{url}: only http:// targets (loopback needs no TLS)")
    host = parts.hostname or ""
    port = parts.port or 80
    if host == "localhost":
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        ips = [str(info[4][0]) for info in infos]
        if not ips or not all(ipaddress.ip_address(ip).is_loopback for ip in ips):
            raise TargetError(f"{url}: localhost resolves to {ips}, not only loopback addresses")
        return Target(url, host, ips[0], port)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise TargetError(f"{url}: only loopback targets (127.0.0.1, ::1 or localhost), not host {host!r}") from None
    if not address.is_loopback:
        raise TargetError(f"{url}: {host} is not a loopback address; this tool loads only the local machine")
    return Target(url, host, str(address), port)


# --- requests ------------------------------------------------------------------------------------------------------


def encode(target: Target, method: str, path: str, body: Any, headers: dict[str, str], endpoint: str) -> Spec:
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    host = f"[{target.host}]" if ":" in target.host else target.host
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{target.port}", "User-Agent: recsys-loadtest"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return Spec(endpoint, ("\r\n".join(lines) + "\r\n\r\n").encode() + data)


def endpoint_of(path: str) -> str:
    bare = path.split("?", 1)[0]
    if re.fullmatch(r"/users/[^/]+/recommendations", bare):
        return "user_recommendations"
    return bare.strip("/") or "/"


def load_jsonl(path: Path, target: Target, headers: dict[str, str]) -> list[Spec]:
    """One request a line: {"method", "path", "body", "endpoint"?}, or a bare /recommend body."""
    specs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        if "path" not in row:
            row = {"method": "POST", "path": "/recommend", "body": row}
        method, req_path = str(row.get("method", "POST")).upper(), str(row["path"])
        endpoint = str(row.get("endpoint") or endpoint_of(req_path))
        specs.append(encode(target, method, req_path, row.get("body"), headers, endpoint))
    if not specs:
        raise ValueError(f"{path}: no requests")
    return specs


def read_ids(path: Path, column: str) -> list[str]:
    """Ids one a line, or the `column` (else the first) column of a .csv file."""
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            raise ValueError(f"{path}: no rows")
        key = column if column in rows[0] else next(iter(rows[0]))
        ids = [row[key] for row in rows if row[key]]
    else:
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{path}: no ids")
    return ids


def parse_weights(text: str, allowed: Sequence[str] | None = None) -> dict[str, float]:
    """`a=8,b=1` -> {"a": 8.0, "b": 1.0}; names outside `allowed` are refused."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if allowed is not None and name not in allowed:
            raise ValueError(f"unknown name {name!r} in {text!r}: expected one of {', '.join(allowed)}")
        weights[name] = float(value) if value else 1.0
        if weights[name] < 0:
            raise ValueError(f"negative weight in {text!r}")
    if not weights or sum(weights.values()) <= 0:
        raise ValueError(f"{text!r}: no positive weight")
    return weights


def generate(target: Target, users: list[str], items: list[str], options: argparse.Namespace, count: int) -> list[Spec]:
    """`count` requests drawn with a seeded generator from the mix of endpoints."""
    rng = random.Random(options.seed)
    mix = parse_weights(options.mix, ENDPOINTS)
    kinds = parse_weights(options.event_types)
    headers = auth_headers(options)
    endpoints = rng.choices(list(mix), weights=list(mix.values()), k=count)
    specs = []
    for endpoint in endpoints:
        user = rng.choice(users)
        if endpoint == "recommend":
            specs.append(encode(target, "POST", "/recommend", {"user_id": user, "k": options.k}, headers, endpoint))
        elif endpoint == "user_recommendations":
            path = f"/users/{quote(user, safe='')}/recommendations?k={options.k}"
            specs.append(encode(target, "GET", path, None, headers, endpoint))
        else:
            if not items:
                raise ValueError("--mix with events needs --items")
            types = rng.choices(list(kinds), weights=list(kinds.values()), k=options.events_per_request)
            events = [{"user_id": user, "item_id": rng.choice(items), "event_type": kind} for kind in types]
            specs.append(encode(target, "POST", "/events", {"events": events}, headers, endpoint))
    return specs


def auth_headers(options: argparse.Namespace) -> dict[str, str]:
    key = options.api_key or os.environ.get("RECSYS_API_KEY")
    if not key:
        return {}
    if options.api_key_header.lower() == "authorization":
        return {"Authorization": f"Bearer {key}"}
    return {options.api_key_header: key}


# --- HTTP/1.1 client -----------------------------------------------------------------------------------------------


class ProtocolError(Exception):
    """A response this client cannot read."""


class StaleConnection(Exception):
    """A reused connection closed before answering: the server dropped it while idle."""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = 0
        self.idle_since = time.monotonic()

    async def send(self, raw: bytes) -> tuple[int, bool]:
        """Send one request, read the whole response: (status, connection reusable)."""
        self.writer.write(raw)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as err:
            if not err.partial and self.used:
                raise StaleConnection from None
            raise
        if not head.startswith(b"HTTP/1.") or len(head) < 12:
            raise ProtocolError(head[:40])
        status = int(head[9:12])
        lower = head.lower()
        if b"\r\ntransfer-encoding: chunked" in lower:
            await self._read_chunked()
        else:
            match = re.search(rb"\r\ncontent-length: *(\d+)", lower)
            if match:
                await self.reader.readexactly(int(match[1]))
            elif status >= 200 and status not in (204, 304):
                raise ProtocolError(b"response without Content-Length")
        self.used += 1
        self.idle_since = time.monotonic()
        keep = head.startswith(b"HTTP/1.1") and b"\r\nconnection: close" not in lower
        return status, keep

    async def _read_chunked(self) -> None:
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return
            await self.reader.readexactly(size + 2)

    def close(self) -> None:
        self.writer.close()


class Lane:
    """A worker's one connection (None until the first request, or after a failure)."""

    def __init__(self) -> None:
        self.conn: Connection | None = None

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Runner:
    """Schedules the requests, grows the worker pool (one connection each) on demand,
    and records every outcome against the request's due time."""

    def __init__(self, target: Target, specs: list[Spec], options: argparse.Namespace) -> None:
        self.target, self.specs, self.options = target, specs, options
        self.stats = Stats()
        self.queue: asyncio.Queue[tuple[float, Spec]] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []
        self.idle = 0

    async def connect(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.target.ip, self.target.port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats.connections_opened += 1
        return Connection(reader, writer)

    async def exchange(self, lane: Lane, spec: Spec) -> int:
        """One request on the lane's connection (opened, or refreshed when idle too long),
        retried once on a fresh connection when a kept-alive one turns out closed."""
        if lane.conn is not None and time.monotonic() - lane.conn.idle_since > KEEPALIVE_IDLE_S:
            lane.drop()
        while True:
            if lane.conn is None:
                lane.conn = await self.connect()
            reused = lane.conn.used > 0
            try:
                status, keep = await lane.conn.send(spec.raw)
            except (StaleConnection, ConnectionResetError, BrokenPipeError):
                lane.drop()
                if reused:
                    continue  # the server closed it while idle; a new connection has not failed yet
                raise
            if not keep:
                lane.drop()
            return status

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        lane = Lane()
        try:
            while True:
                self.idle += 1
                due, spec = await self.queue.get()
                self.idle -= 1
                kind = await self.outcome(lane, due, spec)
                self.record(spec.endpoint, kind, loop.time() - due)
                self.queue.task_done()
        finally:
            lane.drop()

    async def outcome(self, lane: Lane, due: float, spec: Spec) -> str | None:
        """None for a success, else the error's kind; a failed transport drops the connection.
        A request already past its deadline when a worker takes it is not sent at all."""
        if asyncio.get_running_loop().time() >= due + self.options.timeout:
            return "timeout"
        try:
            async with asyncio.timeout_at(due + self.options.timeout):
                status = await self.exchange(lane, spec)
            return f"http_{status}" if status >= 400 else None
        except TimeoutError:
            kind = "timeout"
        except ConnectionRefusedError:
            kind = "connect"
        except (OSError, asyncio.IncompleteReadError, StaleConnection):
            kind = "disconnect"
        except (ProtocolError, ValueError, asyncio.LimitOverrunError):
            kind = "protocol"
        lane.drop()
        return kind

    def record(self, endpoint: str, kind: str | None, latency: float) -> None:
        stats = self.stats
        stats.done += 1
        stats.last_done = asyncio.get_running_loop().time()
        if kind is None:
            stats.latencies.setdefault(endpoint, []).append(latency)
        else:
            stats.failed += 1
            stats.errors.setdefault(endpoint, Counter())[kind] += 1

    async def schedule(self, rate: float, count: int, start: float) -> None:
        """Dispatch request i at start + i / rate; whatever is late goes at once, never skipped."""
        loop = asyncio.get_running_loop()
        i = 0
        while i < count:
            now = loop.time()
            due = start + i / rate
            if due > now:
                await asyncio.sleep(due - now)
                now = loop.time()
            while i < count and start + i / rate <= now:
                due = start + i / rate
                self.stats.lags.append(now - due)
                self.queue.put_nowait((due, self.specs[i % len(self.specs)]))
                self.stats.sent += 1
                i += 1
                if self.idle < self.queue.qsize() and len(self.workers) < self.options.connections:
                    self.workers.append(asyncio.create_task(self.worker()))

    async def run(self, rate: float, duration: float, progress: Any) -> float:
        loop = asyncio.get_running_loop()
        count = max(1, round(rate * duration))
        start = loop.time() + 0.01
        ticker = asyncio.create_task(self.tick(progress, count)) if progress is not None else None
        try:
            await self.schedule(rate, count, start)
            await self.queue.join()
        finally:
            for task in [*self.workers, *([ticker] if ticker else [])]:
                task.cancel()
            await asyncio.gather(*self.workers, *([ticker] if ticker else []), return_exceptions=True)
        return start

    async def tick(self, progress: Any, count: int) -> None:
        task = progress.add_task("load", total=count, ok=0, errors=0)
        while True:
            progress.update(
                task, completed=self.stats.done, ok=self.stats.done - self.stats.failed, errors=self.stats.failed
            )
            await asyncio.sleep(0.2)


# --- report --------------------------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99/max in milliseconds (None when nothing succeeded)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 3)

    return {
        "p50": rank(0.5),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": rank(1.0),
        "mean": round(sum(ordered) / len(ordered) * 1000, 3),
    }


def report(target: Target, rate: float, duration: float, start: float, runner: Runner) -> dict[str, Any]:
    stats = runner.stats
    elapsed = max(stats.last_done - start, duration, 1e-9)
    every = [x for values in stats.latencies.values() for x in values]
    errors: Counter[str] = sum(stats.errors.values(), Counter())
    lag = percentiles(stats.lags)
    endpoints = {}
    for name in sorted(set(stats.latencies) | set(stats.errors)):
        ok = len(stats.latencies.get(name, []))
        failed = stats.errors.get(name, Counter())
        endpoints[name] = {
            "count": ok + sum(failed.values()),
            "ok": ok,
            "achieved_rate": round(ok / elapsed, 2),
            "errors": dict(sorted(failed.items())),
            "latency_ms": percentiles(stats.latencies.get(name, [])),
        }
    return {
        "target": target.url,
        "offered_rate": rate,
        "duration_s": duration,
        "count": stats.sent,
        "ok": len(every),
        "achieved_rate": round(len(every) / elapsed, 2),
        "elapsed_s": round(elapsed, 3),
        "errors": {"total": stats.failed, "by_kind": dict(sorted(errors.items()))},
        "latency_ms": percentiles(every),
        "endpoints": endpoints,
        "client": {
            "dispatch_lag_ms": {"p50": lag["p50"], "p99": lag["p99"], "max": lag["max"]},
            "saturated": (lag["p99"] or 0.0) > runner.options.max_lag_ms,
            "connections_opened": stats.connections_opened,
            "workers": len(runner.workers),
        },
    }


def progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ok {task.fields[ok]}  errors {task.fields[errors]}"),
    )
    from recsys_cli.console import make_console

    return Progress(*columns, console=make_console(stderr=True), transient=True)


def run_load(target: Target, specs: list[Spec], rate: float, duration: float, options: argparse.Namespace) -> dict:
    """One open-loop run at `rate` requests/s for `duration` seconds; the report as a dict."""
    if rate <= 0 or duration <= 0:
        raise ValueError("--rate and --duration must be positive")

    async def main() -> dict[str, Any]:
        runner = Runner(target, specs, options)
        progress = progress_bar(options.progress)
        if progress is None:
            start = await runner.run(rate, duration, None)
        else:
            with progress:
                start = await runner.run(rate, duration, progress)
        return report(target, rate, duration, start, runner)

    return asyncio.run(main())


def step_failure(result: dict[str, Any], p99_ms: float) -> str | None:
    """Why a find-max step fails, or None. `client_lag`: the scheduler itself ran late, so
    the numbers are no longer the server's alone (with both on the same cores, the
    machine is saturated)."""
    p99 = result["latency_ms"]["p99"]
    if result["errors"]["total"]:
        return "errors"
    if p99 is None or p99 > p99_ms:
        return "p99"
    return "client_lag" if result["client"]["saturated"] else None


def find_max(target: Target, specs: list[Spec], options: argparse.Namespace) -> dict[str, Any]:
    """Step the offered rate up by `--step` until p99 passes `--p99-ms`, any error appears,
    or the client saturates. (A server that cannot keep up needs no test of its own:
    open loop, its backlog grows and shows in the p99.)"""
    rate, steps, best, stopped_by = options.rate, [], None, "max_rate"
    while rate <= options.max_rate:
        if options.warmup:
            run_load(target, specs, rate, options.warmup, options)
        result = run_load(target, specs, rate, options.duration, options)
        steps.append(result)
        p99 = result["latency_ms"]["p99"]
        reason = step_failure(result, options.p99_ms)
        summary = f"rate {rate:g}/s: p99 {p99} ms, errors {result['errors']['total']}"
        print(summary + (f" -> stop ({reason})" if reason else " -> pass"), file=sys.stderr)
        if reason:
            stopped_by = reason
            break
        best = rate
        rate = round(rate * options.step, 2)
        time.sleep(options.cooldown)
    return {
        "mode": "find_max",
        "target": target.url,
        "p99_threshold_ms": options.p99_ms,
        "step": options.step,
        "max_passing_rate": best,
        "stopped_by": stopped_by,
        "steps": steps,
    }


# --- calibration: this client against a stub that answers at once ---------------------------------------------------

STUB = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class StubProtocol(asyncio.Protocol):
    """Answers every request with STUB, reading only what framing needs."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            match = re.search(rb"\r\ncontent-length: *(\d+)", self.buffer[:end].lower())
            size = end + 4 + (int(match[1]) if match else 0)
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            self.transport.write(STUB)


def serve_stub(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(StubProtocol, "127.0.0.1", port)
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def calibrate(options: argparse.Namespace) -> dict[str, Any]:
    """Find this client's ceiling against a stub server in another process: any latency
    or lag measured there is the client's (and the shared CPUs'), not a service's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stub = subprocess.Popen([sys.executable, __file__, "--stub-server", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert stub.stdout is not None and stub.stdout.readline().strip() == "ready"
        target = parse_target(f"http://127.0.0.1:{port}")
        headers = auth_headers(options)
        specs = [
            encode(target, "POST", "/recommend", {"user_id": f"u{i}", "k": options.k}, headers, "recommend")
            for i in range(100)
        ]
        result = find_max(target, specs, options)
    finally:
        stub.terminate()
        stub.wait()
    result["mode"] = "calibrate"
    return result


# --- command line --------------------------------------------------------------------------------------------------


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help="base URL on loopback, e.g. http://127.0.0.1:8000")
    parser.add_argument("--rate", type=float, default=100.0, help="offered requests/s (find-max: the first step)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load (find-max: per step)")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds at the same rate before each measured run")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds from a request's due time to a timeout")
    parser.add_argument("--connections", type=int, default=256, help="keep-alive connections at most")
    parser.add_argument("--requests", type=Path, help="JSONL of requests (instead of --users/--items)")
    parser.add_argument("--users", type=Path, help="user ids: one a line, or a CSV with a user_id column")
    parser.add_argument("--items", type=Path, help="item ids for /events: one a line, or a CSV with item_id")
    parser.add_argument(
        "--mix", default="recommend=1", help="endpoint weights, e.g. recommend=8,user_recommendations=1,events=1"
    )
    parser.add_argument("--events-per-request", type=int, default=1, help="events in one POST /events body")
    parser.add_argument("--event-types", default=",".join(f"{k}={v}" for k, v in DEFAULT_EVENT_TYPES.items()))
    parser.add_argument("--k", type=int, default=10, help="k of every recommendation request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", help="API key (default $RECSYS_API_KEY), sent as Authorization: Bearer KEY")
    parser.add_argument("--api-key-header", default="Authorization", help="send the key raw under this header instead")
    parser.add_argument("--find-max", action="store_true", help="step the rate up until p99 or errors fail")
    parser.add_argument("--p99-ms", type=float, default=50.0, help="find-max: the p99 a step must stay under")
    parser.add_argument("--step", type=float, default=1.25, help="find-max: rate multiplier between steps")
    parser.add_argument("--max-rate", type=float, default=100_000.0, help="find-max: stop after this rate")
    parser.add_argument("--cooldown", type=float, default=1.0, help="find-max: seconds between steps")
    parser.add_argument(
        "--max-lag-ms", type=float, default=5.0, help="scheduler lag p99 above which the client counts as saturated"
    )
    parser.add_argument("--calibrate", action="store_true", help="find this client's ceiling against a stub server")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")
    parser.add_argument("--stub-server", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.target is None and not (options.calibrate or options.stub_server):
        parser.error("a target URL is needed (or --calibrate)")
    if options.requests is None and options.users is None and not (options.calibrate or options.stub_server):
        parser.error("--requests FILE or --users FILE is needed")
    return options


def specs_for(target: Target, options: argparse.Namespace) -> list[Spec]:
    if options.requests is not None:
        return load_jsonl(options.requests, target, auth_headers(options))
    users = read_ids(options.users, "user_id")
    items = read_ids(options.items, "item_id") if options.items else []
    count = min(SPEC_POOL, max(1, round(options.rate * options.duration)))
    return generate(target, users, items, options, count)


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments(argv)
    if options.stub_server:
        serve_stub(options.stub_server)
        return 0
    try:
        if options.calibrate:
            result = calibrate(options)
        else:
            target = parse_target(options.target)
            specs = specs_for(target, options)
            if options.find_max:
                result = find_max(target, specs, options)
            else:
                if options.warmup:
                    run_load(target, specs, options.rate, options.warmup, options)
                result = run_load(target, specs, options.rate, options.duration, options)
    except (TargetError, ValueError, OSError) as err:
        print(f"loadtest: {err}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
