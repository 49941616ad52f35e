"""Helpers for the worker's integration tests: the worker as a real subprocess, Kafka in and out.

`WorkerProcess` runs ``python -m workers worker`` with the test pipelines (tests/pipelines_for_tests.py)
and reads its /metrics and /readyz over loopback HTTP. Inputs are written with confluent-kafka's own
`AvroSerializer` and outputs are read by consuming, with confluent-kafka as the independent oracle. On
Kafka, `consume` also reads on to the end offsets it finds once it has what it expected, so a record
written twice shows up as an extra record (Tansu's end offsets under-report, so there it stops at the count).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client.parser import text_string_to_metric_families

from devstack import broker
from devstack.broker import free_port
from devstack.brokers import test_broker_kind
from devstack.registry import RegistryProcess
from registry_codecs import RegistryClient

REPO = Path(__file__).resolve().parents[2]
if (
    str(REPO) not in sys.path
):  # the worker imports tests.pipelines_for_tests from the repository root; so do we
    sys.path.append(str(REPO))
PIPELINES_SPEC = "tests.pipelines_for_tests:PIPELINES"
HTTP_TIMEOUT = 5.0
#: What a worker on Tansu needs: Tansu refuses aiokafka's idempotent producer a producer id.
ON_TANSU = {"AVROFLOW_KAFKA_IDEMPOTENT_PRODUCER": "false"}


def restartable_registry(tmp_path: Path, stack: ExitStack, sink: str, output_schema: str) -> RegistryProcess:
    """A registry of the test's own, with `output_schema` under ``<sink>-value``, that keeps its port and
    data across ``stop()``/``start()`` (for outage tests); stopped when `stack` closes."""
    registry = stack.enter_context(RegistryProcess(port=free_port(), data_dir=tmp_path / "registry"))
    register(registry.url, f"{sink}-value", output_schema)
    return registry


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `condition` until it returns something truthy; fail the test with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def register(registry_url: str, subject: str, schema: str) -> int:
    """Register `schema` under `subject` and return its id."""
    with RegistryClient(registry_url) as client:
        return client.register(subject, schema)


def latest_id(registry_url: str, subject: str) -> int:
    with RegistryClient(registry_url) as client:
        return client.get_latest(subject).schema_id


def create_topics(bootstrap_servers: str, names: Iterable[str], partitions: int = 2) -> None:
    broker.create_topics(bootstrap_servers, names, partitions, timeout=15)


def pipeline_topics(bootstrap_servers: str, name: str, partitions: int = 2) -> tuple[str, str]:
    """Create and return a test's source and sink topics, ``<name>-in`` and ``<name>-out``."""
    source, sink = f"{name}-in", f"{name}-out"
    create_topics(bootstrap_servers, [source, sink], partitions)
    return source, sink


@dataclass
class AvroProducer:
    """Writes records the way a Java or confluent-kafka producer would (auto-registers the schema)."""

    bootstrap_servers: str
    registry_url: str
    topic: str
    schema: str
    #: More librdkafka settings (``{"enable.idempotence": True}`` keeps the inputs in order in a failover).
    config: Mapping[str, Any] = field(default_factory=dict)
    _producer: Producer = field(init=False)
    _registry: SchemaRegistryClient = field(init=False)
    _serializer: AvroSerializer = field(init=False)

    def __post_init__(self) -> None:
        self._producer = Producer(
            {"bootstrap.servers": self.bootstrap_servers, "linger.ms": 5, **self.config}
        )
        self._registry = SchemaRegistryClient({"url": self.registry_url})
        self._serializer = AvroSerializer(self._registry, self.schema)

    def __enter__(self) -> AvroProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()
        self._registry.__exit__(None, None, None)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        frame = self._serializer(dict(record), SerializationContext(self.topic, MessageField.VALUE))
        assert frame is not None
        return bytes(frame)

    def send_raw(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self._producer.produce(self.topic, key=key, value=value, headers=headers)

    def send(self, key: bytes | None, record: Mapping[str, Any]) -> None:
        self.send_raw(key, self.encode(record))

    def flush(self) -> None:
        remaining = self._producer.flush(15)
        assert remaining == 0, f"{remaining} records not delivered"


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def consume(
    bootstrap_servers: str,
    topic: str,
    expected: int,
    timeout: float = 30.0,
    *,
    done: Callable[[list[Consumed]], bool] | None = None,
) -> list[Consumed]:
    """Read `topic` from the beginning (no consumer group) until `expected` records (or `done` says so),
    or until `timeout`; on Kafka, then on to the end offsets of that moment (see the module docstring)."""
    enough = done or (lambda records: len(records) >= expected)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Consumed] = []
        deadline = time.monotonic() + timeout
        while not enough(records) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            records.append(_consumed(message))
        if test_broker_kind() == "kafka":
            records += _read_to_end(consumer, topic, records, deadline)
        return records
    finally:
        consumer.close()


