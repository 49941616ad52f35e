"""BatchReader on Faust's own channel, queue, flow control and Monitor (no broker: events put by hand)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import pytest
from faust.types import TP, Message

from workers.faust.batches import BatchReader

TOPIC = "orders"
#: Long enough that a test relying on it never sees it expire, short enough to end a test that hangs.
FOREVER = 30.0


def message(offset: int, *, partition: int = 0, generation: int = 0) -> Message:
    return Message(
        TOPIC, partition, offset, 0.0, 0, None, b"k", b"v%d" % offset, None, generation_id=generation
    )


def run(test: Callable[[Any, Any], Awaitable[None]]) -> None:
    """Run `test(app, channel)` with a Faust app whose flow is active and a subscribed channel."""

    async def main() -> None:
        app = faust.App("batches-test", broker="kafka://127.0.0.1:9", autodiscover=False, web_enabled=False)
        app.flow_control.resume()
        channel = aiter(app.topic(TOPIC, key_serializer="raw", value_serializer="raw"))
        await asyncio.wait_for(test(app, channel), FOREVER)

    asyncio.run(main())


async def put(channel: Any, *messages: Message) -> None:
    for m in messages:
        channel.queue.put_nowait_enhanced(
            await channel.decode(m, propagate=True), on_pressure_high=_none, on_pressure_drop=_none
        )


def _none() -> None:
    return None


def offsets(batch: list[Any]) -> list[int]:
    return [m.offset for m in batch]


def test_a_full_batch_is_returned_at_once_and_the_rest_follows() -> None:
    async def test(app: Any, channel: Any) -> None:
        reader = BatchReader(app, channel, max_size=3, within=FOREVER)
        await put(channel, *(message(i) for i in range(7)))
        assert offsets(await anext(reader)) == [0, 1, 2]  # full: no waiting for `within`
        assert offsets(await anext(reader)) == [3, 4, 5]
        later = asyncio.create_task(anext(reader))
        await asyncio.sleep(0.05)
        assert not later.done()  # one message waits for more, up to `within`
        await put(channel, message(7), message(8))
        assert offsets(await later) == [6, 7, 8]

    run(test)


def test_a_partial_batch_is_returned_within_the_window() -> None:
    async def test(app: Any, channel: Any) -> None:
        reader = BatchReader(app, channel, max_size=1000, within=0.05)
        await put(channel, message(0), message(1))
        assert offsets(await anext(reader)) == [0, 1]
        waiting = asyncio.create_task(anext(reader))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # nothing there: it waits for the first message without a deadline
        await put(channel, message(2))
        assert offsets(await waiting) == [2]

    run(test)


def test_messages_arriving_while_the_batch_fills_join_it() -> None:
    async def test(app: Any, channel: Any) -> None:
        reader = BatchReader(app, channel, max_size=4, within=FOREVER)
        batch = asyncio.create_task(anext(reader))
        for i in range(4):
            await asyncio.sleep(0.01)
            await put(channel, message(i, partition=i % 2))
        assert offsets(await batch) == [0, 1, 2, 3]

    run(test)


def test_messages_fetched_before_a_rebalance_are_neither_returned_nor_acked() -> None:
    async def test(app: Any, channel: Any) -> None:
        reader = BatchReader(app, channel, max_size=10, within=0.01)
        old = [message(0, generation=0), message(1, generation=0)]
        await put(channel, *old)
        app.consumer_generation_id = 1  # a rebalance happened since they were fetched
        await put(channel, message(2, generation=1))
        assert offsets(await anext(reader)) == [2]
        assert reader.stale == 2
        assert not any(m.acked for m in old)  # the new generation reads them again from the commit

    run(test)


def test_nothing_is_taken_while_the_flow_is_suspended() -> None:
    async def test(app: Any, channel: Any) -> None:
        reader = BatchReader(app, channel, max_size=10, within=0.01)
        await put(channel, message(0), message(1))
        app.flow_control.suspend()  # a rebalance began (Faust clears the queues, too; here it has not)
        waiting = asyncio.create_task(anext(reader))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert reader.stale == 2
        app.flow_control.resume()
        await put(channel, message(2))
        assert offsets(await waiting) == [2]

    run(test)


def test_the_iteration_ends_when_faust_closes_the_channel_after_the_batch_being_filled() -> None:
    async def test(app: Any, channel: Any) -> None:
        reader = BatchReader(app, channel, max_size=10, within=FOREVER)
        batch = asyncio.create_task(anext(reader))
        await put(channel, message(0))
        await asyncio.sleep(0.01)
        await channel.throw(StopAsyncIteration())  # what Faust does to an agent's channel on stop
        assert offsets(await batch) == [0]
        assert [b async for b in reader] == []

    run(test)


def test_the_monitor_sees_each_partition_of_a_batch_as_read() -> None:
    async def test(app: Any, channel: Any) -> None:
        reader = BatchReader(app, channel, max_size=3, within=FOREVER)
        await put(channel, message(0, partition=0), message(0, partition=2), message(1, partition=0))
        await anext(reader)
        inbound = app.monitor.stream_inbound_time
        assert set(inbound) == {TP(TOPIC, 0), TP(TOPIC, 2)}  # Faust's "slow processing" check reads it

    run(test)


def test_a_drained_queue_resumes_a_partition_paused_for_a_full_buffer() -> None:
    async def test(app: Any, channel: Any) -> None:
        queue = channel.queue
        dropped: list[str] = []
        events = [await channel.decode(message(i), propagate=True) for i in range(queue.maxsize)]
        for event in events:
            queue.put_nowait_enhanced(
                event, on_pressure_high=_none, on_pressure_drop=lambda: dropped.append("x")
            )
        reader = BatchReader(app, channel, max_size=queue.maxsize, within=FOREVER)
        assert len(await anext(reader)) == queue.maxsize
        assert dropped  # the conductor's callback: Faust resumes fetching that partition

    run(test)


@pytest.mark.parametrize(("size", "within"), [(0, 1.0), (10, 0.0)])
def test_nonsense_sizes_are_refused(size: int, within: float) -> None:
    with pytest.raises(ValueError, match="max_size"):
        BatchReader(object(), type("C", (), {"queue": None})(), size, within)
