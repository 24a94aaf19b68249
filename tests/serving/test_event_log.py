"""The durable event log: what `append` acknowledged is there after a crash, two
writers never tear each other's lines, and a torn line is counted, not fatal."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from recsys_cli.data.sources.live_events import KEY_FINGERPRINT, check_live_events
from recsys_cli.errors import ConfigError, PiiKeyError
from recsys_cli.serving.event_log import EventLog
from recsys_cli.serving.state import LiveEvent

USER = "c3" * 10
FINGERPRINT = "0123456789abcdef"


def event(n: int, user: str = USER, **extra: object) -> LiveEvent:
    return LiveEvent(user, f"i{n}", "view", 1_767_225_600.0 + n, dict(extra))


def test_replay_gives_back_every_batch_in_order(tmp_path: Path) -> None:
    with EventLog(tmp_path / "log") as log:
        log.append([event(1), event(2)])
        log.append([event(3)])
        assert list(log.replay()) == [event(1), event(2), event(3)]
        assert (log.counts.events, log.counts.bad_lines) == (3, 0)


def test_a_restarted_log_replays_what_the_old_one_wrote(tmp_path: Path) -> None:
    with EventLog(tmp_path / "log") as log:
        log.append([event(1, price=9.5)])
    with EventLog(tmp_path / "log") as again:
        (back,) = again.replay()
        assert back == event(1) and back.extra == {"price": 9.5}


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_every_fsync_policy_keeps_the_events(tmp_path: Path, fsync: str) -> None:
    log = EventLog(tmp_path / "log", fsync=fsync, interval_s=0.01)  # type: ignore[arg-type]
    log.append([event(1)])
    log.append([event(2)])
    log.close()
    assert [e.item for e in EventLog(tmp_path / "log").replay()] == ["i1", "i2"]


def test_an_empty_batch_writes_nothing(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "log")
    log.append([])
    assert log.segments() == []


def test_segments_rotate_by_size_and_a_batch_is_never_split(tmp_path: Path) -> None:
    line = len(event(1).to_json()) + 1
    log = EventLog(tmp_path / "log", segment_bytes=2 * line)
    for n in range(5):
        log.append([event(n)])
    log.append([event(5), event(6), event(7)])  # larger than a segment: one segment of its own
    assert [p.name for p in log.segments()] == [
        "events-000001.jsonl",
        "events-000002.jsonl",
        "events-000003.jsonl",
        "events-000004.jsonl",
    ]
    assert [len(p.read_bytes().splitlines()) for p in log.segments()] == [2, 2, 1, 3]
    assert [e.item for e in log.replay()] == [f"i{n}" for n in range(8)]


def test_a_torn_last_line_is_counted_and_later_appends_stay_whole(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "log")
    log.append([event(1), event(2)])
    with open(log.segments()[-1], "ab") as fh:
        fh.write(event(3).to_json().encode()[:15])  # a writer killed in the middle of its line
    assert [e.item for e in log.replay()] == ["i1", "i2"]
    assert log.counts.bad_lines == 1
    log.append([event(4)])
    assert [e.item for e in log.replay()] == ["i1", "i2", "i4"]
    assert log.counts.bad_lines == 1


def test_a_closed_log_refuses_appends(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "log")
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.append([event(1)])


def test_an_unknown_fsync_policy_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fsync must be one of"):
        EventLog(tmp_path / "log", fsync="sometimes")  # type: ignore[arg-type]


# -- several processes ------------------------------------------------------------------------------------------


def _append_many(folder: str, writer: int, batches: int, segment_bytes: int) -> None:
    log = EventLog(folder, fsync="never", segment_bytes=segment_bytes)
    for b in range(batches):
        log.append([LiveEvent(f"{writer:020x}", f"w{writer}-b{b}-e{e}", "view", float(b)) for e in range(5)])
    log.close()


def test_two_processes_appending_to_one_folder_never_tear_lines(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    folder = str(tmp_path / "log")
    writers = [ctx.Process(target=_append_many, args=(folder, w, 100, 4096)) for w in (1, 2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0]
    log = EventLog(folder)
    events = list(log.replay())
    assert log.counts.bad_lines == 0 and len(events) == 1000
    assert len(log.segments()) > 1
    for writer in (1, 2):
        mine = [e.item for e in events if e.user == f"{writer:020x}"]
        assert mine == [f"w{writer}-b{b}-e{e}" for b in range(100) for e in range(5)]  # each in its own order


WRITER = """
import sys
from recsys_cli.serving.event_log import EventLog
from recsys_cli.serving.state import LiveEvent
log = EventLog(sys.argv[1], fsync=sys.argv[2])
n = 0
while True:
    log.append([LiveEvent("c3" * 10, f"i{n}", "view", float(n)), LiveEvent("c3" * 10, f"i{n + 1}", "view", float(n))])
    print(n, n + 1, flush=True)  # the acknowledgement: sent only after append returned
    n += 2
"""


@pytest.mark.parametrize("fsync", ["always", "never"])
def test_every_acknowledged_event_survives_kill_9(tmp_path: Path, fsync: str) -> None:
    folder = tmp_path / "log"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder), fsync], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert proc.stdout is not None
    acked: list[str] = []
    while len(acked) < 200:
        line = proc.stdout.readline()
        assert line, "the writer stopped before acknowledging 200 events"
        acked += [f"i{n}" for n in line.split()]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    replayed = [e.item for e in EventLog(folder).replay()]
    assert replayed[: len(acked)] == acked  # every acknowledged event, in order (later ones may follow)


# -- the key and the export -------------------------------------------------------------------------------------


def test_the_log_remembers_its_key_and_refuses_another(tmp_path: Path) -> None:
    EventLog(tmp_path / "log", key_fingerprint=FINGERPRINT).close()
    assert json.loads((tmp_path / "log" / "log.json").read_text()) == {"key_fingerprint": FINGERPRINT}
    assert EventLog(tmp_path / "log").key_fingerprint == FINGERPRINT
    with pytest.raises(PiiKeyError, match="another|now uses"):
        EventLog(tmp_path / "log", key_fingerprint="fedcba9876543210")


def test_export_writes_an_ingestable_file_carrying_the_key_fingerprint(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "log", key_fingerprint=FINGERPRINT)
    log.append([event(1), event(2, price=4.5, quantity=2, session_id="s1", colour="red")])
    out = tmp_path / "export" / "live.parquet"
    assert log.export(out) == 2
    check_live_events(out, FINGERPRINT)  # raises when it is not
    assert pl.read_parquet_metadata(out)[KEY_FINGERPRINT] == FINGERPRINT
    frame = pl.read_parquet(out)
    assert frame["user_id"].to_list() == [USER, USER]
    assert frame["ts"].to_list() == [1_767_225_601_000_000, 1_767_225_602_000_000]
    assert frame["price"].to_list() == [None, 4.5] and frame["session_id"].to_list() == [None, "s1"]
    assert "colour" not in frame.columns  # only the contract's columns leave the service


def test_export_needs_the_key_fingerprint(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "log")
    log.append([event(1)])
    with pytest.raises(ConfigError, match="fingerprint"):
        log.export(tmp_path / "live.parquet")
