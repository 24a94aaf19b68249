"""A local, verified copy of a registry version, for serving to load.

On a local registry the version's own folder is used in place. From a remote
one the package is downloaded into a cache folder under a temporary hidden
name, every file is verified against the manifest the version's record pins,
and only then is the folder renamed into place (a local rename, atomic). A
cached copy is verified again at every call and fetched again when damaged, so
a package is never trusted because it was once downloaded.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from recsys_cli.errors import IntegrityError
from recsys_cli.registry.integrity import MANIFEST, SEAL
from recsys_cli.registry.package import read_manifest, verify_package
from recsys_cli.registry.storage import Storage


def local_copy(storage: Storage, folder: str, record: dict[str, Any], cache_dir: Path | str | None) -> Path:
    """The verified package stored at `folder` (the version `record` describes) as a local folder."""
    if storage.local:
        return checked(Path(folder), record)
    target = Path(cache_dir or default_cache_dir()) / _cache_key(storage.uri) / record["name"] / str(record["version"])
    if target.is_dir():
        try:
            return checked(target, record)
        except IntegrityError:
            shutil.rmtree(target)  # a damaged copy: fetch it again
    return _download(storage, folder, record, target)


def default_cache_dir() -> Path:
    """Where packages of remote registries are copied: $XDG_CACHE_HOME/recsys/registry."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recsys" / "registry"


def checked(folder: Path, record: dict[str, Any]) -> Path:
    """`folder` after verifying every file and that it is the package the record pins."""
    _pinned(verify_package(folder), record, folder)
    return folder


def _download(storage: Storage, folder: str, record: dict[str, Any], target: Path) -> Path:
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        storage.download(posixpath.join(folder, MANIFEST), tmp / MANIFEST)
        manifest = read_manifest(tmp)
        _pinned(manifest, record, tmp)
        for entry in manifest["files"]:
            storage.download(posixpath.join(folder, _inside(entry, tmp)), tmp / entry["path"])
        checked(tmp, record)
        try:
            os.rename(tmp, target)
        except OSError:  # another process put its copy there first
            shutil.rmtree(tmp)
            return checked(target, record)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def _cache_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def _pinned(manifest: dict[str, Any], record: dict[str, Any], folder: Path) -> None:
    if manifest.get(SEAL) != record["package"]["manifest_sha256"]:
        raise IntegrityError(
            f"{folder / MANIFEST}: not the package {record['name']} version {record['version']} was pushed with "
            "(its manifest_sha256 differs from the registry's record)"
        )


def _inside(entry: Any, folder: Path) -> str:
    """A listed file's path, refused before anything is written if it would land outside the package."""
    rel = PurePosixPath(str(entry.get("path", ""))) if isinstance(entry, dict) else PurePosixPath("")
    if not rel.parts or rel.is_absolute() or ".." in rel.parts:
        raise IntegrityError(f"{folder / MANIFEST}: lists a file outside the package ({str(rel)!r})")
    return rel.as_posix()
