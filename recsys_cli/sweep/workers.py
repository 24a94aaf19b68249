"""`--workers N`: N worker processes on this machine sharing the study, each on
its own GPU when there are several.

Processes, not threads: training holds the interpreter, and a process can be
given its GPU (CUDA_VISIBLE_DEVICES) before it imports torch. Workers run in a
session of their own so that Ctrl-C reaches the parent only, which then asks each
worker once (SIGTERM, which a worker treats as Ctrl-C; a shell may have its
background jobs ignore SIGINT) to record its trial and stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from recsys_cli.sweep.plan import SweepPlan

WORKERS_DIR = "workers"
INTERRUPTED_EXIT = 130
STOP_GRACE_S = 60


@dataclass(frozen=True)
class WorkerExit:
    index: int
    code: int
    log: Path


def visible_gpus(env: Mapping[str, str]) -> list[str]:
    """GPU ids this machine lets us use: CUDA_VISIBLE_DEVICES when set, else every
    device torch sees (none on a CPU machine)."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def worker_env(env: Mapping[str, str], index: int, workers: int, gpus: Sequence[str], cpus: int) -> dict[str, str]:
    """Worker `index`'s environment: one GPU each, round robin when workers outnumber
    GPUs; and, unless the user chose, an equal share of CPU threads so that N
    workers do not each start one thread per core."""
    out = dict(env)
    if gpus:
        out["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    out.setdefault("OMP_NUM_THREADS", str(max(1, cpus // workers)))
    return out


def run_workers(plan: SweepPlan, workers: int) -> list[WorkerExit]:
    """Start the workers and wait for all of them. On Ctrl-C (KeyboardInterrupt
    here) each worker is sent SIGTERM, given time to record its trial, then waited
    for; the interrupt is raised again once they are gone."""
    folder = Path(plan.out) / WORKERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    plan_file = folder / "plan.json"
    plan_file.write_text(plan.to_json())
    gpus = visible_gpus(os.environ)
    procs = []
    for index in range(workers):
        log = folder / f"worker-{index}.log"
        with log.open("w") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "recsys_cli.sweep.worker", str(plan_file), str(index)],
                env=worker_env(os.environ, index, workers, gpus, os.cpu_count() or 1),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append((index, proc, log))
    try:
        while any(proc.poll() is None for _, proc, _ in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        _stop([proc for _, proc, _ in procs])
        raise
    return [WorkerExit(index, int(proc.returncode), log) for index, proc, log in procs]


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()  # its trial is marked failed by the next worker on this host
            proc.wait()


def tail(log: Path, lines: int = 5) -> str:
    """The last lines of a worker's log, for an error message."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])
