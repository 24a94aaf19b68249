"""Run folders: `runs/<name>/<timestamp>/` with the resolved config, so every run
can be repeated from what it saved.

A run is written under a hidden name (`runs/<name>/.<timestamp>.partial/`) and
renamed to its timestamp only when everything is in it, sealed by a
`manifest.json` (`"kind": "run"`, sha256 and size of every file, the digests of
the data it was trained on, and a digest of the manifest itself). A run killed
mid-fit leaves only a hidden folder that no command takes (`ls runs/ease/*`
never lists it), and every command that loads a run checks the seal, every
file's sha256 and the data's digests first (`open_run`): a flipped byte in a
weight tensor is refused instead of silently changing recommendations.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recsys_cli import __version__
from recsys_cli.errors import ConfigError, IntegrityError
from recsys_cli.registry import lineage
from recsys_cli.registry.integrity import (
    MANIFEST,
    check_seal,
    file_entries,
    read_json_object,
    seal,
    unlisted,
    verify_files,
    write_json,
)

CONFIG = "config.yaml"
METRICS = "metrics.json"
# Machine, libraries, commit, and the device and precision a neural fit resolved to.
ENVIRONMENT = "environment.json"
# Per-user metrics of the scored window, for paired comparisons and intervals.
PER_USER = "per_user.parquet"
MODEL = "model"
KIND = "run"
PARTIAL = ".partial"
FORMAT_VERSION = 1
RETRAIN = "retrain it with `recsys train` (its config.yaml holds the settings)"


@dataclass(frozen=True)
class Run:
    """A run folder whose files and data were checked: its config and manifest."""

    path: Path
    config: DictConfig
    manifest: dict[str, Any]

    @property
    def split_digest(self) -> str | None:
        return lineage.split_digest(self.manifest.get("lineage"))


def new_run(root: Path | str, name: str, cfg: DictConfig) -> Path:
    """A hidden staging folder for a new run, holding its config; `publish_run` seals
    it and gives it its final name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = Path(root) / name / f".{stamp}{PARTIAL}"
    folder.mkdir(parents=True)
    OmegaConf.save(cfg, folder / CONFIG, resolve=True)
    return folder


def publish_run(staged: Path, data: dict[str, Any]) -> Path:
    """Seal the staged run (`seal_run`) and rename it to its timestamp: the run
    appears whole or not at all."""
    if not (staged.name.startswith(".") and staged.name.endswith(PARTIAL)):
        raise ValueError(f"{staged} is not a staged run folder")
    final = staged.parent / staged.name[1 : -len(PARTIAL)]
    seal_run(staged, data)
    os.rename(staged, final)  # same folder, so atomic; the timestamp is new, so nothing is replaced
    return final


def seal_run(folder: Path, data: dict[str, Any]) -> None:
    """Write the run's manifest.json: every file in `folder` (sha256 and size), `data`
    (the lineage record of `registry.lineage`), sealed by a digest of itself."""
    manifest = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "recsys": __version__,
        "lineage": data,
        "files": file_entries(folder),
    }
    write_json(folder / MANIFEST, seal(manifest))


def open_run(run: Path, check_data: bool = True) -> Run:
    """The run in `run`, after checking its manifest's seal, every file it lists (full
    sha256) and, with `check_data`, that its lake, split and features are still the
    ones it was trained on; any mismatch is one `IntegrityError` line."""
    run = Path(run)
    manifest = _verified_manifest(run)
    cfg = _config(run)
    if check_data:
        lineage.check(run, cfg, manifest.get("lineage"))
    return Run(run, cfg, manifest)


def load_run_config(run: Path, check_data: bool = True) -> DictConfig:
    """The verified config of a run (see `open_run`)."""
    return open_run(run, check_data).config


def _verified_manifest(run: Path) -> dict[str, Any]:
    if not run.is_dir():
        raise ConfigError(f"{run}: no such run folder")
    if run.name.endswith(PARTIAL):
        raise IntegrityError(f"{run}: an unfinished run (still training, or killed before it finished); never loaded")
    path = run / MANIFEST
    if not path.is_file():
        if not (run / CONFIG).is_file():
            raise ConfigError(f"{run}: not a run folder (no {CONFIG}); runs are written by `recsys train`")
        raise IntegrityError(
            f"{run}: no {MANIFEST}, so its files cannot be checked: the run is incomplete or was written by an "
            f"older version of recsys; {RETRAIN}"
        )
    manifest = read_json_object(path, RETRAIN)
    if manifest.get("kind") != KIND:
        raise IntegrityError(f"{path}: not a run manifest (kind is not {KIND!r}); {RETRAIN}")
    check_seal(manifest, path, hint=RETRAIN)
    entries = manifest.get("files")
    problems = verify_files(run, entries, full=True)
    if not problems and isinstance(entries, list):  # nothing may be added to the model, and the config must be covered
        listed = {e["path"] for e in entries}
        problems = [f"missing from the manifest: {CONFIG}"] if CONFIG not in listed else []
        problems += [f"added: {p}" for p in unlisted(run, entries) if p.startswith(f"{MODEL}/")]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"{run}: {problems[0]}{more}: the run folder changed after training (see its {MANIFEST}); {RETRAIN}"
        )
    return manifest


def _config(run: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(run / CONFIG)
    except Exception as exc:  # noqa: BLE001 - any parse failure of a listed, unchanged file
        raise IntegrityError(f"{run / CONFIG}: unreadable ({type(exc).__name__}); {RETRAIN}") from None
    if not isinstance(cfg, DictConfig):
        raise IntegrityError(f"{run / CONFIG}: not a mapping; {RETRAIN}")
    if _interpolates(OmegaConf.to_container(cfg, resolve=False)):
        # Saved resolved, so `${...}` was written by someone else: `${oc.env:...}` would
        # copy an environment variable (a key) into whatever a command writes.
        raise IntegrityError(f"{run / CONFIG}: holds a ${{...}} interpolation, which train never writes; {RETRAIN}")
    return cfg


def _interpolates(node: Any) -> bool:
    if isinstance(node, str):
        return "${" in node
    if isinstance(node, dict):
        return any(_interpolates(k) or _interpolates(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_interpolates(v) for v in node)
    return False


def find_run(root: Path | str, name: str, matches: Callable[[Path, DictConfig], bool]) -> Path | None:
    """The newest sealed run folder of `root/<name>/` whose config.yaml passes
    `matches(folder, config)`; None when none does. Unfinished (hidden) runs and
    folders without a manifest are never candidates, and nothing is verified here:
    `open_run` the answer before reading anything else from it."""
    folder = Path(root) / name
    if not folder.is_dir():
        return None
    sealed = [p for p in folder.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()]
    for run in sorted(sealed, key=lambda p: p.name, reverse=True):  # timestamps: newest first
        try:
            cfg = OmegaConf.load(run / CONFIG)
        except Exception:  # noqa: BLE001, S112 - an unreadable config matches nothing
            continue
        if isinstance(cfg, DictConfig) and matches(run, cfg):
            return run
    return None
