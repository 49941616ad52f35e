"""Run Apache Kafka (KRaft mode) on loopback: one combined broker and controller, or a cluster of three.

`KafkaBroker` formats each node's log directory with Kafka's own storage tool, starts ``kafka.Kafka`` from the
jars `devstack.kafka_runtime` fetched from Maven Central, and counts the cluster as started only when a real
Kafka client fetched metadata that lists every node at its advertised address. Every port is a free loopback
port picked when the object is made, so a node killed with SIGKILL comes back on the same ports and log
directories (`kill`, `start_node`). Broker output goes to one log file per node. Stopping sends SIGTERM
(Kafka's controlled shutdown), then SIGKILL after a grace period, and removes the data folder the helper made.

Each node has three listeners: ``CLIENT`` (what clients bootstrap from; it can advertise another address, such
as a TCP proxy in front of it), ``INTERNAL`` (replication between nodes) and ``CONTROLLER``; more (SSL,
SASL_SSL) come from `extra_listeners` with their settings in `server_properties`. The defaults suit tests:
replication factors of min(3, nodes), ``min.insync.replicas`` of min(2, nodes), no initial rebalance delay and
session timeouts from 500 ms. For tests and local runs only.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from devstack.broker import BrokerError, BrokerStartError, create_topics, free_port
from devstack.children import ChildService, preexec_for, stop_child
from devstack.kafka_runtime import KafkaRuntimeMissing, java_binary, kafka_classpath

__all__ = ["KafkaBroker", "KafkaRuntimeMissing", "new_cluster_id"]

_STOP_GRACE_SECONDS = 15.0
_LOG_TAIL_CHARS = 3000
_POLL_INTERVAL = 0.2
_FORMAT_TIMEOUT = 60.0
_JVM_OPTIONS = (
    "-Xms128m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_LOG4J = """status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def new_cluster_id() -> str:
    """A random KRaft cluster id (a UUID in URL-safe base64, as Kafka's storage tool takes it).

    One that starts with ``-`` is drawn again: the storage tool's argument parser would read it as an option
    (one id in 64 would fail the format, as Kafka's own ``Uuid.randomUuid`` also avoids).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


_TEMP_PREFIX = "avroflow-kafka-"
_OWNER_FILE = "owner.pid"


def _own_temporary_folder() -> Path:
    """A new temporary folder marked with this process's pid, after removing those of processes that are gone.

    A test run killed before its finalizers leaves its folder behind; the next helper made on the machine
    sweeps it (only folders whose owner no longer runs).
    """
    for stale in Path(tempfile.gettempdir()).glob(_TEMP_PREFIX + "*"):
        try:
            owner = int((stale / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not marked (yet): leave it
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
    (folder / _OWNER_FILE).write_text(str(os.getpid()))
    return folder


@dataclass
class _Node:
    index: int
    ports: dict[str, int]
    folder: Path
    advertised_client: str
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def node_id(self) -> int:
        return self.index + 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class KafkaBroker(ChildService):
    """Apache Kafka in KRaft mode in child processes on loopback.

    Args:
        nodes: 1 (one combined broker and controller) or more (each node both; a quorum of all of them).
        host: Loopback interface to listen on.
        data_dir: Parent of the nodes' folders (log dirs, config, log file); None makes a temporary folder
            that `stop` removes.
        advertised_client: Node index -> ``host:port`` to advertise for its ``CLIENT`` listener instead of
            its own (a proxy in front of it); see `client_port`.
        extra_listeners: Listener name -> security protocol, e.g. ``{"SASL_SSL": "SASL_SSL"}``.
        server_properties: Settings added to (or overriding) every node's ``server.properties``.
        scram_users: User -> password, created as SCRAM-SHA-512 credentials when the storage is formatted.
        heap: The JVM's maximum heap per node.
        die_with_parent: On Linux, the kernel ends the nodes when the thread that started them exits.
    """

    def __init__(
        self,
        *,
        nodes: int = 1,
        host: str = "127.0.0.1",
        data_dir: Path | None = None,
        advertised_client: Mapping[int, str] | None = None,
        extra_listeners: Mapping[str, str] | None = None,
        server_properties: Mapping[str, str] | None = None,
        scram_users: Mapping[str, str] | None = None,
        heap: str = "512m",
        die_with_parent: bool = True,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"a Kafka cluster needs at least one node, not {nodes}")
        self.host = host
        self.extra_listeners = dict(extra_listeners or {})
        self._properties = dict(server_properties or {})
        self._scram_users = dict(scram_users or {})
        self._heap = heap
        self._die_with_parent = die_with_parent
        self._own_dir = data_dir is None
        self.data_dir = _own_temporary_folder() if data_dir is None else data_dir
        self._formatted = False
        self._lock = threading.RLock()
        names = ("CLIENT", "INTERNAL", "CONTROLLER", *self.extra_listeners)
        self._nodes = []
        for index in range(nodes):
            ports = {name: free_port(host) for name in names}
            advertised = (advertised_client or {}).get(index, f"{host}:{ports['CLIENT']}")
            self._nodes.append(_Node(index, ports, self.data_dir / f"node-{index + 1}", advertised))

    def __repr__(self) -> str:
        nodes, bootstrap = len(self._nodes), self.bootstrap_servers
        return f"KafkaBroker(nodes={nodes}, bootstrap={bootstrap!r}, running={self.running})"

    @property
    def nodes(self) -> int:
        """How many nodes the cluster has."""
        return len(self._nodes)

    @property
    def bootstrap_servers(self) -> str:
        """The advertised ``CLIENT`` addresses of every node, comma-separated."""
        return ",".join(node.advertised_client for node in self._nodes)

    def bootstrap_for(self, listener: str) -> str:
        """``host:port,...`` of every node's `listener` (an extra listener's name, or ``CLIENT``)."""
        return ",".join(f"{self.host}:{node.ports[listener]}" for node in self._nodes)

    def client_port(self, index: int = 0) -> int:
        """The port node `index` listens on for clients (what a proxy in front of it forwards to)."""
        return self._nodes[index].ports["CLIENT"]

    @property
    def running(self) -> bool:
        """True while every node's process is alive."""
        return all(node.alive for node in self._nodes)

    @property
    def pid(self) -> int | None:
        """Process id of the first node while it runs."""
        return self.node_pid(0)

    def node_pid(self, index: int) -> int | None:
        """Process id of node `index` while it runs."""
        node = self._nodes[index]
        return node.proc.pid if node.alive and node.proc is not None else None

    def index_of(self, node_id: int) -> int:
        """The index (0-based) of the node whose ``node.id`` is `node_id`, as metadata reports leaders."""
        return node_id - 1

    def start(self, timeout: float = 90.0) -> None:
        """Format the nodes' storage (first start only), start every node and wait until all serve.

        Raises:
            KafkaRuntimeMissing: Java or Maven is missing, or the jars could not be fetched.
            BrokerStartError: A node exited early or the cluster did not serve metadata in time; the message
                carries the tail of the log of the node that failed.
        """
        with self._lock:
            deadline = time.monotonic() + timeout
            classpath = kafka_classpath()  # outside the deadline: the first call downloads
            deadline = max(deadline, time.monotonic() + timeout / 2)
            try:
                if not self._formatted:
                    self._format_all(classpath)
                for node in self._nodes:
                    self._spawn(node, classpath)
                self._wait_until_serving(deadline, len(self._nodes))
            except BaseException:
                self._stop_nodes(self._nodes, grace=0)
                raise

    def start_node(self, index: int, timeout: float = 60.0) -> None:
        """Start node `index` again on its ports and log directories (after `kill` or `stop_node`)."""
        with self._lock:
            node = self._nodes[index]
            if not node.alive:
                self._spawn(node, kafka_classpath())
            self._wait_until_serving(time.monotonic() + timeout, sum(n.alive for n in self._nodes), node)

    def kill(self, index: int = 0) -> None:
        """SIGKILL node `index` (a crash: nothing is flushed or handed over) and wait for it to exit."""
        with self._lock:
            self._stop_nodes([self._nodes[index]], grace=0)

    def stop_node(self, index: int, grace: float = _STOP_GRACE_SECONDS) -> None:
        """Stop node `index` with a controlled shutdown (SIGTERM), SIGKILL after `grace` seconds."""
        with self._lock:
            self._stop_nodes([self._nodes[index]], grace=grace)

    def stop(self) -> None:
        """Stop every node, then remove the data folder if this helper made it. Safe to call twice."""
        with self._lock:
            self._stop_nodes(self._nodes, grace=_STOP_GRACE_SECONDS)
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_path(self, index: int = 0) -> Path:
        """The file that receives node `index`'s output."""
        return self._nodes[index].folder / "kafka.log"

    def log_tail(self, chars: int = _LOG_TAIL_CHARS, index: int = 0) -> str:
        """The last `chars` characters of node `index`'s log."""
        path = self.log_path(index)
        with contextlib.suppress(OSError), path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - chars))
            return log.read().decode("utf-8", "replace")
        return ""

    def create_topics(
        self,
        names: Iterable[str],
        partitions: int = 1,
        timeout: float = 15.0,
        *,
        replication_factor: int | None = None,
    ) -> None:
        """Create topics (replication factor min(3, nodes) unless given); existing ones are left alone."""
        replicas = replication_factor or min(3, len(self._nodes))
        create_topics(
            self.bootstrap_servers, names, partitions, timeout, config=self._admin_config(), replicas=replicas
        )

    def leader_of(self, topic: str, partition: int = 0, timeout: float = 10.0) -> int:
        """The index of the node that leads `topic`'s `partition` now."""
        metadata = AdminClient(self._admin_config()).list_topics(topic, timeout=timeout)
        found = metadata.topics.get(topic)
        # Right after creation the metadata can list the topic before its partitions.
        leader = found.partitions[partition].leader if found and partition in found.partitions else -1
        if leader < 0:
            raise BrokerError(f"{topic}[{partition}] has no leader now")
        return self.index_of(leader)

    def _admin_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap_servers, "log_level": 0, "socket.timeout.ms": 3000}

    def _server_properties(self, node: _Node) -> dict[str, str]:
        size = len(self._nodes)
        voters = ",".join(f"{n.node_id}@{self.host}:{n.ports['CONTROLLER']}" for n in self._nodes)
        protocols = {"CLIENT": "PLAINTEXT", "INTERNAL": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
        protocols.update(self.extra_listeners)
        advertised = {name: f"{self.host}:{port}" for name, port in node.ports.items()}
        del advertised["CONTROLLER"]
        advertised["CLIENT"] = node.advertised_client
        replicas, isr = str(min(3, size)), str(min(2, size))
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": ",".join(f"{name}://{self.host}:{port}" for name, port in node.ports.items()),
            "advertised.listeners": ",".join(f"{name}://{address}" for name, address in advertised.items()),
            "listener.security.protocol.map": ",".join(f"{k}:{v}" for k, v in protocols.items()),
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(node.folder / "data"),
            "num.partitions": "1",
            "default.replication.factor": replicas,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "500",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        properties.update(self._properties)
        return properties

    def _write_config(self, node: _Node) -> Path:
        node.folder.mkdir(parents=True, exist_ok=True)
        (node.folder / "log4j2.properties").write_text(_LOG4J)
        path = node.folder / "server.properties"
        lines = [f"{key}={value}" for key, value in self._server_properties(node).items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def _java(self, node: _Node, classpath: str, main: str, *args: str) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}"
        return [java_binary(), f"-Xmx{self._heap}", *_JVM_OPTIONS, log4j, "-cp", classpath, main, *args]

    def _format_all(self, classpath: str) -> None:
        cluster_id = new_cluster_id()
        scram: list[str] = []
        for user, password in self._scram_users.items():
            scram += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        running = []
        for node in self._nodes:
            config = self._write_config(node)
            args = [
                "format",
                "--config",
                str(config),
                "--cluster-id",
                cluster_id,
                "--ignore-formatted",
                *scram,
            ]
            command = self._java(node, classpath, "kafka.tools.StorageTool", *args)
            running.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        for proc in running:
            out, _ = proc.communicate(timeout=_FORMAT_TIMEOUT)
            if proc.returncode != 0:
                tail = out.decode("utf-8", "replace")[-_LOG_TAIL_CHARS:]
                raise BrokerStartError(f"Kafka's storage tool failed (exit {proc.returncode}):\n{tail}")
        self._formatted = True

    def _spawn(self, node: _Node, classpath: str) -> None:
        config = self._write_config(node)
        node.log = self.log_path(node.index).open("ab")
        node.proc = subprocess.Popen(
            self._java(node, classpath, "kafka.Kafka", str(config)),
            stdin=subprocess.DEVNULL,
            stdout=node.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the Python parent, which stops it in order
            preexec_fn=preexec_for(self._die_with_parent),
        )

    def _wait_until_serving(self, deadline: float, expected: int, node: _Node | None = None) -> None:
        admin = AdminClient(self._admin_config())
        last_error = "no metadata"
        while True:
            for each in [node] if node is not None else self._nodes:
                if not each.alive:
                    code = each.proc.returncode if each.proc is not None else None
                    raise self._fail(each, f"exited with code {code} before serving")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why = f"did not serve metadata in time (last: {last_error})"
                raise self._fail(node or self._nodes[0], why)
            try:
                metadata = admin.list_topics(timeout=min(remaining, 2.0))
            except KafkaException as exc:
                last_error = str(exc)
            else:
                advertised = {f"{b.host}:{b.port}" for b in metadata.brokers.values()}
                wanted = {n.advertised_client for n in self._nodes if n.alive}
                if len(advertised) >= expected and wanted <= advertised:
                    return
                last_error = f"metadata lists {sorted(advertised)}, waiting for {sorted(wanted)}"
            time.sleep(_POLL_INTERVAL)

    def _fail(self, node: _Node, why: str) -> BrokerStartError:
        tail = self.log_tail(index=node.index).strip()
        return BrokerStartError(f"Kafka node {node.node_id} {why}; log tail:\n{tail or '(empty)'}")

    def _stop_nodes(self, nodes: Iterable[_Node], grace: float) -> None:
        nodes = list(nodes)
        for node in nodes:  # signal them all first: the controlled shutdowns run side by side
            if node.alive and node.proc is not None and grace > 0:
                node.proc.send_signal(signal.SIGTERM)
        for node in nodes:
            if node.proc is not None:
                stop_child(node.proc, grace)
                node.proc = None
            if node.log is not None:
                node.log.close()
                node.log = None
