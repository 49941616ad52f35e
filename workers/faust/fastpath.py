"""Cutting Faust's per-message dispatch cost without changing what it does.

Faust's consumer hands every fetched message to the conductor through
``Service.wait_first(callback(message), suspend_flow.wait())``: the callback is raced against a rebalance
suspending the flow. `mode`'s ``wait_first`` wraps each of the two coroutines, plus the service's stopped
and crashed events, in a task, runs ``asyncio.wait`` and cancels the losers: four tasks per message,
about 35 us on this machine, the largest single cost of a record in the worker (bench/README.md).

Almost always the callback finishes without waiting for anything (it puts the event in the stream's
queue). `EagerDispatch.wait_first` therefore runs the callback's first step at once, the way Python
3.12's eager tasks do: when it finishes there, no task is created and the flow coroutine is closed
unstarted. When it does wait (flow control during a rebalance, a full stream buffer, a full producer
buffer), the rest of it runs as a task raced against the flow exactly as Faust does, so a suspended flow
still abandons it. Every other use of ``wait_first`` (timeouts, single waits) goes to mode unchanged.

`PromptResume` fixes a stall in Faust's flow control. When an agent's buffer is full, the conductor pauses
every partition that delivers into it; when every assigned partition is paused, Faust's fetch loop sleeps
one second before it looks again. The agent empties a full buffer in a fraction of that (4,096 records in
about 0.2 s here) and then waits, idle, for the rest: measured as 0.8 s gaps in the middle of a backlog.
`PromptResume` waits for the first partition to be resumed (the buffer drained below Faust's low-water
mark) instead, still at most one second. Likewise, while some partitions are paused, a fetch from the
others waits at most 50 ms for records (Faust: 1 s), so a resumed partition is not left out that long.

The hooks these rely on are listed, and checked at start, in `workers.faust.compat`; with
``AVROFLOW_FAUST_FAST_PATH=false`` none of this is installed and Faust dispatches as it always does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from mode.services import WaitResults


def install(app: Any, *, fetch_max_wait: float | None = None) -> None:
    """Make `app` (a `faust.App`, before its consumer exists) dispatch messages eagerly and, when
    `fetch_max_wait` (seconds) is given, let the broker hold a fetch at most that long."""
    transport = app.transport
    transport.Consumer = eager_dispatch(transport.Consumer, fetch_max_wait)


def eager_dispatch(consumer_class: type[Any], fetch_max_wait: float | None = None) -> type[Any]:
    """Return a subclass of Faust's consumer class whose per-message dispatch runs eagerly and whose
    fetch loop resumes as soon as a paused partition may be fetched again."""
    namespace = {} if fetch_max_wait is None else {"fetch_max_wait_ms": max(1, round(fetch_max_wait * 1000))}
    return type(f"Eager{consumer_class.__name__}", (EagerDispatch, PromptResume, consumer_class), namespace)


class PromptResume:
    """Mixin for a Faust `Consumer`: a partition paused for a full agent buffer is fetched from again
    as soon as the buffer drains, instead of after Faust's one-second waits."""

    #: How long Faust's fetch loop sleeps when it has no partition to fetch from.
    IDLE_SECONDS = 1.0
    #: The longest fetch wait while a partition is paused for a full buffer (it may resume any moment).
    RECHECK_SECONDS = 0.05
    _resumed: asyncio.Event | None = None

    def on_buffer_drop(self, tp: Any) -> None:
        super().on_buffer_drop(tp)  # type: ignore[misc]
        if self._resumed is not None:
            self._resumed.set()

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109 - Faust's signature
        this: Any = self
        parent: Any = super()
        if not this.flow_active or this.app.client_only or not this._buffered_partitions:
            return await parent._wait_next_records(timeout)
        if this._get_active_partitions():
            # Fetch from the partitions not paused, but not for long: a resumed one is not in this fetch.
            return await parent._wait_next_records(min(timeout, self.RECHECK_SECONDS))
        resumed = self._resumed = self._resumed or asyncio.Event()
        resumed.clear()
        try:
            async with asyncio.timeout(self.IDLE_SECONDS):
                await resumed.wait()
        except TimeoutError:
            pass
        return {}, this._get_active_partitions()


class EagerDispatch:
    """Mixin for a Faust `Consumer` (a mode `Service`): `wait_first` with an eager fast path, and the
    fetch wait of the aiokafka consumer it creates (`fetch_max_wait_ms`; None keeps Faust's)."""

    fetch_max_wait_ms: int | None = None

    def _new_consumer_thread(self) -> Any:
        thread = super()._new_consumer_thread()  # type: ignore[misc]
        if self.fetch_max_wait_ms is not None:
            thread._create_consumer = _with_fetch_max_wait(thread._create_consumer, self.fetch_max_wait_ms)
        return thread

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:  # noqa: ASYNC109 - mode's signature
        """Faust's ``wait_first(callback(message), suspend_flow.wait())``, with no task when the callback
        completes in its first step; any other call is mode's own."""
        parent: Any = super()
        if timeout is not None or len(coros) != 2 or not all(asyncio.iscoroutine(c) for c in coros):
            return await parent.wait_first(*coros, timeout=timeout)
        first, flow = coros
        if self._stopped.is_set() or self._crashed.is_set():  # type: ignore[attr-defined]
            return await parent.wait_first(first, flow)
        try:
            waiting_for = first.send(None)
        except StopIteration as done:
            flow.close()
            return WaitResults([first], [done.value], False)
        except BaseException:
            flow.close()
            raise
        return await parent.wait_first(_resume(first, waiting_for), flow)


def _with_fetch_max_wait(create: Any, fetch_max_wait_ms: int) -> Any:
    """Wrap a consumer thread's ``_create_consumer``: the aiokafka consumer it returns (not started yet)
    builds its fetcher with `fetch_max_wait_ms`. Faust passes a fixed 1,500 ms to aiokafka."""

    def create_consumer(loop: Any) -> Any:
        consumer = create(loop)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer

    return create_consumer


async def _resume(coro: Coroutine[Any, Any, Any], waiting_for: Any) -> Any:
    """Run the rest of `coro`, which yielded `waiting_for` in a step taken outside any task.

    It does what an asyncio task does with a coroutine: wait until the future it yielded is done (a bare
    ``yield`` means "let the loop run once"), then resume it; a cancellation is passed into it.
    """
    while True:
        try:
            if waiting_for is None:
                await asyncio.sleep(0)
            else:
                waiting_for._asyncio_future_blocking = False  # as Task.__step does with a yielded future
                await asyncio.wait([waiting_for])
        except asyncio.CancelledError as exc:
            if waiting_for is not None:
                waiting_for.cancel()
            try:
                waiting_for = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            waiting_for = coro.send(None)
        except StopIteration as done:
            return done.value


__all__ = ["EagerDispatch", "PromptResume", "eager_dispatch", "install"]
