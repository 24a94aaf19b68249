"""Run folders: `runs/<name>/<timestamp>/` with the resolved config, so every run
can be repeated from what it saved."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recsys_cli.errors import ConfigError

CONFIG = "config.yaml"
METRICS = "metrics.json"
# Machine, libraries, commit, and the device and precision a neural fit resolved to.
ENVIRONMENT = "environment.json"
# Per-user metrics of the scored window, for paired comparisons and intervals.
PER_USER = "per_user.parquet"
MODEL = "model"


def new_run(root: Path | str, name: str, cfg: DictConfig) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = Path(root) / name / stamp
    folder.mkdir(parents=True)
    OmegaConf.save(cfg, folder / CONFIG, resolve=True)
    return folder


def load_run_config(run: Path) -> DictConfig:
    path = run / CONFIG
    if not path.is_file():
        raise ConfigError(f"{run}: not a run folder (no {CONFIG}); runs are written by `recsys train`")
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return cfg
