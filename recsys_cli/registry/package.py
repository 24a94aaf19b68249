"""Model packages: the one folder training hands to serving (`recsys export`).

A package is trusted only whole. Its `manifest.json` (`"kind": "package"`) lists
the sha256 and size of every file and is sealed by a digest of itself, and a
package is read only after `verify_package` has checked the format version, the
seal, every listed file's hash and that no file was added. Anything else is one
`IntegrityError` line naming the file, so a truncated copy or an edited weight
never reaches a service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_cli import __version__
from recsys_cli.errors import IntegrityError
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

if TYPE_CHECKING:
    import polars as pl

    from recsys_cli.features.vocab import Vocabulary
    from recsys_cli.models.base import Recommender

KIND = "package"
FORMAT_VERSION = 1
REEXPORT = "export the run again (`recsys export RUN`)"


def seal_package(folder: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Write `folder`/manifest.json: `payload` (name, metrics, lineage, ...), the
    format version and every file in the folder (sha256 and size), sealed. Call it
    last, when every file is in place; returns the manifest written."""
    manifest = {
        **payload,
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "created_at": payload.get("created_at") or datetime.now(UTC).isoformat(),
        "recsys": __version__,
        "files": file_entries(folder),
    }
    sealed = seal(manifest)
    write_json(folder / MANIFEST, sealed)
    return sealed


def read_manifest(folder: Path) -> dict[str, Any]:
    """The package's manifest after checking its kind, format version and seal (not
    the files: see `verify_package`)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise IntegrityError(f"{folder}: no such package folder")
    manifest = read_json_object(path, REEXPORT, missing="missing, so the package cannot be checked")
    if manifest.get("kind") != KIND:
        raise IntegrityError(f"{path}: not a model package manifest (kind is not {KIND!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IntegrityError(
            f"{path}: package format version {version!r}; this recsys reads version {FORMAT_VERSION}; {REEXPORT}"
        )
    check_seal(manifest, path, hint=REEXPORT)
    return manifest


def verify_package(folder: Path) -> dict[str, Any]:
    """The verified manifest of the package in `folder`: format version, seal, every
    listed file's size and sha256, and no file the manifest does not list."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    entries = manifest.get("files")
    problems = verify_files(folder, entries, full=True)
    if not problems and isinstance(entries, list):
        problems = [f"added: {p}" for p in unlisted(folder, entries)]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        what, _, name = problems[0].partition(": ")
        if what.startswith("file entry") or not name:  # a malformed manifest row, not a file
            raise IntegrityError(f"{folder / MANIFEST}: {problems[0]}{more}; {REEXPORT}")
        raise IntegrityError(f"{folder / name}: {what}{more}; the package changed after export; {REEXPORT}")
    return manifest


# -- the package's layout, and loading one -----------------------------------------------------------------------

MODEL, ANN, VOCAB, FALLBACKS = "model", "ann", "vocab", "fallbacks"
ITEMS, USERS, LINEAGE = "items.parquet", "users.parquet", "lineage.json"
FALLBACK_TABLES = ("global", "recent", "hour_of_day", "segments")
# Files every package holds: a manifest that lacks one describes an incomplete package.
REQUIRED = (
    f"{MODEL}/model.json",
    f"{MODEL}/weights.safetensors",
    f"{VOCAB}/users.json",
    f"{VOCAB}/items.json",
    ITEMS,
    USERS,
    LINEAGE,
    *(f"{FALLBACKS}/{name}.parquet" for name in FALLBACK_TABLES),
)
FEATURE_HASH = "feature_definitions_sha256"


@dataclass
class Package:
    """A verified package, loaded: what a service needs to answer requests."""

    path: Path
    manifest: dict[str, Any]
    model: Recommender
    items: pl.DataFrame
    users: pl.DataFrame
    fallbacks: dict[str, pl.DataFrame]
    vocab: dict[str, Vocabulary]
    lineage: dict[str, Any]
    ann: dict[str, Any] = field(default_factory=dict)  # model name -> its loaded ANN index

    @property
    def name(self) -> str:
        return str(self.manifest.get("name"))

    @property
    def feature_hash(self) -> str:
        return str(self.manifest[FEATURE_HASH])


def load_package(folder: Path | str, expected_feature_hash: str | None = None) -> Package:
    """The package in `folder`, read only after `verify_package` has checked every
    file; refused with one line naming the file when it lacks a file every package
    holds, or was built on other feature definitions than `expected_feature_hash`
    (what the caller computes with `package_lineage.feature_definitions_hash`)."""
    import polars as pl

    from recsys_cli.models.base import Recommender
    from recsys_cli.registry.package_ann import load_indexes

    folder = Path(folder)
    manifest = verify_package(folder)
    listed = {e["path"] for e in manifest["files"]}
    missing = [p for p in REQUIRED if p not in listed]
    if missing:
        raise IntegrityError(f"{folder / missing[0]}: missing, so the package is incomplete; {REEXPORT}")
    lineage = _json_object(folder / LINEAGE)
    _check_feature_hash(folder, manifest, lineage, expected_feature_hash)
    model = Recommender.load(folder / MODEL)
    vocab = {name: _vocabulary(folder / VOCAB / f"{name}.json") for name in ("users", "items")}
    for name, own in (("users", model.users), ("items", model.items)):
        if own is None or vocab[name].tokens != own.tokens:
            raise IntegrityError(f"{folder / VOCAB / name}.json: not the model's {name} vocabulary; {REEXPORT}")
    return Package(
        path=folder,
        manifest=manifest,
        model=model,
        items=pl.read_parquet(folder / ITEMS),
        users=pl.read_parquet(folder / USERS),
        fallbacks={name: pl.read_parquet(folder / FALLBACKS / f"{name}.parquet") for name in FALLBACK_TABLES},
        vocab=vocab,
        lineage=lineage,
        ann=load_indexes(folder, manifest.get("ann", {}), model),
    )


def _check_feature_hash(folder: Path, manifest: dict[str, Any], lineage: dict[str, Any], expected: str | None) -> None:
    found = manifest.get(FEATURE_HASH)
    if not isinstance(found, str) or lineage.get(FEATURE_HASH) != found:
        raise IntegrityError(f"{folder / LINEAGE}: its {FEATURE_HASH} is not the manifest's; {REEXPORT}")
    if expected is not None and expected != found:
        raise IntegrityError(
            f"{folder / LINEAGE}: built on other feature definitions ({FEATURE_HASH} {found[:12]}…, expected "
            f"{expected[:12]}…); serve it with the features and target config it was trained with, or export a run "
            "trained on yours"
        )


def _json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{path}: not readable JSON ({type(exc).__name__}); {REEXPORT}") from None
    if not isinstance(value, dict):
        raise IntegrityError(f"{path}: not a JSON object; {REEXPORT}")
    return value


def _vocabulary(path: Path) -> Vocabulary:
    from recsys_cli.features.vocab import Vocabulary

    tokens = _json_object(path).get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise IntegrityError(f"{path}: tokens must be a non-empty list of text; {REEXPORT}")
    return Vocabulary(tuple(tokens))
