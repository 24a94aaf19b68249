"""Hand-made run folders for tests, sealed as `recsys train` seals its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recsys_cli.registry.run_dir import seal_run


def seal(run: Path, lineage: dict[str, Any] | None = None) -> Path:
    """Give a hand-written run folder the manifest `recsys train` writes last (no data
    folders recorded unless `lineage` names them), so commands accept it."""
    seal_run(run, lineage or {})
    return run
