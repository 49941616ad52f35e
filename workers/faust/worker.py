"""The worker process's Faust `Worker`: no terminal spinner, and a hook on SIGTERM/SIGINT.

Faust's `Worker` draws a progress spinner on a terminal and, when the log level is WARN or above, its
spinner handler turns the root logger to DEBUG; `QuietWorker` has none. Its signal handlers
(``_on_sigterm``, ``_on_sigint``, mode internals checked at start by `workers.faust.compat`) first call
`on_stop_signal`, which the app uses to arm a hard deadline on the graceful stop, then Faust's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust


class QuietWorker(faust.Worker):
    """Faust's Worker without the terminal spinner, calling `on_stop_signal(name)` on SIGTERM/SIGINT."""

    def __init__(self, app: Any, *, on_stop_signal: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.spinner = None
        self._on_stop_signal = on_stop_signal

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # Faust's spinner handler turns the root logger to DEBUG when the level is WARN or above.
        self.spinner = None

    def _on_sigterm(self) -> None:
        self._on_stop_signal("SIGTERM")
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._on_stop_signal("SIGINT")
        super()._on_sigint()


__all__ = ["QuietWorker"]
