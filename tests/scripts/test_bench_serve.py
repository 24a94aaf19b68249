"""scripts/bench_serve.py end to end on a tiny package at a low rate: the real `recsys
serve` and the bare faiss reference under load, zero errors, every event acknowledged
before the kill -9 found in the log and replayed, and no raw user id in the report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.registry.package_shop import exported

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_serve.py"
RAW_USER_ID = re.compile(r"\bC\d{7}\b")  # the synthetic shop's customer ids (C0000194)
LOW_LOAD = ["--rate", "20", "--duration", "2", "--warmup", "0.5", "--events-rate", "50", "--events-per-request", "5"]
FIND_MAX = ["--find-max-duration", "1", "--max-rate", "30", "--p99-ms", "1000", "--max-lag-ms", "1000"]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ALS package: an embedding model, so it holds an ANN index for the reference."""
    return exported(tmp_path_factory, "als")


@pytest.fixture(scope="module")
def bench(package: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """The report and the printed output of one short run (raw events from the package's lineage)."""
    cwd = tmp_path_factory.mktemp("bench_serve_run")
    out = cwd / "serve.json"
    args = [sys.executable, str(SCRIPT), "--package", str(package), *LOW_LOAD, *FIND_MAX, "--out", str(out)]
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout + done.stderr


def test_the_report_says_what_ran_where(bench: tuple[dict[str, Any], str]) -> None:
    report, _ = bench
    assert report["benchmark"] == "serve" and report["package"]["name"] and report["package"]["version"] == 1
    for key in ("cpus", "load_average_before", "load_average_after"):
        assert key in report["machine"]
    assert report["date"] and "bench_serve.py" in report["command"] and report["git"]
    assert report["settings"]["rate"] == 20 and report["settings"]["serve_overrides"] == ["serve.cache.size=0"]
    users = report["request_users"]
    assert users["known"] > 0 and users["cold"] > 0 and users["column"] == "customer_id"


def test_both_servers_answer_every_request_at_a_low_rate(bench: tuple[dict[str, Any], str]) -> None:
    cases = bench[0]["cases"]
    for run in (cases["service"]["recommend"], cases["service"]["events"], cases["reference"]["recommend"]):
        assert run["errors"]["total"] == 0, run["errors"]
        assert run["ok"] == run["count"] > 0
        assert run["latency_ms"]["p99"] is not None and run["cpu_s"]["server"] is not None
    for group in (cases["service"], cases["reference"]):
        assert group["find_max"]["max_passing_rate"] == 25 and group["find_max"]["stopped_by"] == "max_rate"
    assert cases["reference"]["about"]["vectors"] == "ANN index 'model' searched exactly"


def test_every_acknowledged_event_survives_the_kill(bench: tuple[dict[str, Any], str]) -> None:
    check = bench[0]["cases"]["service"]["events"]["durability"]
    assert check["acknowledged_by_client"] == 2 * 10 * 5  # 10 requests/s for 2 s, 5 events each
    assert check["logged"] == check["accepted_by_server"] == check["acknowledged_by_client"]
    assert check["replayed_after_restart"] == check["logged"] and check["bad_lines"] == 0
    assert check["every_acknowledged_event_logged"] and check["every_logged_event_replayed"]


def test_the_ann_recall_is_reported(bench: tuple[dict[str, Any], str]) -> None:
    report, printed = bench
    record = report["ann"]["model"]
    assert record["kind"] == "exact" and record["recall"] == 1.0
    assert "ANN model" in printed and "serve /recommend" in printed and "bare faiss /recommend" in printed


def test_no_raw_user_id_leaves_the_run(bench: tuple[dict[str, Any], str]) -> None:
    report, printed = bench
    assert not RAW_USER_ID.search(json.dumps(report)) and not RAW_USER_ID.search(printed)
