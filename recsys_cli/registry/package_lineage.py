"""Where a package comes from (`lineage.json`), and the feature definitions a
service must compute its live features with.

A package is the end of a chain: lake -> split -> features -> run -> package.
`lineage.json` records every link as the run was trained on it (the manifests'
sha256 that `registry/lineage.py` checked when the run was opened, and the split
and features manifests themselves), with the resolved config, the run's metrics
and environment, and the source commit that trained the run and the one that
exported it: enough to rebuild the package, or to say why two packages differ.

The feature definitions' hash is a digest of the settings that decide what a
user's features and sequence mean (the `features` config group and the
`target`, whose seen events feed the interactions). A service computing live
features from the same definitions gets the same hash from
`feature_definitions_hash(cfg.features, cfg.target)`, and `load_package` refuses a
package built on other definitions. The keys of the ranker's labelled windows are
left out: they shape training only, never the features of a live request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recsys_cli.registry import environment
from recsys_cli.registry.integrity import MANIFEST, SEAL, canonical_digest
from recsys_cli.registry.run_dir import ENVIRONMENT, METRICS, Run

LINEAGE = "lineage.json"
# Feature keys that shape the ranker's training windows, not what a feature means.
TRAINING_ONLY = frozenset({"name", "ranker_windows", "ranker_label_days", "ranker_stride_days"})


def feature_definitions_hash(features: Mapping[str, Any] | DictConfig, target: Mapping[str, Any] | DictConfig) -> str:
    """sha256 of the feature definitions (see the module docstring)."""
    plain_features, plain_target = _plain(features), _plain(target)
    definitions = {
        "features": {k: v for k, v in plain_features.items() if k not in TRAINING_ONLY},
        "target": {k: v for k, v in plain_target.items() if k != "name"},
    }
    return canonical_digest(definitions)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file of an already verified folder."""
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a JSON object")
    return value


def lineage_record(run: Run, cutoff: datetime, feature_hash: str) -> dict[str, Any]:
    """`lineage.json` of a package exported from the opened (verified) `run`."""
    recorded = run.manifest.get("lineage") or {}
    sources: dict[str, Any] = {}
    for name, entry in recorded.items():
        if not isinstance(entry, dict):
            continue
        source = {"dir": entry.get("dir"), "manifest_sha256": entry.get("manifest_sha256")}
        if name in ("split", "features"):
            source["manifest"] = read_json(Path(str(entry["dir"])) / MANIFEST)
        sources[name] = source
    run_env = read_json(run.path / ENVIRONMENT) if (run.path / ENVIRONMENT).is_file() else {}
    return {
        "pii": _lake_key(sources.get("lake")),
        "run": {
            "path": str(run.path),
            "manifest_sha256": run.manifest.get(SEAL),
            "trained_at": run.manifest.get("created_at"),
        },
        "cutoff": cutoff.isoformat(),
        "feature_definitions_sha256": feature_hash,
        **sources,
        "config": OmegaConf.to_container(run.config, resolve=True),
        "metrics": read_json(run.path / METRICS) if (run.path / METRICS).is_file() else {},
        "environment": run_env,
        "source": {"trained_by": run_env.get("code"), "exported_by": environment.code_version()},
    }


def _lake_key(lake: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Which key pseudonymised the lake's user ids (its fingerprint, never the key)
    and the variable it was read from: a service pseudonymises raw ids in requests
    with the same key, and refuses another."""
    if not lake or not lake.get("dir") or not (Path(str(lake["dir"])) / MANIFEST).is_file():
        return None
    manifest = read_json(Path(str(lake["dir"])) / MANIFEST)
    pii = manifest.get("pii") or {}
    return {
        "key_fingerprint": pii.get("key_fingerprint"),
        "development_key": bool(pii.get("development_key")),
        "key_env": ((manifest.get("config") or {}).get("pii") or {}).get("key_env") or "RECSYS_PII_KEY",
    }


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The lineage's headline, for the package manifest (and a registry's version list)."""
    trained = (record.get("source") or {}).get("trained_by") or {}
    return {
        "run": record["run"]["path"],
        "run_manifest_sha256": record["run"]["manifest_sha256"],
        "cutoff": record["cutoff"],
        "feature_definitions_sha256": record["feature_definitions_sha256"],
        **{
            f"{name}_manifest_sha256": record[name]["manifest_sha256"]
            for name in ("lake", "split", "features")
            if name in record
        },
        "source_commit": trained.get("git_commit"),
    }


def _plain(node: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """Plain JSON values all the way down (a mapping may hold config nodes), so equal
    definitions digest equally however they were given."""
    config = node if isinstance(node, DictConfig) else OmegaConf.create(dict(node))
    return dict(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
