"""Local mirrors of remote data folders, so the one-machine Polars engine runs
unchanged on local paths while `paths.data_dir` is an `s3://` URL.

A command names the config keys it reads and the one it writes. Each remote one
gets a folder in `paths.cache_dir` at a path made from its URL
(`<cache>/s3/<bucket>/<key>`, so two URLs overlap locally exactly when they
overlap remotely, and the local output rules still apply). A read folder is
fetched only when its stored manifest differs from the mirror's (same sha256:
the cache is reused), and every file is checked against the manifest's sha256
before the mirror is swapped in, so a partial upload or an edited file is refused
by name. The written folder is locked on the store for the whole command, built
locally by the command's own code, and published when the command succeeds
(`folder.RemoteFolder`): nothing is published when it fails.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf, open_dict

from recsys_cli.data.remote.folder import (
    RemoteFolder,
    integrity_error,
    manifest_problems,
    sha256_bytes,
)
from recsys_cli.errors import ConfigError, IntegrityError
from recsys_cli.registry.integrity import MANIFEST, sha256_file, verify_files
from recsys_cli.registry.outputs import FEATURES, LAKE, SPLIT, lock

# config key -> the kind of folder it names
KINDS = {"lake_dir": LAKE, "split_dir": SPLIT, "features_dir": FEATURES}
REMOTE = frozenset({"s3", "s3a"})
# paths keys that say where and how to reach the data, not what it is: left out of
# the configs recorded in manifests (and of ingest's fingerprint)
ACCESS_KEYS = ("cache_dir", "storage_options")

P = ParamSpec("P")
R = TypeVar("R")


def is_remote(path: Any) -> bool:
    """Whether a configured folder is an object-store URL (local paths have no scheme)."""
    text = str(path or "")
    return "://" in text and urlsplit(text).scheme not in ("", "file", "local")


def cache_root(cfg: DictConfig) -> Path:
    """`paths.cache_dir`, or the user's cache folder ($XDG_CACHE_HOME/recsys/data)."""
    given = cfg.get("paths", {}).get("cache_dir")
    if given:
        return Path(str(given)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recsys" / "data"


def mirror_path(cache: Path, url: str) -> Path:
    """The local mirror of `url`: the URL's parts under `cache`."""
    parts = urlsplit(url)
    if parts.scheme not in REMOTE:
        raise ConfigError(
            f"{url}: data folders live on a local disk or S3 (s3://, also S3-compatible stores through "
            f"paths.storage_options.endpoint_url); {parts.scheme}:// is not supported"
        )
    key = PurePosixPath(parts.netloc, parts.path.strip("/"))
    if not parts.netloc or len(key.parts) < 2 or any(p in ("", ".", "..") for p in key.parts):
        raise ConfigError(f"{url}: not a folder URL of the form s3://bucket/prefix")
    return cache / "s3" / key


def recorded(cfg: DictConfig) -> dict[str, Any]:
    """The config as manifests record it: resolved, without where the cache is or how
    the store is reached (`ACCESS_KEYS`), which say nothing about the data."""
    out = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    if isinstance(out.get("paths"), dict):
        out["paths"] = {k: v for k, v in out["paths"].items() if k not in ACCESS_KEYS}
    return out


@contextmanager
def mirrored(
    cfg: DictConfig, reads: Sequence[str] = (), writes: str | None = None, update: bool = False
) -> Iterator[DictConfig]:
    """`cfg` with each remote folder among `reads` and `writes` (config keys such as
    `lake_dir`) replaced by its verified local mirror; the `writes` folder is
    published to the store when the body returns. Local folders are left as they are.

    `update`: the command builds on the written folder's current version (ingest's
    no-op and `--append`), so its mirror is made to match the store first (emptied
    when the store holds none, or a damaged one the command then rebuilds).
    """
    remote = [k for k in (*reads, *([writes] if writes else [])) if is_remote(cfg.get(k))]
    if not remote:
        yield cfg
        return
    cache, options = cache_root(cfg), _options(cfg)
    local = {key: mirror_path(cache, str(cfg[key])) for key in remote}
    folders = {key: RemoteFolder(str(cfg[key]), options) for key in remote}
    with ExitStack() as stack:
        if writes in folders:
            out = folders[writes]
            out.check_bucket()
            out.claim(KINDS[writes])  # a wrong folder fails before any work...
            stack.enter_context(out.lock(KINDS[writes]))
            out.claim(KINDS[writes])  # ...and again under the lock
            if update:
                sync(out, local[writes], KINDS[writes], strict=False)
        for key in reads:
            if key in folders and key != writes:
                sync(folders[key], local[key], KINDS[key])
        yield _with_paths(cfg, {k: str(v) for k, v in local.items()})
        if writes in folders:
            _publish(folders[writes], local[writes], KINDS[writes])


def on_mirrors(reads: Sequence[str] = (), writes: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`mirrored` around a task's `run(cfg, ...)`: a one-line way for a task whose
    config is its first argument to read (and write) remote folders."""

    def wrap(run: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(run)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            cfg, rest = cast(DictConfig, args[0]), args[1:]
            with mirrored(cfg, reads, writes) as local:
                return run(*cast(Any, (local, *rest)), **kwargs)

        return inner

    return wrap


def sync(folder: RemoteFolder, mirror: Path, what: str, strict: bool = True) -> None:
    """Make `mirror` hold the folder's stored version, verified file by file; reuse it
    when its manifest is the stored one. `strict=False` (a folder about to be
    rewritten): no stored version, or a damaged one, leaves the mirror empty."""
    folder.check_bucket()
    stored = folder.manifest_bytes()
    if stored is None:
        if strict:
            raise folder_missing(folder.url, what)
        _clear(mirror)
        return
    if _up_to_date(mirror, stored):
        return
    with lock(mirror):
        try:
            _download(folder, mirror, stored, what)
        except IntegrityError:
            if strict:
                raise
            _clear(mirror)


def folder_missing(url: str, what: str) -> Exception:
    from recsys_cli.data.remote.folder import HINTS
    from recsys_cli.errors import LakeError

    cls = LakeError if what == LAKE else IntegrityError
    return cls(
        f"{url}: no {what} here (no {MANIFEST}: never written, or its upload did not finish); {HINTS[what]} first"
    )


def _download(folder: RemoteFolder, mirror: Path, stored: bytes, what: str) -> None:
    """Fetch every listed file into a staging folder, check it, then swap it in."""
    import json

    from recsys_cli.data.lake import publish

    try:
        manifest = json.loads(stored)
    except (UnicodeDecodeError, ValueError):
        manifest = None
    problems = manifest_problems(manifest, what)
    if problems:
        raise integrity_error(folder.url, what, problems)
    entries = manifest["outputs"]
    held = folder.objects()
    problems = [f"missing: {e.get('path')}" for e in entries if isinstance(e, dict) and e.get("path") not in held]
    if problems:
        raise integrity_error(folder.url, what, problems)
    mirror.parent.mkdir(parents=True, exist_ok=True)
    staging = mirror.parent / f".{mirror.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        try:
            folder.download(verified_entries(entries), staging)
        except FileNotFoundError:  # listed a moment ago: a writer is replacing the folder
            raise integrity_error(folder.url, what, ["a listed file vanished while it was fetched"]) from None
        problems = verify_files(staging, entries, full=True)
        if problems:
            raise integrity_error(folder.url, what, problems)
        (staging / MANIFEST).write_bytes(stored)
        publish(staging, mirror)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def verified_entries(entries: list[Any]) -> list[str]:
    """The relative paths a manifest lists, none of which may leave the folder."""
    out = []
    for entry in entries:
        rel = PurePosixPath(str(entry.get("path") if isinstance(entry, dict) else ""))
        if not rel.parts or rel.is_absolute() or ".." in rel.parts:
            raise AssertionError(f"unsafe path in a sealed manifest: {rel}")  # verify_files names it first
        out.append(rel.as_posix())
    return out


def _publish(folder: RemoteFolder, mirror: Path, what: str) -> None:
    """Publish the mirror unless the store already holds exactly it (a no-op run)."""
    if not (mirror / MANIFEST).is_file():
        return  # the command wrote nothing (it refused, or had nothing to do)
    stored = folder.manifest_bytes()
    if stored is not None and sha256_bytes(stored) == sha256_file(mirror / MANIFEST):
        return
    folder.publish(mirror, what)


def _up_to_date(mirror: Path, stored: bytes) -> bool:
    """The mirror holds the stored version: same manifest, its files still there with their sizes."""
    import json

    path = mirror / MANIFEST
    if not path.is_file() or sha256_file(path) != sha256_bytes(stored):
        return False
    return not verify_files(mirror, json.loads(stored).get("outputs"), full=False)


def _clear(mirror: Path) -> None:
    with lock(mirror):
        shutil.rmtree(mirror, ignore_errors=True)


def _options(cfg: DictConfig) -> Mapping[str, Any]:
    options = cfg.get("paths", {}).get("storage_options")
    return cast(dict[str, Any], OmegaConf.to_container(options, resolve=True)) if options else {}


def _with_paths(cfg: DictConfig, paths: dict[str, str]) -> DictConfig:
    out = cfg.copy()
    with open_dict(out):
        for key, value in paths.items():
            out[key] = value
    return out
