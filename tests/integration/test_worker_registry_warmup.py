"""The real worker against a registry that restarts mid-stream and warms up: for its first seconds it
answers "schema not found" and "subject not found" for ids and subjects that exist (as Karapace does
while it replays ``_schemas``). No valid record is dead-lettered; a genuinely unknown id still is, once
`AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS` is over, and the pipeline goes on after it.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from faults_harness import tally
from pipelines_for_tests import INPUT_SCHEMA, INPUT_SCHEMA_V2, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    consume,
    pipeline_topics,
    restartable_registry,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RETRIES = "avroflow_registry_not_found_retries_total"


def test_a_registry_restarted_mid_stream_in_warm_up_dead_letters_no_valid_record(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    v1 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA))
    v2 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA_V2))
    seen = [v1.encode(order(i)) for i in range(40)]
    # Registered before the restart, but the worker has never seen this id: it must ask the registry.
    unseen = [v2.encode(order(i, coupon="c")) for i in range(40, 80)]
    env = worker_env(
        bootstrap_servers,
        registry.url,
        unique_name,
        source,
        sink,
        AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS="30",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready()
    for i in range(20):
        v1.send_raw(f"k{i}".encode(), seen[i])
    v1.flush()
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 20, 60, "the first outputs")

    registry.stop()
    registry.warmup_seconds = 8.0
    registry.start()  # same port and data; "not found" for everything during its first 8 s
    # New writer ids first: decoding comes before encoding, so the id (not the sink subject) meets the
    # warm-up first. Today's client took its 40403 at its word and dead-lettered these.
    for i in range(40, 80):
        v2.send_raw(f"k{i}".encode(), unseen[i - 40])
    v2.flush()
    for i in range(20, 40):
        v1.send_raw(f"k{i}".encode(), seen[i])
    v1.flush()
    v2.flush()
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 80, 90, "every output after the warm-up")
    assert worker.counter("avroflow_records_dead_lettered_total") == 0
    assert worker.counter(RETRIES, endpoint="schema_by_id") >= 1  # the warm-up was met, and waited out
    result = tally("registry warm-up", bootstrap_servers, registry.url, sink, "", set(range(80)))
    assert (result.lost, result.out, result.dead_lettered) == (0, 80, 0), result
    assert consume(bootstrap_servers, f"{source}.dlq", expected=1, timeout=2) == []
    worker.check_running()


def test_a_genuinely_unknown_id_is_dead_lettered_after_the_retry_time(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name, partitions=1)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA))
    env = worker_env(
        bootstrap_servers,
        registry.url,
        unique_name,
        source,
        sink,
        AVROFLOW_SCHEMA_NOT_FOUND_RETRY_SECONDS="4",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready()
    good = producer.encode(order(1))
    unknown = b"\x00" + (987_654).to_bytes(4, "big") + good[5:]
    for i in range(10):
        producer.send(f"k{i}".encode(), order(i))
    producer.send_raw(b"bad", unknown)
    for i in range(10, 20):
        producer.send(f"k{i}".encode(), order(i))
    producer.flush()
    dead = consume(bootstrap_servers, f"{source}.dlq", expected=1, timeout=60)
    assert len(dead) == 1 and dead[0].value == unknown
    assert dead[0].headers["dlq.error.reason"] == b"unknown_schema"
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 20, 60, "the records after it")
    assert worker.counter(RETRIES, endpoint="schema_by_id") >= 2  # asked again, more than once
    assert worker.counter("avroflow_transient_retries_total", reason="schema_not_found_yet") >= 1
    assert worker.counter("avroflow_records_dead_lettered_total", reason="unknown_schema") == 1
