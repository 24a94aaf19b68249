"""Hydra compose and instantiate, wrapped: the only module that imports hydra's
initialisation API, and where Hydra's errors become one-line `ConfigError`s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

DEFAULT_CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose(name: str, overrides: list[str] | None = None, config_dir: Path | str | None = None) -> DictConfig:
    """Compose primary config `name` from `config_dir` with Hydra-style overrides.

    Errors in overrides (unknown group option, bad syntax) become `ConfigError`,
    so the CLI reports them as one line.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from recsys_cli.errors import ConfigError

    conf_dir = Path(config_dir or DEFAULT_CONF_DIR).resolve()
    if not conf_dir.is_dir():
        raise ConfigError(f"config directory not found: {conf_dir}")
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            return hydra_compose(config_name=name, overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        raise ConfigError(f"config '{name}': " + (" ".join(lines[:3]) or type(exc).__name__)) from exc


def build(node: DictConfig, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` with plain containers, where a known error raised by
    the target's constructor (a bad model setting, say) keeps its own one-line
    message instead of arriving wrapped in Hydra's traceback."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from recsys_cli.errors import RecsysError

    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, RecsysError):
            raise exc.__cause__ from None
        raise
