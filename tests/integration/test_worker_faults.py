"""The worker under faults, as a real subprocess: the registry goes away mid-stream, the worker is killed
mid-stream, the worker is asked to stop. Nothing is skipped, nothing is dead-lettered by mistake, and every
input ends with its output."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pipelines_for_tests import INPUT_SCHEMA, INPUT_SCHEMA_V2, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    Consumed,
    WorkerProcess,
    consume,
    free_port,
    pipeline_topics,
    register,
    restartable_registry,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT = 15


@pytest.fixture
def topics(bootstrap_servers: str, unique_name: str) -> tuple[str, str]:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    return source, sink


def output_ids(bootstrap_servers: str, registry_url: str, sink: str, wanted: set[int]) -> set[int]:
    """The distinct ids in the sink, decoded by confluent-kafka; reads until all of `wanted` are seen."""
    with SchemaRegistryClient({"url": registry_url}) as registry:
        deserializer = AvroDeserializer(registry)
        seen: set[int] = set()

        def decode(records: list[Consumed]) -> bool:
            for record in records[len(decoded) :]:
                decoded.append(record)
                seen.add(deserializer(record.value, SerializationContext(sink, MessageField.VALUE))["id"])
            return wanted <= seen

        decoded: list[Consumed] = []
        consume(bootstrap_servers, sink, expected=0, timeout=10, done=decode)
        return seen


def start_worker(env: dict[str, str], log: Path, stack: ExitStack) -> WorkerProcess:
    worker = WorkerProcess(env, log).start()
    stack.callback(worker.stop)
    worker.wait_ready()
    return worker


def write_now_and_later(
    bootstrap_servers: str, registry_url: str, source: str, stack: ExitStack, *, now: int, later: int
) -> Callable[[], None]:
    """Write orders 0..now-1 with writer version 1; return what writes the next `later` orders with
    version 2, a schema id the worker has not seen yet (so decoding them needs the registry). They are
    encoded here, while the registry answers."""
    v1 = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    v2 = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA_V2))
    for i in range(now):
        v1.send(f"k{i}".encode(), order(i))
    v1.flush()
    frames = [v2.encode({**order(i), "coupon": "c"}) for i in range(now, now + later)]

    def send_later() -> None:
        for i, value in enumerate(frames, start=now):
            v2.send_raw(f"k{i}".encode(), value)
        v2.flush()

    return send_later


def test_registry_outage_mid_stream_holds_records_back_and_loses_none(
    bootstrap_servers: str, unique_name: str, topics: tuple[str, str], tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = topics
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    send_unseen = write_now_and_later(bootstrap_servers, registry.url, source, stack, now=20, later=20)
    env = worker_env(bootstrap_servers, registry.url, unique_name, source, sink)
    worker = start_worker(env, tmp_path / "worker.log", stack)
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 20, 60, "the first 20 outputs")

    registry.stop()
    send_unseen()

    def stuck() -> bool:
        status, body = worker.readyz()
        return status == 503 and any("stuck" in reason for reason in body.get("reasons", []))

    wait_for(stuck, 60, "/readyz to report the pipeline stuck")
    assert worker.counter("avroflow_pipeline_stuck", pipeline="orders") == 1
    assert worker.counter("avroflow_transient_retries_total", reason="registry_unavailable") >= 1
    assert worker.counter("avroflow_records_out_total") == 20
    assert worker.counter("avroflow_records_dead_lettered_total") == 0
    wait_for(lambda: worker.counter("avroflow_transient_retries_total") >= 3, 60, "several retries")

    registry.start()
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 40, 60, "the held-back records")
    wait_for(lambda: worker.readyz()[0] == 200, 30, "/readyz to recover")
    assert worker.counter("avroflow_pipeline_stuck", pipeline="orders") == 0
    assert worker.counter("avroflow_records_dead_lettered_total") == 0
    assert output_ids(bootstrap_servers, registry.url, sink, set(range(40))) == set(range(40))
    assert consume(bootstrap_servers, f"{source}.dlq", expected=1, timeout=2) == []
    log = worker.log()
    assert log.count("pipeline stuck") == 1, "one log line per outage, not one per retry"
    assert log.count("pipeline recovered") == 1
    warnings = [line for line in log.splitlines() if "level=warning" in line or "level=error" in line]
    assert len(warnings) <= 4, "\n".join(warnings)


def test_sigkill_mid_stream_then_restart_every_input_has_its_output(
    bootstrap_servers: str,
    registry_url: str,
    unique_name: str,
    topics: tuple[str, str],
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    source, sink = topics
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    total = 300
    env = worker_env(bootstrap_servers, registry_url, unique_name, source, sink, AVROFLOW_BATCH_SIZE="10")
    first = start_worker(env, tmp_path / "first.log", stack)
    killed = threading.Event()

    def produce() -> None:
        for i in range(total):
            producer.send(f"k{i}".encode(), order(i))
            if i % 10 == 9:
                producer.flush()
                killed.wait(0.02)

    writer = threading.Thread(target=produce)
    writer.start()
    try:
        wait_for(lambda: first.counter("avroflow_records_out_total") >= 30, 60, "the first outputs")
        first.signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        killed.set()
        writer.join(60)
    producer.flush()

    second = start_worker({**env, "AVROFLOW_WEB_PORT": str(free_port())}, tmp_path / "second.log", stack)

    def all_outputs() -> bool:
        second.check_running()
        return output_ids(bootstrap_servers, registry_url, sink, set(range(total))) == set(range(total))

    wait_for(all_outputs, 90, "an output for every input after the restart", interval=1)
    assert second.counter("avroflow_records_dead_lettered_total") == 0


def test_sigterm_commits_and_exits_zero_within_the_bound(
    bootstrap_servers: str,
    registry_url: str,
    unique_name: str,
    topics: tuple[str, str],
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    source, sink = topics
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    for i in range(100):
        producer.send(f"k{i}".encode(), order(i))
    producer.flush()
    # No periodic commit during the test: only the commit on shutdown can store the offsets.
    env = worker_env(
        bootstrap_servers,
        registry_url,
        unique_name,
        source,
        sink,
        AVROFLOW_KAFKA_COMMIT_INTERVAL_SECONDS="3600",
        AVROFLOW_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT),
    )
    first = start_worker(env, tmp_path / "first.log", stack)
    wait_for(lambda: first.counter("avroflow_records_out_total") == 100, 60, "all 100 outputs")

    first.signal(signal.SIGTERM)
    assert first.wait(SHUTDOWN_TIMEOUT + 5) == 0, first.log()[-3000:]

    second = start_worker({**env, "AVROFLOW_WEB_PORT": str(free_port())}, tmp_path / "second.log", stack)
    producer.send(b"sentinel", order(1000))
    producer.flush()
    wait_for(lambda: second.counter("avroflow_records_out_total") >= 1, 60, "the sentinel's output")
    assert second.counter("avroflow_records_in_total") == 1, (
        "the restarted worker reprocessed committed records"
    )
    wanted = {*range(100), 1000}
    assert output_ids(bootstrap_servers, registry_url, sink, wanted) == wanted


def test_sigterm_while_stuck_exits_zero_and_commits_nothing_it_did_not_finish(
    bootstrap_servers: str, unique_name: str, topics: tuple[str, str], tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = topics
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    send_unseen = write_now_and_later(bootstrap_servers, registry.url, source, stack, now=10, later=10)
    env = worker_env(
        bootstrap_servers, registry.url, unique_name, source, sink, AVROFLOW_SHUTDOWN_TIMEOUT_SECONDS="15"
    )
    first = start_worker(env, tmp_path / "first.log", stack)
    wait_for(lambda: first.counter("avroflow_records_out_total") == 10, 60, "the first 10 outputs")

    registry.stop()
    send_unseen()
    wait_for(
        lambda: first.counter("avroflow_pipeline_stuck", pipeline="orders") == 1, 60, "the pipeline stuck"
    )
    first.signal(signal.SIGTERM)
    assert first.wait(SHUTDOWN_TIMEOUT + 5) == 0, first.log()[-3000:]
    assert first.log().count("pipeline stuck") == 1

    # The held-back records were not committed: the next worker reads them again and writes them out.
    registry.start()
    second = start_worker({**env, "AVROFLOW_WEB_PORT": str(free_port())}, tmp_path / "second.log", stack)
    wait_for(lambda: second.counter("avroflow_records_out_total") >= 10, 60, "the held-back records")
    assert output_ids(bootstrap_servers, registry.url, sink, set(range(20))) == set(range(20))
    assert second.counter("avroflow_records_dead_lettered_total") == 0


def test_two_workers_share_the_partitions_and_every_input_has_its_output(
    bootstrap_servers: str,
    registry_url: str,
    unique_name: str,
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name, partitions=4)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    env = worker_env(bootstrap_servers, registry_url, unique_name, source, sink)
    first = start_worker(env, tmp_path / "first.log", stack)
    for i in range(100):
        producer.send(f"k{i}".encode(), order(i))
    producer.flush()
    # A second member joins mid-stream: the group rebalances while records flow.
    second = start_worker({**env, "AVROFLOW_WEB_PORT": str(free_port())}, tmp_path / "second.log", stack)
    for i in range(100, 300):
        producer.send(f"k{i}".encode(), order(i))
    producer.flush()

    wanted = set(range(300))
    wait_for(lambda: output_ids(bootstrap_servers, registry_url, sink, wanted) == wanted, 90, "all outputs")
    both = [w.counter("avroflow_records_in_total") for w in (first, second)]
    assert all(count > 0 for count in both), f"records per worker: {both}"
    assert sum(w.counter("avroflow_records_dead_lettered_total") for w in (first, second)) == 0
