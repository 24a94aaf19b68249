"""The model registry: numbered versions of each model name, each a verified copy
of a package (`recsys export`), and aliases that point at them (aliases.py).

Layout under the registry's root (a local folder or `s3://bucket/prefix`)::

    registry.json                  marks the root as ours; nothing is written elsewhere
    <name>/claims/<n>.json         version n is taken (created exclusively, kept for good)
    <name>/versions/<n>/...        the package: manifest.json and every file it lists
    <name>/records/<n>.json        written last: version n exists for readers iff this does
    <name>/aliases/<alias>.json    an alias's target and history

A push verifies the package, claims the next number with an exclusive create
(`Storage.create`: `O_EXCL` locally, `If-None-Match: *` on S3; the loser of a race
takes the next number), uploads every file hashing the bytes it sends, and
publishes by writing the version's record last in one atomic write. A push that
dies midway leaves a claim and some files but no record: invisible to `list`,
`show` and `resolve`, its number never reused, its files removed by `gc` once
the claim is older than a day. Nothing relies on renaming, which object stores
cannot do atomically.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recsys_cli.errors import IntegrityError, RegistryError
from recsys_cli.registry import aliases
from recsys_cli.registry.fetch import local_copy
from recsys_cli.registry.integrity import MANIFEST, SEAL, check_seal
from recsys_cli.registry.package import verify_package
from recsys_cli.registry.storage import Storage, decode, encode, now, who

REGISTRY_FILE = "registry.json"
CLAIMS, VERSIONS, RECORDS = "claims", "versions", "records"
REGISTRY_KIND, CLAIM_KIND, VERSION_KIND = "registry", "registry-claim", "registry-version"
FORMAT_VERSION = 1
LATEST = "latest"  # the newest version; not an alias anyone can set
STALE_PUSH = timedelta(hours=24)  # an unpublished claim this old is an abandoned push
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_NUMBERED = re.compile(r"([1-9][0-9]{0,8})\.json")
_CLAIM_TRIES = 1000


@dataclass(frozen=True)
class Collected:
    """What `gc` removed (or, with dry_run, would remove) and why the rest stayed."""

    deleted: list[int]
    kept: list[int]
    aliased: list[int]
    abandoned: list[int] = field(default_factory=list)  # unpublished pushes whose files went


class Registry:
    """A registry at `uri`: a local folder or an `s3://` URL (any S3-compatible store
    through `storage_options`, e.g. `{"endpoint_url": ...}`)."""

    def __init__(self, uri: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.storage = Storage(uri, storage_options)
        self.uri = str(uri)

    # -- reading --------------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Model names with at least one published version."""
        if self._marker() is None:
            return []
        found = [n for n in self.storage.names(self.storage.root) if _NAME.fullmatch(n) and n != REGISTRY_FILE]
        return [n for n in found if self._numbers(n, RECORDS)]

    def versions(self, name: str) -> list[dict[str, Any]]:
        """The records of `name`'s published versions, oldest first."""
        self._require(name)
        return [self.record(name, n) for n in self._numbers(name, RECORDS)]

    def record(self, name: str, version: int) -> dict[str, Any]:
        """Version `version` of `name`'s record (metrics, lineage, who made it, when)."""
        where = self.storage.path(name, RECORDS, f"{int(version)}.json")
        data = self.storage.read(where)
        if data is None:
            known = ", ".join(map(str, self._numbers(name, RECORDS))) or "none"
            raise RegistryError(f"{name}: no version {version} in {self.uri} (versions: {known})")
        return decode(self.storage, where, data, VERSION_KIND, name=name, version=int(version))

    def aliases(self, name: str) -> dict[str, dict[str, Any]]:
        self._require(name)
        return aliases.read_all(self.storage, name)

    def version_of(self, name: str, ref: str | int) -> int:
        """The version a reference names: a number, an alias, or `latest`."""
        self._require(name)
        text = str(ref)
        if text.isdigit():
            return int(self.record(name, int(text))["version"])
        if text == LATEST:
            numbers = self._numbers(name, RECORDS)
            if not numbers:
                raise RegistryError(f"{name}: no version in {self.uri}")
            return numbers[-1]
        check_name(text, "alias")
        record = aliases.read(self.storage, name, text)
        if record is None:
            known = ", ".join(aliases.read_all(self.storage, name)) or "none"
            raise RegistryError(f"{name}: no version or alias {text!r} in {self.uri} (aliases: {known})")
        return int(record["version"])

    # -- changing -------------------------------------------------------------------------------------------

    def push(
        self, package_dir: Path | str, name: str | None = None, decision: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Add the package in `package_dir` as `name`'s next version (the manifest's
        `name` when not given) and return the version's record. The package is
        verified first; a version becomes visible only when all of it is uploaded.
        `decision` (JSON-ready: what `recsys retrain` decided and its evidence) is kept
        in the record, sealed with it, so the version carries why it was or was not
        promoted."""
        package_dir = Path(package_dir)
        manifest = verify_package(package_dir)
        name = name or manifest.get("name")
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{package_dir / MANIFEST}: names no model; give one (--name)")
        check_name(name, "model name")
        manifest_bytes = _same_manifest(package_dir, manifest)
        self._ensure_registry()
        version = self._claim(name)
        folder = self.storage.path(name, VERSIONS, str(version))
        try:
            for entry in manifest["files"]:
                target = posixpath.join(folder, entry["path"])
                self.storage.upload(package_dir / entry["path"], target, entry["sha256"], entry["bytes"])
            self.storage.put(posixpath.join(folder, MANIFEST), manifest_bytes)
            record = _version_record(name, version, manifest, len(manifest_bytes))
            if decision is not None:
                record["decision"] = dict(decision)
            self.storage.put(self.storage.path(name, RECORDS, f"{version}.json"), encode(record))  # publishes
        except BaseException:
            self._forget(folder)
            raise
        return self.record(name, version)

    def promote(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """Point `alias` at an existing version; returns the alias record."""
        check_alias(alias)
        self.record(name, version)
        return aliases.promote(self.storage, name, alias, int(version))

    def rollback(self, name: str, alias: str) -> dict[str, Any]:
        """Point `alias` back at its previous target; returns the alias record."""
        check_alias(alias)
        self._require(name)
        return aliases.rollback(self.storage, name, alias, lambda v: self.record(name, v))

    def delete(self, name: str, version: int) -> dict[str, Any]:
        """Remove a version no alias points at; returns its record. Its number is
        never given out again."""
        record = self.record(name, version)
        self._refuse_aliased(name, version)
        where = self.storage.path(name, RECORDS, f"{version}.json")
        self.storage.remove(where)  # unpublished from here on
        try:
            self._refuse_aliased(name, version)  # an alias set meanwhile keeps its version
        except RegistryError:
            self.storage.put(where, encode(record))
            raise
        self.storage.remove(self.storage.path(name, VERSIONS, str(version)))
        return record

    def gc(self, name: str, keep: int, dry_run: bool = False, stale_after: timedelta = STALE_PUSH) -> Collected:
        """Delete all but the newest `keep` versions no alias points at, and the files
        of pushes that never published whose claim is older than `stale_after`.
        Only versions this registry numbered are touched (their record or claim)."""
        if keep < 0:
            raise RegistryError(f"--keep: versions to keep must be >= 0, got {keep}")
        self._require(name)
        numbers = self._numbers(name, RECORDS)
        aliased = sorted({int(r["version"]) for r in aliases.read_all(self.storage, name).values()})
        free = [n for n in numbers if n not in aliased]
        drop = free[: max(len(free) - keep, 0)]
        abandoned = self._abandoned(name, set(numbers), stale_after)
        if not dry_run:
            for version in drop:
                self.delete(name, version)
            for version in abandoned:
                self.storage.remove(self.storage.path(name, VERSIONS, str(version)))
        kept = [n for n in free if n not in drop]
        return Collected(deleted=drop, kept=kept, aliased=aliased, abandoned=abandoned)

    # -- a local copy to serve ------------------------------------------------------------------------------

    def resolve(self, name: str, ref: str | int, cache_dir: Path | str | None = None) -> Path:
        """A local folder holding the verified package of `name` at `ref` (version,
        alias or `latest`). On a local registry that is the version's own folder; on
        a remote one, a copy in `cache_dir` (downloaded once, checked every time)."""
        version = self.version_of(name, ref)
        record = self.record(name, version)
        return local_copy(self.storage, self.storage.path(name, VERSIONS, str(version)), record, cache_dir)

    # -- internals ------------------------------------------------------------------------------------------

    def _numbers(self, name: str, kind: str) -> list[int]:
        entries = self.storage.names(self.storage.path(name, kind))
        return sorted(int(m.group(1)) for e in entries if (m := _NUMBERED.fullmatch(e)))

    def _marker(self) -> dict[str, Any] | None:
        where = self.storage.path(REGISTRY_FILE)
        data = self.storage.read(where)
        if data is None:
            return None
        return decode(self.storage, where, data, REGISTRY_KIND)

    def _require(self, name: str) -> None:
        check_name(name, "model name")
        if self._marker() is None:
            raise RegistryError(f"{self.uri}: no registry here (nothing was pushed to it)")

    def _ensure_registry(self) -> None:
        """Mark the root as a registry on first push; refuse a place that holds anything else."""
        if self._marker() is not None:
            return
        if self.storage.local and Path(self.storage.root).exists() and not Path(self.storage.root).is_dir():
            raise RegistryError(f"{self.uri}: a file, not a registry folder")
        others = set(self.storage.names(self.storage.root)) - {REGISTRY_FILE}  # the marker: a racing first push
        if others and self._marker() is None:
            raise RegistryError(
                f"{self.uri}: holds files but no {REGISTRY_FILE}, so it is not a recsys registry; "
                "choose an empty folder or prefix (registry.uri)"
            )
        if not others:
            marker = {"kind": REGISTRY_KIND, "format_version": FORMAT_VERSION, "created_at": now(), "created_by": who()}
            self.storage.create(self.storage.path(REGISTRY_FILE), encode(marker))  # or a racing first push made it
        if self._marker() is None:
            raise RegistryError(f"{self.uri}: could not create {REGISTRY_FILE}")

    def _claim(self, name: str) -> int:
        """The next version number, taken with an exclusive create: two pushes never share one."""
        claim = {"kind": CLAIM_KIND, "name": name, "claimed_at": now(), "by": who()}
        for _ in range(_CLAIM_TRIES):
            taken = self._numbers(name, CLAIMS) + self._numbers(name, RECORDS)
            version = max(taken, default=0) + 1
            if self.storage.create(
                self.storage.path(name, CLAIMS, f"{version}.json"), encode({**claim, "version": version})
            ):
                return version
        raise RegistryError(f"{name}: could not claim a version number in {_CLAIM_TRIES} tries")

    def _abandoned(self, name: str, published: set[int], stale_after: timedelta) -> list[int]:
        """Claimed numbers never published, claimed before `stale_after` ago, with files left."""
        found = []
        limit = datetime.now(UTC) - stale_after
        for version in self._numbers(name, CLAIMS):
            if version in published:
                continue
            where = self.storage.path(name, CLAIMS, f"{version}.json")
            data = self.storage.read(where)
            if data is None:
                continue
            claim = decode(self.storage, where, data, CLAIM_KIND, name=name, version=version)
            stale = datetime.fromisoformat(str(claim["claimed_at"])) <= limit
            if stale and self.storage.names(self.storage.path(name, VERSIONS, str(version))):
                found.append(version)
        return found

    def _refuse_aliased(self, name: str, version: int) -> None:
        pointing = sorted(a for a, r in aliases.read_all(self.storage, name).items() if int(r["version"]) == version)
        if pointing:
            raise RegistryError(
                f"{name} version {version}: alias {', '.join(pointing)} points at it; promote another version "
                f"first (`recsys registry promote {name} VERSION --alias {pointing[0]}`)"
            )

    def _forget(self, folder: str) -> None:
        """Best effort after a failed push: its files go, its claim stays (the number is spent)."""
        try:
            self.storage.remove(folder)
        except Exception:  # noqa: BLE001 - the push's own error is the one to report
            pass


# -- the Python API serving and `recsys export` call ------------------------------------------------------------


def push(
    uri: str, package_dir: Path | str, name: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Push the package in `package_dir` to the registry at `uri`; returns the new
    version's record (`record["version"]` is its number)."""
    return Registry(uri, storage_options).push(package_dir, name)


