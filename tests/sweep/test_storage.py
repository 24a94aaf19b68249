"""Study storages: a URL that cannot hold a study is one line naming it, before
anything is written; a journal never appends to a file that is not a journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_cli.errors import ConfigError
from recsys_cli.sweep.storage import open_storage


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "events.csv").write_text("user_id,item_id\nu1,i1\n")
    (tmp_path / "folder").mkdir()
    return {"tmp": str(tmp_path), "file": str(tmp_path / "events.csv"), "folder": str(tmp_path / "folder")}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("journal:", "name the journal file"),
        ("journal:{folder}", "is a folder; name a file"),
        ("journal:{file}", "not an Optuna journal"),
        ("journal:{file}/journal.log", "events.csv is a file, not a folder"),
        ("journal:/proc/recsys-nope/journal.log", "cannot be written"),
        ("sqlite://", "name a database file"),
        ("sqlite:///", "name a database file"),
        ("sqlite:///:memory:", "name a database file"),
        ("sqlite:///{folder}", "is a folder"),
        ("sqlite:///{file}/study.db", "events.csv is a file, not a folder"),
        ("sqlite:///{file}", "file is not a database"),
        ("just-some-words", "storage just-some-words: Could not parse"),
        ("ftp://example.invalid/study", "storage ftp://example.invalid/study:"),
    ],
)
def test_an_unusable_storage_is_one_line_and_changes_nothing(places: dict[str, str], url: str, message: str) -> None:
    before = {p: p.read_bytes() for p in Path(places["tmp"]).rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="^storage ") as caught:
        open_storage(url.format(**places))
    assert message in str(caught.value) and "\n" not in str(caught.value)
    after = {p: p.read_bytes() for p in Path(places["tmp"]).rglob("*") if p.is_file()}
    assert after == before


def test_a_journal_is_created_and_reopened(tmp_path: Path) -> None:
    import optuna

    url = f"journal:{tmp_path / 'new' / 'study.log'}"
    optuna.create_study(storage=open_storage(url), study_name="s").optimize(lambda t: t.suggest_float("x", 0, 1), 1)
    assert len(optuna.load_study(storage=open_storage(url), study_name="s").trials) == 1
