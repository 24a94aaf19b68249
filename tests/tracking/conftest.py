"""The small synthetic shop of the CLI tests (ingested, split and featured once per
module), and one MLflow tracking store per module: creating its schema is the slow
part of a first run, and each test reads its own experiment back."""

from __future__ import annotations

import pytest

from tests.cli import conftest as cli

lake = cli.lake
prepared = cli.prepared


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}"
