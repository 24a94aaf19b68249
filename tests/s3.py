"""The S3-compatible server the object-store tests share (the registry's and the
data folders'): the one `.ci/run` starts and names in $RECSYS_TEST_S3_ENDPOINT.
Without it, a local run starts moto's standalone server itself on a free port;
under CI ($RECSYS_CI set) its absence is a failure, never a skip, as the
PostgreSQL sweep test relies on `.ci/run` too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ENDPOINT_ENV = "RECSYS_TEST_S3_ENDPOINT"
CI_ENV = "RECSYS_CI"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def new_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, prefix: str) -> str:
    """A fresh, empty bucket on the server; moto's dummy credentials go in the
    environment, so that processes started by the test see them too."""
    import boto3

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_server() -> Iterator[str]:
    """The S3 server's URL, for a session fixture to `yield from`."""
    url = os.environ.get(ENDPOINT_ENV)
    if url:
        if not _answers(url, wait_s=10):
            pytest.fail(f"${ENDPOINT_ENV}={url}: no S3 server answers there")
        yield url
        return
    if os.environ.get(CI_ENV):
        pytest.fail(f"${ENDPOINT_ENV} is not set: .ci/run starts moto's S3 server and sets it (CI must not skip this)")
    server = shutil.which("moto_server", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if server is None:
        pytest.skip("no S3 server: install moto[server] (the dev extra) or run under .ci/run")
    port = free_port()
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not _answers(url, wait_s=60):
            pytest.fail(f"moto_server started on port {port} but does not answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answers(url: str, wait_s: float) -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=1):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
