"""Raw user ids in, lake pseudonyms out: the service's only contact with a raw id.

The package's model knows users by the pseudonyms ingest gave them (HMAC of the raw
id with the lake's key, `data/pseudonymise.py`), so a request's raw id must be
pseudonymised with that same key, or every customer would look new. The key comes
from the environment variable the package's lineage names (`lineage["pii"]`:
`key_env`, `key_fingerprint`, `development_key`), and is refused unless its
fingerprint is the lake's. The public development key is used only when the lake
itself was built with it. Packages exported before their lineage carried `pii` are
read through the lake manifest their lineage points at, when that lake is here.

The raw id is trimmed first, as ingest trims ids before hashing them, and is never
kept, logged or returned: only `pseudonymise`'s result leaves this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recsys_cli.data.pseudonymise import DEVELOPMENT_KEY, PiiKey, key_of, pseudonym
from recsys_cli.errors import PiiKeyError

DOMAIN = "user_id"  # the pseudonym domain ingest uses for user ids (Col.USER)
DEFAULT_ENV = "RECSYS_PII_KEY"


def package_key(lineage: dict[str, Any], env_var: str | None = None, where: str = "package") -> PiiKey:
    """The key that pseudonymised the package's users (see the module docstring);
    `env_var` overrides the variable the lineage names (`serve.pii_key_env`)."""
    pii = _pii(lineage, where)
    if pii.get("development_key"):
        return PiiKey(DEVELOPMENT_KEY.encode(), is_development=True)
    env = env_var or str(pii.get("key_env") or DEFAULT_ENV)
    key = key_of(env, pii.get("key_fingerprint"), f"the lake of {where}")
    if key is None:
        raise PiiKeyError(
            f"${env} is not set: {where} was trained on user ids pseudonymised with a key (fingerprint "
            f"{pii.get('key_fingerprint')}), and raw ids in requests must be pseudonymised with the same one"
        )
    return key


def _pii(lineage: dict[str, Any], where: str) -> dict[str, Any]:
    pii = lineage.get("pii")
    if isinstance(pii, dict) and "key_fingerprint" in pii:
        return pii
    lake = (lineage.get("lake") or {}).get("dir")
    if lake and (Path(str(lake)) / "manifest.json").is_file():
        from recsys_cli.data.lake import read_manifest

        manifest = read_manifest(Path(str(lake)))
        found = dict(manifest.get("pii") or {})
        found.setdefault("key_env", ((manifest.get("config") or {}).get("pii") or {}).get("key_env"))
        if "key_fingerprint" in found:
            return found
    raise PiiKeyError(
        f"{where}: its lineage records no pseudonymisation key (pii.key_fingerprint) and its lake is not here; "
        "export the run again with this recsys"
    )


def pseudonymise(raw: str, key: PiiKey) -> str:
    """The lake pseudonym of a raw user id (trimmed first, as ingest does)."""
    return pseudonym(raw.strip(), key, DOMAIN)
