"""`recsys ingest` as a function of its composed config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from recsys_cli.console import Reporter
from recsys_cli.data.events import Personal
from recsys_cli.data.ingest import IngestResult, Rules, ingest
from recsys_cli.data.pseudonymise import load_key
from recsys_cli.errors import ConfigError


def run(cfg: DictConfig, append: bool = False, reporter: Reporter | None = None) -> IngestResult:
    from recsys_cli.config import build

    source = build(cfg.data)
    pii = cfg.pii
    key = load_key(pii.key_env, pii.allow_development_key, pii.min_key_length)
    personal = personal_policy(cast(dict[str, Any], OmegaConf.to_container(pii.personal_columns) or {}))
    rules = Rules(**cast(dict[str, Any], OmegaConf.to_container(cfg.validation)))
    snapshot = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    return ingest(source, Path(cfg.lake_dir), key, personal, rules, snapshot, append=append, reporter=reporter)


def personal_policy(columns: dict[str, Any]) -> Personal:
    bad = {c: a for c, a in columns.items() if a not in ("drop", "hash")}
    if bad:
        raise ConfigError(f"pii.personal_columns: actions must be 'drop' or 'hash', got {bad}")
    return Personal(
        drop=frozenset(c for c, a in columns.items() if a == "drop"),
        hash=frozenset(c for c, a in columns.items() if a == "hash"),
    )
