"""``python -m devstack up``: run the local broker and schema registry until Ctrl-C (or SIGTERM).

It prints the bootstrap address, the registry URL and the ``export`` lines that point the worker at them,
then waits. A signal stops both processes and exits 0 (130 if it came before both were up); if either
process dies on its own, the other is stopped and the command exits 1 with the dead one's log tail.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devstack.broker import BrokerError
from devstack.brokers import BROKER_KINDS
from devstack.kafka import KafkaBroker
from devstack.kafka_runtime import KafkaRuntimeMissing
from devstack.registry import RegistryStartError
from devstack.stack import LocalStack

_WATCH_INTERVAL = 0.5
_INTERRUPTED_EXIT = 130  # the shell's convention for a process ended by SIGINT
# A terminal's Ctrl-C reaches the registry (same process group) as well as this process; give our own
# signal handler a moment to run so that a clean Ctrl-C is not reported as the registry dying.
_DEATH_GRACE = 0.5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the broker and the registry; Ctrl-C stops both")
    up.add_argument(
        "--broker",
        choices=BROKER_KINDS,
        default="tansu",
        help="tansu (default: no install) or kafka (Apache Kafka in KRaft mode; needs Java 17+ and Maven)",
    )
    up.add_argument("--port", type=int, default=None, help="Tansu's port (default: a free one)")
    up.add_argument("--registry-port", type=int, default=None, help="registry port (default: a free one)")
    up.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep registry schemas and the broker's log (and Kafka's log dirs) here",
    )
    return parser


def _announce(stack: LocalStack) -> None:
    lines = [
        "devstack is up (Ctrl-C stops it)",
        f"bootstrap servers: {stack.bootstrap_servers}",
        f"schema registry:   {stack.registry_url}",
    ]
    if isinstance(stack.broker, KafkaBroker):
        lines.append(f"broker log:        {stack.broker.log_path()}")
    lines += [f"export {name}={value}" for name, value in stack.env().items()]
    print("\n".join(lines), flush=True)


def _wait_for_signal_or_death(stack: LocalStack) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(_WATCH_INTERVAL):
            if stack.running or stop.wait(_DEATH_GRACE):
                continue
            dead = "broker" if not stack.broker.running else "registry"
            tail = stack.broker.log_tail() if dead == "broker" else stack.registry.stderr_tail()
            print(f"devstack: the {dead} exited unexpectedly; log tail:\n{tail}", file=sys.stderr, flush=True)
            return 1
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_if(interrupted: threading.Event, stack: LocalStack) -> None:
    if interrupted.is_set():
        stack.stop()
        raise KeyboardInterrupt


def up(port: int | None, registry_port: int | None, data_dir: Path | None, broker: str = "tansu") -> int:
    """Run the stack until a signal arrives; the return value is the process exit code."""
    try:
        stack = LocalStack(data_dir, broker_port=port, registry_port=registry_port, broker=broker)
    except ValueError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    # While starting, SIGTERM interrupts like Ctrl-C, so LocalStack.start stops whatever already runs
    # instead of the default action killing this process and orphaning the registry.
    interrupted = threading.Event()

    def on_start_signal(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_start_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.start()
        # The KeyboardInterrupt of a signal that arrived while a child was being forked is raised in an
        # at-fork hook, where Python prints and ignores it: the flag remembers the signal all the same.
        _stop_if(interrupted, stack)
    except (BrokerError, RegistryStartError, KafkaRuntimeMissing) as exc:
        print(f"devstack: could not start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("devstack: interrupted while starting; stopped", file=sys.stderr)
        return _INTERRUPTED_EXIT
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        _announce(stack)
        code = _wait_for_signal_or_death(stack)
    finally:
        stack.stop()
    print("devstack stopped", flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m devstack``."""
    args = _parser().parse_args(argv)
    if args.command == "up":
        return up(args.port, args.registry_port, args.data_dir, args.broker)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse allows only the ones above


if __name__ == "__main__":
    raise SystemExit(main())
