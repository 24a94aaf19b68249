import secrets

import polars as pl
import pytest

from recsys_cli.data.pseudonymise import (
    DEVELOPMENT_KEY,
    PiiKey,
    key_weakness,
    load_key,
    pseudonym,
    pseudonym_table,
    pseudonymise,
)
from recsys_cli.errors import PiiKeyError


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    strong = secrets.token_hex(32)
    monkeypatch.setenv("RECSYS_PII_KEY", strong)
    key = load_key(allow_development_key=False)
    assert key.secret == strong.encode() and not key.is_development


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
    a = load_key(allow_development_key=True)
    monkeypatch.setenv("RECSYS_PII_KEY", "b" * 32)
    b = load_key(allow_development_key=True)
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


# openssl rand -hex 32 / -base64 32 / -hex 16, written out so the test needs no openssl.
OPENSSL_HEX_32 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
OPENSSL_BASE64_32 = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="
OPENSSL_HEX_16 = "3c5e1b8f2d9a47e6b0c1d2e3f4a59687"
WEAK_KEYS = {
    "forty a's": "a" * 40,
    "one repeated pair": "ab" * 20,
    "digits in order, repeated": "0123456789" * 4,
    "hex digits in order, repeated": "0123456789abcdef" * 4,
    "the alphabet and a bit": "abcdefghijklmnopqrstuvwxyzabcdefghij",
    "forty spaces": " " * 40,
    "nine characters, cycled": "abcdefghi" * 5,
}


@pytest.mark.parametrize("value", list(WEAK_KEYS.values()), ids=list(WEAK_KEYS))
def test_production_refuses_weak_keys(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    assert key_weakness(value) is not None
    monkeypatch.setenv("RECSYS_PII_KEY", value)
    with pytest.raises(PiiKeyError, match="too weak") as raised:
        load_key(allow_development_key=False, min_length=32)
    assert value not in str(raised.value)  # the key itself is never printed


@pytest.mark.parametrize(
    "value", [OPENSSL_HEX_32, OPENSSL_BASE64_32, OPENSSL_HEX_16, "correct-Horse-battery-staple-42-!"]
)
def test_random_keys_pass(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    assert key_weakness(value) is None
    monkeypatch.setenv("RECSYS_PII_KEY", value)
    assert not load_key(allow_development_key=False, min_length=32).is_development


def test_fresh_random_hex_keys_always_pass() -> None:
    assert all(key_weakness(secrets.token_hex(32)) is None for _ in range(200))


def test_production_refuses_the_development_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", DEVELOPMENT_KEY)
    with pytest.raises(PiiKeyError, match="public development key"):
        load_key(allow_development_key=False, min_length=32)


def test_the_development_key_is_marked_however_it_came(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", DEVELOPMENT_KEY)
    from_env = load_key(allow_development_key=True)
    monkeypatch.delenv("RECSYS_PII_KEY")
    fallback = load_key(allow_development_key=True)
    assert from_env.is_development and fallback.is_development and from_env.fingerprint == fallback.fingerprint


def test_development_accepts_a_weak_but_long_enough_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", "a" * 16)
    key = load_key(allow_development_key=True, min_length=16)
    assert not key.is_development


def test_a_key_holding_the_development_key_is_marked_whatever_it_was_told() -> None:
    assert PiiKey(DEVELOPMENT_KEY.encode(), is_development=False).is_development
    assert not PiiKey(b"9f86d081884c7d659a2feaa0c55ad015", is_development=False).is_development
