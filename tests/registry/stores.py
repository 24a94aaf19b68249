"""Registries for the store tests: small sealed packages of dummy files, an
S3-compatible server, and pushes run in separate processes (racing, or dying
halfway through an upload).

The S3 server is the one `.ci/run` starts and names in $RECSYS_TEST_S3_ENDPOINT.
Without it, a local run starts moto's standalone server itself on a free port;
under CI ($RECSYS_CI set) its absence is a failure, never a skip, as the
PostgreSQL sweep test relies on `.ci/run` too.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from recsys_cli.registry.package import seal_package
from recsys_cli.registry.storage import Storage
from recsys_cli.registry.store import Registry
from tests.s3 import new_bucket, s3_server

__all__ = ["Where", "concurrent_pushes", "make_package", "push_that_dies", "s3_registry", "s3_server"]


@dataclass(frozen=True)
class Where:
    """A registry location: what `Registry(uri, storage_options)` takes."""

    uri: str
    options: dict[str, Any] = field(default_factory=dict)

    def open(self) -> Registry:
        return Registry(self.uri, self.options)


def make_package(folder: Path, name: str = "ease", **payload: Any) -> Path:
    """A sealed package of three small files (one in a subfolder)."""
    (folder / "model").mkdir(parents=True, exist_ok=True)
    (folder / "model" / "weights.safetensors").write_bytes(bytes(range(64)))
    (folder / "model" / "model.json").write_text('{"class": "EASE"}\n')
    (folder / "items.parquet").write_bytes(b"PAR1 tiny PAR1")
    defaults = {
        "name": name,
        "metrics": {"val/ndcg@10": 0.25, "val/recall@20": 0.4},
        "model": {"class": "recsys_cli.models.ease.EASE"},
        "lineage": {"lake": {"sha256": "ab" * 32}, "environment": {"code": {"git_commit": "c0ffee"}}},
    }
    seal_package(folder, {**defaults, **payload})
    return folder


# -- pushes in other processes ------------------------------------------------------------------------------------


def _push_at_the_same_moment(where: Where, package: str, barrier: Any, done: Any) -> None:
    """Push after both processes have picked the same free number: the first claim
    is held back until the other process is about to claim too, so the claims race."""
    create = Storage.create
    held = [False]

    def racing(self: Storage, path: str, data: bytes) -> bool:
        if "/claims/" in path and not held[0]:
            held[0] = True
            barrier.wait(timeout=60)
        return create(self, path, data)

    Storage.create = racing  # type: ignore[method-assign]
    done.put(where.open().push(package)["version"])


def _push_and_die(where: Where, package: str) -> None:
    """Push, and end the process without any cleanup when the second file is being sent."""
    upload = Storage.upload
    sent = [0]

    def dying(self: Storage, source: Path, path: str, sha256: str, size: int) -> None:
        sent[0] += 1
        if sent[0] == 2:
            os._exit(3)
        upload(self, source, path, sha256, size)

    Storage.upload = dying  # type: ignore[method-assign]
    where.open().push(package)


def concurrent_pushes(where: Where, package: Path, processes: int = 2) -> list[int]:
    """The versions `processes` simultaneous pushes of `package` got, each in its own process."""
    ctx = multiprocessing.get_context("spawn")
    barrier, done = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=_push_at_the_same_moment, args=(where, str(package), barrier, done))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * processes
    return sorted(done.get(timeout=10) for _ in workers)


def push_that_dies(where: Where, package: Path) -> int | None:
    """The exit code of a process killed halfway through pushing `package`."""
    worker = multiprocessing.get_context("spawn").Process(target=_push_and_die, args=(where, str(package)))
    worker.start()
    worker.join(timeout=120)
    return worker.exitcode


# -- the S3 server (tests/s3.py) ----------------------------------------------------------------------------------


def s3_registry(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Where:
    """A registry under a fresh bucket of the S3 server (credentials are moto's dummies,
    in the environment so that processes started by the test see them too)."""
    bucket = new_bucket(s3_endpoint, monkeypatch, "registry")
    return Where(f"s3://{bucket}/models", {"endpoint_url": s3_endpoint})
