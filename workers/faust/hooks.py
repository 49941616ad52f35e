"""Installing the worker's Faust hooks on an app, after checking that they still fit.

`install` is the one call the app makes: it checks the hooks it is about to use (`workers.faust.compat`),
then makes the producer idempotent (`workers.faust.producer`) and, with the fast path on, gives the
transport the eager-dispatch consumer with the shorter fetch wait (`workers.faust.fastpath`). With the fast
path off the consumer is Faust's own and the agents read through Faust's ``take_events``
(`workers.faust.batches`).
"""

from __future__ import annotations

from typing import Any

from workers.faust import compat, fastpath
from workers.faust.producer import install_producer


def features(*, fast_path: bool, idempotent: bool) -> tuple[str, ...]:
    """The `compat` features whose hooks the worker needs with these settings."""
    return (compat.FAST_PATH,) * fast_path + (compat.IDEMPOTENT,) * idempotent


def install(app: Any, *, fast_path: bool, fetch_max_wait: float, idempotent: bool) -> None:
    """Check, then install, the hooks on `app` (a `faust.App` whose consumer and producer do not exist yet).

    Raises:
        HookMissing: a hook needed with these settings is gone (one line naming it and the versions).
    """
    compat.check(features=features(fast_path=fast_path, idempotent=idempotent))
    if fast_path:
        # Faust's per-message dispatch without four tasks per message; a fetch wait shorter than 1.5 s
        fastpath.install(app, fetch_max_wait=fetch_max_wait)
    install_producer(app, idempotent=idempotent)


def installed(app: Any) -> tuple[str, ...]:
    """Name the worker's hooks installed on `app` (for the start's log line and the tests)."""
    transport = app.transport
    names = []
    if issubclass(transport.Consumer, fastpath.EagerDispatch):
        names.append("eager_dispatch")
    if issubclass(transport.Consumer, fastpath.PromptResume):
        names.append("prompt_resume")
    if getattr(transport.Consumer, "fetch_max_wait_ms", None) is not None:
        names.append("fetch_max_wait")
    if transport.Producer.__name__.startswith("Idempotent"):
        names.append("idempotent_producer")
    return tuple(names)


__all__ = ["features", "install", "installed"]
