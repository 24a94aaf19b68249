"""Which model classes a saved model may name, and with which parameters.

A model folder says which class to rebuild (`model.json`'s `class`) and with
what (`params`). Both come from a file anyone with write access to a run folder
can edit, so neither may reach an import or a call unchecked: editing the class
to `os.system` once ran a shell command through `recsys recommend`. The only
classes accepted are concrete `Recommender` subclasses defined in this package's
own modules (found by listing the package's files, never by importing a name
read from a file), and their parameters must be plain JSON values named in the
class's constructor.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Mapping
from functools import cache
from typing import Any

from recsys_cli.errors import IntegrityError

PACKAGE = "recsys_cli.models"


@cache
def _module_names() -> dict[str, str]:
    """`recsys_cli.models.<name>` of every module file in this package (not imported)."""
    import recsys_cli.models as package

    return {f"{PACKAGE}.{m.name}": f"{PACKAGE}.{m.name}" for m in pkgutil.iter_modules(package.__path__)}


def _classes_of(module_name: str) -> dict[str, type]:
    """Concrete Recommender subclasses defined in (not imported into) one of our modules."""
    from recsys_cli.models.base import Recommender

    module = importlib.import_module(module_name)
    return {
        obj.__qualname__: obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Recommender)
        and obj.__module__ == module_name
        and not inspect.isabstract(obj)
    }


def model_class(name: object, where: str) -> type:
    """The model class that `name` ("recsys_cli.models.ease.EASE") denotes, or an
    `IntegrityError` naming `where` ("file: field") for anything else."""
    if not isinstance(name, str):
        raise IntegrityError(f"{where}: the model class must be a name, got {type(name).__name__}")
    module, _, qualname = name.rpartition(".")
    known = _module_names().get(module)  # our own string, looked up by the file's one
    found = _classes_of(known).get(qualname) if known else None
    if found is None:
        raise IntegrityError(
            f"{where}: {_shown(name)} is not a recsys model class; only the models in {PACKAGE} can be loaded"
        )
    return found


def accepted_params(cls: type) -> set[str] | None:
    """Names the class's constructor takes, following `**kwargs` up to the base class;
    None when one of them takes anything (it then forwards to a class that checks)."""
    from recsys_cli.models.base import Recommender

    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is Recommender or klass is object:
            return names
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None


def checked_params(cls: type, params: object, where: str) -> dict[str, Any]:
    """`params` if it is a mapping of names the class accepts to plain JSON values."""
    if not isinstance(params, Mapping):
        raise IntegrityError(f"{where}: must be a mapping of parameter names to values")
    accepted = accepted_params(cls)
    unknown = sorted(str(k) for k in params if accepted is not None and k not in accepted)
    if unknown:
        raise IntegrityError(f"{where}: {cls.__name__} takes no parameter {_shown(unknown[0])}")
    for key, value in params.items():
        if not _plain_json(value):
            raise IntegrityError(
                f"{_field(where, str(key))}: not a plain JSON value (number, text, true/false, null, list, map)"
            )
    return dict(params)


def build_model(spec: object, where: str, target_key: str = "class", params_key: str | None = "params") -> Any:
    """The model a spec describes: `{class, params}` (model.json) or, with
    `params_key=None`, `{_target_, **params}` (a ranker's generator)."""
    if not isinstance(spec, Mapping):
        raise IntegrityError(f"{where}: must be a mapping")
    cls = model_class(spec.get(target_key), _field(where, target_key))
    if params_key is None:
        raw: object = {k: v for k, v in spec.items() if k != target_key}
        params = checked_params(cls, raw, where)
    else:
        params = checked_params(cls, spec.get(params_key, {}), _field(where, params_key))
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise IntegrityError(f"{where}: {cls.__name__} refuses its parameters ({exc})") from exc


def _field(where: str, key: str) -> str:
    """`where` ("file" or "file: field") extended by one key: "file: key", "file: field.key"."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def _plain_json(value: object, depth: int = 0) -> bool:
    if depth > 32:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain_json(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain_json(v, depth + 1) for k, v in value.items())
    return False


def _shown(value: str) -> str:
    """A name from a file, quoted and cut short so a message stays one line."""
    return repr(value[:80] + ("…" if len(value) > 80 else ""))


def plain_spec(spec: Any) -> dict[str, Any]:
    """A nested model config (a ranker's generator, a blend's member) as a plain dict,
    its interpolations (`${seed}`, `${trainer}`) resolved."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(spec, DictConfig):
        return dict(OmegaConf.to_container(spec, resolve=True))  # type: ignore[arg-type]
    return dict(spec)


def build_nested(spec: Mapping[str, Any], where: str) -> Any:
    """A nested model from its `{_target_, **params}` spec: only this package's model
    classes, with parameters they accept (the spec may come from a saved model.json)."""
    return build_model(spec, where, target_key="_target_", params_key=None)
