"""The service's live user state: recent events per user, shared by the engine and the app.

Events arrive after the package's cutoff (`POST /events`) and must change the very next
answer, so each user's recent history is kept here, bounded, and versioned so that a
cache keyed on `(user, version)` is invalidated by any new event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LiveEvent:
    """One event received by the service.

    `user` is the lake pseudonym (the raw id never reaches this type), `item` the raw
    catalogue id (not personal), `event_type` one of `data.schema.EVENT_TYPES`, `ts` unix
    seconds UTC. `extra` keeps the few optional fields an event may carry (value,
    quantity, price, session_id) so that an exported log loses nothing `ingest` reads.
    """

    user: str
    item: str
    event_type: str
    ts: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (`extra` only when present)."""
        out: dict[str, Any] = {"user": self.user, "item": self.item, "event_type": self.event_type, "ts": self.ts}
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    def to_json(self) -> str:
        """One compact JSON line (no newline), stable key order."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LiveEvent:
        """Inverse of `to_dict`; raises `ValueError` naming the missing or bad field."""
        try:
            return cls(
                user=str(d["user"]),
                item=str(d["item"]),
                event_type=str(d["event_type"]),
                ts=float(d["ts"]),
                extra=dict(d.get("extra") or {}),
            )
        except KeyError as e:
            raise ValueError(f"live event lacks field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"live event has a bad field: {e}") from None

    @classmethod
    def from_json(cls, line: str | bytes) -> LiveEvent:
        """Inverse of `to_json`; raises `ValueError` on malformed JSON or fields."""
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"live event is not valid JSON: {e.msg}") from None
        if not isinstance(d, dict):
            raise ValueError("live event is not a JSON object")
        return cls.from_dict(d)
