"""The service as clients meet it: a real uvicorn server on a free loopback port,
serving a real package of a real registry (a tiny EASE run of the synthetic shop,
tests/registry/package_shop.py) through `recsys serve`'s task, with the fake engine
of tests/serving/fakes.py answering (it reflects the history it is given, so what the
service passed is visible in the answer).

Covered here: auth over HTTP, malformed requests, events changing the next answer,
a reload under concurrent requests with zero errors (and an in-flight request
finishing on the old model), a tampered package refused on reload while the old one
keeps serving, kill -9 then restart replaying every acknowledged event (a server in
its own process), and two replicas sharing Redis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from recsys_cli.config import compose
from recsys_cli.data.pseudonymise import DEVELOPMENT_KEY, PiiKey
from recsys_cli.registry.store import Registry
from recsys_cli.serving.event_log import EventLog
from recsys_cli.serving.identity import pseudonymise
from tests.registry.package_shop import exported, shop
from tests.serving.fakes import FakeEngine, install_engine_stub

KEY = "server-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
DEV = PiiKey(DEVELOPMENT_KEY.encode(), is_development=True)
NAME = "synth-ease"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    install_engine_stub()
    monkeypatch.setenv("RECSYS_API_KEY", KEY)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exported package of the tiny shop's EASE run (not pushed)."""
    return exported(tmp_path_factory, "ease")


@pytest.fixture(scope="module")
def raw_users(tmp_path_factory: pytest.TempPathFactory, package: Path) -> list[str]:
    """Raw customer ids of the shop whose pseudonyms the package's snapshot holds."""
    raw = pl.read_csv(shop(tmp_path_factory) / "raw" / "synth" / "users.csv", infer_schema=False)["customer_id"]
    known = set(pl.read_parquet(package / "users.parquet")["user_id"].to_list())
    found = [r for r in raw.to_list() if pseudonymise(r, DEV) in known]
    assert len(found) >= 3
    return found[:3]


@pytest.fixture(scope="module")
def items(package: Path) -> list[str]:
    return sorted(pl.read_parquet(package / "items.parquet")["item_id"].to_list())


@pytest.fixture
def registry(tmp_path: Path, package: Path) -> Registry:
    """A registry whose `production` alias points at version 1 of the package."""
    reg = Registry(str(tmp_path / "registry"))
    reg.push(package, NAME)
    reg.promote(NAME, 1, "production")
    return reg


def serve_overrides(tmp_path: Path, registry: Registry, *more: str) -> list[str]:
    return [
        f"registry.uri={registry.uri}",
        f"serve.event_log.dir={tmp_path / 'events'}",
        f"serve.pin_dir={tmp_path / 'pins'}",
        "serve.port=0",
        "serve.limits.max_batch=50",
        "serve.history.max_events=1000",
        *more,
    ]


