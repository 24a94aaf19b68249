"""Hydra compose and instantiate, wrapped: the only module that imports hydra's
initialisation API, and where Hydra's errors become one-line `ConfigError`s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

DEFAULT_CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


# Not a command's config: the groups and keys every command accepts (conf/chain.yaml).
CHAIN = "chain"


def compose(name: str, overrides: list[str] | None = None, config_dir: Path | str | None = None) -> DictConfig:
    """Compose primary config `name` from `config_dir` with Hydra-style overrides.

    Overrides of the chain's shared keys (conf/chain.yaml) that `name`'s config lacks
    are checked against the chain and then left out, so one override string serves
    every command. Errors in overrides (unknown key or group option, bad syntax, a
    value outside its schema) become `ConfigError`, so the CLI reports them as one line.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    from recsys_cli.errors import ConfigError

    conf_dir = Path(config_dir or DEFAULT_CONF_DIR).resolve()
    if not conf_dir.is_dir():
        raise ConfigError(f"config directory not found: {conf_dir}")
    given = list(overrides or [])
    try:
        used, shared = _partition(name, given, conf_dir)
        if len(used) < len(given):
            _check_chain(name, shared, conf_dir)
        return _composed(name, used, conf_dir)
    except (HydraException, OmegaConfBaseException, YAMLError) as exc:  # YAMLError: a config file that is not YAML
        raise ConfigError(f"config '{name}': {_one_line(exc)}") from exc


def used_overrides(name: str, overrides: list[str], config_dir: Path | str | None = None) -> list[str]:
    """The overrides primary config `name` uses: `overrides` without the chain's
    shared keys its config lacks (what `compose` leaves out; nothing is checked)."""
    from hydra.errors import HydraException

    from recsys_cli.errors import ConfigError

    try:
        return _partition(name, list(overrides), Path(config_dir or DEFAULT_CONF_DIR).resolve())[0]
    except HydraException as exc:
        raise ConfigError(f"config '{name}': {str(exc).strip().splitlines()[0]}") from exc


def refuse_unshared(command: str, overrides: list[str], config_dir: Path | str | None = None) -> None:
    """Refuse, as one line naming it, an override whose root key is not one of the
    chain's shared keys (conf/chain.yaml): for a command that takes those only
    (`recsys recommend`, `recsys registry list`, ...). Nothing is composed."""
    from hydra.errors import HydraException

    from recsys_cli.errors import ConfigError

    if not overrides:
        return
    conf_dir = Path(config_dir or DEFAULT_CONF_DIR).resolve()
    shared = _roots(conf_dir, CHAIN)
    try:
        parsed = _parsed(overrides)
    except HydraException as exc:
        raise ConfigError(f"recsys {command}: {_one_line(exc)}") from exc
    for override in parsed:
        if _root(override.key_or_group) not in shared:
            offer = f"only the chain's shared keys ({', '.join(sorted(shared))})" if shared else "no overrides"
            raise ConfigError(
                f"recsys {command}: '{override.key_or_group}' is not a key this command takes; it takes {offer}"
            )


def compose_shared(
    command: str, overrides: list[str] | None = None, config_dir: Path | str | None = None
) -> DictConfig:
    """The chain (conf/chain.yaml) composed with `overrides`, for a command without a
    config of its own: a key that is not shared is refused (`refuse_unshared`), and
    the rest fail as `compose` fails an unused shared key (an unknown group option,
    a misspelt key, a value outside its schema), as one `ConfigError` line."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from recsys_cli.errors import ConfigError

    conf_dir = Path(config_dir or DEFAULT_CONF_DIR).resolve()
    given = list(overrides or [])
    refuse_unshared(command, given, conf_dir)
    if not (conf_dir / f"{CHAIN}.yaml").is_file():  # a folder without a chain shares nothing
        return OmegaConf.create({})
    try:
        return _composed(CHAIN, given, conf_dir)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"recsys {command}: {_one_line(exc)}") from exc
    except ConfigError as exc:  # the schema's line, which names the chain
        raise ConfigError(f"recsys {command}: {str(exc).removeprefix(f'config {CHAIN!r}: ')}") from exc


def _one_line(exc: Exception) -> str:
    """Hydra's and OmegaConf's multi-line errors as one line: their first three."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return " ".join(lines[:3]) or type(exc).__name__


def _parsed(overrides: list[str]) -> list[Any]:
    """Hydra's own reading of override strings (`a=b=c`, `+k`, `~k`, `g@pkg`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return list(OverridesParser.create().parse_overrides(overrides))


def _composed(name: str, overrides: list[str], conf_dir: Path) -> DictConfig:
    """Hydra's composition of `name`, validated against its schema."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from recsys_cli.schemas import validate

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = hydra_compose(config_name=name, overrides=overrides)
    validate(name, cfg)  # every key's type and range (recsys_cli/schemas/), as one line
    return cfg


