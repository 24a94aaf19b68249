"""Experiment files (`experiments/NAME.yaml`): what `recsys reproduce` reruns and
what it must measure.

An experiment names a Hydra preset (`conf/experiment/<preset>.yaml`, which pins
data, split, target, features, model and trainer), the data to ingest, which
folds and parts to train, and the metrics it expects with their tolerances. This
module reads and validates the file and judges measured metrics against it; it
runs nothing. Every problem in a file is reported as one line naming the file and
the field, before any work starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from recsys_cli.errors import ConfigError

PARTS = ("val", "test")
MEAN = "mean"  # the metric's mean over the experiment's folds, beside the per-fold keys

# missing: the run did not produce the metric; nan: it produced NaN.
Status = Literal["pass", "fail", "missing", "nan"]


@dataclass(frozen=True)
class Tolerance:
    """An expected value and how far a measurement may stray from it.

    A measurement passes when ``|measured - value| <= max(abs, rel * |value|)``: the
    looser of the two bands, as ``pytest.approx`` reads them, so a relative band
    can be given for large values and an absolute floor for values near zero.

    >>> Tolerance(0.20, abs=0.01).allowed
    0.01
    >>> Tolerance(0.5, abs=0.01, rel=0.25).allowed
    0.125
    """

    value: float
    abs: float | None = None
    rel: float | None = None

    @property
    def allowed(self) -> float:
        """The half-width of the accepted band around `value`."""
        bands = [self.abs or 0.0, (self.rel or 0.0) * math.fabs(self.value)]
        return max(bands)


@dataclass(frozen=True)
class Check:
    """One expected metric against its measurement."""

    metric: str
    expected: Tolerance
    measured: float | None
    status: Status

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def difference(self) -> float | None:
        if self.measured is None or math.isnan(self.measured):
            return None
        return self.measured - self.expected.value

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "expected": self.expected.value,
            "abs": self.expected.abs,
            "rel": self.expected.rel,
            "allowed": self.expected.allowed,
            "measured": self.measured,
            "difference": self.difference,
            "status": self.status,
        }


def check(metric: str, expected: Tolerance, measured: Mapping[str, float]) -> Check:
    """Judge one expected metric. A metric the run did not produce fails: a renamed
    or dropped metric must not turn a reproduction green by going unchecked."""
    if metric not in measured:
        return Check(metric, expected, None, "missing")
    value = float(measured[metric])
    if math.isnan(value):
        return Check(metric, expected, value, "nan")
    inside = math.fabs(value - expected.value) <= expected.allowed
    return Check(metric, expected, value, "pass" if inside else "fail")


def check_all(expected: Mapping[str, Tolerance], measured: Mapping[str, float]) -> list[Check]:
    """Every expected metric, in the order the experiment file lists them."""
    return [check(metric, tolerance, measured) for metric, tolerance in expected.items()]


@dataclass(frozen=True)
class DataSpec:
    """Where the raw data comes from.

    `generator` (synthetic shop only) overrides `data.generator.*`: its seed and size.
    `raw` is a folder of raw files to ingest instead (relative to the working
    directory), `fetch` the command that provides it (shown when it is missing, never
    run), and `sha256` pins input files by name, so a different copy of a dataset is
    reported as such rather than as metric drift.
    """

    source: str
    generator: dict[str, Any] = field(default_factory=dict)
    raw: Path | None = None
    fetch: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    path: Path
    name: str
    description: str
    preset: str
    data: DataSpec
    folds: tuple[str, ...] | None  # None: every fold of the split
    parts: tuple[str, ...]
    check_leakage: bool
    expected: dict[str, Tolerance]


# --------------------------------------------------------------------------- loading


_TOP = {"description", "preset", "data", "chain", "expected"}
_DATA = {"source", "generator", "raw", "fetch", "sha256"}
_CHAIN = {"folds", "parts", "check_leakage"}
_TOLERANCE = {"value", "abs", "rel"}


class _Reader:
    """Typed access to the parsed file; every failure names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where or 'top level'}: {problem}")

    def mapping(self, value: Any, where: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):  # a whole file that is no experiment is never echoed
            got = _kind(value) if where or not isinstance(value, str) else "text"
            raise self.fail(where, f"must be a mapping, got {got}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"keys must be strings, got {key!r}")
        unknown = sorted(set(value) - allowed) if allowed is not None else []
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}" if where else unknown[0], f"unknown field; known: {_list(allowed)}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"must be a non-empty string, got {_kind(value)}")
        return value.strip()

    def number(self, value: Any, where: str, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(where, f"must be a finite number, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(where, f"must be >= {minimum:g}, got {value!r}")
        return float(value)

    def strings(self, value: Any, where: str, choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, f"must be a non-empty list, got {_kind(value)}")
        items = tuple(self.text(v, f"{where}[{i}]") for i, v in enumerate(value))
        bad = [v for v in items if choices is not None and v not in choices]
        if bad:
            raise self.fail(where, f"{bad[0]!r} is not one of {_list(choices or ())}")
        if len(set(items)) != len(items):
            raise self.fail(where, "lists a value twice")
        return items


def load_experiment(path: Path | str) -> Experiment:
    """Read and validate an experiment file.

    Raises
    ------
    ConfigError
        One line naming the file and the field at fault (missing, unknown, of the
        wrong type, or out of range).
    """
    path = Path(path)
    doc = _parse(path)
    r = _Reader(path)
    top = r.mapping(doc, "", _TOP)
    for required in ("preset", "data", "expected"):
        if required not in top:
            raise r.fail(required, "missing")
    chain = r.mapping(top.get("chain", {}), "chain", _CHAIN)
    parts = r.strings(chain.get("parts", list(PARTS)), "chain.parts", PARTS)
    folds = r.strings(chain["folds"], "chain.folds") if "folds" in chain else None
    check_leakage = chain.get("check_leakage", True)
    if not isinstance(check_leakage, bool):
        raise r.fail("chain.check_leakage", f"must be true or false, got {_kind(check_leakage)}")
    return Experiment(
        path=path,
        name=path.stem,
        description=r.text(top["description"], "description") if "description" in top else "",
        preset=_preset(r, top["preset"]),
        data=_data(r, top["data"]),
        folds=folds,
        parts=tuple(p for p in PARTS if p in parts),  # val first: test reads val's best epoch
        check_leakage=check_leakage,
        expected=_expected(r, top["expected"], parts, folds),
    )


def _parse(path: Path) -> Any:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}: {where}: not valid YAML ({problem})") from None


def _data(r: _Reader, value: Any) -> DataSpec:
    data = r.mapping(value, "data", _DATA)
    if "source" not in data:
        raise r.fail("data.source", "missing (the preset's data config name, e.g. synth or movielens100k)")
    generator = r.mapping(data.get("generator", {}), "data.generator")
    for key, v in generator.items():
        if not isinstance(v, str | int | float | bool):
            raise r.fail(f"data.generator.{key}", f"must be a string, number or boolean, got {_kind(v)}")
    sha = r.mapping(data.get("sha256", {}), "data.sha256")
    for name, digest in sha.items():
        text = r.text(digest, f"data.sha256.{name}").lower()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise r.fail(f"data.sha256.{name}", "must be 64 hexadecimal digits")
    if generator and "raw" in data:
        raise r.fail("data.raw", "give either data.generator (generated data) or data.raw (files to ingest)")
    return DataSpec(
        source=r.text(data["source"], "data.source"),
        generator=dict(generator),
        raw=Path(r.text(data["raw"], "data.raw")) if "raw" in data else None,
        fetch=r.text(data["fetch"], "data.fetch") if "fetch" in data else None,
        sha256={k: str(v).lower() for k, v in sha.items()},
    )


def _expected(r: _Reader, value: Any, parts: tuple[str, ...], folds: tuple[str, ...] | None) -> dict[str, Tolerance]:
    entries = r.mapping(value, "expected")
    if not entries:
        raise r.fail("expected", "lists no metric; an experiment with nothing to check proves nothing")
    return {metric: _tolerance(r, metric, spec, parts, folds) for metric, spec in entries.items()}


def _tolerance(r: _Reader, metric: str, value: Any, parts: tuple[str, ...], folds: tuple[str, ...] | None) -> Tolerance:
    where = f"expected.{metric}"
    scope, _, rest = metric.partition("/")
    part, _, name = rest.partition("/")
    if not (scope and part and name):
        raise r.fail(where, "metric keys read <fold>/<part>/<metric> or mean/<part>/<metric>, e.g. fold-0/test/ndcg@10")
    if part not in parts:
        raise r.fail(where, f"part {part!r} is not trained (chain.parts: {_list(parts)})")
    if folds is not None and scope != MEAN and scope not in folds:
        raise r.fail(where, f"fold {scope!r} is not run (chain.folds: {_list(folds)})")
    _check_ranked_metric(r, where, name)
    spec = r.mapping(value, where, _TOLERANCE)
    if "value" not in spec:
        raise r.fail(f"{where}.value", "missing")
    if "abs" not in spec and "rel" not in spec:
        raise r.fail(where, "give a tolerance: abs, rel or both (abs: 0 demands an exact match)")
    return Tolerance(
        value=r.number(spec["value"], f"{where}.value"),
        abs=r.number(spec["abs"], f"{where}.abs", minimum=0) if "abs" in spec else None,
        rel=r.number(spec["rel"], f"{where}.rel", minimum=0) if "rel" in spec else None,
    )


def _check_ranked_metric(r: _Reader, where: str, name: str) -> None:
    """A `metric@k` must be one `recsys train` reports, or the check could only ever
    come out missing; other names (users, best_epoch, a model's diagnostics) pass."""
    if "@" not in name:
        return
    from recsys_cli.evaluation.metrics import RANKING_METRICS

    metric, _, k = name.partition("@")
    known = (*RANKING_METRICS, "coverage")
    if metric not in known or not k.isdigit() or int(k) < 1:
        raise r.fail(where, f"{name!r} is not a metric train reports ({'|'.join(known)}@k, k >= 1)")


def _kind(value: Any) -> str:
    """A wrong value as shown in a message: short values as written, anything long
    (a whole other file read as YAML, which may hold personal data) by its size only."""
    if value is None:
        return "nothing"
    if isinstance(value, dict | list):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__} of {len(str(value)):,} characters"


def _list(values: Any) -> str:
    return ", ".join(sorted(values)) if isinstance(values, set) else ", ".join(values)


def _preset(r: _Reader, value: Any) -> str:
    """A preset is a file name in conf/experiment/, never a path: `../` would compose
    any YAML on the machine into the chain's configs."""
    name = r.text(value, "preset")
    if not all(c.isalnum() or c in "_-" for c in name):
        raise r.fail("preset", f"must name a file of conf/experiment/ (letters, digits, _ or -), got {name[:60]!r}")
    return name
