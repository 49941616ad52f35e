"""The demo's counter summary, read from the exposition text the worker's real metric families produce."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from registry_codecs.metrics import CodecMetrics
from workers.demo_metrics import balanced, format_summary, parse_counters, total
from workers.web import WorkerMetrics


def _exposition(dead: dict[str, int], *, n_in: int, out: int, dropped: int) -> str:
    registry = CollectorRegistry()
    worker = WorkerMetrics.create(registry)
    codec = CodecMetrics.create(registry)
    worker.records_in.labels("p").inc(n_in)
    worker.records_out.labels("p").inc(out)
    worker.records_dropped.labels("p").inc(dropped)
    for reason, count in dead.items():
        worker.records_dead_lettered.labels("p", reason).inc(count)
        codec.decode_failures.labels("app-events", reason).inc(count)
    return generate_latest(registry).decode()


def test_summary_shows_each_counter_with_reasons_and_the_balance() -> None:
    counters = parse_counters(_exposition({"framing": 1, "unknown_schema": 1}, n_in=38, out=32, dropped=4))
    assert total(counters, "avroflow_records_in") == 38
    assert balanced(counters, expected_in=38)
    summary = format_summary(counters)
    assert "records in         38" in summary
    assert "dead-lettered       2   framing 1, unknown_schema 1" in summary
    assert "decode failures     2   framing 1, unknown_schema 1" in summary
    assert "encode failures     0" in summary
    assert "38 = 32 + 4 + 2 (holds)" in summary


def test_unsettled_counters_are_not_balanced() -> None:
    counters = parse_counters(_exposition({"framing": 1}, n_in=38, out=30, dropped=4))
    assert not balanced(counters, expected_in=38)
    assert "(does NOT hold)" in format_summary(counters)
    assert not balanced(parse_counters(_exposition({}, n_in=10, out=10, dropped=0)), expected_in=38)
