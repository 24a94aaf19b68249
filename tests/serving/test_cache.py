"""The answer cache: least recently used out first, nothing kept past its time to live."""

from __future__ import annotations

from recsys_cli.serving.cache import TTLCache


def test_least_recently_used_goes_first_and_entries_expire() -> None:
    now = [0.0]
    cache: TTLCache[str] = TTLCache(2, ttl_s=10, clock=lambda: now[0])
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("c", "C")
    assert cache.get("b") is None and cache.get("a") == "A" and cache.get("c") == "C"
    now[0] = 10.0
    assert cache.get("a") is None and len(cache) == 1


def test_size_zero_keeps_nothing_and_get_or_compute_computes_once() -> None:
    assert TTLCache(0, 10).get_or_compute("k", lambda: 1) == 1
    calls: list[int] = []
    cache: TTLCache[int] = TTLCache(4, 10)
    for _ in range(3):
        cache.get_or_compute("k", lambda: calls.append(1) or 7)
    assert calls == [1] and cache.get("k") == 7
