"""The broker goes away: not there when the worker starts, and cut off mid-run (a TCP proxy in front of the
session's kind of broker: every client connection drops and none gets through for longer than the session
timeout). The worker waits, says so, and carries on when the broker is back; no input is lost and the
process does not exit. A real broker crash and restart, which Tansu cannot survive (it keeps topics in
memory), is in test_faults_kafka.py."""

from __future__ import annotations

import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from faults_harness import SMALL_HEAP, ProxiedBroker, tally
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    create_topics,
    free_port,
    register,
    wait_for,
    worker_env,
)

from devstack.broker import TansuBroker
from devstack.kafka import KafkaBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def produce_slowly(producer: AvroProducer, total: int) -> None:
    """Write `total` records over a few seconds, so a cut lands mid-stream (librdkafka buffers meanwhile)."""
    for i in range(total):
        producer.send(f"k{i}".encode(), order(i))
        time.sleep(0.02)


def test_worker_started_before_the_broker_waits_then_processes(
    broker_kind: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = f"{unique_name}-in", f"{unique_name}-out"
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    # Both pick their ports when made, so the worker can be pointed at a broker that is not there yet.
    broker: KafkaBroker | TansuBroker
    if broker_kind == "kafka":
        broker = KafkaBroker(data_dir=tmp_path / "kafka", heap=SMALL_HEAP)
    else:
        broker = TansuBroker(port=free_port())
    stack.callback(broker.stop)
    env = worker_env(broker.bootstrap_servers, registry_url, unique_name, source, sink)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    wait_for(lambda: "Kafka broker unreachable at start" in worker.log(), 60, "the waiting line")
    time.sleep(5)  # several retries with backoff, and still running (Faust alone exits at once)
    worker.check_running()
    assert worker.readyz()[0] != 200

    broker.start()
    create_topics(broker.bootstrap_servers, [source, sink])
    producer = stack.enter_context(AvroProducer(broker.bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    for i in range(50):
        producer.send(f"k{i}".encode(), order(i))
    producer.flush()
    worker.wait_ready(90)
    result = tally("broker down at start", broker.bootstrap_servers, registry_url, sink, "", set(range(50)))
    assert result.lost == 0 and result.out == 50
    log = worker.log()
    assert log.count("Kafka broker unreachable at start; waiting for it") == 1, "one line, not one per retry"
    assert "Kafka broker reachable again" in log


def test_broker_cut_off_mid_run_then_back_nothing_lost(
    broker_kind: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = f"{unique_name}-in", f"{unique_name}-out"
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    broker = ProxiedBroker(broker_kind, tmp_path / "broker")
    stack.callback(broker.stop)
    servers = broker.bootstrap_servers
    create_topics(servers, [source, sink])
    producer = stack.enter_context(AvroProducer(servers, registry_url, source, INPUT_SCHEMA))
    env = worker_env(servers, registry_url, unique_name, source, sink, AVROFLOW_BATCH_SIZE="10")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready()
    total = 400
    writer = threading.Thread(target=produce_slowly, args=(producer, total), daemon=True)
    writer.start()
    wait_for(lambda: worker.counter("avroflow_records_in_total") >= 50, 60, "the first inputs")

    broker.proxy.cut()  # mid-stream: batches in flight, sends unacknowledged, commits pending
    cut_at = len(worker.log())
    # Longer than the session timeout (1.5 s): the group falls apart too. FAULT_BROKER_CUT_SECONDS makes it
    # longer than the producer's request timeout (30 s) for a one-off run.
    time.sleep(float(os.environ.get("FAULT_BROKER_CUT_SECONDS", "12")))
    worker.check_running()
    during = worker.log()[cut_at:]
    broker.proxy.restore()
    writer.join(120)
    producer.flush()

    result = tally("broker cut mid-run", servers, registry_url, sink, "", set(range(total)), timeout=120)
    worker.check_running()
    assert result.lost == 0 and result.out == total, result
    # Which of the Kafka client's connection errors comes first depends on what was in flight at the cut.
    lost_connection = (
        "Unable connect to",
        "Unable to bootstrap",
        "KafkaConnectionError",
        "NodeNotReadyError",
    )
    assert any(marker in during for marker in lost_connection), during[-3000:]
    # The Kafka client retries every 100 ms; its repeated lines are shown once per kind per 30 s.
    noisy = [line for line in during.splitlines() if "level=error" in line or "level=warning" in line]
    assert len(noisy) < 40, "\n".join(noisy[:60])
    worker.wait_ready(60)
