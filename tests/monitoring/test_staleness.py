"""What the production model has never met: from the lake's newest window and from
the service's event log, read as a crashed writer left it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from recsys_cli.data.schema import EVENTS_SCHEMA, Col
from recsys_cli.features.vocab import Vocabulary
from recsys_cli.monitoring.samples import Window
from recsys_cli.monitoring.staleness import event_log_staleness, staleness
from recsys_cli.serving.state import LiveEvent

USERS = Vocabulary(("<oov>", "u1", "u2"))
ITEMS = Vocabulary(("<oov>", "i1", "i2"))
CUTOFF = datetime(2026, 3, 1, tzinfo=UTC)


def test_the_newest_window_counts_unknown_users_items_and_new_products() -> None:
    ts = [
        CUTOFF - timedelta(days=3),
        CUTOFF + timedelta(days=2),
        CUTOFF + timedelta(days=3),
        CUTOFF + timedelta(days=4),
    ]
    rows = {Col.USER: ["u1", "u1", "u9", "u2"], Col.ITEM: ["i1", "i2", "i1", "i7"], Col.EVENT: ["view"] * 4, Col.TS: ts}
    events = pl.LazyFrame({c: rows.get(c, [None] * 4) for c in EVENTS_SCHEMA.names()}, schema=EVENTS_SCHEMA)
    current = Window(CUTOFF, CUTOFF + timedelta(days=7))
    out = staleness(events, None, USERS, ITEMS, CUTOFF, current)
    assert out["current_events"] == 3 and out["model_age_days"] == 7.0
    assert out["unknown_user_share"] == 1 / 3 and out["unknown_item_share"] == 1 / 3
    # i7 first appeared after the cutoff and the model cannot offer it; i2 it knows.
    assert out["new_products"] == {"count": 2, "unknown_to_model": 1, "share_unknown": 0.5}


def test_the_event_log_is_read_as_it_is_with_a_torn_last_line_counted(tmp_path: Path) -> None:
    lines = [LiveEvent("u1", "i1", "view", 1.8e9).to_json(), LiveEvent("u7", "i9", "purchase", 1.8e9).to_json()]
    (tmp_path / "events-000001.jsonl").write_text(lines[0] + "\n")
    (tmp_path / "events-000002.jsonl").write_text(lines[1] + "\n" + lines[1][:17])  # a crash mid-write
    (tmp_path / "notes.txt").write_text("not a segment")
    out = event_log_staleness(tmp_path, USERS, ITEMS)
    assert out == {"events": 2, "bad_lines": 1, "unknown_user_share": 0.5, "unknown_item_share": 0.5}