def resolve(
    uri: str,
    name: str,
    version_or_alias: str | int,
    cache_dir: Path | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """A local, verified copy of `name` at a version, alias or `latest`."""
    return Registry(uri, storage_options).resolve(name, version_or_alias, cache_dir)


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value == REGISTRY_FILE:
        raise RegistryError(
            f"{what} {value!r}: use letters, digits, '.', '_' and '-' (up to 100, starting with a letter or digit)"
        )
    return value


def check_alias(alias: str) -> str:
    check_name(alias, "alias")
    if alias.isdigit() or alias == LATEST:
        raise RegistryError(f"alias {alias!r}: a number or {LATEST!r} would hide a version; choose another name")
    return alias


def _same_manifest(package_dir: Path, manifest: dict[str, Any]) -> bytes:
    """The manifest's bytes as they will be uploaded, refused unless they are still
    the manifest just verified (a re-export in between would mix two packages)."""
    path = package_dir / MANIFEST
    data = path.read_bytes()
    try:
        again = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        again = None
    if not isinstance(again, dict) or again.get(SEAL) != manifest.get(SEAL):
        raise IntegrityError(f"{path}: changed while it was being pushed; the package changed after export")
    check_seal(again, path)
    return data


def _version_record(name: str, version: int, manifest: dict[str, Any], manifest_bytes: int) -> dict[str, Any]:
    files = manifest["files"]
    return {
        "kind": VERSION_KIND,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "created_at": now(),
        "created_by": who(),
        "source_commit": _find(manifest, "source_commit") or _find(manifest, "git_commit"),
        "model": _scalars(manifest.get("model"), "", 1),
        "package": {
            "manifest_sha256": manifest[SEAL],
            "format_version": manifest.get("format_version"),
            "files": len(files) + 1,
            "bytes": sum(int(e["bytes"]) for e in files) + manifest_bytes,
            "exported_at": manifest.get("created_at"),
            "recsys": manifest.get("recsys"),
        },
        "metrics": {k: v for k, v in _scalars(manifest.get("metrics"), "", 2).items() if _number(v)},
        "lineage": _scalars(manifest.get("lineage"), "", 3, skip=("config", "files", "versions")),
    }


def _find(node: Any, key: str, depth: int = 4) -> str | None:
    """The first string value of `key` anywhere in a nested manifest."""
    if depth < 0 or not isinstance(node, dict):
        return None
    if isinstance(node.get(key), str):
        return str(node[key])
    for value in node.values():
        found = _find(value, key, depth - 1)
        if found:
            return found
    return None


def _scalars(node: Any, prefix: str, depth: int, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The scalar leaves of a nested mapping as dotted keys (a summary, not the whole tree)."""
    out: dict[str, Any] = {}
    if not isinstance(node, dict):
        return out
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key in skip:
            continue
        if isinstance(value, dict) and depth > 1:
            out.update(_scalars(value, dotted, depth - 1, skip))
        elif value is None or isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 200):
            out[dotted] = value
        if len(out) >= 50:
            break
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
