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

from recsys_cli import __version__

VERSIONED = ("polars", "numpy", "scipy", "scikit-learn", "torch", "lightning", "lightgbm", "implicit", "hydra-core")


def describe(trainer: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The machine, the libraries, the source code and, for a model trained by the
    Lightning loop (`trainer` given), the device and precision it used."""
    env: dict[str, Any] = {"cpu_count": os.cpu_count(), "versions": versions(), "code": code_version()}
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


def versions() -> dict[str, str | None]:
    """Python, the platform and the installed version of each library that shapes results."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "platform": platform.platform()} | {n: version(n) for n in VERSIONED}


def code_version() -> dict[str, Any]:
    """The package version and, in a git checkout, its commit and whether files
    differ from it: results belong to a version of the code, and a failed
    reproduction should say which one ran."""
    code: dict[str, Any] = {"recsys": __version__, "git_commit": None, "git_dirty": None}
    if "site-packages" in Path(__file__).parts:
        return code  # an installed copy: a repository around it would be someone else's
    commit = _git("rev-parse", "HEAD")
    if commit is not None and commit.returncode == 0:
        status = _git("status", "--porcelain", "--untracked-files=no")
        code["git_commit"] = commit.stdout.strip()
        code["git_dirty"] = bool(status.stdout.strip()) if status is not None and status.returncode == 0 else None
    return code


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
