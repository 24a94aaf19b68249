"""A small synthetic shop, ingested once per test module."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runner = CliRunner()
    root = tmp_path_factory.mktemp("shop")
    for args in (
        ["datasets", "synth", f"paths.data_dir={root}", "data.generator.n_events=6000", "data.generator.n_days=90"],
        ["ingest", f"paths.data_dir={root}"],
    ):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def prepared(lake: Path) -> Path:
    """The shop split and featured with the default configs, ready to train on."""
    runner = CliRunner()
    for command in ("split", "features"):
        result = runner.invoke(app, [command, f"paths.data_dir={lake}"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return lake
