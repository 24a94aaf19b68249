"""The service's API key: who may post events and reload the model.

One shared key from the environment (`serve.api_key_env`, RECSYS_API_KEY), sent as
`Authorization: Bearer <key>` and compared in constant time (`hmac.compare_digest`),
so response times say nothing about how much of a guess was right. Without a key the
service refuses to start: an open /events endpoint lets anyone rewrite what users
are shown. `serve.auth=false` opens it on purpose (a laptop, a test).
"""

from __future__ import annotations

import hmac
import os

from recsys_cli.errors import ConfigError

MIN_KEY_CHARS = 16


class ApiKey:
    """The accepted key, or none when auth is off (`enabled` is False)."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret.encode() if secret else None

    @property
    def enabled(self) -> bool:
        return self._secret is not None

    @classmethod
    def from_env(cls, env_var: str, required: bool) -> ApiKey:
        """The key in `env_var`; refused (ConfigError) when required and missing or short."""
        if not required:
            return cls(None)
        value = os.environ.get(env_var, "")
        if not value:
            raise ConfigError(
                f"${env_var} is not set: the service needs an API key for /events and /admin "
                f"(e.g. export {env_var}=$(openssl rand -hex 32)), or serve.auth=false to run it open"
            )
        if len(value) < MIN_KEY_CHARS:
            raise ConfigError(f"${env_var} is {len(value)} characters; an API key needs at least {MIN_KEY_CHARS}")
        return cls(value)

    def allows(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header carries the key (always, when auth is off)."""
        if self._secret is None:
            return True
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._secret)