def _partition(name: str, overrides: list[str], conf_dir: Path) -> tuple[list[str], list[str]]:
    """(the overrides `name` uses, those of the chain's shared keys). An override is
    left out of the first where its root key is shared but not in `name`'s config;
    a root key neither shared nor `name`'s stays, for Hydra to refuse."""
    shared = _roots(conf_dir, CHAIN)
    if not overrides or not shared or name == CHAIN:
        return overrides, []
    own = _roots(conf_dir, name)
    roots = [_root(o.key_or_group) for o in _parsed(overrides)]
    used = [o for o, root in zip(overrides, roots, strict=True) if root in own or root not in shared]
    return used, [o for o, root in zip(overrides, roots, strict=True) if root in shared]


def _check_chain(name: str, shared: list[str], conf_dir: Path) -> None:
    """Compose the chain with the string's shared overrides, so that one `name` does
    not use still fails as it would where it is used."""
    from recsys_cli.errors import ConfigError

    try:
        _composed(CHAIN, shared, conf_dir)
    except ConfigError as exc:  # the schema's line, which names the chain
        raise ConfigError(f"config '{name}': {str(exc).removeprefix(f'config {CHAIN!r}: ')}") from exc


def _roots(conf_dir: Path, name: str, seen: frozenset[str] = frozenset()) -> frozenset[str]:
    """The root keys of primary config `name` as its file declares them: its top-level
    keys and the groups of its defaults list (a primary it includes, e.g. sweep's
    `train`, adds its own). Empty where the file is missing or not a mapping."""
    import yaml

    path = conf_dir / f"{name}.yaml"
    node = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not isinstance(node, dict):
        return frozenset()
    roots = {str(key) for key in node if key != "defaults"}
    for entry in node.get("defaults") or []:
        if isinstance(entry, dict):  # {group: option}, `optional group`, `override group`, `group@package`
            roots |= {_root(str(key).split()[-1]) for key in entry}
        elif isinstance(entry, str) and entry != "_self_":
            path_like = entry.split("@")[0].lstrip("/")
            if "/" in path_like:  # `group/option`
                roots.add(_root(path_like))
            elif path_like not in seen:  # another primary config of the folder
                roots |= _roots(conf_dir, path_like, seen | {name})
    return frozenset(roots)


def _root(key: str) -> str:
    """`data` of `data`, `data.path`, `data@pkg`; `serve` of `serve/rules`."""
    return key.lstrip("/").split("@")[0].split("/")[0].split(".")[0]


# Library callables the shipped configs construct (`grep -r _target_ conf/`). Any other
# `_target_` must be a class defined in this package: configs are also read back from
# files anyone may edit (a run's config.yaml, a sweep's plan.json, an experiment), and
# Hydra would import and call whatever they name.
LIBRARY_TARGETS = frozenset(
    {
        "optuna.samplers.GridSampler",
        "optuna.samplers.RandomSampler",
        "optuna.samplers.TPESampler",
        "optuna.pruners.HyperbandPruner",
        "optuna.pruners.MedianPruner",
        "optuna.pruners.NopPruner",
    }
)


def build(node: Any, origin: str = "config", /, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` with plain containers, where a known error raised by
    the target's constructor (a bad model setting, say) keeps its own one-line
    message instead of arriving wrapped in Hydra's traceback. Every `_target_` in
    `node` is checked first (`check_targets`); `origin` names the file it came from."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from recsys_cli.errors import RecsysError

    check_targets(node, origin)
    check_targets(kwargs, origin)
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, RecsysError):
            raise exc.__cause__ from None
        raise


def check_targets(node: Any, origin: str = "config") -> None:
    """Refuse a `_target_`, at any depth of `node`, that is neither a class defined in
    `recsys_cli` nor one of `LIBRARY_TARGETS`; nothing it names is imported first."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from recsys_cli.errors import ConfigError

    try:
        plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{origin}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    for key, target in _targets(plain, _prefix(node)):
        if not _allowed(target):
            shown = repr(target)[:100] if isinstance(target, str) else type(target).__name__
            raise ConfigError(
                f"{origin}: {key}: {shown} may not be built; only classes of recsys_cli and the optuna "
                "samplers and pruners of conf/sweep are allowed"
            )


def _targets(node: Any, path: str) -> list[tuple[str, Any]]:
    """(dotted key, value) of every `_target_` in a plain nested container."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{path}.{key}" if path else str(key)
            found += [(dotted, value)] if key == "_target_" else _targets(value, dotted)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += _targets(value, f"{path}[{i}]")
    return found


def _allowed(target: Any) -> bool:
    """A library callable of the allowlist, or a class whose own module and name are
    `target` inside recsys_cli (not something imported into one of our modules)."""
    if not isinstance(target, str):
        return False
    if target in LIBRARY_TARGETS:
        return True
    parts = target.split(".")
    # Public names only: importing `recsys_cli.__main__` would start the CLI.
    if parts[0] != "recsys_cli" or len(parts) < 3 or not all(p.isidentifier() and not p.startswith("_") for p in parts):
        return False
    import importlib

    module_name, _, name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)  # inside recsys_cli: the prefix is ours
    except (ImportError, ValueError):
        return False
    cls = vars(module).get(name)
    return isinstance(cls, type) and cls.__module__ == module_name


def _prefix(node: Any) -> str:
    """The dotted key of a config node inside its root (`model` for cfg.model)."""
    from omegaconf import OmegaConf

    if not OmegaConf.is_config(node):
        return ""
    key = node._get_full_key(None)
    return str(key) if key else ""
