"""The service's durable event log: every accepted event, appended before the request
is acknowledged, replayed on restart, exported for the next `recsys ingest --append`.

Layout of the folder: `events-000001.jsonl`, `events-000002.jsonl`, ... (one
`LiveEvent.to_json()` a line, a new segment past `segment_bytes`), `log.json` (the
pseudonymisation key's fingerprint: one log never mixes two lakes' pseudonyms) and
`.lock`.

Durability: `append` returns after one `write` of whole lines to the segment, so
an acknowledged event survives the process being killed (the data is in the
kernel's page cache). `fsync` decides what survives the machine losing power:
`always` syncs before returning; `interval` at most `interval_s` later (from the
next append, and a background thread for a quiet log); `never` leaves it to the
operating system.

Several processes may append to one folder (replicas on one volume, a restart
overlapping the old process): an `fcntl` lock around each append keeps their lines
whole and in one segment at a time. A process killed in the middle of a write
leaves a torn last line; the next append ends it first, so it stays one bad line
that `replay` counts and skips.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recsys_cli.errors import ConfigError, PiiKeyError
from recsys_cli.registry.integrity import write_json
from recsys_cli.serving.state import LiveEvent

Fsync = Literal["always", "interval", "never"]
FSYNC: tuple[str, ...] = ("always", "interval", "never")
SEGMENT = re.compile(r"^events-(\d{6,})\.jsonl$")
META = "log.json"
LOCK = ".lock"


@dataclass
class ReplayCounts:
    """What the last `replay` read: events, and lines it skipped because they did not parse
    (a torn line from a crash, or damage)."""

    events: int = 0
    bad_lines: int = 0
    segments: int = 0


class EventLog:
    """An append-only, segmented JSON-lines log of `LiveEvent`s in `folder`."""

    def __init__(
        self,
        folder: Path | str,
        fsync: Fsync = "always",
        interval_s: float = 1.0,
        segment_bytes: int = 64 << 20,
        key_fingerprint: str | None = None,
    ) -> None:
        if fsync not in FSYNC:
            raise ConfigError(f"serve event log: fsync must be one of {list(FSYNC)}, got {fsync!r}")
        if segment_bytes < 1 or interval_s <= 0:
            raise ConfigError("serve event log: segment_bytes and interval_s must be positive")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fsync: Fsync = fsync
        self.interval_s = float(interval_s)
        self.segment_bytes = int(segment_bytes)
        self.key_fingerprint = self._claim_key(key_fingerprint)
        self.counts = ReplayCounts()
        self._thread_lock = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._lock_fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        self._unsynced: Path | None = None
        self._synced_at = time.monotonic()
        self._closed = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync == "interval":
            self._syncer = threading.Thread(target=self._sync_periodically, name="event-log-fsync", daemon=True)
            self._syncer.start()

    # -- writing --------------------------------------------------------------------------------------------------

    def append(self, events: Sequence[LiveEvent]) -> None:
        """Write `events` as whole lines; returns once they are written (and synced with `always`)."""
        if not events:
            return
        data = "".join(e.to_json() + "\n" for e in events).encode()
        with self._thread_lock:
            if self._closed.is_set():
                raise RuntimeError(f"{self.folder}: event log is closed")
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                path = self._segment_for(len(data))
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # read: its last byte
                try:
                    if _ends_torn(fd):
                        data = b"\n" + data  # close a crashed writer's line, so ours stay whole
                    _write_all(fd, data)
                    if self.fsync == "always":
                        os.fsync(fd)
                    else:
                        self._unsynced = path
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            if self.fsync == "interval" and time.monotonic() - self._synced_at >= self.interval_s:
                self._sync_pending()

    def _segment_for(self, size: int) -> Path:
        """The newest segment, or a new one when this write would take it past `segment_bytes`."""
        segments = self.segments()
        if segments:
            newest = segments[-1]
            used = newest.stat().st_size
            if used == 0 or used + size <= self.segment_bytes:
                return newest
            number = _number(newest) + 1
        else:
            number = 1
        path = self.folder / f"events-{number:06d}.jsonl"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        if self.fsync == "always":
            _fsync(self.folder)  # the new name survives a power loss too
        return path

    def _sync_pending(self) -> None:
        path, self._unsynced = self._unsynced, None
        self._synced_at = time.monotonic()
        if path is not None:
            _fsync(path)

    def _sync_periodically(self) -> None:
        while not self._closed.wait(self.interval_s):
            with self._thread_lock:
                self._sync_pending()

    def flush(self) -> None:
        """Sync whatever an `interval` or `never` policy has not synced yet."""
        with self._thread_lock:
            self._sync_pending()

    def close(self) -> None:
        """Sync what is pending and stop the background syncer; appends are refused after."""
        if self._closed.is_set():
            return
        self.flush()
        self._closed.set()
        if self._syncer is not None:
            self._syncer.join(timeout=5)
        os.close(self._lock_fd)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------------------------------

    def segments(self) -> list[Path]:
        """Segment files in the order they were written."""
        return segment_files(self.folder)

    def replay(self) -> Iterator[LiveEvent]:
        """Every logged event, oldest first; lines that do not parse are counted in
        `self.counts.bad_lines` and skipped, never fatal (a crash leaves a torn one)."""
        self.counts = ReplayCounts()
        for path in self.segments():
            self.counts.segments += 1
            with open(path, "rb") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    try:
                        event = LiveEvent.from_json(line)
                    except ValueError:
                        self.counts.bad_lines += 1
                        continue
                    self.counts.events += 1
                    yield event

    def export(self, out: Path | str) -> int:
        """Write every logged event as a live-events export (Parquet, carrying the key's
        fingerprint) for `recsys ingest --append --live-events OUT`; returns how many."""
        from recsys_cli.data.sources.live_events import write_live_events

        if self.key_fingerprint is None:
            raise ConfigError(
                f"{self.folder}: the event log does not know its pseudonymisation key's fingerprint, so its "
                "export could be appended to the wrong lake; open it with key_fingerprint=<the lake's>"
            )
        return write_live_events((e.to_dict() for e in self.replay()), Path(out), self.key_fingerprint)

    # -- the key ----------------------------------------------------------------------------------------------

    def _claim_key(self, fingerprint: str | None) -> str | None:
        """The fingerprint recorded in `log.json`, written on first use; a different one is refused."""
        path = self.folder / META
        recorded: str | None = None
        if path.is_file():
            try:
                recorded = json.loads(path.read_text()).get("key_fingerprint")
            except (OSError, ValueError, AttributeError) as exc:
                raise ConfigError(f"{path}: unreadable ({exc}); restore it or start a new event log folder") from None
        if recorded and fingerprint and recorded != fingerprint:
            raise PiiKeyError(
                f"{self.folder}: the event log holds pseudonyms of key {recorded}, the service now uses "
                f"{fingerprint}; export and archive it, then start a new event log folder"
            )
        if fingerprint and not recorded:
            write_json(path, {"key_fingerprint": fingerprint})
        return recorded or fingerprint


def export_log(folder: Path, out: Path | str, what: str) -> tuple[int, int]:
    """Export the event log in `folder` (`what` names the setting that points there)
    to `out`: (events written, unreadable lines left out). A missing folder is a
    one-line error rather than a new, empty log."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no event log here ({what}); the service writes it on its first event")
    with EventLog(folder, fsync="never") as log:
        written = log.export(out)
    return written, log.counts.bad_lines


def segment_files(folder: Path) -> list[Path]:
    """The log segments in `folder` in the order they were written, for a writer or a
    reader that must not open the log (take its lock, create the folder)."""
    found = [p for p in folder.iterdir() if SEGMENT.match(p.name)]
    return sorted(found, key=_number)


def _number(path: Path) -> int:
    match = SEGMENT.match(path.name)
    return int(match.group(1)) if match else -1


def _ends_torn(fd: int) -> bool:
    """Whether the file's last byte is not a newline (a writer died mid-line)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries (a new segment's name), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
