"""The service's user state: recent events per user, bounded and versioned, in
process or in Redis (where several replicas see the same state)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator

import pytest

from recsys_cli.errors import ConfigError
from recsys_cli.serving.state import LiveEvent, MemoryState, RedisState, StateStore, make_state

ALICE, BOB = "a1" * 10, "b2" * 10  # lake pseudonyms (20 hex characters)


def view(user: str, item: str, ts: float = 0.0, **extra: object) -> LiveEvent:
    return LiveEvent(user, item, "view", ts, dict(extra))


def items(events: list[LiveEvent]) -> list[str]:
    return [e.item for e in events]


# -- LiveEvent ----------------------------------------------------------------------------------------------------


def test_live_event_round_trips_through_one_json_line() -> None:
    event = LiveEvent(ALICE, "sku-1", "purchase", 1767225600.25, {"price": 9.5, "quantity": 2})
    line = event.to_json()
    assert "\n" not in line
    back = LiveEvent.from_json(line)
    assert back == event and back.extra == {"price": 9.5, "quantity": 2}


def test_live_event_without_extra_writes_none() -> None:
    assert "extra" not in view(ALICE, "i").to_json()


@pytest.mark.parametrize(
    ("line", "says"),
    [("{not json", "not valid JSON"), ("[1]", "not a JSON object"), ('{"user": "u"}', "lacks field 'item'")],
)
def test_a_malformed_live_event_is_a_value_error_saying_why(line: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        LiveEvent.from_json(line)


# -- the contract every store keeps -------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[int], StateStore]]:
    stores: list[StateStore] = []

    def make(max_events: int) -> StateStore:
        if request.param == "memory":
            store: StateStore = MemoryState(max_events_per_user=max_events)
        else:
            url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
            store = RedisState(url, max_events_per_user=max_events, prefix=prefix)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def test_history_is_oldest_first_and_keeps_only_the_newest_events(make_store: Callable[[int], StateStore]) -> None:
    store = make_store(3)
    store.append([view(ALICE, "i1"), view(ALICE, "i2")])
    store.append([view(ALICE, "i3"), view(ALICE, "i4")])
    assert items(store.history(ALICE)) == ["i2", "i3", "i4"]


def test_an_unknown_user_has_no_history_and_version_zero(make_store: Callable[[int], StateStore]) -> None:
    store = make_store(3)
    assert store.history(ALICE) == [] and store.version(ALICE) == 0
    assert store.snapshot(ALICE) == (0, [])


def test_every_append_moves_that_users_version_only(make_store: Callable[[int], StateStore]) -> None:
    store = make_store(3)
    store.append([view(ALICE, "i1")])
    first = store.version(ALICE)
    store.append([view(BOB, "i1")])
    assert store.version(ALICE) == first
    store.append([view(ALICE, "i2"), view(ALICE, "i3")])  # one batch: one new version
    assert store.version(ALICE) > first
    assert store.snapshot(ALICE) == (store.version(ALICE), store.history(ALICE))


def test_a_batch_of_several_users_reaches_each(make_store: Callable[[int], StateStore]) -> None:
    store = make_store(5)
    store.append([view(ALICE, "i1"), view(BOB, "i2"), view(ALICE, "i3")])
    assert items(store.history(ALICE)) == ["i1", "i3"]
    assert items(store.history(BOB)) == ["i2"]
    assert store.history(ALICE)[0] == view(ALICE, "i1")


def test_an_empty_batch_changes_nothing(make_store: Callable[[int], StateStore]) -> None:
    store = make_store(5)
    store.append([])
    assert store.version(ALICE) == 0


def test_extra_fields_survive_the_store(make_store: Callable[[int], StateStore]) -> None:
    store = make_store(5)
    store.append([LiveEvent(ALICE, "i1", "purchase", 12.5, {"price": 3.0})])
    assert store.history(ALICE)[0].extra == {"price": 3.0}


# -- in process ---------------------------------------------------------------------------------------------------


def test_memory_state_evicts_the_least_recently_used_user() -> None:
    store = MemoryState(max_events_per_user=5, max_users=2)
    store.append([view("u1", "i1")])
    store.append([view("u2", "i1")])
    store.history("u1")  # a read counts as a use: u2 is now the oldest
    store.append([view("u3", "i1")])
    assert len(store) == 2 and store.evicted == 1
    assert store.history("u2") == [] and store.version("u2") == 0
    assert items(store.history("u1")) == ["i1"]


def test_a_user_back_after_eviction_gets_a_version_never_seen_before() -> None:
    store = MemoryState(max_events_per_user=5, max_users=1)
    store.append([view("u1", "i1")])
    old = store.version("u1")
    store.append([view("u2", "i1")])  # evicts u1
    store.append([view("u1", "i2")])
    assert store.version("u1") > old
    assert items(store.history("u1")) == ["i2"]


@pytest.mark.parametrize("bad", [{"max_events_per_user": 0}, {"max_users": 0}])
def test_memory_state_refuses_a_bound_below_one(bad: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        MemoryState(**bad)


# -- in Redis -----------------------------------------------------------------------------------------------------


def test_redis_state_keys_name_only_the_pseudonym(redis_url: str, redis_prefix: str) -> None:
    import redis

    store = RedisState(redis_url, 5, prefix=redis_prefix)
    store.append([view(ALICE, "i1")])
    keys = sorted(k.decode() for k in redis.Redis.from_url(redis_url).keys(f"{redis_prefix}:*"))
    assert keys == [f"{redis_prefix}:seq", f"{redis_prefix}:u:{ALICE}:events", f"{redis_prefix}:u:{ALICE}:version"]


def test_redis_state_expires_idle_users_and_a_returning_user_gets_a_new_version(
    redis_url: str, redis_prefix: str
) -> None:
    import redis

    store = RedisState(redis_url, 5, prefix=redis_prefix, ttl_s=3600)
    store.append([view(ALICE, "i1")])
    client = redis.Redis.from_url(redis_url)
    events_key, version_key = f"{redis_prefix}:u:{ALICE}:events", f"{redis_prefix}:u:{ALICE}:version"
    assert 0 < client.ttl(events_key) <= 3600 and 0 < client.ttl(version_key) <= 3600
    old = store.version(ALICE)
    client.delete(events_key, version_key)  # what expiry does
    store.append([view(ALICE, "i2")])
    assert store.version(ALICE) > old and items(store.history(ALICE)) == ["i2"]


def test_redis_state_skips_and_counts_an_entry_that_does_not_parse(redis_url: str, redis_prefix: str) -> None:
    import redis

    store = RedisState(redis_url, 5, prefix=redis_prefix)
    store.append([view(ALICE, "i1")])
    redis.Redis.from_url(redis_url).rpush(f"{redis_prefix}:u:{ALICE}:events", b"{torn")
    assert items(store.history(ALICE)) == ["i1"] and store.bad_entries == 1


def _replica_appends(url: str, prefix: str, events: list[str]) -> None:
    store = RedisState(url, 5, prefix=prefix)
    store.append([LiveEvent.from_json(e) for e in events])
    store.close()


def test_two_replicas_on_one_server_agree(redis_url: str, redis_prefix: str) -> None:
    """An event posted to one replica (another process) changes what this one sees next."""
    here = RedisState(redis_url, 5, prefix=redis_prefix)
    here.append([view(ALICE, "i1", ts=1.0)])
    before = here.version(ALICE)
    replica = multiprocessing.get_context("spawn").Process(
        target=_replica_appends, args=(redis_url, redis_prefix, [view(ALICE, "i2", ts=2.0).to_json()])
    )
    replica.start()
    replica.join(timeout=60)
    assert replica.exitcode == 0
    assert items(here.history(ALICE)) == ["i1", "i2"]
    assert here.version(ALICE) > before
    here.close()


def test_redis_state_answers_ping(redis_url: str, redis_prefix: str) -> None:
    assert RedisState(redis_url, 5, prefix=redis_prefix).ping()
    assert not RedisState("redis://127.0.0.1:1/0", 5).ping()


# -- from config --------------------------------------------------------------------------------------------------


def test_make_state_builds_the_named_store(redis_url: str, redis_prefix: str) -> None:
    assert isinstance(make_state("memory", max_events_per_user=3, max_users=10), MemoryState)
    store = make_state("redis", redis_url=redis_url, prefix=redis_prefix, ttl_s=60)
    assert isinstance(store, RedisState) and store.ttl_s == 60


@pytest.mark.parametrize(("kind", "says"), [("redis", "needs serve.redis_url"), ("disk", "not a state store")])
def test_make_state_refuses_what_it_cannot_build(kind: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        make_state(kind)
