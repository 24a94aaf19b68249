"""The service's live user state: recent events per user, shared by the engine and the app.

Events arrive after the package's cutoff (`POST /events`) and must change the very next
answer, so each user's recent history is kept here, bounded, and versioned so that a
cache keyed on `(user, version)` is invalidated by any new event.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from recsys_cli.errors import ConfigError


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


class StateStore(Protocol):
    """Recent events per user, bounded, with a version that changes on every append.

    `history` is oldest first, in arrival order, and holds at most the store's
    `max_events_per_user` newest events. `version` is 0 for a user without state and
    otherwise a number no earlier state of that user had, so a cache keyed on
    `(user, version)` never serves an answer computed before the user's last event,
    even after the user's state was evicted or expired and built again.
    """

    max_events_per_user: int

    def append(self, events: Sequence[LiveEvent]) -> None: ...

    def history(self, user: str) -> list[LiveEvent]: ...

    def version(self, user: str) -> int: ...

    def snapshot(self, user: str) -> tuple[int, list[LiveEvent]]: ...

    def close(self) -> None: ...


def _by_user(events: Sequence[LiveEvent]) -> dict[str, list[LiveEvent]]:
    """Events grouped per user, each group in the order given."""
    grouped: dict[str, list[LiveEvent]] = {}
    for event in events:
        grouped.setdefault(event.user, []).append(event)
    return grouped


def _positive(name: str, value: int) -> int:
    if int(value) < 1:
        raise ConfigError(f"serve state: {name} must be at least 1, got {value}")
    return int(value)


class MemoryState:
    """User state in this process: one bounded deque per user, users evicted least
    recently used first beyond `max_users`, so memory stays bounded under any traffic.

    Versions come from one counter for the whole store, never reset: an evicted user
    that comes back gets a version above any it had before.
    """

    def __init__(self, max_events_per_user: int = 50, max_users: int = 100_000) -> None:
        self.max_events_per_user = _positive("max_events_per_user", max_events_per_user)
        self.max_users = _positive("max_users", max_users)
        self._users: OrderedDict[str, tuple[int, deque[LiveEvent]]] = OrderedDict()
        self._seq = 0
        self._lock = threading.Lock()
        self.evicted = 0  # users dropped to stay within max_users (a metric for the app)

    def append(self, events: Sequence[LiveEvent]) -> None:
        with self._lock:
            for user, batch in _by_user(events).items():
                _, recent = self._users.pop(user, (0, deque(maxlen=self.max_events_per_user)))
                recent.extend(batch)
                self._seq += 1
                self._users[user] = (self._seq, recent)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)
                self.evicted += 1

    def snapshot(self, user: str) -> tuple[int, list[LiveEvent]]:
        with self._lock:
            state = self._users.get(user)
            if state is None:
                return 0, []
            self._users.move_to_end(user)  # read or written: recently used
            return state[0], list(state[1])

    def history(self, user: str) -> list[LiveEvent]:
        return self.snapshot(user)[1]

    def version(self, user: str) -> int:
        with self._lock:
            state = self._users.get(user)
            return 0 if state is None else state[0]

    def __len__(self) -> int:
        return len(self._users)

    def close(self) -> None:
        with self._lock:
            self._users.clear()


# One round trip and atomic for the whole batch: each user's list gets its events and
# is trimmed to the newest N, and its version is set from one store-wide counter (a
# per-user INCR would restart at 1 after the key expired, reusing versions that a
# cache may still hold). KEYS: counter, then (list, version) per user; ARGV: max
# events, ttl seconds (0: none), then per user the number of events and the events.
_APPEND_LUA = """
local max_events = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local arg = 3
for i = 2, #KEYS, 2 do
  local n = tonumber(ARGV[arg])
  for j = 1, n do
    redis.call('RPUSH', KEYS[i], ARGV[arg + j])
  end
  arg = arg + n + 1
  redis.call('LTRIM', KEYS[i], -max_events, -1)
  redis.call('SET', KEYS[i + 1], redis.call('INCR', KEYS[1]))
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[i], ttl)
    redis.call('EXPIRE', KEYS[i + 1], ttl)
  end
end
return 1
"""


class RedisState:
    """User state in Redis, shared by every replica pointing at the same server.

    Per user a list `<prefix>:u:<pseudonym>:events` of JSON events (newest last,
    trimmed to `max_events_per_user`) and `<prefix>:u:<pseudonym>:version`; keys
    and values hold only pseudonyms. `ttl_s` (None or 0: never) lets idle users
    expire, which bounds the server's memory the way LRU bounds `MemoryState`.
    The script touches several keys, so under Redis Cluster all of a prefix must
    hash to one slot (write the prefix as `{recsys}`).
    """

    def __init__(
        self, url: str, max_events_per_user: int = 50, prefix: str = "recsys", ttl_s: float | None = None
    ) -> None:
        import redis

        self.max_events_per_user = _positive("max_events_per_user", max_events_per_user)
        self.prefix = prefix
        self.ttl_s = int(ttl_s or 0)
        self.bad_entries = 0  # stored events that no longer parse, skipped (a metric for the app)
        self._client = redis.Redis.from_url(url)
        self._append = self._client.register_script(_APPEND_LUA)

    def _keys(self, user: str) -> tuple[str, str]:
        base = f"{self.prefix}:u:{user}"
        return f"{base}:events", f"{base}:version"

    def append(self, events: Sequence[LiveEvent]) -> None:
        grouped = _by_user(events)
        if not grouped:
            return
        keys: list[str] = [f"{self.prefix}:seq"]
        args: list[Any] = [self.max_events_per_user, self.ttl_s]
        for user, batch in grouped.items():
            keys.extend(self._keys(user))
            args.append(len(batch))
            args.extend(e.to_json() for e in batch)
        self._append(keys=keys, args=args)

    def snapshot(self, user: str) -> tuple[int, list[LiveEvent]]:
        events_key, version_key = self._keys(user)
        pipe = self._client.pipeline(transaction=True)  # MULTI: the version of exactly this history
        pipe.get(version_key)
        pipe.lrange(events_key, -self.max_events_per_user, -1)
        version, raw = pipe.execute()
        return int(version or 0), self._parse(raw)

    def history(self, user: str) -> list[LiveEvent]:
        return self.snapshot(user)[1]

    def version(self, user: str) -> int:
        return int(self._client.get(self._keys(user)[1]) or 0)

    def _parse(self, raw: list[bytes]) -> list[LiveEvent]:
        out = []
        for item in raw:
            try:
                out.append(LiveEvent.from_json(item))
            except ValueError:
                self.bad_entries += 1
        return out

    def ping(self) -> bool:
        """Whether the server answers (for `/readyz`)."""
        try:
            return bool(self._client.ping())
        except Exception:  # noqa: BLE001 - any failure means "not ready", never a crash
            return False

    def close(self) -> None:
        self._client.close()


def make_state(
    kind: str,
    *,
    max_events_per_user: int = 50,
    max_users: int = 100_000,
    redis_url: str | None = None,
    prefix: str = "recsys",
    ttl_s: float | None = None,
) -> StateStore:
    """The store `serve.state` names: `memory` (this process) or `redis` (shared by replicas)."""
    if kind == "memory":
        return MemoryState(max_events_per_user, max_users)
    if kind == "redis":
        if not redis_url:
            raise ConfigError("serve.state=redis needs serve.redis_url (e.g. redis://127.0.0.1:6379/0)")
        return RedisState(redis_url, max_events_per_user, prefix, ttl_s)
    raise ConfigError(f"serve.state: {kind!r} is not a state store; use memory or redis")
