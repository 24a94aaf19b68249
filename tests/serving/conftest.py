"""A Redis server for the tests of state shared by replicas.

`.ci/run` starts a throwaway `redis-server` and names it in $RECSYS_TEST_REDIS_URL.
Outside CI, a local `redis-server` binary is started on a free port instead, and
without one the tests skip; under CI ($RECSYS_CI set) a missing server is a failure.
Each test gets its own key prefix, so tests sharing the server never see each other.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_ENV = "RECSYS_TEST_REDIS_URL"
CI_ENV = "RECSYS_CI"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get(REDIS_ENV)
    if url:
        if not _wait_for(url, 10):
            pytest.fail(f"${REDIS_ENV}={url}: no Redis server answers there")
        yield url
        return
    if os.environ.get(CI_ENV):
        pytest.fail(f"${REDIS_ENV} is not set: .ci/run starts redis-server and sets it (CI must not skip this)")
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip(f"no Redis server: set ${REDIS_ENV}, install redis-server, or run under .ci/run")
    folder: Path = tmp_path_factory.mktemp("redis")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        if not _wait_for(url, 30):
            pytest.fail(f"redis-server started on port {port} but does not answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


def _wait_for(url: str, wait_s: float) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                return bool(client.ping())
            except redis.exceptions.ConnectionError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
    finally:
        client.close()
