"""Where a study lives: a SQLite file by default, any SQLAlchemy URL (PostgreSQL
for many machines), or Optuna's journal file (`journal:/path/to/file.log`), which
is several times faster than SQLite for many processes on one machine or a
shared disk."""

from __future__ import annotations

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
        return _journal(Path(url.removeprefix(JOURNAL)).expanduser())
    engine: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
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


def _journal(path: Path) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def redact(url: str) -> str:
    """The URL without its password, for messages and files."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
