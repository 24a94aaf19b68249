"""Integrity records for folders we write: sha256 and size of every file, and a
digest of the manifest's own content.

A manifest that lists file hashes protects the files but not itself: editing
its row counts, or a hash together with the file, would pass a check of the
files alone. So a sealed manifest carries `manifest_sha256`, the sha256 of its
canonical JSON without that key. The seal is not a signature (anyone can
recompute it); it catches accidental damage and naive edits, which is what a
folder on a shared disk meets. Used by run folders and by the lake manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from recsys_cli.errors import IntegrityError

MANIFEST = "manifest.json"
SEAL = "manifest_sha256"
_CHUNK = 1 << 22


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write `payload` as JSON under a temporary name and rename it into place: a
    reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")  # unique: two writers never share one
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def read_json_object(path: Path, remedy: str, missing: str = "missing") -> dict[str, Any]:
    """The JSON object in `path`, or one `IntegrityError` line naming it and saying
    how to get a good one again (`remedy`: "retrain the run", "export the run again")."""
    try:
        payload = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise IntegrityError(f"{path}: {missing}; {remedy}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{path}: not readable JSON ({type(exc).__name__}); {remedy}") from None
    if not isinstance(payload, dict):
        raise IntegrityError(f"{path}: must hold a JSON object; {remedy}")
    return payload


def file_entries(folder: Path, skip: Iterable[str] = (MANIFEST,)) -> list[dict[str, Any]]:
    """`{"path", "bytes", "sha256"}` of every file under `folder` (posix paths relative
    to it, sorted), leaving out the top-level names in `skip` (the manifest itself)."""
    skipped = set(skip)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[0] not in skipped)
    return [
        {"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files
    ]


def canonical_digest(payload: Mapping[str, Any]) -> str:
    """sha256 of the payload's canonical JSON (sorted keys, no spaces), without the seal.

    `default=str` matches how manifests are written, so a value JSON cannot hold
    (a datetime) digests the same before and after a round trip through the file."""
    body = {k: v for k, v in payload.items() if k != SEAL}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `payload` with `manifest_sha256` set to the digest of the rest."""
    return {**{k: v for k, v in payload.items() if k != SEAL}, SEAL: canonical_digest(payload)}


def check_seal(payload: Mapping[str, Any], path: Path | str, hint: str = "") -> None:
    """Refuse a manifest without a seal or whose content no longer matches its seal.

    `hint` says how to get a good folder again (re-run the command that wrote it)."""
    tail = f"; {hint}" if hint else ""
    found = payload.get(SEAL)
    if not isinstance(found, str):
        raise IntegrityError(f"{path}: no {SEAL} (written by an older version, or not by recsys){tail}")
    if found != canonical_digest(payload):
        raise IntegrityError(f"{path}: the manifest was changed after it was written ({SEAL} does not match){tail}")


def verify_files(folder: Path, entries: object, full: bool) -> list[str]:
    """Problems with the files a manifest lists, empty when all match.

    Cheap check (`full=False`): every listed file exists with its recorded size.
    Full check: its sha256 too. Files not listed are not looked at (see `unlisted`)."""
    if not isinstance(entries, list):
        return ["the manifest's file list is not a list"]
    problems: list[str] = []
    for i, entry in enumerate(entries):
        problem = _entry_problem(folder, entry, i, full)
        if problem:
            problems.append(problem)
    return problems


def unlisted(
    folder: Path, entries: list[dict[str, Any]], pattern: str = "*", skip: Iterable[str] = (MANIFEST,)
) -> list[str]:
    """Files under `folder` matching `pattern` that the manifest does not list (an extra
    or duplicated part file), as posix paths relative to the folder."""
    listed = {str(e.get("path")) for e in entries if isinstance(e, dict)}
    skipped = set(skip)
    found = (p.relative_to(folder) for p in folder.rglob(pattern) if p.is_file())
    return sorted(r.as_posix() for r in found if r.parts[0] not in skipped and r.as_posix() not in listed)


def _entry_problem(folder: Path, entry: object, index: int, full: bool) -> str | None:
    if not isinstance(entry, dict) or not _well_formed(entry):
        return f"file entry {index}: not a {{path, bytes, sha256}} record"
    rel = PurePosixPath(entry["path"])
    if rel.is_absolute() or ".." in rel.parts:
        return f"file entry {index}: path outside the folder"
    path = folder / rel
    if not path.is_file():
        return f"missing: {rel}"
    if path.stat().st_size != entry["bytes"]:
        return f"changed size: {rel}"
    if full and sha256_file(path) != entry["sha256"]:
        return f"changed content: {rel}"
    return None


def _well_formed(entry: dict[str, Any]) -> bool:
    return (
        isinstance(entry.get("path"), str)
        and bool(entry["path"])
        and isinstance(entry.get("bytes"), int)
        and not isinstance(entry.get("bytes"), bool)
        and isinstance(entry.get("sha256"), str)
    )
