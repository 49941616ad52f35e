"""The registry client's caches: LRU bounds, expiry on an injected clock, single-flight loads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from registry_codecs.errors import SchemaNotFound
from registry_codecs.registry_cache import ExpiringCache, LatestEntry, LruCache, SingleFlight


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lru_evicts_the_least_recently_used() -> None:
    cache: LruCache[int, str] = LruCache(2)
    cache.put(1, "a")
    cache.put(2, "b")
    assert cache.get(1) == "a"  # 1 is now more recent than 2
    cache.put(3, "c")
    assert cache.get(2) is None
    assert (cache.get(1), cache.get(3)) == ("a", "c")
    assert len(cache) == 2


def test_lru_rejects_a_zero_size() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LruCache(0)


def test_expiring_cache_forgets_after_ttl() -> None:
    clock = FakeClock()
    cache: ExpiringCache[int, str] = ExpiringCache(10, clock)
    cache.put(7, "unknown", ttl=5.0)
    clock.now += 4.99
    assert cache.get(7) == "unknown"
    clock.now += 0.01
    assert cache.get(7) is None
    assert len(cache) == 0


def test_expiring_cache_is_bounded_and_ttl_zero_stores_nothing() -> None:
    clock = FakeClock()
    cache: ExpiringCache[int, int] = ExpiringCache(3, clock)
    for key in range(10):
        cache.put(key, key, ttl=60)
    assert len(cache) == 3
    assert [cache.get(k) for k in (6, 7, 8, 9)] == [None, 7, 8, 9]
    cache.put(100, 1, ttl=0)
    assert cache.get(100) is None


def test_latest_entry_is_fresh_before_its_deadline_only() -> None:
    entry = LatestEntry("v1", expires_at=10.0)
    assert entry.fresh_at(9.999)
    assert not entry.fresh_at(10.0)


class CountingFlight(SingleFlight[str, int]):
    """Counts callers that found a load in progress, so a test can release the load once all have."""

    def __init__(self, expected_waiters: int) -> None:
        super().__init__()
        self._expected = expected_waiters
        self._count_lock = threading.Lock()
        self.waiters = 0
        self.all_waiting = threading.Event()

    def _wait(self, flight: Any) -> int:
        with self._count_lock:
            self.waiters += 1
            if self.waiters == self._expected:
                self.all_waiting.set()
        return super()._wait(flight)


def _run_concurrently(flights: CountingFlight, load: Callable[[], int], callers: int) -> list[object]:
    outcomes: list[object] = []

    def call() -> None:
        try:
            outcomes.append(flights.run("k", load))
        except SchemaNotFound as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    return outcomes


def test_single_flight_runs_one_load_for_concurrent_callers() -> None:
    flights = CountingFlight(expected_waiters=7)
    calls = 0

    def load() -> int:
        nonlocal calls
        calls += 1
        assert flights.all_waiting.wait(5)  # every other caller joined this load
        return 42

    assert _run_concurrently(flights, load, 8) == [42] * 8
    assert calls == 1
    assert flights.run("k", lambda: 7) == 7  # nothing stays in flight


def test_single_flight_shares_the_error_with_waiters() -> None:
    flights = CountingFlight(expected_waiters=3)
    calls = 0

    def failing() -> int:
        nonlocal calls
        calls += 1
        assert flights.all_waiting.wait(5)
        raise SchemaNotFound("no id 9", status_code=404, error_code=40403)

    outcomes = _run_concurrently(flights, failing, 4)
    assert calls == 1
    assert len(outcomes) == 4
    assert all(isinstance(e, SchemaNotFound) and e.error_code == 40403 for e in outcomes)


def test_lru_stays_consistent_under_concurrent_gets_and_puts() -> None:
    cache: LruCache[int, int] = LruCache(50)
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            for i in range(20_000):
                value = cache.get(i % 100)
                assert value is None or value == i % 100
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def writer() -> None:
        for i in range(20_000):
            cache.put(i % 100, i % 100)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert len(cache) == 50
