"""The lake on disk: manifest, file digests and atomic publication.

A lake is a folder that is only ever replaced whole. A new version is built in a
sibling temporary folder (unchanged files hard-linked, not copied) and swapped
in with two renames; a crash at any point leaves either the old or the new
version, and `recover` finishes an interrupted swap.

Every folder written this way (lakes, splits, feature sets, evaluations, A/B
tests) goes through `staged_version`, which first claims the path for its kind
and locks it (`registry/outputs.py`): a folder that is not the same command's
output, or that overlaps an input, is never replaced, and two processes never
swap one folder at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recsys_cli.errors import LakeError
from recsys_cli.registry.outputs import KIND, owned

MANIFEST = "manifest.json"
_CHUNK = 1 << 22


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(lake: Path | str) -> dict[str, Any]:
    path = Path(lake) / MANIFEST
    if not path.is_file():
        raise LakeError(f"{lake}: not a lake (no {MANIFEST}); create one with `recsys ingest`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LakeError(f"{path}: unreadable manifest ({exc.msg} at line {exc.lineno})") from exc


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")  # unique: two writers never share one
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def _siblings(lake: Path, kind: str) -> list[Path]:
    """Our own staging folders of `lake` (`.<name>.<kind>-<8 hex>`), nothing else that looks alike."""
    own = re.compile(rf"\.{re.escape(lake.name)}\.{kind}-[0-9a-f]{{8}}")
    return sorted(p for p in lake.parent.glob(f".{lake.name}.{kind}-*") if own.fullmatch(p.name) and p.is_dir())


def recover(lake: Path) -> None:
    """Finish or undo a swap that a crash interrupted, and drop stale staging folders.

    Call it only under the output's lock (`staged_version` does): another process's
    staging folder is then never mistaken for a stale one.
    """
    lake = Path(lake).resolve()
    if not lake.exists():
        previous = _siblings(lake, "old")
        if previous:
            os.replace(previous[-1], lake)
    for stale in _siblings(lake, "old") + _siblings(lake, "tmp"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def staged_version(path: Path, kind: str, inputs: Iterable[Path | str | None] = ()) -> Iterator[Path]:
    """Yield an empty folder to build the next version of output `path` in; publish it on success.

    `path` must be free or hold a `kind` written by recsys, and overlap none of
    `inputs` (`registry.outputs.claim`); it stays locked until published. The new
    version's manifest.json must name `kind` (one naming only the kind is written
    when the body wrote none). On any exception the folder is deleted and the
    current version is untouched.
    """
    with owned(path, kind, inputs) as lake:
        lake.parent.mkdir(parents=True, exist_ok=True)
        recover(lake)
        tmp = lake.parent / f".{lake.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
            _stamp_kind(tmp, kind)
            publish(tmp, lake)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _stamp_kind(folder: Path, kind: str) -> None:
    path = folder / MANIFEST
    if not path.is_file():
        write_json(path, {KIND: kind})
        return
    written = json.loads(path.read_text()).get(KIND)
    if written != kind:  # a writer that forgot its kind: the next run could not claim the folder back
        raise AssertionError(f"{path}: manifest kind {written!r}, expected {kind!r}")


def publish(new: Path, lake: Path) -> None:
    old = lake.parent / f".{lake.name}.old-{uuid.uuid4().hex[:8]}"
    if lake.exists():
        os.replace(lake, old)
    os.replace(new, lake)
    shutil.rmtree(old, ignore_errors=True)


def link_tree(src: Path, dst: Path, skip: set[str] | None = None) -> None:
    """Reproduce `src` under `dst` with hard links, so the old files are not rewritten."""
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if skip and rel.parts[0] in skip:
            continue
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)


def file_digests(lake: Path) -> list[dict[str, Any]]:
    """sha256 and size of every data file, relative to the lake root."""
    out = []
    for path in sorted(p for p in lake.rglob("*") if p.is_file() and p.name != MANIFEST):
        out.append(
            {"path": path.relative_to(lake).as_posix(), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        )
    return out


def verify(lake: Path) -> list[str]:
    """Files whose content no longer matches the manifest (empty when the lake is intact)."""
    manifest = read_manifest(lake)
    problems = []
    listed = {entry["path"]: entry["sha256"] for entry in manifest.get("outputs", [])}
    for rel, digest in listed.items():
        path = lake / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif sha256_file(path) != digest:
            problems.append(f"changed: {rel}")
    for path in lake.rglob("*.parquet"):
        rel = path.relative_to(lake).as_posix()
        if rel not in listed:
            problems.append(f"unlisted: {rel}")
    return problems
