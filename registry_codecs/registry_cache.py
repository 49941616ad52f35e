"""Thread-safe caches behind the schema-registry client.

Three shapes of data, three caches: schemas by id never change, so they live in a bounded LRU without
expiry; "the latest version of a subject" changes when someone registers, so it is kept with a deadline
(`LatestEntry`); unknown ids are remembered briefly (`ExpiringCache`) so a flood of bad frames does not
become a flood of HTTP requests. `SingleFlight` makes concurrent misses on one key share one load, so a
cold cache under many threads costs one request, not one per thread. No lock is ever held during I/O.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A bounded least-recently-used map. `get` and `put` are O(1) and thread-safe; `put` takes a lock."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"cache size must be at least 1, got {maxsize}")
        self._maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """Return the value for `key` and mark it recently used, or None.

        Lock-free, because it is the per-message path: `OrderedDict.get` and `move_to_end` are single C
        calls, atomic under the GIL for the int and str-tuple keys used here (no Python `__eq__` runs).
        A `put` evicting `key` between the two calls is harmless: the value read is still valid.
        """
        value = self._data.get(key)
        if value is not None:
            try:
                self._data.move_to_end(key)
            except KeyError:
                pass  # evicted by a concurrent put
        return value

    def put(self, key: K, value: V) -> None:
        """Store `value`, evicting the least recently used entry when full."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class ExpiringCache(Generic[K, V]):
    """A bounded map whose entries vanish `ttl` seconds after they were put (by the injected clock).

    Bounded because its keys come from untrusted input (schema ids read off the wire): when full, the
    oldest entry goes first.
    """

    def __init__(self, maxsize: int, clock: Callable[[], float]) -> None:
        if maxsize < 1:
            raise ValueError(f"cache size must be at least 1, got {maxsize}")
        self._maxsize = maxsize
        self._clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """Return the value for `key` if it has not expired, else None."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if self._clock() >= item[0]:
                del self._data[key]
                return None
            return item[1]

    def put(self, key: K, value: V, ttl: float) -> None:
        """Store `value` for `ttl` seconds; a ttl of 0 or less stores nothing."""
        if ttl <= 0:
            return
        with self._lock:
            self._data.pop(key, None)
            self._data[key] = (self._clock() + ttl, value)
            if len(self._data) > self._maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class LatestEntry(Generic[V]):
    """The cached latest version of a subject.

    Entries are replaced, never mutated, so readers need no lock: a dict read and a clock compare.

    Attributes:
        value: the last schema the registry gave.
        expires_at: clock reading after which the next reader refreshes.
        stale: the last refresh failed and `value` is being served past its TTL.
    """

    value: V
    expires_at: float
    stale: bool = False

    def fresh_at(self, now: float) -> bool:
        """True while `now` is before the deadline."""
        return now < self.expires_at


class _Flight(Generic[V]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: V | None = None
        self.error: Exception | None = None


class SingleFlight(Generic[K, V]):
    """Runs at most one load per key at a time; concurrent callers for that key wait and share its result.

    The lock guards only the table of loads in progress; the load itself runs unlocked.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[K, _Flight[V]] = {}

    def run(self, key: K, load: Callable[[], V]) -> V:
        """Return `load()`, or the result of the identical load another thread is running.

        Raises:
            Exception: whatever `load` raised; waiters get a copy chained to the leader's error.
        """
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            return self._wait(flight)
        try:
            value = load()
        except Exception as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            return value
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    @staticmethod
    def _wait(flight: _Flight[V]) -> V:
        flight.done.wait()
        if flight.error is not None:
            # A copy, so that threads raising it at once do not splice their tracebacks into one object.
            raise copy.copy(flight.error) from flight.error
        return cast(V, flight.value)  # set whenever error is None


__all__ = ["ExpiringCache", "LatestEntry", "LruCache", "SingleFlight"]
