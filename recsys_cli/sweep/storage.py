"""Where a study lives: a SQLite file by default, any SQLAlchemy URL (PostgreSQL
for many machines), or Optuna's journal file (`journal:/path/to/file.log`), which
is several times faster than SQLite for many processes on one machine or a
shared disk."""

from __future__ import annotations

import errno
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

from recsys_cli.errors import ConfigError

JOURNAL = "journal:"
STUDY_DB = "study.db"
# A worker that dies without a word (power loss, SIGKILL) stops beating; after the
# grace period any process of the study marks its trial failed, so the trial budget
# is not held by a ghost.
HEARTBEAT_S = 60
GRACE_S = 180
CREATE_TRIES = 5


def default_url(folder: Path) -> str:
    """The SQLite file in the sweep's output folder, absolute so every worker
    reaches the same file whatever its working directory."""
    return f"sqlite:///{(folder / STUDY_DB).resolve()}"


def open_storage(url: str) -> Any:
    """An Optuna storage for `url`; a bad URL or an unreachable server is one clear
    error naming the (password-less) URL."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    if url.startswith(JOURNAL):
        return _journal(url.removeprefix(JOURNAL))
    engine: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        _sqlite_folder(url)
        # Workers queue for SQLite's single write lock instead of failing at once.
        engine = {"connect_args": {"timeout": 60}}
    for attempt in range(CREATE_TRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
                )
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            # Workers starting together on an empty database race to create its tables;
            # the loser finds them made and only has to connect again.
            if "already exists" in str(exc) and attempt + 1 < CREATE_TRIES:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise ConfigError(f"storage {redact(url)}: {_first_line(exc)}") from exc
    raise AssertionError("unreachable")


def _journal(text: str) -> Any:
    """Optuna's journal file at `text`: a new file, or one an earlier sweep wrote;
    never a folder or someone else's file, which the journal would append to."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not text.strip():
        raise ConfigError(f"storage {JOURNAL}: name the journal file, e.g. {JOURNAL}runs/sweeps/study.log")
    path = Path(text).expanduser()
    if path.is_dir():
        raise ConfigError(f"storage {JOURNAL}{path}: is a folder; name a file, e.g. {JOURNAL}{path / 'study.log'}")
    if path.is_file() and not _is_journal(path):
        raise ConfigError(f"storage {JOURNAL}{path}: not an Optuna journal; name a new file or an earlier sweep's")
    try:
        _make_folder(path.parent)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise ConfigError(f"storage {JOURNAL}{path}: cannot be written: {exc.strerror or _first_line(exc)}") from exc


def _is_journal(path: Path) -> bool:
    """Empty, or its first line is a journal record (a JSON object with an op_code)."""
    with path.open("rb") as handle:
        first = handle.readline(1 << 20)
    if not first.strip():
        return path.stat().st_size == 0
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "op_code" in record


def _sqlite_folder(url: str) -> None:
    """SQLite needs a database file (an in-memory one would vanish with the process
    and is not shared with workers) in a folder that exists or can be made."""
    file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    if not file or file == ":memory:" or file.startswith("file:"):
        raise ConfigError(f"storage {redact(url)}: name a database file, e.g. sqlite:///runs/sweeps/study.db")
    path = Path(file.split("?", 1)[0])
    if path.is_dir():
        raise ConfigError(f"storage {redact(url)}: is a folder; name a database file inside it")
    try:
        _make_folder(path.parent)
    except OSError as exc:
        raise ConfigError(f"storage {redact(url)}: cannot be written: {exc.strerror or _first_line(exc)}") from exc


def _make_folder(folder: Path) -> None:
    """mkdir -p, naming the file that stands where a folder is needed."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{existing} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)


def redact(url: str) -> str:
    """The URL without its password, for messages and files."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
