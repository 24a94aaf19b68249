"""A search space declared in YAML, and the Hydra overrides of one trial.

    params:
      model:
        lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        dim: {type: categorical, choices: [32, 64, 128]}
        layers: {type: int, low: 1, high: 3}
        hard_pool: {type: int, low: 64, high: 1024, log: true, when: {model.hard_negatives: [16, 64]}}

A leaf (a mapping with a `type`) is one parameter. Its dotted path names it and is
also the config key its value overrides, so `model.lr=0.003` reaches the trial
exactly as it would reach `recsys train`. `when` makes a parameter conditional: it
is suggested only in trials where every named earlier parameter took one of the
listed values, so the sampler never learns from values a trial would ignore.
`grid` lists the values the grid sampler walks (derived from `choices` or from an
int range / a float `step` when absent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recsys_cli.errors import ConfigError

TYPES = ("float", "int", "categorical")
_COMMON = {"type", "when", "grid"}
_ALLOWED = {
    "float": _COMMON | {"low", "high", "log", "step"},
    "int": _COMMON | {"low", "high", "log", "step"},
    "categorical": _COMMON | {"choices"},
}
Scalar = None | bool | int | float | str


@dataclass(frozen=True)
class Param:
    """One searched config key."""

    name: str
    type: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Scalar, ...] = ()
    when: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()
    grid: tuple[Scalar, ...] | None = None

    def suggest(self, trial: Any) -> Scalar:
        if self.type == "float":
            return float(trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step))
        if self.type == "int":
            step = int(self.step or 1)
            return int(trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=step))
        return trial.suggest_categorical(self.name, list(self.choices))  # type: ignore[no-any-return]

    def active(self, chosen: Mapping[str, Scalar]) -> bool:
        """Whether this trial's earlier choices switch the parameter on."""
        return all(name in chosen and chosen[name] in values for name, values in self.when)

    def grid_values(self) -> list[Scalar]:
        if self.grid is not None:
            return list(self.grid)
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.type == "float" and self.step:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9))
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        raise ConfigError(f"sweep param {self.name}: the grid sampler needs `grid: [...]` values or a `step`")

    def contains(self, value: Any) -> bool:
        """Whether `value` is one this parameter could take (enqueued trials are checked)."""
        if self.type == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high

    def probe(self) -> Scalar:
        """A legal value, to check that the key exists before any trial runs."""
        return self.choices[0] if self.type == "categorical" else (int(self.low) if self.type == "int" else self.low)

    def extremes(self) -> list[Scalar]:
        """Every value a config check must accept: both ends of a range, every choice."""
        if self.type == "categorical":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.type == "int" else [self.low, self.high]

    def describe(self) -> dict[str, Any]:
        """JSON form: what a study records of its search space."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out |= {"low": self.low, "high": self.high, "log": self.log, "step": self.step}
        if self.when:
            out["when"] = {name: list(values) for name, values in self.when}
        return out


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...] = field(default_factory=tuple)

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> SearchSpace:
        """Parameters in declaration order from a nested mapping of leaves."""
        params: list[Param] = []
        for name, spec in _leaves(node, ""):
            params.append(_param(name, spec, {p.name for p in params}))
        if not params:
            raise ConfigError("sweep.params declares no parameter to search")
        return cls(tuple(params))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def suggest(self, trial: Any) -> dict[str, Scalar]:
        """One value per active parameter, in declaration order."""
        chosen: dict[str, Scalar] = {}
        for p in self.params:
            if p.active(chosen):
                chosen[p.name] = p.suggest(trial)
        return chosen

    def grid(self) -> dict[str, list[Scalar]]:
        return {p.name: p.grid_values() for p in self.params}

    def probe(self) -> dict[str, Scalar]:
        return {p.name: p.probe() for p in self.params}

    def probes(self) -> list[dict[str, Scalar]]:
        """The probe, then each parameter at each of its extremes with the others at
        the probe: a value the config schema refuses shows up before any trial."""
        base = self.probe()
        varied = [{**base, p.name: v} for p in self.params for v in p.extremes() if v != base[p.name]]
        return [base, *varied]

    def describe(self) -> dict[str, dict[str, Any]]:
        return {p.name: p.describe() for p in self.params}

    def check_enqueued(self, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Scalar]]:
        """Trials to run first, flattened to dotted names and checked against the space."""
        known = {p.name: p for p in self.params}
        out = []
        for i, entry in enumerate(entries):
            flat = dict(_flatten(entry, ""))
            for name, value in flat.items():
                if name not in known:
                    raise ConfigError(f"sweep.enqueue[{i}]: {name} is not a searched parameter")
                if not known[name].contains(value):
                    raise ConfigError(f"sweep.enqueue[{i}]: {name}={value!r} is outside its search space")
            out.append(flat)
        return out


def to_override(key: str, value: Scalar) -> str:
    """`key=value` in Hydra's override grammar; strings are always quoted so that
    '1e-3' or 'null' stay strings."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        text = "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{key}={text}"


