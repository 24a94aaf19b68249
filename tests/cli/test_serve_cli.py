"""`recsys serve`: refusals before a port opens are one line (no API key, no model to
serve, several candidates, a bad setting), and the real command serves the
registry's model until it is stopped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.registry.store import Registry
from tests.registry.package_shop import exported

runner = CliRunner()
KEY = "cli-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported(tmp_path_factory, "ease")


def serve(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["serve", *args])
    return result.exit_code, " ".join(result.output.split())


def test_help_names_the_options() -> None:
    code, text = serve("--help")
    assert code == 0
    for option in ("--port", "--host", "--model", "--alias", "--workers", "serve.state=redis"):
        assert option in text


def test_without_an_api_key_the_service_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_API_KEY", raising=False)
    code, text = serve(f"registry.uri={tmp_path / 'registry'}")
    assert code == 1 and "$RECSYS_API_KEY is not set" in text and "serve.auth=false" in text, text


@pytest.mark.parametrize(
    ("names", "args", "says"),
    [
        ([], [], "no model (the registry is empty)"),
        ([("a", None)], [], "no model has alias 'production' (models: a)"),
        ([("a", "production"), ("b", "production")], [], "several models have alias 'production' (a, b)"),
        ([("a", "production")], ["--model", "zz"], "no registry here"),
        ([("a", "production")], ["--model", "a", "--alias", "staging"], "no version or alias 'staging'"),
    ],
)
def test_what_to_serve_is_found_or_refused_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    package: Path,
    names: list[tuple[str, str | None]],
    args: list[str],
    says: str,
) -> None:
    monkeypatch.setenv("RECSYS_API_KEY", KEY)
    uri = tmp_path / "registry"
    registry = Registry(str(uri))
    for name, alias in names:
        registry.push(package, name)
        if alias:
            registry.promote(name, 1, alias)
    if "zz" in args:
        uri = tmp_path / "elsewhere"
    code, text = serve(*args, f"registry.uri={uri}")
    assert code == 1 and says in text, text
    assert len(text.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workers", "2"], "serve.workers = 2: more than one worker needs serve.state=redis"),
        (["serve.limits.max_k=0"], "serve.limits.max_k = 0: must be >= 1"),
        (["--port", "70000"], "--port"),
    ],
)
def test_bad_settings_are_one_line(monkeypatch: pytest.MonkeyPatch, args: list[str], says: str) -> None:
    monkeypatch.setenv("RECSYS_API_KEY", KEY)
    code, text = serve(*args)
    assert code in (1, 2) and says in text, text


def test_recsys_serve_serves_the_registry_model_until_stopped(tmp_path: Path, package: Path) -> None:
    pytest.importorskip("recsys_cli.serving.engine")
    registry = Registry(str(tmp_path / "registry"))
    registry.push(package, "synth-ease")
    registry.promote("synth-ease", 1, "production")
    recsys = Path(sys.executable).with_name("recsys")
    args = [str(recsys), "serve", "--port", "0", f"registry.uri={registry.uri}"]
    args += [f"serve.event_log.dir={tmp_path / 'events'}"]
    env = {**os.environ, "RECSYS_API_KEY": KEY, "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"serving synth-ease version 1 on (http://127\.0\.0\.1:\d+)", line)
        assert found, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        url = found.group(1)
        assert httpx.get(f"{url}/readyz").json()["ready"]
        answer = httpx.post(f"{url}/recommend", json={"user_id": "C0000001", "k": 5})
        assert answer.status_code == 200 and len(answer.json()["items"]) == 5, answer.text
        assert httpx.get(f"{url}/version").json()["package"] == "synth-ease"
        item = answer.json()["items"][0]
        event = {"user_id": "C0000001", "item_id": item, "event_type": "purchase"}
        posted = httpx.post(f"{url}/events", json={"events": [event]}, headers={"Authorization": f"Bearer {KEY}"})
        assert posted.status_code == 200 and posted.json()["accepted"] == 1, posted.text
        explained = httpx.post(f"{url}/recommend", json={"user_id": "C0000001", "k": 5, "explain": True}).json()
        assert explained["history_events"] == 1 and explained["explain"] is not None
        session = {"k": 3, "context": {"hour": 12, "session": [{"item_id": item, "event_type": "view"}]}}
        assert httpx.post(f"{url}/recommend", json=session).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)  # what a container runtime sends: a graceful stop
        _, err = proc.communicate(timeout=60)
    # uvicorn shuts down, then ends the process by the signal it caught, as the runtime expects
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in err, err[-2000:]
    assert "C0000001" not in err  # the raw id is in no log line
