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
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsys_cli import __version__
from recsys_cli.errors import IntegrityError
from recsys_cli.registry.integrity import MANIFEST, check_seal, file_entries, seal, unlisted, verify_files

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
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(sealed, indent=2, default=str) + "\n")
    os.replace(tmp, folder / MANIFEST)
    return sealed


def read_manifest(folder: Path) -> dict[str, Any]:
    """The package's manifest after checking its kind, format version and seal (not
    the files: see `verify_package`)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise IntegrityError(f"{folder}: no such package folder")
    if not path.is_file():
        raise IntegrityError(f"{path}: missing, so the package cannot be checked; {REEXPORT}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{path}: not readable JSON ({type(exc).__name__}); {REEXPORT}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
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
