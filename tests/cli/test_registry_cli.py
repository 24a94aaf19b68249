"""`recsys registry` through the CLI: push, list, show, promote, rollback, delete
and gc on the default registry folder (conf/registry/: `registry` in the working
directory) and on an S3 server; refusals are one line and a non-zero exit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from recsys_cli.cli import app
from tests.registry.stores import make_package, s3_registry, s3_server

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def registry(*args: str) -> Result:
    return runner.invoke(app, ["registry", *args], env=WIDE)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_package(tmp_path / "package")
    make_package(tmp_path / "better", metrics={"val/ndcg@10": 0.31})
    return tmp_path


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def _refused(result: Result, message: str) -> str:
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert text.startswith("error: ") and message in text, text
    assert "Traceback" not in result.output
    return text


def test_push_list_show_on_the_default_registry_folder(workdir: Path) -> None:
    assert "pushed: ease version 1 to registry" in _ok(registry("push", "package"))
    assert "pushed: ease version 2" in _ok(registry("push", "better"))
    assert "pushed: ease-small version 1" in _ok(registry("push", "package", "--name", "ease-small"))
    assert (workdir / "registry" / "registry.json").is_file()  # beside runs/, in the working directory

    table = _ok(registry("list"))
    assert "ease " in table and "ease-small" in table
    models = json.loads(_ok(registry("list", "--json")))
    assert [(m["name"], m["versions"], m["latest"]) for m in models] == [("ease", 2, 2), ("ease-small", 1, 1)]

    versions = json.loads(_ok(registry("list", "ease", "--json")))
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["metrics"] == {"val/ndcg@10": 0.31}
    assert "val/ndcg@10=0.31" in _ok(registry("list", "ease"))

    shown = json.loads(_ok(registry("show", "ease", "2")))
    assert shown["version"] == 2 and shown["source_commit"] == "c0ffee" and shown["aliases"] == []
    assert set(shown["created_by"]) == {"user", "host", "recsys"}
    assert json.loads(_ok(registry("show", "ease", "latest")))["version"] == 2
    assert json.loads(_ok(registry("show", "ease")))["versions"] == [1, 2]


def test_promote_rollback_delete_and_gc(workdir: Path) -> None:
    for _ in range(2):
        _ok(registry("push", "package"))
    _ok(registry("push", "better"))
    assert "promoted: ease production -> version 2" in _ok(registry("promote", "ease", "2", "--alias", "production"))
    assert "(was 2)" in _ok(registry("promote", "ease", "3", "--alias", "production"))
    assert "rolled back: ease production -> version 2 (was 3)" in _ok(
        registry("rollback", "ease", "--alias", "production")
    )

    shown = json.loads(_ok(registry("show", "ease", "production")))
    assert shown["version"] == 2 and shown["aliases"] == ["production"]
    assert [h["action"] for h in shown["alias"]["history"]] == ["promote", "promote", "rollback"]

    _refused(registry("delete", "ease", "2"), "ease version 2: alias production points at it")
    assert "would delete 1, 3" in _ok(registry("gc", "ease", "--keep", "0", "--dry-run"))
    assert "deleted: ease version 3" in _ok(registry("delete", "ease", "3"))
    assert "deleted 1; kept none and, aliased, 2" in _ok(registry("gc", "ease", "--keep", "0"))
    assert [v["version"] for v in json.loads(_ok(registry("list", "ease", "--json")))] == [2]


def test_promote_takes_latest_or_an_alias_for_the_version(workdir: Path) -> None:
    _ok(registry("push", "package"))
    _ok(registry("push", "better"))
    assert "promoted: ease production -> version 2" in _ok(
        registry("promote", "ease", "latest", "--alias", "production")
    )
    _ok(registry("push", "package"))
    assert "promoted: ease staging -> version 2" in _ok(registry("promote", "ease", "production", "--alias", "staging"))
    _refused(registry("promote", "ease", "canary", "--alias", "staging"), "no version or alias 'canary'")


def test_refusals_are_one_line(workdir: Path) -> None:
    weights = workdir / "package" / "model" / "weights.safetensors"
    weights.write_bytes(b"edited" + weights.read_bytes()[6:])
    _refused(registry("push", "package"), "model/weights.safetensors: changed content")
    _refused(registry("show", "ease"), "no registry here")
    _ok(registry("push", "better"))
    _refused(registry("show", "ease", "9"), "ease: no version 9")
    _refused(registry("show", "ease", "canary"), "no version or alias 'canary'")
    _refused(registry("promote", "ease", "9", "--alias", "production"), "no version 9")
    _refused(registry("rollback", "ease", "--alias", "production"), "no alias 'production' to roll back")
    _refused(registry("promote", "ease", "1", "--alias", "latest"), "alias 'latest'")
    assert registry("gc", "ease", "--keep", "-1").exit_code == 2  # Typer's range check
    (workdir / "elsewhere").mkdir()
    (workdir / "elsewhere" / "notes.txt").write_text("mine")
    _refused(registry("push", "better", "--uri", "elsewhere"), "not a recsys registry")


def test_an_empty_registry_lists_nothing(workdir: Path) -> None:
    assert "no models in registry" in _ok(registry("list"))
    assert json.loads(_ok(registry("list", "--json"))) == []


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    yield from s3_server()


def test_the_same_commands_on_s3(workdir: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An S3-compatible server is named by the standard AWS_ENDPOINT_URL_S3 variable
    (or registry.storage_options.endpoint_url)."""
    where = s3_registry(s3_endpoint, monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    _ok(registry("push", "package", "--uri", where.uri))
    _ok(registry("push", "better", "--uri", where.uri))
    _ok(registry("promote", "ease", "1", "--alias", "production", "--uri", where.uri))
    versions = json.loads(_ok(registry("list", "ease", "--json", "--uri", where.uri)))
    assert [(v["version"], v["aliases"]) for v in versions] == [(1, ["production"]), (2, [])]
    assert "deleted 2" in _ok(registry("gc", "ease", "--keep", "0", "--uri", where.uri))


def test_a_store_that_cannot_be_reached_is_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens once the socket is closed
    for key, value in {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{closed}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    _refused(registry("push", "package", "--uri", "s3://nowhere/models"), "s3://nowhere/models/registry.json: ")


def test_a_service_resolves_an_alias_through_the_config(workdir: Path) -> None:
    from recsys_cli.config import compose
    from recsys_cli.registry.package import verify_package
    from recsys_cli.tasks.registry import resolve_package

    _ok(registry("push", "package"))
    _ok(registry("promote", "ease", "1", "--alias", "production"))
    folder = resolve_package(compose("registry"), "ease", "production")
    assert folder == workdir / "registry" / "ease" / "versions" / "1"
    assert verify_package(folder)["name"] == "ease"
