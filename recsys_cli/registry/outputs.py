"""Which folders and files a command may replace, and one writer at a time.

Ownership
---------
A command replaces its output folder whole (built beside it, then swapped in), so
a wrong path would delete whatever was there. Before writing, `claim` refuses the
path with one line unless it

- does not exist, or is an empty folder, or
- carries our `manifest.json` whose `"kind"` is the command's kind (`lake`, `split`,
  `features`, `run`, `evaluation`, `abtest`, `comparison`, `sweep`, `synth`,
  `reproduction`), or
- was written by that command before kinds were recorded, recognised by what it holds:

  ============  ============================================================
  lake          manifest.json with format_version, fingerprint and source
  split         manifest.json with protocol, folds and lake
  features      manifest.json with split_manifest_sha256 and folds
  run           config.yaml and model/
  evaluation    metrics.json and report.html, no model/ (runs hold metrics.json too)
  abtest        abtest.json
  sweep         plan.json or study.db
  synth         events.csv whose header is the synthetic shop's
  reproduction  result.json with experiment, passed and checks
  ============  ============================================================

Whatever it holds, an output is never the current folder or one above it, the home
folder or one above it, the filesystem root, or a folder holding `.git` or
`pyproject.toml`; and it never overlaps an input (the same folder, or one inside
the other, compared after resolving links), so a command cannot replace its own
data. Single-file outputs (`recommend --out`, `compare --out`, `reproduce --out`)
go through `claim_file`: never an input, never inside an input folder, and an
existing file is replaced only when it is the same kind of output (a JSON object
with our `"kind"`, a Parquet file with our recommendations metadata, or their
older shapes).

Locking
-------
`lock` is an exclusive lock per output, `fcntl.flock` on `.<name>.lock` beside it
(in the parent folder, so it outlives the folder swap), holding the holder's pid.
A second process waits for it, saying once on stderr for whom, for up to
`RECSYS_LOCK_TIMEOUT` seconds (default 600) and then refuses with one line: two
writers of one folder never both succeed, and `--append` runs queue one after the
other. The lock is released when its holder exits, however it exits (the kernel
drops flock locks with the process). The lock file is removed on release; a
waiter that locked a removed file tries again, so removal cannot let two in.

What this does not cover: flock holds between processes of one machine on a local
disk (and on NFSv4 with working locks); it does not exist on object stores. There,
the folders this module guards are local mirrors (`recsys_cli/data/remote/`), and
the store itself is guarded by a lock object created with a conditional put
(`If-None-Match: *`) and publication with the manifest written last; the
registry has its own (`registry/storage.py`). Neither expires a crashed holder's
lock by itself.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recsys_cli.errors import OutputError

MANIFEST = "manifest.json"
KIND = "kind"
LAKE, SPLIT, FEATURES, RUN = "lake", "split", "features", "run"
EVALUATION, ABTEST, COMPARISON, SWEEP = "evaluation", "abtest", "comparison", "sweep"
SYNTH, REPRODUCTION, RECOMMENDATIONS = "synth", "reproduction", "recommendations"
LOCK_TIMEOUT_ENV = "RECSYS_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 600.0
PARQUET_KIND_KEY = "recsys.kind"  # Parquet key-value metadata naming a file's kind
RECOMMENDATION_COLUMNS = ["user_id", "item_id", "rank", "score"]
SYNTH_EVENTS_HEADER = "event_time,customer_id,sku,event"  # first columns of the synthetic shop's events.csv
_POLL_S = 0.1


# -- ownership of folders ---------------------------------------------------------------------------------------


def _has_keys(*keys: str) -> Callable[[dict[str, Any]], bool]:
    return lambda manifest: all(k in manifest for k in keys)


# Folders written before manifests named their kind: by their manifest's keys...
_LEGACY_MANIFESTS: dict[str, Callable[[dict[str, Any]], bool]] = {
    LAKE: _has_keys("format_version", "fingerprint", "source"),
    SPLIT: _has_keys("protocol", "folds", "lake"),
    FEATURES: _has_keys("split_manifest_sha256", "folds"),
}


def _holds(folder: Path, *names: str) -> bool:
    return all((folder / name).is_file() for name in names)


def _synth_header(folder: Path) -> bool:
    events = folder / "events.csv"
    if not events.is_file():
        return False
    with open(events, "rb") as fh:
        return fh.readline(4096).decode("utf-8", "replace").startswith(SYNTH_EVENTS_HEADER)


def _reproduction_result(folder: Path) -> bool:
    return _json_object(folder / "result.json", _has_keys("experiment", "passed", "checks"))


# ...or, for folders that had no manifest, by the files they hold.
_LEGACY_FOLDERS: dict[str, Callable[[Path], bool]] = {
    RUN: lambda f: (f / "config.yaml").is_file() and (f / "model").is_dir(),
    EVALUATION: lambda f: _holds(f, "metrics.json", "report.html") and not (f / "model").exists(),
    ABTEST: lambda f: (f / "abtest.json").is_file(),
    SWEEP: lambda f: (f / "plan.json").is_file() or (f / "study.db").is_file(),
    SYNTH: _synth_header,
    REPRODUCTION: _reproduction_result,
}


def claim(path: Path | str, kind: str, inputs: Iterable[Path | str | None] = ()) -> Path:
    """Refuse, with one line, to write `kind` at `path` unless the module docstring's
    rules allow it; returns the resolved path, where the swap must happen."""
    real = Path(path).resolve()
    _refuse_protected(path, real, kind)
    _refuse_overlap(path, real, kind, inputs)
    _refuse_bad_parent(path, real, kind)
    if not real.exists():
        return real
    if not real.is_dir():
        raise OutputError(f"{path}: refusing to replace a file with a folder (not {_a(kind)} written by recsys)")
    if not any(real.iterdir()):
        return real
    found = kind_of(real)
    if found != kind:
        what = f"it holds {_a(found)} written by recsys" if found else _why_not(real)
        raise OutputError(
            f"{path}: refusing to replace this folder (not {_a(kind)} written by recsys: {what}); "
            "choose a new or empty folder"
        )
    return real


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def kind_of(folder: Path) -> str | None:
    """The kind of output `folder` holds, from its manifest or its older shape; None if none."""
    manifest = _read_manifest(folder)
    if manifest is not None and (kind := manifest_kind(manifest)) is not None:
        return kind
    for kind, holds in _LEGACY_FOLDERS.items():
        if holds(folder):
            return kind
    return None


def manifest_kind(manifest: Any) -> str | None:
    """The kind of output a manifest describes: its `"kind"`, or an older manifest's keys
    (None for anything else, a JSON list included)."""
    if not isinstance(manifest, dict):
        return None
    if isinstance(manifest.get(KIND), str):
        return str(manifest[KIND])
    return next((kind for kind, looks_like in _LEGACY_MANIFESTS.items() if looks_like(manifest)), None)


def _why_not(folder: Path) -> str:
    if not (folder / MANIFEST).is_file():
        return f"no {MANIFEST}"
    if _read_manifest(folder) is None:
        return f"its {MANIFEST} is unreadable; delete the folder yourself if it is a damaged output"
    return f"its {MANIFEST} names no kind of recsys output"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    return _read_json(folder / MANIFEST)


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file's content; None when it is missing, unreadable or not an object."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _resolved(inputs: Iterable[Path | str | None]) -> Iterator[tuple[Path | str, Path]]:
    """Each given input with its real path (symlinks followed); blank ones skipped."""
    for given in inputs:
        if given is not None and str(given) != "":
            yield given, Path(given).resolve()


def _refuse_overlap(path: Path | str, real: Path, kind: str, inputs: Iterable[Path | str | None]) -> None:
    for given, other in _resolved(inputs):
        if other == real:
            why = f"refusing to replace the input {given} with {_a(kind)}"
        elif real in other.parents:
            why = f"refusing to replace a folder that holds the input {given} (not {_a(kind)} written by recsys)"
        elif other in real.parents:
            why = f"refusing to write {_a(kind)} inside the input {given}"
        else:
            continue
        raise OutputError(f"{path}: {why}; outputs never overlap inputs")


def _refuse_protected(path: Path | str, real: Path, kind: str) -> None:
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    reason = ""
    if real.parent == real:
        reason = "the filesystem root"
    elif real == cwd or real in cwd.parents:
        reason = "the current folder" if real == cwd else "a folder holding the current folder"
    elif real == home or real in home.parents:
        reason = "the home folder" if real == home else "a folder holding the home folder"
    elif (real / ".git").exists() or (real / "pyproject.toml").exists():
        reason = "a project folder (it holds .git or pyproject.toml)"
    if reason:
        raise OutputError(f"{path}: refusing to replace {reason} (not {_a(kind)} written by recsys)")


def _refuse_bad_parent(path: Path | str, real: Path, kind: str) -> None:
    """A file where a parent folder should be would fail later with a traceback."""
    for parent in real.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{path}: cannot write {_a(kind)} here: {parent} is a file, not a folder")
            return


def claim_container(path: Path | str, kind: str, inputs: Iterable[Path | str | None] = ()) -> Path:
    """A folder a command adds new entries to but never replaces (`runs_dir`, `sweeps_dir`):
    whatever else it holds stays, but it is never a file, never an input and never
    inside one (runs written into the raw folder or the lake would corrupt them)."""
    real = Path(path).resolve()
    for given, other in _resolved(inputs):
        if other == real or other in real.parents:
            raise OutputError(
                f"{path}: refusing to write {kind}s inside the input {given}; outputs never overlap inputs"
            )
    _refuse_bad_parent(path, real, kind)
    if real.exists() and not real.is_dir():
        raise OutputError(f"{path}: cannot write {kind}s here: it is a file, not a folder")
    return real


# -- single-file outputs ----------------------------------------------------------------------------------------


def claim_file(path: Path | str, kind: str, inputs: Iterable[Path | str | None] = ()) -> Path:
    """Refuse to write the single file `path` if it is an input, lies inside an input
    folder, or exists and is not the same kind of output; returns the resolved path."""
    real = Path(path).resolve()
    for given, other in _resolved(inputs):
        if other == real or other in real.parents:
            where = "over" if other == real else "inside"
            raise OutputError(
                f"{path}: refusing to write {_a(kind)} {where} the input {given}; outputs never overlap inputs"
            )
    _refuse_bad_parent(path, real, kind)
    if real.is_dir():
        raise OutputError(f"{path}: refusing to replace a folder with {_a(kind)} file; name a file")
    if real.exists() and not file_is(real, kind):
        raise OutputError(
            f"{path}: refusing to replace this file (not {_a(kind)} written by recsys); choose a new file name"
        )
    return real


def file_is(path: Path, kind: str) -> bool:
    """Whether the existing file `path` is a `kind` output we wrote (or its older shape)."""
    if kind == RECOMMENDATIONS:
        return _recommendations_parquet(path)
    legacy = _LEGACY_FILES.get(kind, lambda _: False)
    return _json_object(path, lambda d: d.get(KIND) == kind or (KIND not in d and legacy(d)))


_LEGACY_FILES: dict[str, Callable[[dict[str, Any]], bool]] = {
    COMPARISON: _has_keys("metric", "comparisons", "runs", "correction"),
    REPRODUCTION: _has_keys("experiment", "passed", "checks", "measured"),
}


def _json_object(path: Path, test: Callable[[dict[str, Any]], bool]) -> bool:
    value = _read_json(path)
    return value is not None and test(value)


def _recommendations_parquet(path: Path) -> bool:
    """Our metadata, or (older files) exactly our columns."""
    import polars as pl

    try:
        metadata = pl.read_parquet_metadata(path)
        columns = list(pl.read_parquet_schema(path))
    except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
        return False
    if PARQUET_KIND_KEY in metadata:
        return metadata[PARQUET_KIND_KEY] == RECOMMENDATIONS
    return columns == RECOMMENDATION_COLUMNS


# -- one writer at a time ---------------------------------------------------------------------------------------

_held: dict[tuple[int, Path], int] = {}  # (thread, lock file) -> depth: re-entrant within one thread


def lock_file(path: Path | str) -> Path:
    real = Path(path).resolve()
    return real.parent / f".{real.name}.lock"


@contextmanager
def lock(path: Path | str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock of output `path` (see the module docstring). Re-entrant
    in one thread, so a task may lock its output and call a writer that locks it again."""
    file = lock_file(path)
    key = (threading.get_ident(), file)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = _acquire(path, file, lock_timeout() if timeout_s is None else timeout_s)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        file.unlink(missing_ok=True)  # before unlocking: a waiter then sees a removed file and retries
        os.close(fd)


