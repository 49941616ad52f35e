"""An async agent body over a stream, run as a transform of one record (`workers.agent_bodies`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from workers.agent_bodies import AgentBodyError, AsyncBody

Body = Callable[[AsyncIterator[Any]], AsyncIterator[Any]]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as the app's runs beside the runner's worker thread."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


def started(body: Body, loop: asyncio.AbstractEventLoop) -> AsyncBody:
    runner = AsyncBody(body)
    runner.start(loop)
    return runner


def test_what_the_body_yields_between_two_reads_is_that_records_outputs(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def body(stream: AsyncIterator[dict[str, int]]) -> AsyncIterator[dict[str, int]]:
        async for record in stream:
            await asyncio.sleep(0)
            for copy in range(record["copies"]):
                yield {"id": record["id"], "copy": copy}

    run = started(body, loop)
    assert run({"id": 1, "copies": 1}) == [{"id": 1, "copy": 0}]
    assert run({"id": 2, "copies": 3}) == [{"id": 2, "copy": 0}, {"id": 2, "copy": 1}, {"id": 2, "copy": 2}]
    assert run({"id": 3, "copies": 0}) == []  # dropped
    assert run({"id": 4, "copies": 1}) == [{"id": 4, "copy": 0}]


def test_a_raise_belongs_to_the_record_being_worked_on_and_the_body_starts_again(
    loop: asyncio.AbstractEventLoop,
) -> None:
    starts = []

    async def body(stream: AsyncIterator[int]) -> AsyncIterator[int]:
        starts.append(1)
        async for number in stream:
            if number < 0:
                raise ValueError(f"negative: {number}")
            yield number * 10

    run = started(body, loop)
    assert run(1) == [10]
    with pytest.raises(ValueError, match="negative: -2"):
        run(-2)
    assert run(3) == [30]
    assert run(4) == [40]
    assert len(starts) == 2


def test_a_raise_after_some_yields_keeps_none_of_them(loop: asyncio.AbstractEventLoop) -> None:
    # The record is dead-lettered whole: outputs yielded before the raise must not be written.
    async def body(stream: AsyncIterator[int]) -> AsyncIterator[int]:
        async for number in stream:
            yield number
            if number == 2:
                raise RuntimeError("half done")

    run = started(body, loop)
    with pytest.raises(RuntimeError, match="half done"):
        run(2)
    assert run(5) == [5]


def test_a_body_that_returns_after_its_record_starts_again_and_one_that_never_reads_is_refused(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def one_then_done(stream: AsyncIterator[int]) -> AsyncIterator[int]:
        async for number in stream:
            yield number + 1
            return

    run = started(one_then_done, loop)
    assert [run(1), run(2)] == [[2], [3]]

    async def never_reads(stream: AsyncIterator[int]) -> AsyncIterator[int]:
        if False:  # pragma: no cover - an async generator that yields nothing
            yield 0

    with pytest.raises(AgentBodyError, match="returned without reading its stream"):
        started(never_reads, loop)(1)


def test_a_body_outside_its_running_agent_is_refused() -> None:
    async def body(stream: AsyncIterator[int]) -> AsyncIterator[int]:
        async for number in stream:
            yield number

    with pytest.raises(AgentBodyError, match="runs only inside its running agent"):
        AsyncBody(body)(1)


def test_closing_stops_the_body_and_the_next_record_starts_it_again(loop: asyncio.AbstractEventLoop) -> None:
    closed = []

    async def body(stream: AsyncIterator[int]) -> AsyncIterator[int]:
        try:
            async for number in stream:
                yield number
        finally:
            closed.append(True)

    run = started(body, loop)
    assert run(1) == [1]
    asyncio.run_coroutine_threadsafe(run.close(), loop).result(5)
    assert closed == [True]
    assert run(2) == [2]