@contextmanager
def server(overrides: list[str], engine_factory: Callable[..., Any] = FakeEngine.load) -> Iterator[tuple[str, Any]]:
    """`recsys serve`'s task in a thread: (base URL, the prepared service)."""
    import uvicorn

    from recsys_cli.tasks import serve as task

    prepared = task.prepare(compose("serve", overrides), overrides, engine_factory=engine_factory)
    config = uvicorn.Config(prepared.app, host="127.0.0.1", port=0, access_log=False, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = running.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", prepared
    finally:
        running.should_exit = True
        thread.join(timeout=30)


def push_version(registry: Registry, package: Path, alias: str = "production") -> int:
    version = int(registry.push(package, NAME)["version"])
    registry.promote(NAME, version, alias)
    return version


# -- requests ------------------------------------------------------------------------------------------------------


def test_known_user_is_pseudonymised_with_the_lakes_key_and_events_change_the_next_answer(
    tmp_path: Path, registry: Registry, raw_users: list[str], items: list[str]
) -> None:
    with server(serve_overrides(tmp_path, registry)) as (url, prepared), httpx.Client(base_url=url) as client:
        first = client.post("/recommend", json={"user_id": raw_users[0], "k": 5})
        assert first.status_code == 200, first.text
        assert first.json()["model"] == {"name": NAME, "version": 1} and first.json()["fallback"] == "popular"
        engine = prepared.service.current.engine
        assert engine.queries[-1].user == pseudonymise(raw_users[0], DEV)  # a user the package's snapshot holds
        events = [
            {"user_id": raw_users[0], "item_id": items[7], "event_type": "view", "ts": 1_800_000_000},
            {"user_id": raw_users[0], "item_id": items[3], "event_type": "add_to_cart", "ts": 1_800_000_010},
            {"user_id": raw_users[0], "item_id": "not-in-the-catalogue", "event_type": "view"},
        ]
        posted = client.post("/events", json={"events": events}, headers=AUTH)
        assert posted.json() == {"accepted": 2, "ignored": 1, "ignored_items": ["not-in-the-catalogue"]}
        after = client.post("/recommend", json={"user_id": raw_users[0], "k": 5}).json()
        assert after["items"][:2] == [items[3], items[7]] and after["fallback"] is None
        other = client.get(f"/users/{raw_users[1]}/recommendations", params={"k": 5}).json()
        assert other["items"][:2] != [items[3], items[7]]  # another user's history is untouched
        session = {"k": 3, "context": {"session": [{"item_id": items[9], "event_type": "view"}]}}
        anonymous = client.post("/recommend", json=session).json()
        assert anonymous["items"][0] == items[9] and anonymous["fallback"] == "session"


def test_auth_is_enforced_over_http(tmp_path: Path, registry: Registry, items: list[str]) -> None:
    event = {"events": [{"user_id": "C-1", "item_id": items[0], "event_type": "view"}]}
    with server(serve_overrides(tmp_path, registry)) as (url, _), httpx.Client(base_url=url) as client:
        assert client.post("/events", json=event).status_code == 401
        assert client.post("/events", json=event, headers={"Authorization": "Bearer " + "x" * 32}).status_code == 401
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/events", json=event, headers=AUTH).status_code == 200
        assert client.post("/recommend", json={"user_id": "C-1"}).status_code == 200  # reads are open by default
    assert [e.item for e in EventLog(tmp_path / "events").replay()] == [items[0]]  # only the authorised one


def test_malformed_input_gets_4xx_over_http(tmp_path: Path, registry: Registry, items: list[str]) -> None:
    overrides = serve_overrides(tmp_path, registry, "serve.limits.max_body_bytes=8192")
    with server(overrides) as (url, _), httpx.Client(base_url=url) as client:
        json_type = {"content-type": "application/json"}
        assert client.post("/recommend", content=b'{"user_id": "C-1", "k":', headers=json_type).status_code == 400
        assert client.post("/recommend", json={"user_id": "C-1", "kk": 3}).status_code == 422
        assert client.post("/recommend", json={"user_id": "C-1", "k": 101}).status_code == 422
        assert client.get("/users/C-1/recommendations", params={"k": 0}).status_code == 422
        batch = [{"user_id": "C-1", "item_id": items[0], "event_type": "view"}] * 51
        too_many = client.post("/events", json={"events": batch}, headers=AUTH)
        assert too_many.status_code == 422 and "at most 50" in too_many.text
        big = client.post("/events", content=b"{" + b" " * 9000 + b"}", headers={**AUTH, **json_type})
        assert big.status_code == 413 and "max_body_bytes" in big.json()["error"]

        def chunks() -> Iterator[bytes]:  # no content-length: the size is counted as it arrives
            yield b'{"events": ['
            for _ in range(150):
                yield json.dumps({"user_id": "C-1", "item_id": items[0], "event_type": "view"}).encode() + b","
            yield b"]}"

        streamed = client.post("/events", content=chunks(), headers={**AUTH, **json_type})
        assert streamed.status_code == 413, streamed.text
    assert list(EventLog(tmp_path / "events").replay()) == []


# -- reloads -----------------------------------------------------------------------------------------------------


class GatedEngine(FakeEngine):
    """Holds a request with k=7 inside `recommend` until `gate` opens."""

    gate = threading.Event()
    entered = threading.Event()

    def recommend(self, query: Any) -> Any:
        if query.k == 7:
            self.entered.set()
            assert self.gate.wait(30)
        return super().recommend(query)


def slow_load(package_dir: Path, cfg: Any = None) -> FakeEngine:
    engine = FakeEngine.load(package_dir, cfg, delay_s=0.3)
    return GatedEngine(name=engine.name, items=engine.items)


def test_reload_under_concurrent_requests_has_zero_errors_and_in_flight_requests_finish_on_the_old_model(
    tmp_path: Path, registry: Registry, package: Path
) -> None:
    seen: list[list[int]] = [[] for _ in range(4)]
    errors: list[str] = []
    stop = threading.Event()

    def hammer(url: str, mine: list[int]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    answer = client.post("/recommend", json={"user_id": f"C-{len(mine) % 5}", "k": 5})
                    if answer.status_code == 200:
                        mine.append(answer.json()["model"]["version"])
                    else:
                        errors.append(f"{answer.status_code} {answer.text}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

    GatedEngine.gate.clear()
    GatedEngine.entered.clear()
    with server(serve_overrides(tmp_path, registry), slow_load) as (url, _), httpx.Client(base_url=url) as admin:
        held: dict[str, Any] = {}
        in_flight = threading.Thread(
            target=lambda: held.update(answer=httpx.post(f"{url}/recommend", json={"k": 7}, timeout=60))
        )
        in_flight.start()
        assert GatedEngine.entered.wait(30)
        workers = [threading.Thread(target=hammer, args=(url, mine)) for mine in seen]
        for worker in workers:
            worker.start()
        time.sleep(0.2)
        version = push_version(registry, package)
        reload = admin.post("/admin/reload", headers=AUTH, timeout=60)
        assert reload.status_code == 200, reload.text
        assert reload.json()["previous"]["version"] == 1 and reload.json()["current"]["version"] == version
        GatedEngine.gate.set()
        in_flight.join(30)
        deadline = time.monotonic() + 30
        while sum(v == version for mine in seen for v in mine) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for worker in workers:
            worker.join(30)
        assert admin.get("/version").json()["version"] == version
    assert errors == []
    assert held["answer"].status_code == 200 and held["answer"].json()["model"]["version"] == 1
    answered = [v for mine in seen for v in mine]
    assert 1 in answered and version in answered
    for mine in seen:  # each client sees the new version from some point on, never the old one after it
        assert mine == sorted(mine)


def test_a_tampered_package_is_refused_on_reload_and_the_old_one_keeps_serving(
    tmp_path: Path, registry: Registry, package: Path
) -> None:
    with server(serve_overrides(tmp_path, registry)) as (url, _), httpx.Client(base_url=url) as client:
        version = push_version(registry, package)
        target = Path(registry.uri) / NAME / "versions" / str(version) / "items.parquet"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        refused = client.post("/admin/reload", headers=AUTH)
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert "items.parquet" in body["detail"][0] and "changed" in body["detail"][0]
        assert body["serving"]["version"] == 1
        assert client.get("/readyz").status_code == 200 and client.get("/version").json()["version"] == 1
        answer = client.post("/recommend", json={"user_id": "C-1", "k": 3})
        assert answer.status_code == 200 and answer.json()["model"]["version"] == 1
        assert 'recsys_reloads_total{outcome="refused"} 1.0' in client.get("/metrics").text


def test_the_served_package_is_pinned_so_registry_gc_cannot_remove_it(
    tmp_path: Path, registry: Registry, package: Path
) -> None:
    with server(serve_overrides(tmp_path, registry)) as (url, prepared), httpx.Client(base_url=url) as client:
        pinned = prepared.service.current.path
        push_version(registry, package)  # production moves to version 2: version 1 is free to delete
        registry.delete(NAME, 1)
        assert pinned.is_dir() and (pinned / "manifest.json").is_file()
        assert client.post("/recommend", json={"user_id": "C-1"}).status_code == 200
        assert client.post("/admin/reload", headers=AUTH).json()["current"]["version"] == 2


# -- durability and shared state -----------------------------------------------------------------------------------


def start_process(overrides: list[str], log: Path) -> tuple[subprocess.Popen[str], str]:
    """`recsys serve`'s task with the fake engine in a process of its own; its base URL."""
    env = {**os.environ, "RECSYS_API_KEY": KEY, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.serving.serve_fake", *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until it listens, or ends
    if not line.startswith("listening "):
        proc.kill()
        pytest.fail(f"the server did not start: {line!r}\n{log.read_text()[-3000:]}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def test_kill_9_then_restart_replays_every_acknowledged_event(
    tmp_path: Path, registry: Registry, raw_users: list[str], items: list[str]
) -> None:
    overrides = serve_overrides(tmp_path, registry)
    log = tmp_path / "server.log"
    proc, url = start_process(overrides, log)
    acknowledged: list[tuple[str, str, float]] = []
    done = threading.Event()

    def post_until_killed() -> None:
        n = 0
        with httpx.Client(base_url=url, timeout=10) as client:
            while True:
                batch = [
                    {"user_id": raw_users[(n + j) % 3], "item_id": items[(n + j) % 10], "event_type": "view",
                     "ts": 1_800_000_000 + n + j}
                    for j in range(3)
                ]  # fmt: skip
                n += 3
                try:
                    answer = client.post("/events", json={"events": batch}, headers=AUTH)
                except httpx.HTTPError:
                    break  # killed: this batch was never acknowledged
                assert answer.status_code == 200, answer.text
                acknowledged.extend((e["user_id"], e["item_id"], e["ts"]) for e in batch)
                if len(acknowledged) >= 60:
                    done.set()

    poster = threading.Thread(target=post_until_killed)
    poster.start()
    assert done.wait(60), log.read_text()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: no shutdown, no flush
    proc.wait(30)
    poster.join(30)
    logged = {(e.user, e.item, e.ts) for e in EventLog(tmp_path / "events").replay()}
    missing = [a for a in acknowledged if (pseudonymise(a[0], DEV), a[1], a[2]) not in logged]
    assert acknowledged and missing == []
    proc, url = start_process(overrides, log)
    try:
        with httpx.Client(base_url=url) as client:
            assert f"recsys_events_replayed {float(len(logged))}" in client.get("/metrics").text
            for user in raw_users:  # the fake engine answers the user's history first, newest first
                answer = client.post("/recommend", json={"user_id": user, "k": 20}).json()
                history = {item for u, item, _ in logged if u == pseudonymise(user, DEV)}
                wanted = {item for u, item, _ in acknowledged if u == user}
                assert wanted <= history and set(answer["items"][: len(history)]) == history
                assert answer["fallback"] is None and answer["history_events"] >= len(wanted)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_two_replicas_sharing_redis_agree(
    tmp_path: Path, registry: Registry, raw_users: list[str], items: list[str], redis_url: str, redis_prefix: str
) -> None:
    shared = ["serve.state=redis", f"serve.redis.url={redis_url}", f"serve.redis.prefix={redis_prefix}"]
    one = serve_overrides(tmp_path / "one", registry, *shared)
    two = serve_overrides(tmp_path / "two", registry, *shared)
    with server(one) as (url_one, _), server(two) as (url_two, _):
        event = {"user_id": raw_users[0], "item_id": items[5], "event_type": "purchase"}
        assert httpx.post(f"{url_one}/events", json={"events": [event]}, headers=AUTH).status_code == 200
        answer = httpx.post(f"{url_two}/recommend", json={"user_id": raw_users[0], "k": 3}).json()
        assert answer["items"][0] == items[5] and answer["fallback"] is None
        assert httpx.get(f"{url_two}/readyz").json()["ready"]


def test_several_workers_each_load_the_model_and_share_users_state_through_redis(
    tmp_path: Path, registry: Registry, raw_users: list[str], items: list[str], redis_url: str, redis_prefix: str
) -> None:
    pytest.importorskip("recsys_cli.serving.engine")
    import re

    overrides = [
        *serve_overrides(tmp_path, registry, "serve.state=redis"),
        f"serve.redis.url={redis_url}",
        f"serve.redis.prefix={redis_prefix}",
    ]
    recsys = Path(sys.executable).with_name("recsys")
    env = {**os.environ, "RECSYS_API_KEY": KEY, "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    log = (tmp_path / "workers.log").open("w")
    args = [str(recsys), "serve", "--workers", "2", *overrides]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        found = re.search(r"on (http://127\.0\.0\.1:\d+) \(2 worker", proc.stdout.readline())
        assert found, (tmp_path / "workers.log").read_text()[-3000:]
        url = found.group(1)
        deadline = time.monotonic() + 120
        while True:  # the workers load their models after the socket is bound
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "workers.log").read_text()[-3000:]
            time.sleep(0.2)
        event = {"user_id": raw_users[0], "item_id": items[2], "event_type": "add_to_cart"}
        assert httpx.post(f"{url}/events", json={"events": [event]}, headers=AUTH).json()["accepted"] == 1
        for _ in range(8):  # a new connection each time: either worker may answer, both know the event
            answer = httpx.post(f"{url}/recommend", json={"user_id": raw_users[0], "k": 5})
            assert answer.status_code == 200 and answer.json()["history_events"] == 1, answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    lines = (tmp_path / "workers.log").read_text().splitlines()
    loaded = {json.loads(line)["pid"] for line in lines if '"event":"serving"' in line}
    assert len(loaded) == 2 and "Traceback" not in "\n".join(lines)  # each worker loaded its own model
