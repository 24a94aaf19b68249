"""Small in-process caches: repeated /recommend answers, and per-user features.

Both are LRU with a time to live. The answer cache is keyed on everything an answer
depends on (the model's manifest digest, the user's pseudonym and state version, k,
context, filters, explain), so a new event (a new state version) or a reload (a new
digest) can never serve a stale answer; the TTL only bounds how long an answer that
depends on the clock (the hour of day, "recent" popularity) is reused.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """A thread-safe LRU of at most `size` entries, each kept `ttl_s` seconds; size 0
    keeps nothing. `clock` is injectable for tests."""

    def __init__(self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = int(size)
        self.ttl_s = float(ttl_s)
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        if self.size <= 0:
            return None
        with self._lock:
            found = self._data.get(key)
            if found is None:
                return None
            expires, value = found
            if expires <= self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + self.ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The cached value, or `compute()` stored (computed outside the lock)."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
