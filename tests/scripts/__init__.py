"""Tests of the benchmark and load scripts' pure helpers; `load_script` imports a
script from scripts/ as a module (they are files, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str, module_name: str | None = None) -> ModuleType:
    """scripts/`name`.py as a module, registered in sys.modules (dataclasses
    resolve their module by name)."""
    spec = importlib.util.spec_from_file_location(module_name or name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
