"""The few operations the registry needs from a file system, on a local folder and
on S3 (or an S3-compatible store) through fsspec, with the same calls.

Object stores cannot rename, so nothing here relies on a rename being atomic
there. What the registry's guarantees rest on is two primitives, each atomic on
both kinds of store:

- `create`: write a small object only if nothing is at its path (local: the
  bytes go to a temporary file first, then `os.link` gives it the name, which
  fails when the name exists, so a reader never finds it empty or half written;
  S3: a PUT with `If-None-Match: *`, refused with 412 when the key exists).
  Exactly one of two racing writers wins.
- `replace_if`: replace a small object only if it is still the version read
  before (S3: a PUT with `If-Match: <ETag>`; local: under an exclusive `flock`,
  compare the content's sha256, write a temporary file and `os.replace` it).

Plus `put`, which readers see whole or not at all (one S3 PUT is atomic; locally
a temporary file and `os.replace`). A local temporary file is never listed by
`names`: it is a writer's, not an entry yet. Other fsspec stores (GCS, Azure, ...) are
refused with one line rather than run without these guarantees.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import posixpath
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from recsys_cli.errors import ConfigError, IntegrityError, RecsysError, RegistryError
from recsys_cli.registry.integrity import check_seal, seal

LOCAL = frozenset({"file", "local"})
S3 = frozenset({"s3", "s3a"})
_CHUNK = 1 << 22
# A local writer's temporary file beside its target: `<name>.tmp-<12 hex digits>`.
_TEMPORARY = re.compile(r".+\.tmp-[0-9a-f]{12}")


F = TypeVar("F", bound=Callable[..., Any])


def _reported(method: F) -> F:
    """A store that cannot be reached or written (no such bucket, no credentials, no
    permission, a full disk) is one line naming the path, not a traceback."""

    @functools.wraps(method)
    def wrapper(self: Storage, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except RecsysError:
            raise
        except Exception as exc:
            if not (isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore")):
                raise
            path = next((a for a in args if isinstance(a, str)), self.root)
            lines = str(exc).strip().splitlines()
            raise RegistryError(f"{self.where(path)}: {type(exc).__name__}: {lines[0] if lines else ''}") from exc

    return wrapper  # type: ignore[return-value]


class Storage:
    """One registry root (a local folder or an `s3://bucket/prefix` URL)."""

    def __init__(self, uri: str, storage_options: Mapping[str, Any] | None = None) -> None:
        import fsspec

        if not str(uri).strip():
            raise ConfigError("registry.uri: empty; name a folder or an s3:// URL")
        try:
            self.fs, root = fsspec.core.url_to_fs(str(uri), **dict(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"registry.uri = {uri!r}: {str(exc).splitlines()[0]}") from None
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self.local = bool(protocols & LOCAL)
        if not self.local and not protocols & S3:
            raise ConfigError(
                f"registry.uri = {uri!r}: the registry runs on a local folder or S3 (s3://, also S3-compatible "
                f"stores through registry.storage_options.endpoint_url); {sorted(protocols)[0]}:// has no "
                "conditional write it can rely on"
            )
        self.uri = str(uri)
        self.root = root.rstrip("/")

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def where(self, path: str) -> str:
        """`path` as a user would write it (the URL for a remote store)."""
        return path if self.local else f"s3://{path}"

    # -- reading --------------------------------------------------------------------------------------------

    @_reported
    def read(self, path: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        self._fresh(path)
        try:
            return bytes(self.fs.cat_file(path))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    @_reported
    def names(self, folder: str) -> list[str]:
        """Base names of the entries directly under `folder`; none when it does not exist."""
        self._fresh(folder)
        try:
            entries = self.fs.ls(folder, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = {posixpath.basename(str(e).rstrip("/")) for e in entries} - {""}
        return sorted(n for n in names if not (self.local and _TEMPORARY.fullmatch(n)))

    @_reported
    def read_versioned(self, path: str) -> tuple[bytes | None, str | None]:
        """The object and a token for `replace_if` (S3: its ETag, read before the body
        so that a change in between makes the later conditional write fail)."""
        if self.local:
            data = self.read(path)
            return data, None if data is None else hashlib.sha256(data).hexdigest()
        self._fresh(path)
        try:
            etag = str(self.fs.info(path)["ETag"])
        except FileNotFoundError:
            return None, None
        data = self.read(path)
        return (data, etag) if data is not None else (None, None)

    # -- writing --------------------------------------------------------------------------------------------

    @_reported
    def create(self, path: str, data: bytes) -> bool:
        """Write `data` at `path` only if nothing is there; False when something is."""
        self._parent(path)
        try:
            if self.local:
                # Not open(path, "xb"): between that open and the write, a racing
                # reader found the file empty and took it for a damaged record.
                tmp = _write_temporary(path, data)
                try:
                    os.link(tmp, path)  # atomic, and refused when the name exists
                finally:
                    os.unlink(tmp)
            else:
                self.fs.pipe_file(path, data, mode="create")  # If-None-Match: *
        except FileExistsError:
            return False
        finally:
            self._fresh(path)
        return True

    @_reported
    def put(self, path: str, data: bytes) -> None:
        """Write `data` at `path` so that a reader sees the old object or the new one, whole."""
        self._parent(path)
        if self.local:
            os.replace(_write_temporary(path, data), path)
        else:
            self.fs.pipe_file(path, data)  # one PUT: S3 never shows a partial object
        self._fresh(path)

    @_reported
    def replace_if(self, path: str, data: bytes, token: str | None) -> bool:
        """Write `data` at `path` if it still holds what `read_versioned` saw (`token`;
        None: nothing was there). False, and nothing written, when it changed since."""
        if not self.local:
            return self._replace_if_s3(path, data, token)
        from recsys_cli.registry.outputs import lock

        self._parent(path)
        with lock(path):
            current, now = self.read_versioned(path)
            if now != token:
                return False
            self.put(path, data)
        return True

    def _replace_if_s3(self, path: str, data: bytes, token: str | None) -> bool:
        if token is None:
            return self.create(path, data)
        try:
            self.fs.pipe_file(path, data, IfMatch=token)
        except FileNotFoundError:  # removed since it was read
            return False
        except OSError as exc:
            if _precondition_failed(exc):
                return False
            raise
        finally:
            self._fresh(path)
        return True

    @_reported
    def upload(self, source: Path, path: str, sha256: str, size: int) -> None:
        """Copy a local file to `path`, hashing the bytes as they are sent: a file
        changed after the package was verified is refused, never published."""
        self._parent(path)
        digest, sent = hashlib.sha256(), 0
        with open(source, "rb") as src, self.fs.open(path, "wb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                sent += len(chunk)
                dst.write(chunk)
        if sent != size or digest.hexdigest() != sha256:
            raise IntegrityError(f"{source}: changed while it was being pushed; the package changed after export")

    @_reported
    def download(self, path: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.fs.get_file(path, str(target))

    @_reported
    def remove(self, path: str) -> None:
        """Remove a file or a folder with everything under it; nothing when absent."""
        self._fresh(path)
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        self._fresh(path)

    def _parent(self, path: str) -> None:
        if self.local:
            os.makedirs(posixpath.dirname(path), exist_ok=True)

    def _fresh(self, path: str) -> None:
        """Forget cached listings: another process may have changed the store."""
        self.fs.invalidate_cache(path)


def _precondition_failed(exc: OSError) -> bool:
    """s3fs turns a failed `If-Match` (HTTP 412) into `OSError(EINVAL)`; the original
    response is its cause."""
    response = getattr(exc.__cause__, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412")
    return exc.errno == errno.EINVAL and "pre-condition" in str(exc)


# -- the registry's small JSON records ---------------------------------------------------------------------------


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def who() -> dict[str, str]:
    """Who and what made a change: the user, the machine and this recsys."""
    import getpass
    import socket

    from recsys_cli import __version__

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = "unknown"
    return {"user": user, "host": socket.gethostname(), "recsys": __version__}


def encode(payload: Mapping[str, Any]) -> bytes:
    """A record as written: sealed (`manifest_sha256` over its canonical JSON), so an
    edited or damaged record is noticed when read."""
    return (json.dumps(seal(payload), indent=2, default=str) + "\n").encode()


def decode(storage: Storage, path: str, data: bytes, kind: str, **expected: Any) -> dict[str, Any]:
    """A record read back, refused as one line naming it unless it parses, is of
    `kind`, matches its seal and holds the `expected` values (its name, version...)
    that its place in the registry implies."""
    where = storage.where(path)
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IntegrityError(f"{where}: not readable JSON; the registry record is damaged") from None
    if not isinstance(record, dict) or record.get("kind") != kind:
        raise IntegrityError(f"{where}: not a {kind} record written by recsys")
    check_seal(record, where, hint="the registry record was edited or damaged")
    for key, value in expected.items():
        if record.get(key) != value:
            raise IntegrityError(f"{where}: records {key} {record.get(key)!r}, but its place says {value!r}")
    return record


def _write_temporary(path: str, data: bytes) -> str:
    """`data` in a new file beside `path` (same folder, so a link or rename to `path`
    stays on one file system), flushed to disk; returns its path."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    with open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp
