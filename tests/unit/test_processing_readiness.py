"""Readiness reasons, the worker's metric names, and the structured log lines."""

from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, generate_latest

from workers.logs import JsonFormatter, LogfmtFormatter
from workers.web import Readiness, WorkerMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ready_readiness(clock: Clock, rebalancing: list[bool] | None = None) -> Readiness:
    flag = rebalancing if rebalancing is not None else [False]
    readiness = Readiness(registry_max_age=60, broker_max_age=10, rebalancing=lambda: flag[0], clock=clock)
    readiness.registry_ok()
    readiness.broker_ok()
    readiness.assignment_received()
    return readiness


def test_ready_only_when_assigned_registry_recent_sinks_resolved_and_nothing_stuck() -> None:
    clock = Clock()
    readiness = Readiness(registry_max_age=5, broker_max_age=10, clock=clock)
    readiness.unresolved_subjects.add("out-value")
    assert readiness.reasons() == [
        "no partitions assigned",
        "schema registry not answering: registry not checked yet",
        "Kafka broker not answering: not checked yet",
        "sink subject out-value not resolved",
    ]
    readiness.assignment_received()
    readiness.registry_ok()
    readiness.broker_ok()
    readiness.unresolved_subjects.clear()
    assert readiness.reasons() == []
    readiness.set_stuck("orders", "registry_unavailable")
    assert readiness.reasons() == ["pipeline orders stuck: registry_unavailable"]
    readiness.clear_stuck("orders")
    clock.now += 6
    readiness.broker_ok()
    assert readiness.reasons() == ["schema registry not heard from for 6s"]
    readiness.registry_failed("connection refused")
    assert readiness.reasons() == ["schema registry not answering: connection refused"]


def test_an_empty_assignment_is_ready_and_idle() -> None:
    # More workers than partitions: this member joined the group and got none; it is ready, and idles.
    clock = Clock()
    readiness = ready_readiness(clock)
    assert readiness.reasons() == []


def test_the_broker_unanswered_for_longer_than_the_timeout_is_not_ready_then_ready_again() -> None:
    clock = Clock()
    readiness = ready_readiness(clock)
    clock.now += 4
    readiness.broker_failed("KafkaConnectionError: connection refused")
    assert readiness.reasons() == [], "a failure within the timeout is tolerated"
    clock.now += 7  # 11 s since the last answer, timeout 10 s
    readiness.broker_failed("KafkaConnectionError: connection refused")
    assert readiness.reasons() == [
        "Kafka broker not answering for 11s: KafkaConnectionError: connection refused"
    ]
    readiness.broker_ok()
    assert readiness.reasons() == []


def test_a_rebalance_longer_than_the_timeout_is_not_ready_then_ready_again() -> None:
    clock = Clock()
    rebalancing = [True]
    readiness = ready_readiness(clock, rebalancing)
    assert readiness.reasons() == [], "a rebalance is tolerated for the timeout"
    clock.now += 11
    readiness.broker_ok()
    assert readiness.reasons() == ["no partitions assigned for 11s (rebalancing)"]
    rebalancing[0] = False
    assert readiness.reasons() == []
    rebalancing[0] = True
    assert readiness.reasons() == [], "a new rebalance starts a new count"


def test_metric_names_are_prefixed_and_registered_only_on_the_given_registry() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    metrics.records_in.labels("p").inc(3)
    metrics.records_dead_lettered.labels("p", "framing").inc()
    metrics.transform_seconds.labels("p").observe(0.0002)
    text = generate_latest(registry).decode()
    for name in (
        "avroflow_records_in_total",
        "avroflow_records_dead_lettered_total",
        "avroflow_transform_duration_seconds_bucket",
        "avroflow_ready",
    ):
        assert name in text
    assert registry.get_sample_value("avroflow_records_in_total", {"pipeline": "p"}) == 3
    WorkerMetrics.create(CollectorRegistry())  # a second set on another registry does not clash


def record(message: str, **extra: object) -> logging.LogRecord:
    log_record = logging.LogRecord("avroflow.test", logging.WARNING, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(log_record, key, value)
    return log_record


def test_logfmt_lines_carry_the_extra_fields_quoted_when_needed() -> None:
    line = LogfmtFormatter().format(record("pipeline stuck", pipeline="orders", error='a "b" c'))
    assert "\n" not in line
    assert (
        'level=warning logger=avroflow.test msg="pipeline stuck" pipeline=orders error="a \\"b\\" c"' in line
    )


def test_json_lines_parse() -> None:
    fields = json.loads(JsonFormatter().format(record("pipeline recovered", retries=3)))
    assert fields["msg"] == "pipeline recovered"
    assert fields["retries"] == 3
    assert fields["level"] == "warning"
