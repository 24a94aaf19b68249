"""What data a run was trained on, so that it is only ever scored on that data.

A run's config once held `split_dir: data/splits/...`, resolved against whatever
folder a later command ran in: `recsys evaluate RUN` from another project scored
another shop's data with exit 0. So `recsys train` pins the lake, split and
feature folders to absolute paths in the run's config, and the run's manifest
records the sha256 of each folder's `manifest.json` as it was at train time.
Every command that reads the data behind a run checks those digests first and
refuses a folder that was remade or moved since.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from recsys_cli.errors import IntegrityError
from recsys_cli.registry.integrity import MANIFEST, sha256_file

# config key -> (name in messages and in the run manifest, the command that writes it)
SOURCES = {"lake_dir": ("lake", "ingest"), "split_dir": ("split", "split"), "features_dir": ("features", "features")}
DIGEST = "manifest_sha256"


def pinned(cfg: DictConfig) -> DictConfig:
    """A copy of the train config whose data folders are absolute paths."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(out, DictConfig)
    with open_dict(out):
        for key in SOURCES:
            if out.get(key):
                out[key] = str(Path(str(out[key])).resolve())
    return out


def record(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Per data folder of a (pinned) config: its path and its manifest's sha256 now
    (None when it has no manifest)."""
    out = {}
    for key, (name, _) in SOURCES.items():
        if cfg.get(key):
            folder = Path(str(cfg[key]))
            out[name] = {"dir": str(folder), DIGEST: _digest(folder)}
    return out


def check(run: Path, cfg: DictConfig, recorded: Any) -> None:
    """Refuse, with one line, a run whose data folders no longer hold what it was
    trained on: remade (another manifest), moved or deleted, or a config that points
    elsewhere than the manifest says."""
    if not isinstance(recorded, dict):
        raise IntegrityError(f"{run / MANIFEST}: no record of the data it was trained on; retrain the run")
    for key, (name, command) in SOURCES.items():
        entry = recorded.get(name)
        if not isinstance(entry, dict):
            continue  # a run configured without this folder
        folder = Path(str(entry.get("dir")))
        if str(cfg.get(key)) != str(folder) or not folder.is_absolute():
            raise IntegrityError(
                f"{run}: config.yaml's {key} is not the {name} recorded in {MANIFEST}; retrain the run"
            )
        now = _digest(folder)
        if now != entry.get(DIGEST):
            what = "is gone (moved or deleted)" if now is None else "was remade since (its manifest changed)"
            raise IntegrityError(
                f"{run}: the {name} it was trained on ({folder}) {what}; restore it, or rerun "
                f"`recsys {command}` and retrain the run on the new data"
            )


def split_digest(recorded: Any) -> str | None:
    """The split manifest's sha256 a run was trained on: runs of different splits
    never pair user by user."""
    entry = recorded.get("split") if isinstance(recorded, dict) else None
    return entry.get(DIGEST) if isinstance(entry, dict) else None


def _digest(folder: Path) -> str | None:
    path = folder / MANIFEST
    return sha256_file(path) if path.is_file() else None
