"""User ids handed to a command: read without ever quoting them, and matched to the
lake's pseudonyms with the lake's own key."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from recsys_cli.data.given_users import lake_key, match_user_ids, read_user_ids
from recsys_cli.data.pseudonymise import DEVELOPMENT_KEY, PiiKey, pseudonym
from recsys_cli.errors import PiiKeyError, SourceError

KEY = PiiKey(b"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", is_development=False)


def write_lake(folder: Path, key: PiiKey, development: bool = False) -> Path:
    folder.mkdir(parents=True)
    manifest = {
        "pii": {"key_fingerprint": key.fingerprint, "development_key": development},
        "config": {"pii": {"key_env": "SHOP_PII_KEY"}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_the_lake_key_comes_from_the_variable_the_lake_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = write_lake(tmp_path / "lake", KEY)
    monkeypatch.delenv("SHOP_PII_KEY", raising=False)
    assert lake_key(lake) is None  # no key here: only pseudonyms can match
    monkeypatch.setenv("SHOP_PII_KEY", KEY.secret.decode())
    assert lake_key(lake) == KEY


def test_another_key_is_refused_by_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = write_lake(tmp_path / "lake", KEY)
    monkeypatch.setenv("SHOP_PII_KEY", "another-key-of-32-characters-xyz")
    with pytest.raises(PiiKeyError, match=r"\$SHOP_PII_KEY is not the key .* was pseudonymised with") as raised:
        lake_key(lake)
    assert "another-key" not in str(raised.value)


def test_a_development_lake_uses_the_development_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = PiiKey(DEVELOPMENT_KEY.encode(), is_development=True)
    lake = write_lake(tmp_path / "lake", dev, development=True)
    monkeypatch.setenv("SHOP_PII_KEY", KEY.secret.decode())
    assert lake_key(lake) == dev
    assert lake_key(None) is None and lake_key(tmp_path / "nowhere") is None


def test_raw_and_pseudonymous_ids_match_and_unknown_ones_are_counted() -> None:
    known = pl.Series([pseudonym(u, KEY, "user_id") for u in ("u1", "u2", "u3")])
    given = pl.Series(["u1", " u2 ", known[2], "stranger"])
    matched = match_user_ids(given, known, KEY, Path("users.csv"))
    assert matched.lake_ids.to_list()[:3] == known.to_list()
    assert (matched.unknown, matched.raw, matched.pseudonymous) == (1, 2, 1) and not matched.only_pseudonyms
    assert match_user_ids(known, known, None, Path("users.csv")).only_pseudonyms


def test_a_file_matching_nobody_is_refused_without_quoting_it() -> None:
    known = pl.Series([pseudonym("u1", KEY, "user_id")])
    with pytest.raises(SourceError, match="none of its 2 user ids is known") as raised:
        match_user_ids(pl.Series(["ann@private.example", "u1"]), known, None, Path("users.csv"))
    assert "ann@" not in str(raised.value) and "lake's key" in str(raised.value)


def test_an_id_that_matches_both_ways_is_refused() -> None:
    tricky = pseudonym("u1", KEY, "user_id")
    known = pl.Series([tricky, pseudonym(tricky, KEY, "user_id")])
    with pytest.raises(SourceError, match="match both as a raw id and as a pseudonym"):
        match_user_ids(pl.Series([tricky]), known, KEY, Path("users.csv"))


def test_ids_are_read_from_csv_or_parquet_by_content(tmp_path: Path) -> None:
    pl.DataFrame({"user_id": ["b", "a", "b", None, ""], "x": [1, 2, 3, 4, 5]}).write_parquet(tmp_path / "u.csv")
    assert read_user_ids(tmp_path / "u.csv").to_list() == ["b", "a"]
    (tmp_path / "n.parquet").write_text("user_id\n7\n7\n8\n")
    assert read_user_ids(tmp_path / "n.parquet").to_list() == ["7", "8"]
    pl.DataFrame({"user_id": [[1], [2]]}).write_parquet(tmp_path / "lists.parquet")
    with pytest.raises(SourceError, match=r"holds List\(Int64\), expected text"):
        read_user_ids(tmp_path / "lists.parquet")
