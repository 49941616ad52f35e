"""The worker with AVROFLOW_FAUST_FAST_PATH=false: plain Faust dispatch, no hooks but the producer's,
the same outcomes end to end on the real broker (outputs, drops, dead letters, commits after a stop)."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    consume,
    pipeline_topics,
    register,
    wait_for,
    worker_env,
)

from devstack import brokers

pytestmark = pytest.mark.integration


def _committed(bootstrap_servers: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        offsets = consumer.committed([TopicPartition(topic, p) for p in metadata.partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def test_with_the_fast_path_off_the_worker_processes_on_plain_faust_dispatch(
    bootstrap_servers: str, registry_url: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    env = worker_env(
        bootstrap_servers, registry_url, unique_name, source, sink, AVROFLOW_FAUST_FAST_PATH="false"
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    stack.callback(worker.stop)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    for i in range(40):
        producer.send(f"k-{i}".encode(), order(i))
    producer.send(b"drop", order(100, marker="drop"))
    producer.send(b"raise", order(101, marker="raise"))
    producer.send_raw(b"bad-magic", b"\x01" + producer.encode(order(102))[1:])
    producer.flush()
    total = 43

    worker.start().wait_ready()
    outputs = consume(bootstrap_servers, sink, expected=40)
    assert sorted(int(r.key.decode()[2:]) for r in outputs if r.key) == list(range(40))
    dead = consume(bootstrap_servers, f"{source}.dlq", expected=2)
    reasons = {r.key: dict(r.headers)["dlq.error.reason"] for r in dead}
    assert reasons == {b"raise": b"transform_failed", b"bad-magic": b"framing"}
    wait_for(lambda: worker.counter("avroflow_records_in_total") == total, 30, "every input counted")
    assert worker.counter("avroflow_records_out_total") == 40
    assert worker.counter("avroflow_records_dropped_total") == 1
    assert worker.counter("avroflow_records_dead_lettered_total") == 2

    # The start says which hooks it installed: only the idempotent producer's (none on Tansu, which
    # runs without idempotence), none of the fast path's.
    adapter_line = next(line for line in worker.log().splitlines() if "faust adapter" in line)
    assert "fast_path=false" in adapter_line.lower()
    expected_hooks = "none" if brokers.test_broker_kind() == "tansu" else "idempotent_producer"
    assert f"hooks={expected_hooks}" in adapter_line
    for fast in ("eager_dispatch", "prompt_resume", "fetch_max_wait"):
        assert fast not in adapter_line

    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert _committed(bootstrap_servers, unique_name, source) == total  # every input, after its result