@contextmanager
def owned(path: Path | str, kind: str, inputs: Iterable[Path | str | None] = ()) -> Iterator[Path]:
    """Claim `path`, lock it, and claim it again under the lock (another process may
    have written it meanwhile); yields the resolved path."""
    inputs = list(inputs)
    claim(path, kind, inputs)
    with lock(path):
        yield claim(path, kind, inputs)


def lock_timeout() -> float:
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    if not raw.strip():
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also catches nan
        raise OutputError(f"${LOCK_TIMEOUT_ENV}: expected a number of seconds >= 0, got {raw!r}")
    return value


def _acquire(path: Path | str, file: Path, timeout_s: float) -> int:
    import fcntl

    deadline = time.monotonic() + timeout_s
    waiting = False
    while True:
        fd = _open(path, file)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if time.monotonic() >= deadline:
                raise OutputError(
                    f"{path}: another recsys process ({holder}) is writing it; gave up after {timeout_s:g} s "
                    f"(${LOCK_TIMEOUT_ENV}); run again when it has finished"
                ) from None
            if not waiting:
                _say(f"{path}: waiting for {holder}, which is writing it (up to {timeout_s:g} s)")
                waiting = True
            time.sleep(_POLL_S)
            continue
        if _same_file(fd, file):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # its holder removed it between our open and our lock: take the new one


def _open(path: Path | str, file: Path) -> int:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        return os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create its lock file {file}: {exc.strerror}") from exc


def _same_file(fd: int, file: Path) -> bool:
    try:
        on_disk = file.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"pid {text}" if text.isdigit() else "a process starting up"


def _say(line: str) -> None:
    from recsys_cli.console import err_console

    err_console.print(line, highlight=False, soft_wrap=True, markup=False)
