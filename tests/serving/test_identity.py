"""Raw user ids become the lake's pseudonyms with the lake's own key, or the package
is refused: a wrong or missing key would make every customer look new."""

from __future__ import annotations

import pytest

from recsys_cli.data.pseudonymise import DEVELOPMENT_KEY, PiiKey, pseudonym
from recsys_cli.errors import PiiKeyError
from recsys_cli.serving.identity import package_key, pseudonymise

SECRET = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
REAL = PiiKey(SECRET.encode(), is_development=False)


def lineage(key: PiiKey, env: str = "RECSYS_PII_KEY") -> dict[str, object]:
    return {"pii": {"key_fingerprint": key.fingerprint, "development_key": key.is_development, "key_env": env}}


def test_a_raw_id_is_pseudonymised_trimmed_as_ingest_does() -> None:
    assert pseudonymise("  C0000194 ", REAL) == pseudonym("C0000194", REAL, "user_id")
    assert pseudonymise("C0000194", REAL) != pseudonymise("C0000195", REAL)


def test_the_key_comes_from_the_variable_the_lineage_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_KEY", SECRET)
    assert package_key(lineage(REAL, "SHOP_KEY")).fingerprint == REAL.fingerprint
    monkeypatch.setenv("OTHER", SECRET)
    monkeypatch.delenv("SHOP_KEY")
    assert package_key(lineage(REAL, "SHOP_KEY"), env_var="OTHER").fingerprint == REAL.fingerprint


def test_a_missing_or_different_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_PII_KEY", raising=False)
    with pytest.raises(PiiKeyError, match=r"\$RECSYS_PII_KEY is not set: pkg was trained"):
        package_key(lineage(REAL), where="pkg")
    monkeypatch.setenv("RECSYS_PII_KEY", SECRET[::-1])
    with pytest.raises(PiiKeyError, match="is not the key the lake of pkg was pseudonymised with"):
        package_key(lineage(REAL), where="pkg")
    monkeypatch.setenv("RECSYS_PII_KEY", DEVELOPMENT_KEY)  # the public key never stands in for a real one
    with pytest.raises(PiiKeyError, match="is not the key"):
        package_key(lineage(REAL), where="pkg")


def test_the_development_key_is_used_only_when_the_lake_used_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_PII_KEY", SECRET)
    dev = PiiKey(DEVELOPMENT_KEY.encode(), is_development=True)
    assert package_key(lineage(dev)).is_development


def test_a_lineage_without_key_and_without_its_lake_is_refused() -> None:
    with pytest.raises(PiiKeyError, match="records no pseudonymisation key"):
        package_key({"lake": {"dir": "/nowhere"}}, where="pkg")
