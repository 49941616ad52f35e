"""Reading an agent's input in batches straight from its channel, without Faust's per-event stream loop.

Faust's conductor puts each fetched message, as an event, in the queue of every channel that reads its
partition. `Stream.take_events` would then run Faust's stream iterator for every event (a loop iteration
of its own, sensors, the current-event context, a processor that appends it to a buffer, an ack) and a
second task that hands over the buffer. `BatchReader` takes the events off the channel's queue itself, as
many as are there, up to a batch: a few dict and list operations per record.

What the stream iterator does and still matters is done here too:

* an event fetched before a rebalance (Faust's flow control suspended, or another consumer generation) is
  not processed and not acked: the partition's new owner, or this worker after the assignment, reads it
  again from the committed offset. (Faust's own iterator acks such events; nothing processed them.)
* the Monitor's per-partition ``stream_inbound_time``, which Faust's "slow processing" warnings read, is
  set once per partition and batch instead of once per event;
* the queue's flow control sees every take (``get_nowait``), so a partition paused because the buffer was
  full is resumed once it drains.

Acking stays with `workers.faust.acks` (``claim`` and ``release``): nothing is acked before its results
are durable. With the fast path off (``AVROFLOW_FAUST_FAST_PATH=false``), `batches` reads through Faust's
own ``Stream.take_events`` instead; the messages it yields are claimed the same way, so Faust's ack of its
buffer after each batch does nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any


class BatchReader:
    """Batches of messages from one agent channel (the iterator clone registered with the conductor).

    Args:
        app: the `faust.App` (for its flow control, consumer generation and Monitor).
        channel: the channel iterator: ``aiter(stream.channel)``, which subscribes its topic.
        max_size: the largest batch.
        within: how long to wait for a batch to fill once its first message is there, in seconds.
    """

    def __init__(self, app: Any, channel: Any, max_size: int, within: float) -> None:
        if max_size < 1 or within <= 0:
            raise ValueError("max_size must be at least 1 and within positive")
        self._app = app
        self._queue = channel.queue
        self._max = max_size
        self._within = within
        #: Events dropped because they were fetched before a rebalance (read again after it).
        self.stale = 0
        self._closed = False

    def __aiter__(self) -> BatchReader:
        return self

    async def __anext__(self) -> list[Any]:
        """Wait for the next messages and return at most `max_size` of them (never an empty list).

        Returns as soon as the batch is full, or `within` seconds after its first message arrived. Ends
        (StopAsyncIteration) when Faust closes the channel as the app stops; a batch being filled then is
        still returned.
        """
        if self._closed:
            raise StopAsyncIteration
        messages: list[Any] = []
        try:
            await self._fill(messages)
        except StopAsyncIteration:
            self._closed = True
            if not messages:
                raise
        self._mark_inbound(messages)
        return messages

    async def _fill(self, messages: list[Any]) -> None:
        queue = self._queue
        while not messages:
            self._take(await queue.get(), messages)
            self._drain(messages)
        deadline = time.monotonic() + self._within
        while len(messages) < self._max:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    event = await queue.get()
            except TimeoutError:
                return
            self._take(event, messages)
            self._drain(messages)

    def _drain(self, messages: list[Any]) -> None:
        queue, limit, append = self._queue, self._max, messages.append
        if not self._app.flow_control.is_active():
            while not queue.empty():  # a rebalance began: everything queued is read again after it
                queue.get_nowait()
                self.stale += 1
            return
        generation = self._app.consumer_generation_id
        while len(messages) < limit and not queue.empty():
            message = queue.get_nowait().message
            if message.generation_id == generation:
                append(message)
            else:
                self.stale += 1

    def _take(self, event: Any, messages: list[Any]) -> None:
        message = event.message
        app = self._app
        if app.flow_control.is_active() and message.generation_id == app.consumer_generation_id:
            messages.append(message)
        else:
            self.stale += 1

    def _mark_inbound(self, messages: list[Any]) -> None:
        monitor = self._app.monitor
        if monitor is None or not messages:
            return
        now = time.monotonic()
        inbound = monitor.stream_inbound_time
        for tp in {message.tp for message in messages}:
            inbound[tp] = now


def batches(
    app: Any, stream: Any, max_size: int, within: float, *, fast_path: bool
) -> AsyncIterator[list[Any]]:
    """Batches of raw Faust messages from an agent's `stream`: `BatchReader` on the fast path, else
    Faust's ``take_events``.

    Args:
        app: the `faust.App`.
        stream: the stream Faust hands the agent.
        max_size: the largest batch.
        within: how long to wait for a batch to fill, in seconds.
        fast_path: read off the channel's queue (`BatchReader`) rather than through Faust's stream loop.
    """
    if fast_path:
        # Iterating the channel subscribes the topic; the batches come off its queue.
        return BatchReader(app, aiter(stream.channel), max_size, within)
    return _taken(stream, max_size, within)


async def _taken(stream: Any, max_size: int, within: float) -> AsyncIterator[list[Any]]:
    async for events in stream.take_events(max_size, within):
        yield [event.message for event in events]


__all__ = ["BatchReader", "batches"]