def _consumed(message: Message) -> Consumed:
    headers = {k: v or b"" for k, v in (message.headers() or [])}
    return Consumed(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        message.key(),
        message.value(),
        headers,
    )


def _read_to_end(consumer: Consumer, topic: str, records: list[Consumed], deadline: float) -> list[Consumed]:
    """The records between what `records` holds and each partition's end offset now."""
    seen = {(r.partition, r.offset) for r in records}
    nexts = {p: max((o for q, o in seen if q == p), default=-1) + 1 for p, _ in seen} if seen else {}
    ends = {}
    for assigned in consumer.assignment():
        _, high = consumer.get_watermark_offsets(assigned, timeout=10)
        ends[assigned.partition] = high
    more: list[Consumed] = []
    while any(nexts.get(p, 0) < end for p, end in ends.items()) and time.monotonic() < deadline + 5:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        record = _consumed(message)
        nexts[record.partition] = record.offset + 1
        if (record.partition, record.offset) not in seen:
            more.append(record)
    return more


def cli_env(bootstrap_servers: str, registry_url: str) -> dict[str, str]:
    """Environment for a `python -m workers` command line tool: this process's, without any AVROFLOW_*
    setting but the broker and the registry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
    env.update(AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers, AVROFLOW_SCHEMA_REGISTRY_URL=registry_url)
    return env


def worker_env(
    bootstrap_servers: str, registry_url: str, app_id: str, source: str, sink: str, **extra: str
) -> dict[str, str]:
    """Environment for a test worker: short timeouts so the suite stays quick; on the session's broker
    (`ON_TANSU` when that is Tansu; a test on a broker of its own passes what that one needs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVROFLOW_")}
    env.update(
        AVROFLOW_KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        AVROFLOW_SCHEMA_REGISTRY_URL=registry_url,
        AVROFLOW_APP_ID=app_id,
        AVROFLOW_PIPELINES=PIPELINES_SPEC,
        AVROFLOW_WEB_HOST="127.0.0.1",
        AVROFLOW_WEB_PORT=str(free_port()),
        AVROFLOW_KAFKA_SESSION_TIMEOUT_SECONDS="1.5",
        AVROFLOW_KAFKA_COMMIT_INTERVAL_SECONDS="0.5",
        AVROFLOW_LATEST_SCHEMA_TTL_SECONDS="1",
        AVROFLOW_REGISTRY_CHECK_INTERVAL_SECONDS="0.5",
        AVROFLOW_RETRY_BACKOFF_SECONDS="0.1",
        AVROFLOW_RETRY_BACKOFF_MAX_SECONDS="1",
        AVROFLOW_SCHEMA_REGISTRY_TIMEOUT_SECONDS="2",
        AVROFLOW_SHUTDOWN_TIMEOUT_SECONDS="15",
        AVROFLOW_BATCH_SIZE="50",
        # Unknown ids and missing sink subjects are final after 2 s (default 30 s, for registry warm-ups).
        AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS="2",
        TEST_SOURCE_TOPIC=source,
        TEST_SINK_TOPIC=sink,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    if test_broker_kind() == "tansu":
        env.update(ON_TANSU)
    env.update(extra)
    return env


class WorkerProcess:
    """``python -m workers worker [args]`` (or another `command`) as a subprocess, output in a log file."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, args: Sequence[str] = (), command: Sequence[str] = ()
    ) -> None:
        self.env = dict(env)
        self.command = list(command) or [sys.executable, "-m", "workers", "worker", *args]
        self.port = int(self.env["AVROFLOW_WEB_PORT"])
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=HTTP_TIMEOUT
            ) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, ""

    def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/readyz")
        return status, (json.loads(body) if body else {})

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            self.check_running()
            return self.readyz()[0] == 200

        wait_for(ready, timeout, f"the worker's /readyz to answer 200\n{self.log()[-3000:]}")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        samples = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def counter(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for (sample, sample_labels), value in self.metrics().items():
            if sample == name and set(labels.items()) <= set(sample_labels):
                total += value
        return total

    def check_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()[-3000:]}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Kill the worker if it still runs (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def assert_nothing_leaks(
    worker: WorkerProcess,
    bootstrap_servers: str,
    dlq: str,
    *secrets: str,
    content: str,
    dead_letters: int = 2,
) -> None:
    """The secrets appear in no log line, endpoint answer or dead-letter header (`dead_letters` of them
    read from `dlq` through `bootstrap_servers`); the endpoints show no record `content` either."""
    answers = {path: worker.get(path)[1] for path in ("/metrics", "/healthz", "/readyz")}
    dead = consume(bootstrap_servers, dlq, expected=dead_letters, timeout=30)
    assert len(dead) == dead_letters
    headers = "\n".join(
        f"{k}={v.decode(errors='replace')}" for record in dead for k, v in record.headers.items()
    )
    assert "dlq.error.message" in headers
    for secret in secrets:
        assert secret not in worker.log()
        assert secret not in headers
        for path, body in answers.items():
            assert secret not in body, path
    for path, body in answers.items():
        assert content not in body, f"{path} shows record content"
