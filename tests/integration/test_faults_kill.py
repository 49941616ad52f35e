"""The worker is killed: SIGKILL mid-stream three times in a row, then SIGTERM under load. Every input has
its output; SIGKILL costs duplicates (counted), SIGTERM costs at most the batch in flight."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from faults_harness import counter_once_up, tally
from pipelines_for_tests import INPUT_SCHEMA, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    free_port,
    pipeline_topics,
    register,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 20
SHUTDOWN_TIMEOUT = 15


def test_three_sigkills_mid_stream_every_input_has_its_output(
    bootstrap_servers: str,
    registry_url: str,
    unique_name: str,
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    env = worker_env(
        bootstrap_servers, registry_url, unique_name, source, sink, AVROFLOW_BATCH_SIZE=str(BATCH)
    )
    done = threading.Event()
    written: list[int] = []

    def produce() -> None:  # until the last kill, so every kill lands mid-stream
        while not done.is_set():
            for i in range(len(written), len(written) + 10):
                producer.send(f"k{i}".encode(), order(i))
                written.append(i)
            producer.flush()
            done.wait(0.05)

    writer = threading.Thread(target=produce)
    writer.start()
    try:
        for kill in range(3):
            worker = WorkerProcess(
                {**env, "AVROFLOW_WEB_PORT": str(free_port())}, tmp_path / f"worker-{kill}.log"
            ).start()
            stack.callback(worker.stop)
            wait_for(lambda w=worker: counter_once_up(w, "avroflow_records_out_total") >= 30, 90, "outputs")
            time.sleep(1)  # a couple of periodic commits (every 0.5 s), then the kill between two of them
            worker.signal(signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
    finally:
        done.set()
        writer.join(60)
    producer.flush()

    last = WorkerProcess({**env, "AVROFLOW_WEB_PORT": str(free_port())}, tmp_path / "last.log").start()
    stack.callback(last.stop)
    total = len(written)
    result = tally("3x SIGKILL mid-stream", bootstrap_servers, registry_url, sink, "", set(range(total)))
    assert (result.lost, result.out, result.dead_lettered) == (0, total, 0), result
    last.check_running()


def test_sigterm_under_load_exits_zero_and_commits_what_it_wrote(
    bootstrap_servers: str,
    registry_url: str,
    unique_name: str,
    tmp_path: Path,
    stack: ExitStack,
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name)
    register(registry_url, f"{sink}-value", OUTPUT_SCHEMA)
    producer = stack.enter_context(AvroProducer(bootstrap_servers, registry_url, source, INPUT_SCHEMA))
    total = 10_000
    for i in range(total):
        producer.send(f"k{i}".encode(), order(i))
    producer.flush()
    env = worker_env(
        bootstrap_servers,
        registry_url,
        unique_name,
        source,
        sink,
        AVROFLOW_BATCH_SIZE=str(BATCH),
        # No periodic commit: only the commit on shutdown can store the first worker's progress.
        AVROFLOW_KAFKA_COMMIT_INTERVAL_SECONDS="3600",
        AVROFLOW_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT),
    )
    first = WorkerProcess(env, tmp_path / "first.log").start()
    stack.callback(first.stop)
    wait_for(lambda: counter_once_up(first, "avroflow_records_out_total") >= 300, 90, "the worker under load")
    before = first.counter("avroflow_records_out_total")
    first.signal(signal.SIGTERM)  # while batches are being processed and sent
    assert before < total, "the load was over before the signal"
    assert first.wait(SHUTDOWN_TIMEOUT + 5) == 0, first.log()[-3000:]
    assert "shutdown did not finish in time" not in first.log()

    second = WorkerProcess({**env, "AVROFLOW_WEB_PORT": str(free_port())}, tmp_path / "second.log").start()
    stack.callback(second.stop)
    result = tally("SIGTERM under load", bootstrap_servers, registry_url, sink, "", set(range(total)))
    assert (result.lost, result.out) == (0, total), result
    # Only a batch in flight at the signal may be read again (never acked, so never committed).
    assert result.duplicated <= BATCH, result