def _leaves(node: Mapping[str, Any], prefix: str) -> list[tuple[str, Mapping[str, Any]]]:
    out: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        if not isinstance(value, Mapping):
            raise ConfigError(f"sweep param {name}: expected a mapping with a `type`, got {value!r}")
        out += [(name, value)] if "type" in value else _leaves(value, f"{name}.")
    return out


def _flatten(node: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        out += _flatten(value, f"{name}.") if isinstance(value, Mapping) else [(name, value)]
    return out


def _param(name: str, spec: Mapping[str, Any], earlier: set[str]) -> Param:
    kind = spec["type"]
    if kind not in TYPES:
        raise ConfigError(f"sweep param {name}: type must be one of {', '.join(TYPES)}, got {kind!r}")
    unknown = sorted(set(spec) - _ALLOWED[kind])
    if unknown:
        raise ConfigError(f"sweep param {name}: unknown field(s) {', '.join(unknown)} for type {kind}")
    when = _conditions(name, spec.get("when") or {}, earlier)
    grid = tuple(_scalars(name, "grid", spec["grid"])) if spec.get("grid") is not None else None
    if kind == "categorical":
        choices = tuple(_scalars(name, "choices", spec.get("choices")))
        if not choices:
            raise ConfigError(f"sweep param {name}: a categorical parameter needs `choices`")
        return Param(name, kind, choices=choices, when=when, grid=grid)
    return _numeric(name, kind, spec, when, grid)


def _numeric(
    name: str,
    kind: str,
    spec: Mapping[str, Any],
    when: tuple[tuple[str, tuple[Scalar, ...]], ...],
    grid: tuple[Scalar, ...] | None,
) -> Param:
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"sweep param {name}: a {kind} parameter needs `low` and `high`")
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f"sweep param {name}: low and high must be numbers, got {low!r} and {high!r}")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"sweep param {name}: an int parameter needs whole low and high, got {low} and {high}")
    if low > high:
        raise ConfigError(f"sweep param {name}: low {low} is above high {high}")
    if log and low <= 0:
        raise ConfigError(f"sweep param {name}: a log scale needs low > 0, got {low}")
    if log and step is not None:
        raise ConfigError(f"sweep param {name}: `step` and `log` cannot be combined")
    if step is not None and (not isinstance(step, int | float) or step <= 0):
        raise ConfigError(f"sweep param {name}: step must be a positive number, got {step!r}")
    return Param(name, kind, float(low), float(high), log, None if step is None else float(step), when=when, grid=grid)


def _conditions(name: str, when: Mapping[str, Any], earlier: set[str]) -> tuple[tuple[str, tuple[Scalar, ...]], ...]:
    out = []
    for other, values in _flatten(when, ""):
        if other not in earlier:
            raise ConfigError(f"sweep param {name}: `when` names {other}, which is not a parameter declared before it")
        out.append((other, tuple(_scalars(name, "when", values if isinstance(values, list | tuple) else [values]))))
    return tuple(out)


def _scalars(name: str, field_name: str, values: Any) -> list[Scalar]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ConfigError(f"sweep param {name}: `{field_name}` must be a list, got {values!r}")
    for value in values:
        if value is not None and not isinstance(value, bool | int | float | str):
            raise ConfigError(f"sweep param {name}: `{field_name}` values must be numbers, strings, booleans or null")
    return list(values)
