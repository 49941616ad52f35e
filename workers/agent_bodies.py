"""An ``async def body(stream)`` agent body run as a pipeline transform, one input at a time.

Faust users write agents as async generators over a stream::

    async def enrich(stream):
        async for order in stream:
            yield {**order, "total": order["amount"] * 2}

`AsyncBody` runs such a body on the app's event loop and hands it the decoded records one at a time: it
offers one record, lets the body run until it asks for the next one, and returns what the body yielded
in between as that input's outputs (none: the input is dropped; several: fan-out). So the body keeps
Faust's shape while each input still ends in exactly one outcome, the way a plain function transform's
does: whatever the body raises dead-letters the record it was working on, and the body starts again, on
a fresh stream, for the next record. A body that returns after reading its record is started again too.

The runner calls transforms in its worker thread (`workers.processing`); `AsyncBody.__call__` hands the
record to the loop there and waits, so the body may await anything of the app's loop (its producer,
clients it made on that loop) and never runs in two places at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

#: How often a waiting worker thread checks that the loop still runs (it stops with the app).
_POLL_SECONDS: Final = 0.5
_NOTHING: Final = object()


class AgentBodyError(RuntimeError):
    """The agent body did something an agent must not: returned without reading its stream, ran outside
    its agent."""

    reason = "agent_body_invalid"


class AgentStopped(RuntimeError):
    """The app's event loop stopped while a record was in the agent body (the batch is never acked)."""


class _Inputs:
    """The stream an agent body reads: the record offered, then a wait for the next offer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._record: Any = _NOTHING
        self._waiting = False  # the body asked for a record and none was there
        self._asked: asyncio.Future[None] | None = None
        self._arrived: asyncio.Future[None] | None = None
        self.taken = False

    def offer(self, record: Any) -> None:
        self._record = record
        self.taken = False
        if self._arrived is not None and not self._arrived.done():
            self._waiting = False
            self._arrived.set_result(None)

    def asked(self) -> asyncio.Future[None]:
        """A future done once the body has asked for the record after the one offered."""
        if self._asked is None or self._asked.done():
            self._asked = self._loop.create_future()
        if self._waiting:
            self._asked.set_result(None)
        return self._asked

    def __aiter__(self) -> _Inputs:
        return self

    async def __anext__(self) -> Any:
        if self._record is _NOTHING:
            self._waiting = True
            if self._asked is not None and not self._asked.done():
                self._asked.set_result(None)
            self._arrived = self._loop.create_future()
            await self._arrived
        record, self._record = self._record, _NOTHING
        self.taken = True
        return record


class AsyncBody:
    """`body` (an async generator function of a stream) as a transform of one record.

    Args:
        body: ``async def body(stream): async for record in stream: yield output``.
    """

    def __init__(self, body: Callable[[AsyncIterator[Any]], AsyncIterator[Any]]) -> None:
        self.body = body
        self.__name__ = getattr(body, "__name__", "agent_body")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inputs: _Inputs | None = None
        self._gen: AsyncIterator[Any] | None = None
        self._step: asyncio.Future[Any] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the body on `loop` (the app's, from the agent's start)."""
        self._loop = loop

    async def close(self) -> None:
        """Stop the body (the agent stops); the next `start` begins it again."""
        step, self._step, self._gen, self._inputs = self._step, None, None, None
        if step is not None:
            step.cancel()
            with contextlib.suppress(BaseException):
                await step

    def __call__(self, record: Any) -> list[Any]:
        """Give `record` to the body and return what it yields for it (called in a worker thread).

        Raises:
            Exception: whatever the body raises for this record (the runner dead-letters the record).
            AgentBodyError: the body returned without reading its stream, or the agent is not running.
            AgentStopped: the loop stopped meanwhile.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            raise AgentBodyError(f"agent body {self.__name__} runs only inside its running agent")
        future = asyncio.run_coroutine_threadsafe(self._feed(record), loop)
        while True:
            try:
                return future.result(timeout=_POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                if loop.is_closed() or not loop.is_running():
                    future.cancel()
                    raise AgentStopped(
                        f"the event loop stopped while agent body {self.__name__} ran"
                    ) from None

    async def _feed(self, record: Any) -> list[Any]:
        if self._gen is None or self._inputs is None:
            self._inputs = _Inputs(asyncio.get_running_loop())
            self._gen = aiter(self.body(self._inputs))
        inputs = self._inputs
        inputs.offer(record)
        outputs: list[Any] = []
        while True:
            if self._step is None:
                self._step = asyncio.ensure_future(anext(self._gen))
            asked = inputs.asked()
            done, _ = await asyncio.wait({self._step, asked}, return_when=asyncio.FIRST_COMPLETED)
            if self._step not in done:
                return outputs  # it asks for the next record: everything it had for this one is out
            step, self._step = self._step, None
            try:
                output = step.result()
            except StopAsyncIteration:
                self._gen = self._inputs = None
                if not inputs.taken:
                    raise AgentBodyError(
                        f"agent body {self.__name__} returned without reading its stream"
                    ) from None
                return outputs
            except BaseException:
                self._gen = self._inputs = None
                raise
            if output is not None:
                outputs.append(output)


__all__ = ["AgentBodyError", "AgentStopped", "AsyncBody"]
