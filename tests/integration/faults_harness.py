"""Helpers for the fault suite: a loopback TCP proxy that can cut or stall a connection, a broker of the
session's kind (Kafka or Tansu) that advertises such a proxy, a writer that keeps a stream going through a
fault, and the per-scenario tally (in, out, dead-lettered, duplicated, lost).

The tally is also appended, one JSON line per scenario, to the file named by ``FAULT_REPORT_FILE``
when it is set; ``bench/faults.py`` runs the fault tests with it and prints the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pipelines_for_tests import order
from worker_harness import AvroProducer, Consumed, WorkerProcess, consume, free_port, wait_for

from devstack.broker import _resolve_binary
from devstack.children import preexec_for
from devstack.kafka import KafkaBroker

PASS, CUT, STALL = "pass", "cut", "stall"
#: The JVM heap of each Kafka node a fault test starts of its own (two cores and little memory to spare).
SMALL_HEAP = "384m"


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`. `cut()` drops every connection and refuses new ones (a network
    partition or a dead peer); `stall()` accepts and connects but forwards nothing (a peer slower than any
    timeout); `restore()` forwards again."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", port or 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self.mode = PASS
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        with self._lock:
            self.mode = CUT
            for sock in list(self._pairs):
                self._close(sock)

    def stall(self) -> None:
        self.mode = STALL

    def restore(self) -> None:
        self.mode = PASS

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for sock in list(self._pairs):
                self._close(sock)
        self._listener.close()

    def _close(self, sock: socket.socket) -> None:
        peer = self._pairs.pop(sock, None)
        if peer is not None:
            self._pairs.pop(peer, None)
            peer.close()
        sock.close()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self.mode == CUT:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()
            return
        client.setblocking(True)
        upstream.settimeout(None)
        self._pairs[client], self._pairs[upstream] = upstream, client

    def _run(self) -> None:
        while not self._stop.is_set():
            with selectors.DefaultSelector() as selector:
                # Registered under the lock: `cut` closes sockets from another thread, and a socket closed
                # between a snapshot and its registration would be fd -1 (ValueError, the proxy thread dead).
                with self._lock:
                    for sock in [self._listener] + (list(self._pairs) if self.mode == PASS else []):
                        selector.register(sock, selectors.EVENT_READ)
                ready = selector.select(timeout=0.05)
            with self._lock:
                for key, _ in ready:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept()
                    elif sock in self._pairs and self.mode == PASS:
                        self._forward(sock)

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
            if data:
                self._pairs[sock].sendall(data)
                return
        except OSError:
            pass
        self._close(sock)


class ProxiedBroker:
    """The test's own broker, of the session's kind, advertising a `TcpProxy` in front of its client listener,
    so every client connection, bootstrap and partition leader alike, goes through the proxy.

    On Kafka (one node, its log dirs under `folder`) a second listener, ``direct_servers``, bypasses the
    proxy: a test can cut off the worker alone while its producer and checks go on. Tansu advertises one
    address only, so there ``direct_servers`` is None.
    """

    def __init__(self, kind: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.kafka: KafkaBroker | None = None
        self._tansu: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.direct_servers: str | None = None
        proxy_port = free_port()
        self.bootstrap_servers = f"127.0.0.1:{proxy_port}"
        if kind == "kafka":
            self.kafka = KafkaBroker(
                advertised_client={0: self.bootstrap_servers},
                extra_listeners={"DIRECT": "PLAINTEXT"},
                data_dir=folder / "kafka",
                heap=SMALL_HEAP,
            )
            self.proxy = TcpProxy(self.kafka.client_port(0), port=proxy_port)
            try:
                self.kafka.start()
            except BaseException:
                self.stop()
                raise
            self.direct_servers = self.kafka.bootstrap_for("DIRECT")
        else:
            broker_port = free_port()
            self.proxy = TcpProxy(broker_port, port=proxy_port)
            self._start_tansu(broker_port, folder / "tansu.log")

    def _start_tansu(self, broker_port: int, log_path: Path) -> None:
        self._log = log_path.open("ab")
        self._tansu = subprocess.Popen(
            [
                _resolve_binary(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{broker_port}",
                "--advertised-listener-url",
                f"tcp://{self.bootstrap_servers}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
            start_new_session=True,
            preexec_fn=preexec_for(True),
        )
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.list_topics(timeout=1)
                return
            except KafkaException:
                if time.monotonic() > deadline or self._tansu.poll() is not None:
                    self.stop()
                    raise
            time.sleep(0.1)

    def stop(self) -> None:
        if self.kafka is not None:
            self.kafka.stop()
        if self._tansu is not None:
            if self._tansu.poll() is None:
                self._tansu.kill()
            self._tansu.wait(10)
        if self._log is not None:
            self._log.close()
        self.proxy.close()


class SteadyWriter:
    """Writes ``order(0)``, ``order(1)``, ... to `producer`'s topic from a thread, about `per_second` a
    second, until `stop` (or `total`), so a fault lands mid-stream. Sends are not waited for: while the broker
    is away the Kafka client buffers them. The ids written are ``range(written)``."""

    def __init__(self, producer: AvroProducer, per_second: float = 100.0, total: int | None = None) -> None:
        self._producer = producer
        self._pause = 10 / per_second
        self._total = total
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-writer", daemon=True)

    def start(self) -> SteadyWriter:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set() and (self._total is None or self.written < self._total):
            end = self.written + 10 if self._total is None else min(self._total, self.written + 10)
            for i in range(self.written, end):
                self._producer.send(f"k{i}".encode(), order(i))
            self.written = end
            self._stop.wait(self._pause)

    def wait_written(self, count: int, timeout: float = 60.0) -> None:
        """Wait until `count` more records than now are written."""
        wanted = self.written + count
        wait_for(lambda: self.written >= wanted, timeout, f"{wanted} records written")

    def stop(self) -> int:
        """Stop writing, wait until every record written is acknowledged, and return how many there are."""
        self._stop.set()
        self._thread.join(30)
        self._producer.flush()
        return self.written


@dataclass(frozen=True)
class Tally:
    """What became of a scenario's inputs, read back from the sink and dead-letter topics."""

    scenario: str
    records_in: int
    out: int
    dead_lettered: int
    duplicated: int
    lost: int

    def report(self) -> Tally:
        """Print the tally and append it to ``$FAULT_REPORT_FILE`` (when set)."""
        print(f"fault tally: {json.dumps(asdict(self))}")
        path = os.environ.get("FAULT_REPORT_FILE")
        if path:
            with Path(path).open("a") as out:
                out.write(json.dumps(asdict(self)) + "\n")
        return self


