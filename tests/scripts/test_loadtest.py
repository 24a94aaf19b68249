"""scripts/loadtest.py against a real HTTP server on a free loopback port: what it
sends, what it counts, and that it stays open-loop and on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.scripts import load_script

USERS = [f"user {i}" for i in range(5)]  # a space: ids are quoted in GET paths
ITEMS = [f"i{i}" for i in range(7)]


@pytest.fixture(scope="module")
def loadtest() -> ModuleType:
    return load_script("loadtest")


class Handler(BaseHTTPRequestHandler):
    """Records every request; answers `server.status`, after `server.delay` seconds
    taken under one lock (a server that handles one request at a time)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.answer(None)

    def do_POST(self) -> None:
        self.answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def answer(self, body: Any) -> None:
        server: Any = self.server
        with server.lock:
            time.sleep(server.delay)
            server.seen.append(
                {"method": self.command, "path": self.path, "body": body, "auth": self.headers["Authorization"]}
            )
        data = b'{"items": []}'
        self.send_response(server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if server.close == "header":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        if server.close == "silently":  # as a server whose keep-alive timeout ran out
            self.close_connection = True


@pytest.fixture()
def server() -> Iterator[Any]:
    httpd: Any = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.lock, httpd.seen, httpd.status, httpd.delay, httpd.close = threading.Lock(), [], 200, 0.0, None
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def ids(tmp_path: Path) -> dict[str, Path]:
    users, items = tmp_path / "users.txt", tmp_path / "items.csv"
    users.write_text("\n".join(USERS) + "\n")
    items.write_text("item_id,category\n" + "".join(f"{i},c\n" for i in ITEMS))
    return {"users": users, "items": items}


def run(loadtest: ModuleType, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert loadtest.main([*args, "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_mixed_run_sends_every_scheduled_request_and_reports_each_endpoint(
    loadtest: ModuleType, server: Any, ids: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report" / "load.json"
    report = run(
        loadtest, capsys, server.url, "--rate", "40", "--duration", "2", "--users", str(ids["users"]),
        "--items", str(ids["items"]), "--mix", "recommend=2,user_recommendations=1,events=1",
        "--events-per-request", "3", "--api-key", "secret-key", "--k", "7", "--out", str(out),
    )  # fmt: skip
    assert json.loads(out.read_text()) == report
    assert report["count"] == report["ok"] == len(server.seen) == 80
    assert report["errors"] == {"total": 0, "by_kind": {}}
    assert 30 <= report["achieved_rate"] <= 41  # offered 40/s; generous for a shared machine
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max", "mean"}
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    assert set(report["endpoints"]) == {"recommend", "user_recommendations", "events"}
    assert sum(e["count"] for e in report["endpoints"].values()) == 80
    assert report["client"]["connections_opened"] < 20  # kept alive, not one per request

    assert {r["auth"] for r in server.seen} == {"Bearer secret-key"}
    recommend = [r for r in server.seen if r["path"] == "/recommend"]
    assert recommend and all(r["body"]["user_id"] in USERS and r["body"]["k"] == 7 for r in recommend)
    gets = [r for r in server.seen if r["method"] == "GET"]
    assert gets and all(
        r["path"].startswith("/users/user%20") and r["path"].endswith("/recommendations?k=7") for r in gets
    )
    events = [e for r in server.seen if r["path"] == "/events" for e in r["body"]["events"]]
    assert len(events) == 3 * report["endpoints"]["events"]["count"]
    assert all(e["item_id"] in ITEMS and e["user_id"] in USERS for e in events)
    assert {e["event_type"] for e in events} <= {"view", "add_to_cart", "purchase"}


@pytest.mark.parametrize("close", ["header", "silently"])
def test_connections_the_server_closes_are_replaced_without_errors(
    loadtest: ModuleType, server: Any, ids: dict[str, Path], close: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server.close = close
    report = run(loadtest, capsys, server.url, "--rate", "20", "--duration", "1", "--users", str(ids["users"]))
    assert report["ok"] == 20 and report["errors"]["total"] == 0
    assert report["client"]["connections_opened"] == 20


def test_http_errors_are_counted_by_status_and_left_out_of_the_latencies(
    loadtest: ModuleType, server: Any, ids: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server.status = 500
    report = run(loadtest, capsys, server.url, "--rate", "20", "--duration", "1", "--users", str(ids["users"]))
    assert report["count"] == 20 and report["ok"] == 0
    assert report["errors"] == {"total": 20, "by_kind": {"http_500": 20}}
    assert report["endpoints"]["recommend"]["errors"] == {"http_500": 20}
    assert report["latency_ms"]["p99"] is None


def test_a_server_that_is_down_gives_connection_errors(
    loadtest: ModuleType, ids: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a free port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = run(
        loadtest, capsys, f"http://127.0.0.1:{port}", "--rate", "10", "--duration", "1", "--users", str(ids["users"])
    )
    assert report["errors"] == {"total": 10, "by_kind": {"connect": 10}}


def test_requests_past_the_timeout_are_counted_as_timeouts(
    loadtest: ModuleType, server: Any, ids: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server.delay = 0.3
    args = ["--rate", "5", "--duration", "1", "--timeout", "0.1", "--users", str(ids["users"])]
    report = run(loadtest, capsys, server.url, *args)
    assert report["errors"]["by_kind"] == {"timeout": 5}


def test_latency_runs_from_the_scheduled_time_so_queueing_shows(
    loadtest: ModuleType, server: Any, ids: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Open loop: a server that serves 20 requests/s, offered 40/s, still gets all 40
    requests of the second, and the late ones wait ~1 s, which the p99 must show
    (a closed-loop client would slow down and report ~50 ms)."""
    server.delay = 0.05
    report = run(loadtest, capsys, server.url, "--rate", "40", "--duration", "1", "--users", str(ids["users"]))
    assert report["count"] == report["ok"] == 40
    assert report["latency_ms"]["p50"] >= 50
    assert report["latency_ms"]["p99"] >= 500


def test_find_max_steps_up_until_a_step_fails(
    loadtest: ModuleType, server: Any, ids: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--find-max", "--rate", "10", "--step", "2", "--max-rate", "40", "--duration", "0.5", "--cooldown", "0"]
    args += ["--max-lag-ms", "1000"]  # a busy shared machine must not end the steps early
    report = run(loadtest, capsys, server.url, *args, "--p99-ms", "2000", "--users", str(ids["users"]))
    assert [s["offered_rate"] for s in report["steps"]] == [10, 20, 40]
    assert report["max_passing_rate"] == 40 and report["stopped_by"] == "max_rate"

    server.status = 503
    report = run(loadtest, capsys, server.url, *args, "--users", str(ids["users"]))
    assert report["max_passing_rate"] is None and report["stopped_by"] == "errors"
    assert len(report["steps"]) == 1


def test_requests_from_jsonl_are_sent_as_written(
    loadtest: ModuleType, server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"user_id": "a", "k": 3},  # a bare body: POST /recommend
        {
            "method": "POST",
            "path": "/events",
            "body": {"events": [{"user_id": "a", "item_id": "x", "event_type": "view"}]},
        },
        {"method": "GET", "path": "/users/b/recommendations?k=2"},
    ]
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    report = run(loadtest, capsys, server.url, "--rate", "6", "--duration", "1", "--requests", str(requests))
    assert [(r["method"], r["path"]) for r in server.seen] == 2 * [
        ("POST", "/recommend"), ("POST", "/events"), ("GET", "/users/b/recommendations?k=2")
    ]  # fmt: skip
    assert server.seen[0]["body"] == {"user_id": "a", "k": 3}
    assert report["endpoints"]["user_recommendations"]["ok"] == 2

    requests.write_text('{"user_id": "a"}\nnot json\n')
    assert loadtest.main([server.url, "--requests", str(requests), "--no-progress"]) == 2
    assert f"{requests}:2: not JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8000",
        "http://192.168.1.5",
        "http://example.com:8000",
        "https://127.0.0.1:8443",
        "http://0.0.0.0:8000",
    ],
)
def test_targets_off_loopback_are_refused(
    loadtest: ModuleType, url: str, ids: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(loadtest.TargetError):
        loadtest.parse_target(url)
    assert loadtest.main([url, "--users", str(ids["users"]), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("loadtest: ") and err.count("\n") == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "127.0.0.2:9", "http://[::1]:8000", "http://localhost:8000"])
def test_loopback_targets_are_accepted(loadtest: ModuleType, url: str) -> None:
    target = loadtest.parse_target(url)
    assert target.port in (8000, 9)
