"""Schemas of every composed config: the type and range of each key, declared once
per config group (`groups.py`, `models.py`, `sweep.py`, `abtest.py`) and joined
per primary config (`primary.py`). `recsys_cli.config.compose` validates every
composition here, so a bad value is refused before any work, as one line naming
the key, the value and the rule:

    config 'train': model.l2 = -1: must be > 0
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from pydantic import ValidationError

# Primary config -> its schema ("module:Class" under recsys_cli.schemas), imported on
# demand so that `recsys split` never loads the model or A/B test schemas.
PRIMARY = {
    "ingest": "primary:IngestConfig",
    "split": "primary:SplitConfig",
    "features": "primary:FeaturesConfig",
    "train": "primary:TrainConfig",
    "sweep": "primary:SweepConfig",
    "evaluate": "primary:EvaluateConfig",
    "export": "primary:ExportConfig",
    "abtest": "abtest:AbTestConfig",
    "registry": "primary:RegistryConfig",
    "serve": "serve:ServeConfig",
    "monitor": "monitor:MonitorConfig",
    "retrain": "retrain:RetrainConfig",
    # Not a command: the keys shared by the whole chain (conf/chain.yaml).
    "chain": "primary:ChainConfig",
}
_RULES = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be text (quote a number: key='123')",
    "string_too_short": "must not be empty",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "literal_error": "must be one of {expected}",
    "too_short": "must hold at least {min_length} item(s)",
    "none_required": "must be null",
}
_MAX_VALUE_CHARS = 80


def validate(name: str, cfg: DictConfig) -> None:
    """Refuse a composed config whose values do not fit its schema (`ConfigError`,
    one line). A primary config without a schema is refused too: every config a
    command composes is checked."""
    from omegaconf import OmegaConf
    from pydantic import ValidationError

    from recsys_cli.errors import ConfigError

    if name not in PRIMARY:
        raise ConfigError(f"config '{name}': no schema declares it (known: {', '.join(PRIMARY)})")
    module, cls = PRIMARY[name].split(":")
    schema = getattr(importlib.import_module(f"recsys_cli.schemas.{module}"), cls)
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    try:
        schema.model_validate(plain)
    except ValidationError as exc:
        raise ConfigError(f"config '{name}': {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """The first problem as `key.path = value: rule`, and how many more there are."""
    errors = _distinct(exc.errors(include_url=False))
    first = _line(errors[0])
    return first if len(errors) == 1 else f"{first} (and {len(errors) - 1} more)"


def _distinct(errors: list[Any]) -> list[Any]:
    """Without the echoes of an interpolated node: `model.trainer: ${trainer}` repeats
    every problem of `trainer` under `model.trainer`, reported once, where it is set."""
    keys = [(e["type"], _path_key(e["loc"]), repr(e.get("input"))) for e in errors]
    echo = {
        i
        for i, (kind, loc, value) in enumerate(keys)
        for j, (kind2, loc2, value2) in enumerate(keys)
        if i != j and kind == kind2 and value == value2 and len(loc2) < len(loc) and loc[-len(loc2) :] == loc2
    }
    return [e for i, e in enumerate(errors) if i not in echo]


def _path_key(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(part for part in loc if not (isinstance(part, str) and part.startswith("<")))


def _line(error: Any) -> str:
    loc = list(_path_key(error["loc"]))
    ctx = error.get("ctx") or {}
    value, has_value = error.get("input"), error["type"] != "missing"
    kind = error["type"]
    if kind == "unknown_key":
        loc, value = [*loc, ctx["key"]], value.get(ctx["key"]) if isinstance(value, dict) else value
    elif kind == "key_rule":
        loc, value = [*loc, ctx["key"]], ctx["value"]
    elif kind == "unknown_target":
        loc, value = [*loc, "_target_"], value.get("_target_") if isinstance(value, dict) else value
    path = _path(loc)
    if kind == "as_is":
        return f"{path}: {ctx['message']}"
    bounds = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()}
    rule = _RULES[kind].format(**bounds) if kind in _RULES else str(error["msg"]).removeprefix("Value error, ")
    return f"{path} = {_show(value)}: {rule}" if has_value else f"{path}: {rule}"


def _path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _show(value: Any) -> str:
    """A value as it would be written in an override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"
