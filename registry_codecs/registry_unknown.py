"""When the registry's "no schema with this id" is final: the grace for a registry that is warming up.

A registry that has just restarted can answer 40403 for ids that exist, for seconds, until it has
reloaded its store (Karapace replays its ``_schemas`` topic first). Taking that answer at its word would
dead-letter good records. `UnknownIds` therefore keeps, per id, when it was first reported unknown:
within `grace` seconds of that, a "not found" is `SchemaNotFoundYet` (retriable), and the registry is
asked again no sooner than a jittered exponential backoff allows (so a worker retrying every 100 ms
costs a handful of requests, not hundreds); the grace's end is always one of the asks. Once the grace is
over, the next "not found" is final: `SchemaNotFound`, remembered for `negative_ttl` seconds like any
final answer, and the id is marked confirmed unknown, so that a later "not found" for it (after the
negative TTL, when it is asked again) is final at once instead of opening a new grace. The negative
cache only ever holds final answers: a warm-up never turns into a cached "unknown".

With ``grace <= 0`` every "not found" is final at once (the client's default).
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from registry_codecs.errors import SchemaNotFound, SchemaNotFoundYet
from registry_codecs.registry_cache import ExpiringCache, LruCache
from registry_codecs.registry_http import NULL_METRIC, Incrementable, backoff_delay


@dataclass(frozen=True, slots=True)
class _Pending:
    first_seen: float
    asks: int
    next_ask: float
    message: str
    error_code: int | None


class UnknownIds:
    """Per-id state of "not found" answers; thread-safe. See the module docstring.

    Args:
        grace: seconds from an id's first "not found" during which it is asked again.
        negative_ttl: seconds a final "not found" is remembered without asking.
        backoff: ``(base, cap)`` seconds of the pause between two asks of one id.
        maxsize: ids tracked in each table (ids come off the wire: bounded).
        clock: monotonic clock.
        retried: counted once per "not found" that will be asked again.
    """

    def __init__(
        self,
        *,
        grace: float,
        negative_ttl: float,
        backoff: tuple[float, float],
        maxsize: int,
        clock: Callable[[], float],
        retried: Incrementable = NULL_METRIC,
        rand: Callable[[], float] = random.random,  # jitter only, not security
    ) -> None:
        self._grace = grace
        self._negative_ttl = negative_ttl
        self._backoff = backoff
        self._maxsize = maxsize
        self._clock = clock
        self._retried = retried
        self._rand = rand
        self._final: ExpiringCache[int, SchemaNotFound] = ExpiringCache(maxsize, clock)
        self._confirmed: LruCache[int, bool] = LruCache(maxsize)
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, schema_id: int) -> None:
        """Raise what is known about `schema_id` without asking the registry, or return (ask it).

        Raises:
            SchemaNotFound: a final "not found" within its negative TTL.
            SchemaNotFoundYet: within the grace, and too soon to ask again.
        """
        final = self._final.get(schema_id)
        if final is not None:
            raise SchemaNotFound(
                str(final.args[0]), status_code=final.status_code, error_code=final.error_code
            )
        with self._lock:
            pending = self._pending.get(schema_id)
        if pending is not None and self._clock() < pending.next_ask:
            raise SchemaNotFoundYet(pending.message, status_code=404, error_code=pending.error_code)

    def not_found(self, schema_id: int, answer: SchemaNotFound) -> SchemaNotFound | SchemaNotFoundYet:
        """Return the error to raise for the registry's "not found" `answer` about `schema_id`."""
        now = self._clock()
        with self._lock:
            pending = self._pending.pop(schema_id, None)
            if (
                self._grace <= 0
                or self._confirmed.get(schema_id)
                or (pending is not None and now - pending.first_seen >= self._grace)
            ):
                self._confirmed.put(schema_id, True)
                self._final.put(schema_id, answer, self._negative_ttl)
                return answer
            first = now if pending is None else pending.first_seen
            asks = 1 if pending is None else pending.asks + 1
            pause = backoff_delay(asks - 1, *self._backoff, self._rand)
            message = (
                f"{answer.args[0]} (said {asks} time(s) in {now - first:.1f} s; asked again until "
                f"{self._grace:g} s have passed: a registry that has just started may not have loaded it)"
            )
            self._pending[schema_id] = _Pending(
                first, asks, min(now + pause, first + self._grace), message, answer.error_code
            )
            if len(self._pending) > self._maxsize:
                self._pending.popitem(last=False)
        self._retried.inc()
        return SchemaNotFoundYet(message, status_code=answer.status_code, error_code=answer.error_code)

    def found(self, schema_id: int) -> None:
        """Forget `schema_id`'s "not found" answers: the registry has it now."""
        with self._lock:
            self._pending.pop(schema_id, None)


__all__ = ["UnknownIds"]
