"""Lag on /metrics: per partition the group's committed offset, the log-end offset and the lag, matching
what Kafka says about the group; the age of the oldest record the worker holds; the rebalance counter."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from pipelines_for_tests import INPUT_SCHEMA, INPUT_SCHEMA_V2, OUTPUT_SCHEMA, order
from worker_harness import (
    AvroProducer,
    WorkerProcess,
    pipeline_topics,
    restartable_registry,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def exported(worker: WorkerProcess, source: str) -> dict[int, tuple[float, float, float]]:
    """partition -> (committed, log end, lag) as /metrics shows them for `source`."""
    samples = worker.metrics()
    rows: dict[int, list[float]] = {}
    names = (
        "avroflow_consumer_committed_offset",
        "avroflow_consumer_log_end_offset",
        "avroflow_consumer_lag_messages",
    )
    for (name, labels), value in samples.items():
        label = dict(labels)
        if name in names and label.get("topic") == source:
            rows.setdefault(int(label["partition"]), [0.0, 0.0, 0.0])[names.index(name)] = value
    return {p: (row[0], row[1], row[2]) for p, row in rows.items()}


def kafkas_view(
    bootstrap_servers: str, group: str, source: str, partitions: int
) -> dict[int, tuple[int, int]]:
    """partition -> (committed, log end) as Kafka answers for the group (a consumer that never joins it)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False}
    )
    try:
        committed = consumer.committed([TopicPartition(source, p) for p in range(partitions)], timeout=10)
        view = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            view[tp.partition] = (tp.offset if tp.offset >= 0 else low, high)
        return view
    finally:
        consumer.close()


def test_lag_metrics_match_the_groups_lag_while_held_back_and_return_to_zero(
    bootstrap_servers: str, unique_name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source, sink = pipeline_topics(bootstrap_servers, unique_name, partitions=2)
    registry = restartable_registry(tmp_path, stack, sink, OUTPUT_SCHEMA)
    v1 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA))
    v2 = stack.enter_context(AvroProducer(bootstrap_servers, registry.url, source, INPUT_SCHEMA_V2))
    unseen = [v2.encode(order(i, coupon="c")) for i in range(10, 25)]
    env = worker_env(
        bootstrap_servers, registry.url, unique_name, source, sink, AVROFLOW_LAG_CHECK_INTERVAL_SECONDS="1"
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    stack.callback(worker.stop)
    worker.wait_ready(90)
    for i in range(10):
        v1.send(f"k{i}".encode(), order(i))
    v1.flush()
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 10, 60, "the first outputs")

    def caught_up() -> bool:
        rows = exported(worker, source)
        return len(rows) == 2 and all(lag == 0 and committed == end for committed, end, lag in rows.values())

    wait_for(caught_up, 30, "lag 0 on both partitions")
    assert worker.counter("avroflow_rebalances_total") >= 1
    assert worker.counter("avroflow_oldest_unprocessed_record_age_seconds", pipeline="orders") == 0

    registry.stop()  # a writer id the worker has not seen: held back, nothing committed past it
    for i, frame in enumerate(unseen, start=10):
        v2.send_raw(f"k{i}".encode(), frame)
    v2.flush()
    wait_for(
        lambda: worker.counter("avroflow_pipeline_stuck", pipeline="orders") == 1, 60, "the pipeline stuck"
    )
    wait_for(
        lambda: sum(lag for _, _, lag in exported(worker, source).values()) == 15,
        30,
        "a lag of the 15 held back",
    )
    kafka = kafkas_view(bootstrap_servers, unique_name, source, 2)
    rows = exported(worker, source)
    assert {p: (int(c), int(e)) for p, (c, e, _) in rows.items()} == kafka
    assert {p: int(lag) for p, (_, _, lag) in rows.items()} == {p: e - c for p, (c, e) in kafka.items()}
    first_age = worker.counter("avroflow_oldest_unprocessed_record_age_seconds", pipeline="orders")
    assert first_age > 0
    wait_for(
        lambda: (
            worker.counter("avroflow_oldest_unprocessed_record_age_seconds", pipeline="orders")
            > first_age + 1
        ),
        30,
        "the oldest held record's age to grow",
    )

    registry.start()
    wait_for(lambda: worker.counter("avroflow_records_out_total") == 25, 60, "the held-back outputs")
    wait_for(caught_up, 30, "lag 0 again")
    assert worker.counter("avroflow_oldest_unprocessed_record_age_seconds", pipeline="orders") == 0
