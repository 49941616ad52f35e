"""The worker's one reach into Faust's aiokafka producer: the idempotent producer.

Faust builds aiokafka's ``AIOKafkaProducer`` from three dictionaries of keyword arguments; the third,
``Producer._settings_extra`` in ``faust.transport.drivers.aiokafka``, is where Faust itself turns on
``enable_idempotence`` (for exactly-once only). `install_producer` gives the app's transport a producer
class whose extra arguments add ``enable_idempotence=True``; Faust's ``producer_acks`` is already -1
(``acks=all``), the only value aiokafka accepts with idempotence. `check_hooks` fails the start with one
line naming the hook and the installed Faust version when it has gone (a Faust upgrade), rather than
running on without idempotence.

What aiokafka 0.14 then does (read in ``aiokafka/producer/sender.py``): it asks the broker for a producer
id and epoch (``InitProducerId``) before its first send, numbers each partition's batches, and retries a
retriable failure (a lost connection, a leader that moved, a timeout) for as long as it lasts instead of
expiring the batch, so the broker drops a batch it has already written. Order within a partition holds
because aiokafka has at most one produce request in flight per broker and mutes a partition while its
batch is in flight (``max_in_flight`` of 1), idempotent or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version
from typing import Any, Final

from faust.transport.drivers import aiokafka as faust_aiokafka

#: The Faust attributes this module relies on.
HOOKS: Final = (("faust.transport.drivers.aiokafka.Producer", "_settings_extra"),)


class HookMissing(RuntimeError):
    """Faust no longer has an attribute the worker relies on (the message names it and Faust's version)."""


def check_hooks() -> None:
    """Check that every hook in `HOOKS` still exists.

    Raises:
        HookMissing: naming the first one that does not, and the installed faust-streaming version.
    """
    for owner, name in HOOKS:
        if not callable(getattr(faust_aiokafka.Producer, name, None)):
            raise HookMissing(
                f"{owner}.{name} is gone in faust-streaming {version('faust-streaming')}: "
                "the worker cannot make its producer idempotent"
            )


def install_producer(app: Any, *, idempotent: bool) -> None:
    """Make the producer of `app` (a `faust.App`, before its producer exists) idempotent when asked.

    Raises:
        HookMissing: Faust's producer no longer has the hook.
    """
    if not idempotent:
        return
    check_hooks()
    transport = app.transport
    transport.Producer = type(
        f"Idempotent{transport.Producer.__name__}", (_IdempotentProducer, transport.Producer), {}
    )


class _IdempotentProducer:
    """Mixin for Faust's aiokafka `Producer`: aiokafka's producer is built with ``enable_idempotence``."""

    def _settings_extra(self) -> Mapping[str, Any]:
        parent: Any = super()
        return {**parent._settings_extra(), "enable_idempotence": True}


__all__ = ["HOOKS", "HookMissing", "check_hooks", "install_producer"]
