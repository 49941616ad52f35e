"""Running Maven for devstack's runtimes (Kafka's jars, Apicurio's distribution): one command, a timeout,
and a typed error carrying Maven's output when it fails."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["run_maven"]


def run_maven(
    command: Sequence[str], what: str, error: type[Exception], *, timeout: float, cwd: Path | None = None
) -> None:
    """Run `command` (``mvn ...``); raise `error` naming `what` when it times out or fails.

    Raises:
        error: Maven did not finish within `timeout` seconds, or exited non-zero (the message carries the
            tail of its output).
    """
    try:
        done = subprocess.run(
            list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"Maven did not fetch {what} within {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise error(f"Maven could not fetch {what} (exit {done.returncode}):\n{tail}")
