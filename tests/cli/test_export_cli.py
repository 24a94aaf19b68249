"""`recsys export RUN` end to end: a package in RUN/package, refusals as one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.registry.package import load_package, read_manifest
from tests.registry.package_shop import trained

runner = CliRunner()


@pytest.fixture(scope="module")
def ease_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained(tmp_path_factory, "ease")


def test_export_writes_a_package_into_the_run_and_replaces_its_own(ease_run: Path) -> None:
    result = runner.invoke(app, ["export", str(ease_run), "--no-push"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "package written" in result.output and "synth-ease" in result.output
    package = load_package(ease_run / "package")
    assert package.name == "synth-ease" and package.manifest["contents"]["recent_days"] == 7.0
    again = runner.invoke(app, ["export", str(ease_run), "--no-push", "--name", "shop.ease", "recent_days=14"])
    assert again.exit_code == 0, again.output
    manifest = read_manifest(ease_run / "package")
    assert manifest["name"] == "shop.ease" and manifest["contents"]["recent_days"] == 14.0


def test_export_to_another_folder(ease_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "packages" / "ease"
    result = runner.invoke(app, ["export", str(ease_run), "--no-push", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_package(out).manifest["model"]["class"] == "recsys_cli.models.ease.EASE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "my model"], "--name 'my model': a package name must start with a letter or digit"),
        (["recent_days=0"], "recent_days = 0: must be > 0"),
        (["fallbacks.event_types=[browse]"], "fallbacks.event_types[0] = 'browse': must be one of"),
        (["snapshot.users=some"], "snapshot.users = 'some': must be one of"),
    ],
)
def test_bad_settings_are_one_line(ease_run: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "package"
    result = runner.invoke(app, ["export", str(ease_run), "--no-push", "--out", str(out), *args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_a_foreign_folder_is_refused_and_left_as_it_was(ease_run: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    result = runner.invoke(app, ["export", str(ease_run), "--no-push", "--out", str(foreign)])
    assert result.exit_code == 1 and "refusing to replace this folder (not a package" in result.output
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_a_damaged_run_is_refused_before_anything_is_written(ease_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(ease_run, tmp_path / "run", ignore=shutil.ignore_patterns("package")))
    weights = run / "model" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    result = runner.invoke(app, ["export", str(run), "--no-push"])
    assert result.exit_code == 1 and "changed content: model/weights.safetensors" in result.output, result.output
    assert not (run / "package").exists()
    missing = runner.invoke(app, ["export", str(tmp_path / "nowhere"), "--no-push"])
    assert missing.exit_code == 1 and "no such run folder" in missing.output


def test_export_pushes_a_new_version_that_the_registry_serves_back(ease_run: Path, tmp_path: Path) -> None:
    from recsys_cli.registry.store import resolve

    uri, out = tmp_path / "registry", tmp_path / "package"
    for version in (1, 2):
        result = runner.invoke(app, ["export", str(ease_run), "--out", str(out), f"registry.uri={uri}"])
        assert result.exit_code == 0, result.output
        assert f"pushed: synth-ease version {version}" in result.output
    promoted = runner.invoke(
        app, ["registry", "promote", "synth-ease", "2", "--alias", "production", "--uri", str(uri)]
    )
    assert promoted.exit_code == 0, promoted.output
    served = load_package(resolve(str(uri), "synth-ease", "production", cache_dir=tmp_path / "cache"))
    assert served.manifest["manifest_sha256"] == read_manifest(out)["manifest_sha256"]
