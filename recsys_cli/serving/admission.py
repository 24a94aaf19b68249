"""How many requests score at once, and what happens to the others.

Scoring is CPU work, most of it under Python's GIL. The threadpool that runs the
handlers (anyio's: 40 threads) would let every waiting request score at once; they
then share the cores between them, each taking that many times as long, and the
switching costs throughput on top. A burst the service would absorb in a second
becomes a backlog that never drains: a two-stage ranker package that kept up with
95 requests/s when the load rose step by step answered 53/s, every other request
timing out at 5 s, when 100/s arrived from the start (BENCHMARKS "Serving").

So `max_active` requests score at a time and the rest wait their turn, in arrival
order, blocked on a lock (waiting costs no CPU). One that waited `max_wait_ms` is
refused at once with 503 and Retry-After, which a client or a load balancer can
retry elsewhere: under overload the service goes on answering at its capacity,
and a refusal costs the client a round trip, not a timeout.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from recsys_cli.errors import RecsysError


class Overloaded(RecsysError):
    """A request waited longer than `serve.admission.max_wait_ms` for its turn."""


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and
    `taskset` narrow), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Admission:
    """At most `max_active` holders of a turn at once (None: one per available CPU);
    a turn not had within `max_wait_s` raises `Overloaded`."""

    def __init__(self, max_active: int | None, max_wait_s: float) -> None:
        self.max_active = int(max_active) if max_active else available_cpus()
        self.max_wait_s = float(max_wait_s)
        self._slots = threading.BoundedSemaphore(self.max_active)

    @contextmanager
    def turn(self) -> Iterator[float]:
        """Hold one turn for the `with` block; yields the seconds waited for it."""
        start = time.perf_counter()
        if not self._slots.acquire(timeout=self.max_wait_s):
            raise Overloaded(
                f"the service is at capacity ({self.max_active} requests scoring, others waited "
                f"{self.max_wait_s * 1000:.0f} ms); retry shortly"
            )
        try:
            yield time.perf_counter() - start
        finally:
            self._slots.release()
