"""Schema of conf/serve.yaml (`recsys serve`): the service group conf/serve/ and the
business rules of conf/serve/rules/ (`serve_rules.py`), with the registry it reads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from recsys_cli.schemas._base import Count, Int, Positive, PositiveInt, Schema, Text, fail
from recsys_cli.schemas.groups import Registry
from recsys_cli.schemas.serve_rules import Rules


def _env_name(value: str) -> str:
    if not value or value[0].isdigit() or not all(c.isalnum() or c == "_" for c in value):
        raise PydanticCustomError("env_name", "must be an environment variable name (letters, digits, '_')")
    return value


def _ref(value: str | int) -> str | int:
    text = str(value)
    if not text or not (text[0].isalnum() and all(c.isalnum() or c in "._-" for c in text)):
        raise PydanticCustomError("ref", "must be an alias, latest or a version number")
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
Port = Annotated[Int, Field(ge=0, le=65_535)]  # 0: any free port (tests)


class ServeRedis(Schema):
    url: Text
    prefix: Text
    ttl_s: Positive | None


class ServeHistory(Schema):
    max_events: Annotated[Int, Field(ge=1, le=100_000)]
    max_users: PositiveInt


class ServeEventLog(Schema):
    dir: Text
    fsync: Literal["always", "interval", "never"]
    fsync_interval_s: Positive


class ServeLimits(Schema):
    default_k: PositiveInt
    max_k: Annotated[Int, Field(ge=1, le=10_000)]
    max_batch: Annotated[Int, Field(ge=1, le=1_000_000)]
    max_session: Annotated[Int, Field(ge=0, le=10_000)]
    max_body_bytes: Annotated[Int, Field(ge=1024, le=1 << 30)]

    @model_validator(mode="after")
    def _default_within(self) -> ServeLimits:
        if self.default_k > self.max_k:
            fail("default_k", self.default_k, f"must be at most max_k ({self.max_k})")
        return self


class ServeCache(Schema):
    size: Count
    ttl_s: Positive


class ServeEngine(Schema):
    """How a request is answered (recsys_cli/serving/engine.py)."""

    candidates: Annotated[Int, Field(ge=1, le=10_000)]
    hour_weight: Annotated[float, Field(ge=0.0, le=1.0)]
    exclude_events: list[Text]


class ServeAdmission(Schema):
    """How many requests score at once (recsys_cli/serving/admission.py)."""

    max_active: PositiveInt | None
    max_wait_ms: Positive


class Serve(Schema):
    """conf/serve/ (recsys_cli/serving/): the service, its state and limits."""

    host: Text
    port: Port
    workers: Annotated[Int, Field(ge=1, le=64)]
    model: Text | None
    alias: Annotated[str | int, AfterValidator(_ref)]
    auth: bool
    auth_reads: bool
    api_key_env: EnvName
    pii_key_env: EnvName | None
    state: Literal["memory", "redis"]
    redis: ServeRedis
    history: ServeHistory
    event_log: ServeEventLog
    limits: ServeLimits
    cache: ServeCache
    engine: ServeEngine
    admission: ServeAdmission
    pin_dir: Text | None
    log_requests: bool
    rules: Rules  # conf/serve/rules/ (serve/rules=none: every rule off)

    @model_validator(mode="after")
    def _workers_share_state(self) -> Serve:
        if self.workers > 1 and self.state == "memory":
            fail(
                "workers",
                self.workers,
                "more than one worker needs serve.state=redis (each process would keep its own users' histories)",
            )
        return self


class ServeConfig(Schema):
    """conf/serve.yaml (`recsys serve`)."""

    registry: Registry
    serve: Serve
