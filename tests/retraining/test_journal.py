"""The retrain's record (recsys_cli/retraining/journal.py): one key per model, lake
and settings, a record rewritten whole at each step with its history, and a record
that cannot be read treated as none (the retrain starts over)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_cli.retraining import journal

SETTINGS = {"alias": "production", "seed": 0, "window": {"eval_days": 7, "kind": "growing"}}
LAKE = "a" * 64


def test_the_key_names_one_model_lake_and_settings() -> None:
    k = journal.key("shop-als", LAKE, SETTINGS)
    assert len(k) == 16 and int(k, 16) >= 0
    assert journal.key("shop-als", LAKE, dict(reversed(list(SETTINGS.items())))) == k  # order does not matter
    others = {
        journal.key("shop-bpr", LAKE, SETTINGS),
        journal.key("shop-als", "b" * 64, SETTINGS),
        journal.key("shop-als", LAKE, {**SETTINGS, "window": {"eval_days": 5, "kind": "growing"}}),
        journal.key("shop-als", LAKE, {**SETTINGS, "seed": 1}),
    }
    assert len(others) == 4 and k not in others


def test_no_record_is_none(tmp_path: Path) -> None:
    assert journal.read(tmp_path) is None
    assert journal.read(tmp_path / "missing") is None


@pytest.mark.parametrize(
    "content",
    [b'{"kind": "retrain", "state": "pus', b"\xff\xfe not text", b"[1, 2]", b'{"kind": "run", "state": "pushed"}'],
    ids=["torn", "binary", "not-an-object", "not-a-retrain"],
)
def test_a_record_that_cannot_be_read_is_none(tmp_path: Path, content: bytes) -> None:
    (tmp_path / journal.RECORD).write_bytes(content)
    assert journal.read(tmp_path) is None


def test_each_step_rewrites_the_record_and_appends_its_history(tmp_path: Path) -> None:
    started = journal.write(tmp_path, {}, journal.STARTED, model={"name": "shop-als"})
    assert started["state"] == "started" and started["kind"] == "retrain"
    assert [h["state"] for h in started["history"]] == ["started"]
    pushed = journal.write(tmp_path, started, journal.PUSHED, version=2)
    final = journal.write(tmp_path, pushed, journal.KEPT)
    assert journal.read(tmp_path) == final
    assert final["model"] == {"name": "shop-als"} and final["version"] == 2 and final["state"] == "kept"
    assert [h["state"] for h in final["history"]] == ["started", "pushed", "kept"]
    assert all(h["at"].endswith("+00:00") for h in final["history"])
    assert started["history"] == [final["history"][0]]  # the earlier record is not changed in place
    assert json.loads((tmp_path / journal.RECORD).read_text())["state"] == "kept"
    assert not [p.name for p in tmp_path.iterdir() if p.name != journal.RECORD]  # no temporary file left


def test_only_promoted_and_kept_are_final() -> None:
    assert set(journal.FINAL) == {"promoted", "kept"}
