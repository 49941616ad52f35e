"""stop_child: the signal, then SIGKILL for a child that does not exit in time."""

from __future__ import annotations

import signal
import subprocess
import sys

from devstack.children import stop_child

#: Ignores SIGTERM and SIGINT, says so, then sleeps: only SIGKILL ends it.
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
#: Exits 0 on SIGTERM, after saying it is ready.
POLITE = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def child(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_a_child_that_exits_on_the_signal_keeps_its_own_exit_code() -> None:
    proc = child(POLITE)
    assert stop_child(proc, 10) == 0
    proc.stdout.close()  # type: ignore[union-attr]


def test_a_child_that_ignores_the_signal_is_killed_after_the_grace() -> None:
    proc = child(STUBBORN)
    assert stop_child(proc, 0.2, signal.SIGINT) == -signal.SIGKILL
    proc.stdout.close()  # type: ignore[union-attr]


def test_no_grace_kills_at_once_and_a_finished_child_is_left_alone() -> None:
    proc = child(POLITE)
    assert stop_child(proc, 0) == -signal.SIGKILL  # not SIGTERM first: it would have exited 0
    assert stop_child(proc, 10) == -signal.SIGKILL  # already gone: nothing sent, same code
    proc.stdout.close()  # type: ignore[union-attr]
