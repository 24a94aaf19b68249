"""Where a run ran: the config and seed repeat a run only on the same kind of
machine. Float sums depend on the thread count and the device (SASRec's scores
change with the number of CPU threads), and `accelerator: auto` / `precision:
auto` resolve differently on a GPU box, so the run folder records what they
resolved to, beside the library versions.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("recsys-cli", "torch", "lightning", "polars", "numpy", "scipy", "scikit-learn", "implicit", "lightgbm")


def describe(trainer: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The machine, the libraries, the source commit and, for a model trained by
    the Lightning loop (`trainer` given), the device and precision it used."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": _commit(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:  # loaded by every neural model; never imported just for this
        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if trainer is not None:
        from recsys_cli.models.lightning import trainer_options

        options = trainer_options(trainer)
        accelerator = str(options.get("accelerator", "auto"))
        if accelerator == "auto":  # Lightning's own order: CUDA, then Apple's MPS, then the CPU
            mps = torch is not None and torch.backends.mps.is_available()
            accelerator = "gpu" if env.get("cuda") else "mps" if mps else "cpu"
        env["trainer"] = {"accelerator": accelerator, "precision": str(options.get("precision", "32-true"))}
    return env


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    """The source checkout's commit, with "+dirty" when it has uncommitted changes;
    None for an installed copy outside git."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")
