"""Helpers for `bench/worker.py`: input records, an output collector, process CPU and memory, /metrics.

`OutputCollector` reads a sink topic from the beginning (no consumer group) in a background thread and
keeps, per key, the producer timestamp of its first output: the throughput of a variant is measured from
the first to the last output timestamp (the worker's producer stamps each record when it sends it), which
leaves the process start and the consumer group join out. Outputs are counted by consuming because
Tansu's end offsets under-report after batched produces.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from devstack.children import stop_child
from registry_codecs import AvroSerializer, RegistryClient
from workers.sample import INPUT_SCHEMA_FILE

HTTP_TIMEOUT = 5.0
TICKS = os.sysconf("SC_CLK_TCK")
_TYPES = ("page_view", "click", "page_view", "click", "signup", "page_view", "purchase")
_PROPERTIES = {
    "page_view": {"page": "/pricing"},
    "click": {"button": "start-trial", "page": "/pricing"},
    "signup": {"plan": "free"},
    "purchase": {"plan": "pro", "amount": "19.90", "currency": "EUR"},
}
WARM_PREFIX = b"warm-"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def input_frames(registry_url: str, subject: str, count: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """Return `count` (key, value) pairs: sample `AppEvent`s (no heartbeats, so none is dropped) framed
    with the input schema registered under `subject`. Keys are unique: outputs are matched by key."""
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    with RegistryClient(registry_url) as client:
        client.register(subject, INPUT_SCHEMA_FILE.read_text())
        encoder = AvroSerializer(client, subject)
        frames = []
        for i in range(count):
            kind = _TYPES[i % len(_TYPES)]
            event = {
                "event_id": f"evt-{i:08d}",
                "user_id": f"u-{rng.randrange(10_000):05d}",
                "event_type": kind,
                "occurred_at": start + timedelta(seconds=rng.randrange(86_400 * 30)),
                "properties": dict(_PROPERTIES[kind]),
                "referrer": "https://news.example.com" if i % 5 == 0 else None,
                "session_id": f"s-{rng.randrange(1 << 30):08x}" if i % 2 else None,
            }
            frames.append((f"k{i:08d}".encode(), encoder.encode(event)))
    return frames


def produce(
    bootstrap: str, topic: str, frames: list[tuple[bytes, bytes]], partition: int | None = None
) -> float:
    """Write `frames` to `topic` (spread over its partitions by key); return the seconds it took."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1 << 20})
    started = time.monotonic()
    for key, value in frames:
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value, key)
                else:
                    producer.produce(topic, value, key, partition)
                break
            except BufferError:  # the local queue is full: let librdkafka send some
                producer.poll(0.05)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} input records were not delivered to {topic}")
    return time.monotonic() - started


@dataclass
class OutputCollector:
    """Consumes `topic` from the beginning in a thread; `first_seen` maps key -> first output timestamp."""

    bootstrap: str
    topic: str
    partitions: int
    first_seen: dict[bytes, int] = field(default_factory=dict)
    values: dict[bytes, bytes] = field(default_factory=dict)
    total: int = 0
    #: Distinct keys seen per prefix, kept as they arrive: `wait_for` polls it without walking every key
    #: (a walk of 50,000 keys 20 times a second took CPU from the processes being measured).
    prefix_counts: dict[bytes, int] = field(default_factory=lambda: {b"k": 0})
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> OutputCollector:
        self._thread = threading.Thread(target=self._run, name=f"collect-{self.topic}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "bench-unused", "enable.auto.commit": False}
        )
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        try:
            while not self._stop.is_set():
                for message in consumer.consume(1000, 0.2):
                    if message.error():
                        continue
                    key = message.key() or b""
                    self.total += 1
                    if key not in self.first_seen:
                        self.first_seen[key] = message.timestamp()[1]
                        self.values[key] = message.value() or b""
                        for prefix in self.prefix_counts:
                            if key.startswith(prefix):
                                self.prefix_counts[prefix] += 1
        finally:
            consumer.close()

    def count(self, prefix: bytes = b"k") -> int:
        if prefix in self.prefix_counts:
            return self.prefix_counts[prefix]
        return sum(1 for key in list(self.first_seen) if key.startswith(prefix))

    def wait_for(self, prefix: bytes, expected: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count(prefix) < expected:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, all cores (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS, idle / TICKS


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of `pid` (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric_sum(port: int, name: str, **labels: str) -> float:
    """Sum of the samples of `name` (with these labels) on http://127.0.0.1:port/metrics; nan if it fails."""
    by_label = metric_by(port, name, "", **labels)
    return sum(by_label.values()) if by_label is not None else float("nan")


def metric_by(port: int, name: str, label: str, **labels: str) -> dict[str, float] | None:
    """The samples of `name` (with these labels) summed per value of `label`; None if /metrics fails."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=HTTP_TIMEOUT) as answer:
            body = answer.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                key = sample.labels.get(label, "")
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def registry_requests(ports: list[int]) -> dict[str, float]:
    """The workers' registry requests so far, per endpoint (``config`` is the readiness ping)."""
    totals: dict[str, float] = {}
    for port in ports:
        for endpoint, value in (
            metric_by(port, "avroflow_registry_requests_total", "endpoint") or {}
        ).items():
            totals[endpoint] = totals.get(endpoint, 0.0) + value
    return totals


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=HTTP_TIMEOUT) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def throughput(timestamps: list[int]) -> tuple[float, float]:
    """Return (records/s, seconds) from the first to the last output timestamp (ms)."""
    if len(timestamps) < 2:
        return float("nan"), float("nan")
    span = (max(timestamps) - min(timestamps)) / 1000
    return ((len(timestamps) - 1) / span if span > 0 else float("inf")), span


def sigterm_then_kill(proc: Any, timeout: float = 20.0) -> int | None:
    """Stop a `subprocess.Popen`: SIGTERM, then SIGKILL after `timeout`; return its exit code."""
    return stop_child(proc, timeout)
