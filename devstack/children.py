"""Child-process hygiene shared by the local broker and registry helpers.

`ChildService` gives each helper (and `LocalStack`) the context-manager protocol over its `start()`
and `stop()`; `stop_child` is the signal-wait-kill sequence every one of them ends a child with. A test
run that is SIGKILLed never reaches its finalizers, so the kernel is asked to end the children instead:
on Linux, `PR_SET_PDEATHSIG` delivers SIGKILL to a child when the thread that spawned it exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover -- runs in the forked child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def preexec_for(die_with_parent: bool) -> Callable[[], None] | None:
    """Return the `preexec_fn` for `subprocess.Popen`: die with the spawning thread where asked and possible.

    The signal is tied to the spawning *thread*, so a child started from a short-lived thread must be
    started with `die_with_parent=False`. Elsewhere than Linux this is a no-op and `stop()`/atexit must do.
    """
    if die_with_parent and sys.platform.startswith("linux"):
        return _die_with_parent
    return None


def stop_child(proc: subprocess.Popen[Any], grace: float, sig: int = signal.SIGTERM) -> int | None:
    """Stop `proc` if it still runs: send `sig`, and SIGKILL it if it has not exited `grace` seconds later
    (at once when `grace` is 0). Return its exit code."""
    if proc.poll() is None and grace > 0:
        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    return proc.returncode


class ChildService:
    """Base of the helpers that run something in a child process: ``with`` starts it and always stops it."""

    def start(self) -> None:
        """Start the child and wait until it serves."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the child; safe to call twice."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["ChildService", "preexec_for", "stop_child"]
