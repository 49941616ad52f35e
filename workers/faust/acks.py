"""Taking the acking of a batch away from Faust, and giving it back once the batch's results are durable.

Faust commits a message's offset once every stream that received it has acked it: the conductor counts
one reference per reader (``Message.refcount``) and ``Message.ack`` commits nothing while
``Message.acked`` is set. `claim` sets it, so whatever else in Faust acks the message (a stream over the
same topic, ``Stream.take_events`` acking its buffer in a ``finally`` on shutdown) does nothing; `release`
drops this reader's reference and, for the last reader, acks through the consumer. These attributes are
Faust internals, checked at start by `workers.faust.compat`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def claim(messages: Sequence[Any]) -> None:
    """Take the acking of these messages away from Faust.

    A message marked as acked makes Faust's ack a no-op, so nothing but :func:`release` can let its
    offset be committed; a batch abandoned mid-retry is read again by the next owner of its partitions.
    """
    for message in messages:
        message.acked = True


def release(messages: Sequence[Any], ack: Callable[[Any], object]) -> None:
    """Ack messages claimed by :func:`claim` once their results are durable.

    A message read by several pipelines (one source, several agents) is acked when the last one is done,
    as Faust does: the conductor counted one reference per reader.
    """
    for message in messages:
        if message.decref() == 0:
            message.acked = False
            ack(message)


__all__ = ["claim", "release"]
