"""`delivery.pipelined`: the next batch is prepared while the previous one completes, completions run one at
a time and in order, one held back holds back the rest, and errors and shutdown reach the agent at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from workers.delivery import pipelined


class Recorder:
    """Prepare and complete steps that log what happens; `gates[n]` holds batch n's completion."""

    def __init__(self, batches: int) -> None:
        self.log: list[str] = []
        self.gates = {n: asyncio.Event() for n in range(batches)}
        self.fail_on: int | None = None

    async def prepare(self, batch: int) -> int:
        self.log.append(f"prepared {batch}")
        return batch

    async def complete(self, batch: int) -> None:
        self.log.append(f"completing {batch}")
        await self.gates[batch].wait()
        if batch == self.fail_on:
            raise RuntimeError(f"bug in batch {batch}")
        self.log.append(f"completed {batch}")


async def source(batches: int, idle: asyncio.Event | None = None) -> AsyncIterator[int]:
    for n in range(batches):
        yield n
    if idle is not None:
        await idle.wait()  # a stream with nothing more to read


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_the_next_batch_is_prepared_while_one_completes_and_completions_keep_their_order() -> None:
    async def scenario() -> list[str]:
        steps = Recorder(3)
        run = asyncio.create_task(pipelined(source(3), steps.prepare, steps.complete))
        await settle()
        # Batch 0 waits for its acknowledgements: batch 1 is prepared meanwhile, batch 2 not yet read.
        assert sorted(steps.log) == ["completing 0", "prepared 0", "prepared 1"]
        steps.gates[1].set()  # batch 1's acks first: it still completes only after batch 0
        await settle()
        assert "completing 1" not in steps.log
        steps.gates[0].set()
        steps.gates[2].set()
        await run
        return steps.log

    log = asyncio.run(scenario())
    assert [line for line in log if line.startswith("completed")] == [f"completed {n}" for n in range(3)]
    assert log.index("completed 0") < log.index("completing 1") < log.index("completed 1")


def test_an_error_completing_a_batch_is_raised_at_once_even_when_no_batch_follows() -> None:
    async def scenario() -> None:
        steps = Recorder(1)
        steps.fail_on = 0
        run = asyncio.create_task(pipelined(source(1, idle=asyncio.Event()), steps.prepare, steps.complete))
        await settle()
        steps.gates[0].set()
        with pytest.raises(RuntimeError, match="bug in batch 0"):
            await asyncio.wait_for(run, timeout=10)

    asyncio.run(scenario())


def test_a_stop_while_a_batch_completes_cancels_it_before_it_is_done() -> None:
    async def scenario() -> Recorder:
        steps = Recorder(2)
        run = asyncio.create_task(pipelined(source(2, idle=asyncio.Event()), steps.prepare, steps.complete))
        await settle()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        steps.gates[0].set()
        steps.gates[1].set()
        await settle()
        return steps

    steps = asyncio.run(scenario())
    assert not [line for line in steps.log if line.startswith("completed")]
