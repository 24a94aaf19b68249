"""The JSON bodies the service accepts, as pydantic models that refuse unknown fields.

Built per service by `request_models(limits)` because their bounds (`k` up to
`serve.limits.max_k`, events per batch, session length) come from the config: a
request out of them is refused at the door with a 422 naming the field, before any
model work. Responses are plain dicts (see app.py): validating what we produce
ourselves would only cost time on the hot path.

Event times are unix seconds or ISO 8601 text; text without a zone is taken as UTC,
like ingest does. Numbers are never guessed to be milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from recsys_cli.data.schema import EVENT_TYPES

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Id = Annotated[str, Field(min_length=1, max_length=256)]
Label = Annotated[str, Field(min_length=1, max_length=128)]
When = float | datetime | None
MAX_SEGMENTS = 16
MAX_FILTER_VALUES = 1000


class Body(BaseModel):
    """A request body: unknown fields are refused (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def unix_seconds(value: float | datetime | None, now: float) -> float:
    """An event time as unix seconds (UTC); `now` when not given."""
    if value is None:
        return now
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


class SessionEvent(Body):
    """An event of the current session, sent with the request (not stored)."""

    item_id: Id
    event_type: EventType = "view"
    ts: When = None


class Filters(Body):
    """The request's own filters (`serving/rules.Filters`); they always apply.
    `in_stock_only` absent leaves stock to the rules, true or false overrides them."""

    categories: Annotated[list[Label], Field(max_length=MAX_FILTER_VALUES)] | None = None
    price_min: Annotated[float, Field(ge=0)] | None = None
    price_max: Annotated[float, Field(ge=0)] | None = None
    in_stock_only: bool | None = None

    @field_validator("price_max")
    @classmethod
    def _range(cls, value: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("price_min")
        if value is not None and low is not None and value < low:
            raise ValueError(f"must be at least price_min ({low:g})")
        return value


class EventIn(Body):
    """One event of POST /events (the optional fields are those ingest reads)."""

    user_id: Id
    item_id: Id
    event_type: EventType
    ts: When = None
    value: float | None = None
    quantity: float | None = None
    price: float | None = None
    session_id: Label | None = None

    def extra(self) -> dict[str, Any]:
        return {k: v for k in ("value", "quantity", "price", "session_id") if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class RequestModels:
    """The request models of one service, bounded by its `serve.limits`."""

    Context: type[BaseModel]
    Recommend: type[BaseModel]
    Events: type[BaseModel]


def request_models(default_k: int, max_k: int, max_session: int, max_batch: int) -> RequestModels:
    """Request models whose bounds are these limits (see the module docstring)."""

    class Context(Body):
        """What the client knows about the moment: hour of day (0-23, UTC; the
        request's time when absent), region and device, other segment values of the
        package's fallbacks (`{"age_bucket": "25-34"}`), and this session's events."""

        hour: Annotated[int, Field(ge=0, le=23)] | None = None
        region: Label | None = None
        device: Label | None = None
        segments: Annotated[dict[Label, Label], Field(max_length=MAX_SEGMENTS)] = {}
        session: Annotated[list[SessionEvent], Field(max_length=max_session)] = []

    class Recommend(Body):
        """POST /recommend. `user_id` is the shop's raw id (pseudonymised at once,
        never logged); null or absent: an anonymous visitor."""

        user_id: Id | None = None
        k: Annotated[int, Field(ge=1, le=max_k)] = default_k
        context: Context = Context()
        filters: Filters = Filters()
        explain: bool = False

    class Events(Body):
        """POST /events: a batch of events, at most `serve.limits.max_batch`."""

        events: Annotated[list[EventIn], Field(min_length=1, max_length=max_batch)]

    return RequestModels(Context, Recommend, Events)
