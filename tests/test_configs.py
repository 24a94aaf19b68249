"""Every shipped config composes and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from recsys_cli.config import DEFAULT_CONF_DIR, compose
from recsys_cli.data.sources.tabular import TabularSource

DATA = sorted(p.stem for p in (DEFAULT_CONF_DIR / "data").glob("*.yaml"))


@pytest.mark.parametrize("name", DATA)
def test_data_configs_build_sources(name: str, tmp_path: Path) -> None:
    cfg = compose("ingest", [f"data={name}", f"paths.data_dir={tmp_path}"])
    source = instantiate(cfg.data, _convert_="all")
    assert isinstance(source, TabularSource)
    assert source.name == name
    assert str(source.path).startswith(str(tmp_path))


@pytest.mark.parametrize("pii", ["development", "production"])
def test_pii_configs_compose(pii: str) -> None:
    cfg = compose("ingest", [f"pii={pii}"])
    assert cfg.pii.key_env == "RECSYS_PII_KEY"
    assert cfg.pii.allow_development_key is (pii == "development")
