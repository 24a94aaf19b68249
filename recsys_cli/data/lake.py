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

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_cli.errors import IntegrityError, LakeError, RecsysError
from recsys_cli.registry.integrity import (
    MANIFEST,
    SEAL,
    canonical_digest,
    file_entries,
    seal,
    unlisted,
    verify_files,
    write_json,
)
from recsys_cli.registry.outputs import KIND, manifest_kind, owned

if TYPE_CHECKING:
    import polars as pl


def read_manifest(lake: Path | str) -> dict[str, Any]:
    path = Path(lake) / MANIFEST
    if not path.is_file():
        raise LakeError(f"{lake}: not a lake (no {MANIFEST}); create one with `recsys ingest`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LakeError(f"{path}: unreadable manifest ({exc.msg} at line {exc.lineno}); {_UNREADABLE}") from exc
    except UnicodeDecodeError as exc:
        raise LakeError(f"{path}: unreadable manifest (not UTF-8 text); {_UNREADABLE}") from exc
    if not isinstance(manifest, dict):
        raise LakeError(f"{path}: not a lake manifest (not a JSON object); {_UNREADABLE}")
    return manifest


# Without a readable manifest a folder cannot be shown to be a lake, so ingest will
# not replace it (registry/outputs.py): the user removes it.
_UNREADABLE = "nothing in the lake can be trusted: delete the folder and run `recsys ingest` again"


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
    return file_entries(lake)


def verify(lake: Path) -> list[str]:
    """Every way the lake no longer matches its manifest, files re-hashed (empty when intact)."""
    return folder_problems(lake, read_manifest(lake), full=True)


# Integrity on read ---------------------------------------------------------------
#
# Every command that reads a lake, a split or a feature folder opens it through
# `open_lake` / `open_output`, which compare the folder with its manifest before
# anything is scanned, and reads inside `decoding`, which names the file when one
# still fails to decode.

SEALED_FORMAT = 2  # lakes, splits and feature folders carry manifest_sha256 from this format on
HINTS = {
    "lake": "run `recsys ingest` again to repair it, or `recsys lake describe --verify` to list every problem",
    "split": "run `recsys split` again with the same overrides",
    "features": "run `recsys features` again with the same overrides",
}


def open_lake(lake: Path | str, full: bool = True) -> dict[str, Any]:
    """The manifest of a lake whose files still match it: how every command opens a lake.

    Every file the manifest lists is there with its recorded size and sha256, no
    Parquet file is there that it does not list (a duplicated part file would be read
    twice), and the manifest's own content matches its `manifest_sha256` (edited row
    counts). Re-hashing is the default (`full`): a flipped byte that keeps the size
    can still decode, to other values (seen in 4 of 60 flips of one part file), and
    sha256 at ~0.7 GB/s costs little beside the scans that follow. `full=False`
    (`--no-verify`) keeps the names+sizes check for lakes too large to re-read.

    Lakes written before manifests were sealed (format 1) have no digest. They are
    read with the names+sizes check only, not refused: their raw inputs may be gone,
    and the file list still catches lost and added files. `recsys lake describe`
    says such a manifest is unsealed, and the next `recsys ingest` rewrites it sealed
    (the format is part of the ingest fingerprint). A manifest of format 2 or later
    without a digest is refused: the digest was removed.
    """
    return open_output(lake, "lake", full)


def open_output(folder: Path | str, what: str, full: bool = True) -> dict[str, Any]:
    """The manifest of a lake, split or feature folder (`what`) checked as `open_lake` says.

    Split and feature folders written before this check have neither a digest nor
    a file list and are read as they are; rerunning the command seals them.
    """
    path = Path(folder)
    manifest = read_manifest(path) if what == "lake" else _read_output_manifest(path, what)
    check_kind(path, manifest, what)
    problems = folder_problems(path, manifest, full)
    if problems:
        raise damaged(path, what, problems)
    return manifest


def check_kind(folder: Path, manifest: dict[str, Any], what: str) -> None:
    """Refuse a manifest that is not a `what` manifest (another output's, or one emptied
    down to `{}`): its file list would prove nothing about the data read next. An older
    lake manifest counts only with its file list, which every lake manifest has had."""
    found = manifest_kind(manifest)
    if found == what and not (what == "lake" and is_legacy(manifest) and "outputs" not in manifest):
        return
    cls = LakeError if what == "lake" else IntegrityError
    held = f"its kind is {found!r}" if found else "it names no kind of recsys output"
    raise cls(f"{folder}: not a {what} (its {MANIFEST}: {held}); {HINTS[what]}")


def folder_problems(folder: Path, manifest: dict[str, Any], full: bool) -> list[str]:
    """What no longer matches between a folder and its manifest, the manifest's own
    seal first (an edited manifest makes its file list untrustworthy too)."""
    if not isinstance(manifest, dict):
        return [f"{MANIFEST} is not a JSON object"]
    problems = _seal_problems(manifest)
    if "outputs" not in manifest and is_legacy(manifest):
        return problems
    entries = manifest.get("outputs")
    problems += verify_files(folder, entries, full)
    if isinstance(entries, list):
        problems += [f"unlisted: {rel}" for rel in unlisted(folder, entries, "*.parquet")]
    return problems


def is_legacy(manifest: dict[str, Any]) -> bool:
    """Written before manifests carried `manifest_sha256` (see `open_lake`)."""
    version = manifest.get("format_version", 1)
    return SEAL not in manifest and KIND not in manifest and isinstance(version, int) and version < SEALED_FORMAT


def _seal_problems(manifest: dict[str, Any]) -> list[str]:
    found = manifest.get(SEAL)
    if found is None and is_legacy(manifest):
        return []
    if not isinstance(found, str):
        return [f"{MANIFEST} has no {SEAL} (it was removed)"]
    if found != canonical_digest(manifest):
        return [f"{MANIFEST} was edited after it was written ({SEAL} does not match)"]
    return []


def damaged(folder: Path, what: str, problems: list[str], hint: str = "") -> RecsysError:
    """One line naming the folder and its first problem, and how to get a good one again."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    cls = LakeError if what == "lake" else IntegrityError
    return cls(f"{folder}: damaged {what}: {problems[0]}{more}; {hint or HINTS[what]}")


def write_sealed(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write `manifest` last, with the format, sha256 and size of every file in the
    folder and its own digest; returns what was written."""
    sealed = seal({**manifest, "format_version": SEALED_FORMAT, "outputs": file_entries(folder)})
    write_json(folder / MANIFEST, sealed)
    return sealed


@contextmanager
def decoding(*folders: tuple[Path, str]) -> Iterator[None]:
    """Turn a Parquet file that fails to decode into one line naming it.

    A flipped byte keeps a file's size, so the cheap check passes and the failure
    surfaces deep inside a query as a Polars error or a Rust panic. Only then are
    the `(folder, what)` pairs read re-hashed, and the first file whose sha256
    differs from its manifest is named. An error that no damaged file explains is
    not a damaged folder and keeps its traceback.
    """
    from polars.exceptions import PanicException, PolarsError

    try:
        yield
    except (PolarsError, OSError, PanicException) as exc:
        for folder, what in folders:
            problems = _full_problems(folder)
            if problems:
                raise damaged(folder, what, problems) from exc
        raise


def _full_problems(folder: Path) -> list[str]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return []  # nothing to compare with: the original error says more
    return folder_problems(folder, manifest, full=True)


def _read_output_manifest(folder: Path, what: str) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise IntegrityError(f"{folder}: no {what} here (no {MANIFEST}); {HINTS[what]}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: unreadable manifest; delete the folder, then {HINTS[what]}") from exc


def open_inputs(*folders: tuple[Path, str]) -> tuple[tuple[Path, str], ...]:
    """Cheap-check each `(folder, what)` a command reads that has a manifest, and
    return them for `decoding`; a folder without one is left to the caller's own
    message about what is missing."""
    for folder, what in folders:
        if (folder / MANIFEST).is_file():
            open_output(folder, what)
    return folders


def scan_events(lake: Path) -> pl.LazyFrame:
    """The events of an opened lake, without the `date` partition column; a lake
    whose input held no valid event (a header-only file) is refused by name here
    rather than failing inside the first query. Only Parquet files are read: a
    stray file in a partition (`.DS_Store`) would fail a scan of the folder."""
    import polars as pl

    from recsys_cli.data.schema import Col

    if not any((lake / "events").glob(f"{Col.DATE}=*/*.parquet")):
        raise LakeError(f"{lake}: the lake holds no events (none of its input rows passed validation); nothing to read")
    return pl.scan_parquet(lake / "events" / "**" / "*.parquet", hive_partitioning=True).drop(Col.DATE)
