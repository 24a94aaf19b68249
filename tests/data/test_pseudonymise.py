import polars as pl
import pytest

from recsys_cli.data.pseudonymise import (
    DEVELOPMENT_KEY,
    load_key,
    pseudonym,
    pseudonym_table,
    pseudonymise,
)
from recsys_cli.errors import PiiKeyError


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", "k" * 32)
    key = load_key(allow_development_key=False)
    assert key.secret == b"k" * 32 and not key.is_development


def test_production_refuses_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_PII_KEY", raising=False)
    with pytest.raises(PiiKeyError, match=r"\$RECSYS_PII_KEY is not set"):
        load_key(allow_development_key=False)


def test_development_falls_back_to_marked_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_PII_KEY", raising=False)
    key = load_key(allow_development_key=True)
    assert key.is_development and key.secret == DEVELOPMENT_KEY.encode()


def test_short_keys_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", "short")
    with pytest.raises(PiiKeyError, match="at least 32"):
        load_key(min_length=32)


def test_pseudonyms_are_stable_keyed_and_domain_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", "a" * 32)
    a = load_key()
    monkeypatch.setenv("RECSYS_PII_KEY", "b" * 32)
    b = load_key()
    assert pseudonym("u1", a, "user_id") == pseudonym("u1", a, "user_id")
    assert pseudonym("u1", a, "user_id") != pseudonym("u1", b, "user_id")
    assert pseudonym("u1", a, "user_id") != pseudonym("u1", a, "email")
    assert a.fingerprint != b.fingerprint and "a" * 8 not in a.fingerprint


def test_unmapped_values_become_null_never_raw() -> None:
    key = load_key(allow_development_key=True)
    table = pseudonym_table(pl.Series(["u1", "u2", None]), key, "user_id")
    out = pseudonymise(pl.DataFrame({"user_id": ["u1", "u3"], "n": [1, 2]}), "user_id", table)
    assert out["n"].to_list() == [1, 2]
    out = out["user_id"]
    assert out[0] == pseudonym("u1", key, "user_id")
    assert out[1] is None


def test_table_matches_single_pseudonyms() -> None:
    key = load_key(allow_development_key=True)
    table = pseudonym_table(pl.Series(["b", "a", "a"]), key, "ip")
    assert table.rows() == [("a", pseudonym("a", key, "ip")), ("b", pseudonym("b", key, "ip"))]
