"""One output folder (lake, split, feature set) on an object store: its manifest is
the commit marker, a lock object keeps writers apart, and publication never shows
a reader half a folder.

The layout is the local one (`manifest.json` beside the data files at the same
relative paths), so Polars or Spark can also scan it directly. What differs is
how a version becomes visible, since an object store cannot rename a folder:

- **Commit marker.** A folder exists for readers only through its manifest, and
  readers fetch only the files it lists. Publication uploads every data file
  first and `put`s the manifest last (one PUT: whole or absent), then removes the
  objects the new manifest no longer lists. A crash before the manifest leaves
  the previous version's manifest, whose files no longer match it: readers
  refuse it by sha256 (never read it as valid), and the next run replaces it.
- **Ownership.** A folder is replaced only when its manifest names the kind we
  write (`registry/outputs.py`'s rule), or when the marker `.recsys-publishing.json`
  says an earlier publication of that kind was cut short before its first
  manifest. Anything else under the URL is someone else's: refused by name.
- **One writer.** `.<name>.lock` beside the folder, made with `Storage.create`
  (`If-None-Match: *`): of two writers exactly one creates it; the other waits up
  to `$RECSYS_LOCK_TIMEOUT` s and then stops with a line naming the holder. A
  holder that died leaves its lock: the message names the object to delete.

The Spark engine, which writes its data files to the store itself, reuses this
through `lock`, `claim` and `commit` (manifest last, then the superseded files).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recsys_cli.errors import IntegrityError, OutputError, RecsysError
from recsys_cli.registry.integrity import MANIFEST, SEAL, canonical_digest
from recsys_cli.registry.outputs import KIND, lock_timeout, manifest_kind
from recsys_cli.registry.storage import Storage, now, who

PUBLISHING = ".recsys-publishing.json"  # an unfinished first publication: whose folder it is
_POLL_S = 0.5
HINTS = {
    "lake": "run `recsys ingest` with the same overrides",
    "split": "run `recsys split` with the same overrides",
    "features": "run `recsys features` with the same overrides",
}


class RemoteStoreError(RecsysError):
    """An object store that cannot be reached or used as configured (no such bucket, no credentials)."""


class RemoteFolder:
    """The output folder at `url` (`s3://bucket/prefix/...`)."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        try:
            self.storage = Storage(self.url, storage_options)
        except RecsysError as exc:  # the registry's wording names registry.uri
            raise RemoteStoreError(f"{self.url}: {str(exc).split(': ', 1)[-1]}") from None
        if self.storage.local:
            raise ValueError(f"{url}: a local path, not an object store URL")
        self.root = self.storage.root
        parent, name = posixpath.split(self.root)
        self.lock_path = posixpath.join(parent, f".{name}.lock")

    # -- reading --------------------------------------------------------------------------------------------

    def manifest_bytes(self) -> bytes | None:
        """The manifest as stored, None when the folder has none (it does not exist for readers)."""
        return self._call(self.storage.read, self._at(MANIFEST))

    def objects(self) -> dict[str, int]:
        """Every object under the folder: relative path -> size."""
        fs = self.storage.fs
        self._call(fs.invalidate_cache, self.root)
        found = self._call(lambda: fs.find(self.root, detail=True))
        prefix = self.root + "/"
        return {p[len(prefix) :]: int(i.get("size") or 0) for p, i in found.items() if p.startswith(prefix)}

    def check_bucket(self) -> None:
        """Refuse a bucket that does not exist, which reads would take for an empty folder."""
        bucket = self.root.split("/", 1)[0]
        try:
            self._call(self.storage.fs.info, bucket)
        except FileNotFoundError:
            raise RemoteStoreError(f"{self.url}: no such bucket s3://{bucket} (or no permission to see it)") from None

    def download(self, rels: list[str], target: Path) -> None:
        """Copy the objects at `rels` under `target`, concurrently (s3fs batches the
        requests): a folder of many day partitions is not fetched one file at a time."""
        if not rels:
            return
        for rel in rels:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
        self._call(self.storage.fs.get, [self._at(rel) for rel in rels], [str(target / rel) for rel in rels])

    # -- ownership and the writer's lock ---------------------------------------------------------------------

    def claim(self, kind: str) -> None:
        """Refuse, with one line, a folder that holds anything but our own `kind` (see the module docstring)."""
        held = self.objects()
        if not held:
            return
        manifest = _json(self.manifest_bytes())
        if manifest_kind(manifest) == kind:
            return
        pending = _json(self._call(self.storage.read, self._at(PUBLISHING)))
        if MANIFEST not in held and pending is not None and pending.get(KIND) == kind:
            return
        if manifest is not None:
            what = f"its {MANIFEST} names {manifest_kind(manifest)!r}"
        elif MANIFEST in held:
            what = f"its {MANIFEST} is unreadable; delete the folder yourself if it is a damaged output"
        else:
            what = f"no {MANIFEST}"
        raise OutputError(
            f"{self.url}: refusing to replace this folder (not {_a(kind)} written by recsys: {what}); "
            "choose a new or empty folder"
        )

    @contextmanager
    def lock(self, kind: str, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the folder's lock object while the body runs (see the module docstring)."""
        timeout = lock_timeout() if timeout_s is None else timeout_s
        record = json.dumps({KIND: kind, "since": now(), "pid": os.getpid(), "id": uuid.uuid4().hex, **who()})
        deadline, waiting = time.monotonic() + timeout, False
        while not self._call(self.storage.create, self.lock_path, record.encode()):
            if time.monotonic() >= deadline:
                raise OutputError(
                    f"{self.url}: another recsys process ({self._holder()}) is writing it; gave up after "
                    f"{timeout:g} s ($RECSYS_LOCK_TIMEOUT); if none is, delete s3://{self.lock_path}"
                )
            if not waiting:
                _say(f"{self.url}: waiting for {self._holder()}, which is writing it (up to {timeout:g} s)")
                waiting = True
            time.sleep(_POLL_S)
        try:
            yield
        finally:
            # Only our own: a lock deleted by hand as stale may be another writer's by now.
            if self._call(self.storage.read, self.lock_path) == record.encode():
                self._call(self.storage.remove, self.lock_path)

    # -- writing (under the lock) ----------------------------------------------------------------------------

    def publish(self, local: Path, kind: str) -> None:
        """Make the local folder `local` (sealed, its manifest listing every file) the
        folder's new version: files first, manifest last, then the superseded files."""
        manifest = (local / MANIFEST).read_bytes()
        entries = json.loads(manifest).get("outputs")
        if not isinstance(entries, list):
            raise AssertionError(f"{local / MANIFEST}: lists no files; only sealed folders are published")
        self.claim(kind)
        stored = _json(self.manifest_bytes())
        if stored is None:
            self._call(self.storage.put, self._at(PUBLISHING), json.dumps({KIND: kind, **who()}).encode())
        for entry in self._changed(entries, stored):
            rel = entry["path"]
            self._call(self.storage.upload, local / rel, self._at(rel), entry["sha256"], entry["bytes"])
        self.commit(manifest, {e["path"] for e in entries})

    def _changed(self, entries: list[dict[str, Any]], stored: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The files to upload: all but those the stored manifest lists with the same
        sha256 and that are stored at their size (an appended lake sends its new days only)."""
        listed = stored.get("outputs") if stored else None
        if not isinstance(listed, list):
            return entries
        before = {e.get("path"): e.get("sha256") for e in listed if isinstance(e, dict)}
        sizes = self.objects()
        return [e for e in entries if before.get(e["path"]) != e["sha256"] or sizes.get(e["path"]) != e["bytes"]]

    def commit(self, manifest: bytes, listed: set[str]) -> None:
        """Put `manifest` (the data files it lists, `listed`, are already in place),
        then remove every object it does not list and the publishing marker."""
        self._call(self.storage.put, self._at(MANIFEST), manifest)
        for rel in sorted(set(self.objects()) - listed - {MANIFEST, PUBLISHING}):
            self._call(self.storage.remove, self._at(rel))
        self._call(self.storage.remove, self._at(PUBLISHING))

    # -- helpers ---------------------------------------------------------------------------------------------

    def _at(self, rel: str) -> str:
        return self.storage.path(rel)

    def _holder(self) -> str:
        record = _json(self._call(self.storage.read, self.lock_path)) or {}
        if not record:
            return "one that has just finished"
        return f"{record.get('user', '?')}@{record.get('host', '?')} since {record.get('since', '?')}"

    def _call(self, method: Any, *args: Any) -> Any:
        """The registry's store errors, reported as this folder's (`RegistryError` names the registry)."""
        from recsys_cli.errors import RegistryError

        try:
            return method(*args)
        except RegistryError as exc:
            raise RemoteStoreError(str(exc)) from exc
        except FileNotFoundError:
            raise
        except Exception as exc:
            if not (isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore")):
                raise
            lines = str(exc).strip().splitlines()
            raise RemoteStoreError(f"{self.url}: {type(exc).__name__}: {lines[0] if lines else ''}") from exc


def manifest_problems(manifest: Any, what: str) -> list[str]:
    """Why a stored manifest cannot be trusted as a `what` (empty when it can): not a
    sealed manifest of that kind, edited after sealing, or listing no files."""
    if not isinstance(manifest, dict):
        return [f"{MANIFEST} is not a JSON object"]
    if manifest_kind(manifest) != what:
        return [f"its {MANIFEST} is not a {what} manifest (kind {manifest_kind(manifest)!r})"]
    if not isinstance(manifest.get(SEAL), str):
        return [f"{MANIFEST} has no {SEAL} (written by an older recsys)"]
    if manifest[SEAL] != canonical_digest(manifest):
        return [f"{MANIFEST} was edited after it was written ({SEAL} does not match)"]
    if not isinstance(manifest.get("outputs"), list):
        return [f"{MANIFEST} lists no files"]
    return []


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _say(line: str) -> None:
    from recsys_cli.console import err_console

    err_console.print(line, highlight=False, soft_wrap=True, markup=False)


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def integrity_error(url: str, what: str, problems: list[str]) -> IntegrityError:
    """One line naming the remote folder and its first problem."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return IntegrityError(
        f"{url}: damaged {what}: {problems[0]}{more} (a partial upload or an edit after it was written); "
        f"{HINTS.get(what, 'write it again')}"
    )
