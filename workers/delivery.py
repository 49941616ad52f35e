"""What a batch produces and when its inputs count as done: sends, outcomes, acks, backoff.

`Send` is one record for the producer; `Outcome` is what became of one input (the acking of a batch is
Faust's business and lives in `workers.faust.acks`). `sort_failure`
tells a send the broker will never take (too large) from one worth retrying, and from one that no retry
by this producer can deliver (`ProducerSequenceBroken`); `Backoff` spaces retries.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber, RecordTooLargeError

OUT: Final = "out"
DROPPED: Final = "dropped"
DEAD: Final = "dead_lettered"

Headers = list[tuple[str, bytes]]


class ProducerSequenceBroken(RuntimeError):
    """The broker refuses the idempotent producer's batches for a partition as out of sequence.

    aiokafka numbers a batch when it takes it for sending; one that then waits for a partition leader
    longer than the request timeout fails without being sent, which leaves a gap the broker never
    accepts (``OutOfOrderSequenceNumber`` for every later batch of that partition). Only a new producer
    (a restart of the worker) gets past it, so the pipeline stops the worker rather than retry forever.
    """


@dataclass(frozen=True, slots=True)
class Send:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    #: Index of the input in its batch (to dead-letter it if the broker refuses this output for good).
    origin: int = -1


@dataclass(slots=True)
class Outcome:
    """What became of one input: `kind` is OUT, DROPPED or DEAD; `reason` is set for DEAD; `tombstone`
    when the input's value was null."""

    kind: str
    sends: list[Send] = field(default_factory=list)
    reason: str = ""
    tombstone: bool = False


#: Hands one record to the producer; the awaitable it returns resolves when the broker acknowledges it.
SendFn = Callable[[Send], Awaitable[Awaitable[Any]]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Jittered exponential backoff: attempt n waits a random time in [d/2, d], d = min(max, base * 2**n).

    `jitter` returns a number in [0, 1) (``random.random`` by default; tests inject their own).
    """

    base: float
    maximum: float
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int) -> float:
        """Return the wait before retry number `attempt` (0-based), in seconds."""
        # 2.0 ** 1023 is the largest power of two a float holds: the cap is reached for any base > 0
        ceiling = min(self.maximum, self.base * 2.0 ** min(attempt, 1023))
        return ceiling * (0.5 + self.jitter() / 2)


def sort_failure(
    send: Send, exc: BaseException, failed: list[Send], refused: list[tuple[Send, BaseException]]
) -> BaseException | None:
    """File a failed send as refused for good (too large) or to retry; return the error when retried.

    Raises:
        ProducerSequenceBroken: the broker refused it as out of sequence (no retry can deliver it).
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OutOfOrderSequenceNumber):
            raise ProducerSequenceBroken(
                f"the broker refuses this producer's records for {send.topic} as out of sequence; "
                "stopping so that a restart starts a new producer (the unacked inputs are read again)"
            ) from exc
        if isinstance(cause, MessageSizeTooLargeError | RecordTooLargeError):
            refused.append((send, cause))
            return None
        cause = cause.__cause__
    failed.append(send)
    return exc


__all__ = [
    "DEAD",
    "DROPPED",
    "OUT",
    "Backoff",
    "Headers",
    "Outcome",
    "ProducerSequenceBroken",
    "Send",
    "SendFn",
    "sort_failure",
]
