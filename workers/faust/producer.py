"""The worker's one reach into Faust's aiokafka producer: the idempotent producer.

Faust builds aiokafka's ``AIOKafkaProducer`` from three dictionaries of keyword arguments; the third,
``Producer._settings_extra`` in ``faust.transport.drivers.aiokafka``, is where Faust itself turns on
``enable_idempotence`` (for exactly-once only). `install_producer` gives the app's transport a producer
class whose extra arguments add ``enable_idempotence=True``; Faust's ``producer_acks`` is already -1
(``acks=all``), the only value aiokafka accepts with idempotence. `workers.faust.compat` checks the hook
at start and fails with one line naming it and the installed versions when it has gone (a Faust
upgrade), rather than running on without idempotence.

What aiokafka 0.14 then does (read in ``aiokafka/producer/sender.py``): it asks the broker for a producer
id and epoch (``InitProducerId``) before its first send, numbers each partition's batches, and retries a
retriable failure (a lost connection, a leader that moved, a timeout) for as long as it lasts instead of
expiring the batch, so the broker drops a batch it has already written. Order within a partition holds
because aiokafka has at most one produce request in flight per broker and mutes a partition while its
batch is in flight (``max_in_flight`` of 1), idempotent or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.faust import compat


def install_producer(app: Any, *, idempotent: bool) -> None:
    """Make the producer of `app` (a `faust.App`, before its producer exists) idempotent when asked.

    Raises:
        HookMissing: Faust's producer no longer has the hook.
    """
    if not idempotent:
        return
    compat.check(features=(compat.IDEMPOTENT,))
    transport = app.transport
    transport.Producer = type(
        f"Idempotent{transport.Producer.__name__}", (_IdempotentProducer, transport.Producer), {}
    )


class _IdempotentProducer:
    """Mixin for Faust's aiokafka `Producer`: aiokafka's producer is built with ``enable_idempotence``."""

    def _settings_extra(self) -> Mapping[str, Any]:
        parent: Any = super()
        return {**parent._settings_extra(), "enable_idempotence": True}


__all__ = ["install_producer"]
