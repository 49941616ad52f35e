"""Cache reads just before, exactly at, and just past each deadline: an unknown id is remembered for its
TTL and not a moment longer (a clock that jumps past the deadline without landing on it still expires it),
a latest-schema entry is fresh strictly before its deadline only."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from registry_codecs.registry_cache import ExpiringCache, LatestEntry, LruCache

EPSILON = 1e-6


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("offset", "remembered"), [(-EPSILON, True), (0.0, False), (EPSILON, False), (3600, False)]
)
def test_an_unknown_id_is_remembered_until_its_deadline(offset: float, remembered: bool) -> None:
    clock = Clock()
    cache: ExpiringCache[int, str] = ExpiringCache(10, clock)
    cache.put(7, "unknown", ttl=5.0)
    clock.now = 1005.0 + offset  # one read only: straight from the put to this instant
    assert (cache.get(7) == "unknown") is remembered
    assert len(cache) == (1 if remembered else 0)  # an expired entry is dropped when read


def test_an_expired_unknown_id_stays_expired_and_can_be_put_again() -> None:
    clock = Clock()
    cache: ExpiringCache[int, str] = ExpiringCache(10, clock)
    cache.put(7, "first", ttl=1.0)
    clock.now += 2.0
    assert cache.get(7) is None
    clock.now += 10.0
    assert cache.get(7) is None
    cache.put(7, "second", ttl=1.0)
    clock.now += 1.0 - EPSILON
    assert cache.get(7) == "second"


def test_putting_an_id_again_restarts_its_ttl_and_refreshes_its_age() -> None:
    clock = Clock()
    cache: ExpiringCache[int, str] = ExpiringCache(2, clock)
    cache.put(1, "a", ttl=5.0)
    cache.put(2, "b", ttl=5.0)
    clock.now += 4.0
    cache.put(1, "a2", ttl=5.0)  # now the newest: the next put evicts 2, not 1
    cache.put(3, "c", ttl=5.0)
    assert (cache.get(1), cache.get(2), cache.get(3)) == ("a2", None, "c")
    clock.now += 4.0  # 8 s after the first put of 1, 4 s after the second
    assert cache.get(1) == "a2"


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_a_ttl_of_zero_or_less_stores_nothing_and_keeps_an_older_entry(ttl: float) -> None:
    clock = Clock()
    cache: ExpiringCache[int, str] = ExpiringCache(10, clock)
    cache.put(7, "kept", ttl=5.0)
    cache.put(7, "ignored", ttl=ttl)
    assert cache.get(7) == "kept" and len(cache) == 1


def test_a_tiny_positive_ttl_is_stored() -> None:
    clock = Clock()
    cache: ExpiringCache[int, str] = ExpiringCache(10, clock)
    cache.put(7, "v", ttl=EPSILON)
    assert cache.get(7) == "v"


def test_the_expiring_cache_holds_exactly_its_size() -> None:
    clock = Clock()
    cache: ExpiringCache[int, int] = ExpiringCache(3, clock)
    for key in range(3):
        cache.put(key, key, ttl=60)
    assert len(cache) == 3 and [cache.get(k) for k in range(3)] == [0, 1, 2]
    cache.put(3, 3, ttl=60)
    assert len(cache) == 3 and cache.get(0) is None


@pytest.mark.parametrize("size", [0, -1])
def test_caches_refuse_a_size_below_one(size: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ExpiringCache(size, Clock())
    with pytest.raises(ValueError, match="at least 1"):
        LruCache(size)


def test_caches_of_size_one_hold_one_entry() -> None:
    lru: LruCache[int, str] = LruCache(1)
    lru.put(1, "a")
    assert lru.get(1) == "a" and len(lru) == 1
    lru.put(2, "b")
    assert (lru.get(1), lru.get(2), len(lru)) == (None, "b", 1)
    expiring: ExpiringCache[int, str] = ExpiringCache(1, Clock())
    expiring.put(1, "a", ttl=1.0)
    assert expiring.get(1) == "a"


def test_lru_holds_exactly_its_size_and_a_put_refreshes_recency() -> None:
    cache: LruCache[int, str] = LruCache(2)
    cache.put(1, "a")
    cache.put(2, "b")
    assert len(cache) == 2 and (cache.get(1), cache.get(2)) == ("a", "b")
    cache.put(1, "a2")  # 1 is now the most recent, without a get
    cache.put(3, "c")
    assert (cache.get(1), cache.get(2), cache.get(3)) == ("a2", None, "c")


@pytest.mark.parametrize(
    ("offset", "fresh"), [(-EPSILON, True), (0.0, False), (EPSILON, False), (3600, False)]
)
def test_a_latest_entry_is_fresh_strictly_before_its_deadline(offset: float, fresh: bool) -> None:
    entry = LatestEntry("v1", expires_at=30.0)
    assert entry.fresh_at(30.0 + offset) is fresh
    assert entry.stale is False


def test_an_lru_get_racing_an_eviction_still_returns_the_value_it_read() -> None:
    class EvictedMidGet(OrderedDict[int, str]):
        """Loses the key between `get` and `move_to_end`, as a concurrent `put` evicting it would."""

        def move_to_end(self, key: int, last: bool = True) -> None:
            self.pop(key, None)
            super().move_to_end(key, last)  # raises KeyError: the key is gone

    cache: LruCache[int, str] = LruCache(2)
    cache._data = EvictedMidGet({1: "a"})
    assert cache.get(1) == "a"
    assert cache.get(1) is None