def tally(
    scenario: str,
    bootstrap_servers: str,
    registry_url: str,
    sink: str,
    dlq: str,
    wanted: set[int],
    *,
    dead_ids: set[int] = frozenset(),  # type: ignore[assignment]
    timeout: float = 60,
    report: bool = True,
) -> Tally:
    """Read the sink (decoding each output's ``id``) and the dead-letter topic (by ``dlq.source.offset``
    count) until every id in `wanted` is accounted for, or `timeout`; count distinct, duplicated, lost.
    `report`: print and record the tally as the scenario's row (False for a check midway).

    Dead letters are identified by the ``x-test-id`` header the fuzz test plants on each input.
    """
    with SchemaRegistryClient({"url": registry_url}) as registry:
        deserializer = AvroDeserializer(registry)
        outputs: Counter[int] = Counter()
        dead: Counter[int] = Counter()
        seen_out: list[Consumed] = []

        def read_out(records: list[Consumed]) -> bool:
            for record in records[len(seen_out) :]:
                seen_out.append(record)
                context = SerializationContext(sink, MessageField.VALUE)
                outputs[deserializer(record.value, context)["id"]] += 1
            return wanted - dead_ids <= set(outputs)

        consume(bootstrap_servers, sink, expected=0, timeout=timeout, done=read_out)
    if dead_ids:
        for record in consume(bootstrap_servers, dlq, expected=0, timeout=timeout, done=_has(dead_ids)):
            dead[int(record.headers["x-test-id"])] += 1
    accounted = set(outputs) | set(dead)
    duplicated = sum(n - 1 for n in outputs.values()) + sum(n - 1 for n in dead.values())
    result = Tally(
        scenario,
        records_in=len(wanted),
        out=len(set(outputs) & wanted),
        dead_lettered=len(set(dead) & wanted),
        duplicated=duplicated,
        lost=len(wanted - accounted),
    )
    return result.report() if report else result


def _has(ids: set[int]) -> Any:
    def done(records: list[Consumed]) -> bool:
        return ids <= {int(r.headers.get("x-test-id", b"-1")) for r in records}

    return done


def rss_bytes(pid: int) -> int:
    """Resident memory of a process on this machine (Linux /proc)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def counter_once_up(worker: WorkerProcess, name: str, **labels: str) -> float:
    """`worker.counter(...)`, or 0 while the worker's web server is not answering yet (still starting)."""
    worker.check_running()
    if worker.get("/metrics")[0] != 200:
        return 0.0
    return worker.counter(name, **labels)


def outputs_grow(worker: WorkerProcess, by: int, timeout: float, what: str) -> None:
    """Wait until `worker` has acknowledged `by` more outputs than now: it holds partitions and progresses."""
    wanted = counter_once_up(worker, "avroflow_records_out_total") + by
    wait_for(
        lambda: counter_once_up(worker, "avroflow_records_out_total") >= wanted,
        timeout,
        f"{by} more outputs {what}",
    )
